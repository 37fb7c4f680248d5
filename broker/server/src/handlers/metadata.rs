use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::authz::Authz;
use crate::broker::Broker;
use crate::metadata::{
    METADATA_TOPIC, MetadataImage, MetadataRecord, TopicMeta, validate_topic_name,
};
use crate::network::ConnectionInfo;
use crate::repeats::first_of_each;
use sluice_metadata::acl::{Operation, ResourceType};

/// Kafka's value for "authorized operations were not asked for".
const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;

/// The operations Kafka reports in a topic's and the cluster's authorized operations.
const TOPIC_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
pub(super) const CLUSTER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
    Operation::CreateTokens,
    Operation::DescribeTokens,
];

pub async fn metadata(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let listener = conn.listener.as_str();
    let authz = Authz::new(broker, conn);
    let topic_ops = version >= 8 && req.include_topic_authorized_operations;
    let with_ops = |mut entry: MetadataResponseTopic| {
        if topic_ops && let Some(name) = &entry.name {
            entry.topic_authorized_operations =
                authz.operations(ResourceType::Topic, name.0.as_str(), TOPIC_OPERATIONS);
        }
        entry
    };
    // v0 sends an empty list for "all topics"; v1+ sends null.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
        Some(t) if !(version == 0 && t.is_empty()) => Some(first_of_each(
            t.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
            Clone::clone,
        )),
        _ => None,
    };
    let auto_create =
        broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.metadata.image();
            // Only the topics the client may describe.
            topics.extend(
                image
                    .topics
                    .values()
                    .filter(|t| authz.topic(Operation::Describe, &t.name))
                    .map(|t| with_ops(topic_entry(&image, t, version))),
            );
        }
        Some(wanted) => {
            for (name, id) in wanted {
                // The metadata log is not a topic: Kafka answers it as unknown and never auto-creates it.
                if name.as_deref() == Some(METADATA_TOPIC) {
                    topics.push(error_entry(
                        name,
                        id,
                        ResponseError::UnknownTopicOrPartition.code(),
                    ));
                    continue;
                }
                let found = {
                    let image = broker.metadata.image();
                    match &name {
                        Some(n) => image.topics.get(n).cloned(),
                        None => image.topic_by_id(&id).cloned(),
                    }
                };
                // Not allowed to describe it: by name, say so; by id, it is unknown (its name stays hidden).
                let described = match (&found, &name) {
                    (_, Some(n)) => authz.topic(Operation::Describe, n),
                    (Some(t), None) => authz.topic(Operation::Describe, &t.name),
                    (None, None) => true,
                };
                if !described {
                    topics.push(match name {
                        Some(n) => {
                            error_entry(Some(n), id, ResponseError::TopicAuthorizationFailed.code())
                        }
                        None => error_entry(None, id, ResponseError::UnknownTopicId.code()),
                    });
                    continue;
                }
                let entry = match (found, name) {
                    (Some(t), _) => topic_entry(&broker.metadata.image(), &t, version),
                    (None, Some(n)) => match validate_topic_name(&n) {
                        Err(_) => {
                            error_entry(Some(n), id, ResponseError::InvalidTopicException.code())
                        }
                        // Creating on use needs CREATE on the cluster or the topic.
                        Ok(())
                            if auto_create
                                && (authz.cluster(Operation::Create)
                                    || authz.topic(Operation::Create, &n)) =>
                        {
                            match auto_create_topic(broker, &n).await {
                                Ok(t) => topic_entry(&broker.metadata.image(), &t, version),
                                Err(code) => error_entry(Some(n), id, code),
                            }
                        }
                        Ok(()) => {
                            error_entry(Some(n), id, ResponseError::UnknownTopicOrPartition.code())
                        }
                    },
                    (None, None) => error_entry(None, id, ResponseError::UnknownTopicId.code()),
                };
                topics.push(if entry.error_code == 0 {
                    with_ops(entry)
                } else {
                    entry
                });
            }
        }
    }

    let brokers = broker
        .live_endpoints(listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_rack(rack.map(StrBytes::from_string))
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPS_OMITTED);
    if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = authz.operations(
            ResourceType::Cluster,
            sluice_metadata::acl::CLUSTER_NAME,
            CLUSTER_OPERATIONS,
        );
    }
    if version >= 1 {
        // Clients cannot reach KRaft controllers; Kafka names a live broker here, and so does Sluice: this one.
        resp.controller_id = BrokerId(broker.node_id);
    }
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    resp
}

fn topic_entry(image: &MetadataImage, t: &TopicMeta, version: i16) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = t
        .partition_states
        .iter()
        .enumerate()
        .map(|(p, state)| {
            // Replicas whose broker is not live (fenced or gone): clients skip them.
            let offline: Vec<i32> = state
                .replicas
                .iter()
                .copied()
                .filter(|r| !image.is_live(*r))
                .collect();
            let mut entry = MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(if version >= 7 { state.leader_epoch } else { -1 })
                .with_replica_nodes(ids(&state.replicas))
                .with_isr_nodes(ids(&state.isr));
            if version >= 5 {
                entry.offline_replicas = ids(&offline);
            }
            if state.leader().is_none() {
                entry.error_code = ResponseError::LeaderNotAvailable.code();
            }
            entry
        })
        .collect();
    let mut entry = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_is_internal(t.internal && version >= 1)
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED);
    if version >= 10 {
        entry.topic_id = t.id;
    }
    entry
}

fn error_entry(name: Option<String>, id: Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPS_OMITTED)
}

/// Create a topic a client asked metadata for, with the broker's defaults (`auto.create.topics.enable`).
async fn auto_create_topic(broker: &Broker, name: &str) -> Result<TopicMeta, i16> {
    if !broker.is_active_controller() {
        let code = broker
            .create_topic_at_controller(
                name,
                broker.config.num_partitions,
                broker.config.default_replication_factor,
            )
            .await
            .map_err(|e| {
                tracing::error!(topic = name, error = %e, "auto-creating topic failed");
                e.kafka_error().code()
            })?;
        if code != 0 && code != ResponseError::TopicAlreadyExists.code() {
            return Err(code);
        }
        return broker
            .metadata
            .image()
            .topics
            .get(name)
            .cloned()
            .ok_or(ResponseError::UnknownTopicOrPartition.code());
    }
    let _w = broker.metadata.write_lock().await;
    if let Some(t) = broker.metadata.image().topics.get(name) {
        return Ok(t.clone());
    }
    let partitions = broker.config.num_partitions;
    let replication = broker.config.default_replication_factor;
    let assignment = broker
        .place(0, partitions, replication, rand::random::<u32>() as usize)
        .map_err(|_| ResponseError::InvalidReplicationFactor.code())?;
    let record = MetadataRecord::TopicCreated {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor: replication,
        configs: BTreeMap::new(),
        internal: false,
        assignment,
    };
    if let Err(e) = broker.propose(vec![record]).await {
        tracing::error!(topic = name, error = %e, "auto-creating topic failed");
        return Err(e.kafka_error().code());
    }
    let topic = broker
        .metadata
        .image()
        .topics
        .get(name)
        .cloned()
        .ok_or(ResponseError::UnknownServerError.code())?;
    tracing::info!(
        topic = name,
        partitions = topic.partitions,
        "auto-created topic"
    );
    Ok(topic)
}
