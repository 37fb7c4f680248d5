//! Answers for a metadata-changing request this node could not get to the active controller: every entry of
//! the request fails with the same (retriable) error, in the response the client expects.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsResponse, CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse,
    IncrementalAlterConfigsResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// The response to `request` with every entry failed with `code` and `message`; `None` for an API that is not
/// forwarded.
pub fn refusal(request: &RequestKind, code: i16, message: &str) -> Option<ResponseKind> {
    let text = || Some(StrBytes::from_string(message.to_string()));
    Some(match request {
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_error_message(text())
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteTopics(r) => {
            let names = r
                .topic_names
                .iter()
                .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
                .chain(r.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
            ResponseKind::DeleteTopics(
                DeleteTopicsResponse::default().with_responses(
                    names
                        .map(|(name, id)| {
                            DeletableTopicResult::default()
                                .with_name(name.map(|n: TopicName| n))
                                .with_topic_id(id)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                r.topics
                    .iter()
                    .map(|t| {
                        CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_error_message(text())
                    })
                    .collect(),
            ),
        ),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(
            AlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        LegacyResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(text())
                    })
                    .collect(),
            ),
        ),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(text())
                    })
                    .collect(),
            ),
        ),
        RequestKind::DescribeQuorum(_) => ResponseKind::DescribeQuorum(
            kafka_protocol::messages::DescribeQuorumResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::AddRaftVoter(_) => ResponseKind::AddRaftVoter(
            kafka_protocol::messages::AddRaftVoterResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::RemoveRaftVoter(_) => ResponseKind::RemoveRaftVoter(
            kafka_protocol::messages::RemoveRaftVoterResponse::default()
                .with_error_code(code)
                .with_error_message(text()),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            super::users::refuse_all(r, code, Some(message)),
        ),
        RequestKind::AlterClientQuotas(r) => ResponseKind::AlterClientQuotas(
            kafka_protocol::messages::AlterClientQuotasResponse::default().with_entries(
                r.entries
                    .iter()
                    .map(|e| {
                        kafka_protocol::messages::alter_client_quotas_response::EntryData::default()
                            .with_error_code(code)
                            .with_error_message(text())
                            .with_entity(
                                e.entity
                                    .iter()
                                    .map(|x| {
                                        kafka_protocol::messages::alter_client_quotas_response::EntityData::default()
                                            .with_entity_type(x.entity_type.clone())
                                            .with_entity_name(x.entity_name.clone())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(
            kafka_protocol::messages::CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| {
                        kafka_protocol::messages::create_acls_response::AclCreationResult::default()
                            .with_error_code(code)
                            .with_error_message(text())
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(
            kafka_protocol::messages::DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| {
                        kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(code)
                            .with_error_message(text())
                    })
                    .collect(),
            ),
        ),
        _ => return None,
    })
}
