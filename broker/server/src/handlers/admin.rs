//! Topic administration: create, delete, add partitions, delete records; DescribeCluster and DescribeLogDirs.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::authz::Authz;
use super::storage_error_code;
use crate::broker::Broker;
use crate::metadata::{CONSUMER_OFFSETS, METADATA_TOPIC, MetadataRecord, validate_topic_name};
use crate::network::ConnectionInfo;
use sluice_metadata::acl::Operation;
use sluice_metadata::placement;

/// The most partitions one topic may have; beyond this a typo (an extra zero) costs hours of file handles.
const MAX_PARTITIONS: i32 = 100_000;
/// Partitions one CreateTopics or CreatePartitions request may add, all topics together: Kafka's controller
/// refuses more (`MAX_RECORDS_PER_USER_OP`), so one request cannot make a broker create millions of logs.
const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let authz = Authz::new(broker, conn);
    let may_create_any = authz.cluster(Operation::Create);
    let mut results = Vec::with_capacity(req.topics.len());
    let requested_partitions: i64 = req
        .topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                t.assignments.len() as i64
            } else if t.num_partitions == -1 {
                broker.config.num_partitions as i64
            } else {
                t.num_partitions.max(0) as i64
            }
        })
        .sum();
    // One write for the whole request: every topic it creates is one batch in the metadata log, validated
    // against the image plus the topics accepted before it in this request.
    let write_lock = broker.metadata.write_lock().await;
    let mut pending: Vec<(usize, String, MetadataRecord)> = Vec::new();
    let mut offsets_topic_at: Vec<usize> = Vec::new();
    for topic in req.topics {
        let name = topic.name.0.as_str().to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let fail = |mut r: CreatableTopicResult, code: ResponseError, text: String| {
            r.error_code = code.code();
            r.error_message = msg(text);
            r
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
            })
            .collect();
        let partitions = if !topic.assignments.is_empty() {
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            topic.num_partitions
        };
        let replication = if !topic.assignments.is_empty() {
            topic.assignments[0].broker_ids.len() as i16
        } else if topic.replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            topic.replication_factor
        };

        if requested_partitions > MAX_PARTITIONS_PER_REQUEST {
            results.push(fail(
                result,
                ResponseError::PolicyViolation,
                "Excessively large number of partitions per request.".into(),
            ));
            continue;
        }
        if !may_create_any && !authz.topic(Operation::Create, &name) {
            results.push(fail(
                result,
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            ));
            continue;
        }
        if name == CONSUMER_OFFSETS && broker.metadata.quorum().is_some() {
            // Brokers create it through the controller on first use, with its own settings (below, once
            // this request's write lock is released).
            offsets_topic_at.push(results.len());
            results.push(result);
            continue;
        }
        if name == METADATA_TOPIC {
            results.push(fail(
                result,
                ResponseError::InvalidRequest,
                format!("Creation of internal topic {METADATA_TOPIC} is prohibited."),
            ));
            continue;
        }
        if let Err(e) = validate_topic_name(&name) {
            results.push(fail(result, ResponseError::InvalidTopicException, e));
            continue;
        }
        if broker.metadata.image().topics.contains_key(&name)
            || pending.iter().any(|(_, n, _)| *n == name)
        {
            results.push(fail(
                result,
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
            continue;
        }
        if partitions <= 0 || partitions > MAX_PARTITIONS {
            results.push(fail(
                result,
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}."
                ),
            ));
            continue;
        }
        if replication <= 0 && topic.assignments.is_empty() {
            results.push(fail(
                result,
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
            continue;
        }
        let brokers: Vec<i32> = broker.placeable_brokers().iter().map(|b| b.0).collect();
        let assignment: Vec<Vec<i32>> = if topic.assignments.is_empty() {
            match broker.place(0, partitions, replication, rand::random::<u32>() as usize) {
                Ok(a) => a,
                Err(e) => {
                    results.push(fail(
                        result,
                        ResponseError::InvalidReplicationFactor,
                        e.to_string(),
                    ));
                    continue;
                }
            }
        } else {
            topic
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        };
        if let Some(bad) = assignment.iter().flatten().find(|b| !brokers.contains(b)) {
            results.push(fail(
                result,
                ResponseError::InvalidReplicaAssignment,
                format!("Broker {bad} in the replica assignment does not exist."),
            ));
            continue;
        }
        let image = broker.metadata.image();
        if let Err(e) = broker.topic_log_config(&image, &configs) {
            results.push(fail(result, ResponseError::InvalidConfig, e.to_string()));
            continue;
        }
        if version >= 5 {
            result.num_partitions = partitions;
            result.replication_factor = replication;
            result.configs = Some(
                crate::config::describe_topic_config(
                    &broker.config,
                    &crate::dynamic_config::DynamicConfigs::of(&image, broker.node_id),
                    &configs,
                )
                .into_iter()
                .map(|e| {
                    CreatableTopicConfigs::default()
                        .with_name(StrBytes::from_string(e.name))
                        .with_value(e.value.map(StrBytes::from_string))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source.kafka_id())
                        .with_is_sensitive(e.sensitive)
                })
                .collect(),
            );
        }
        if req.validate_only {
            results.push(result);
            continue;
        }
        let id = Uuid::new_v4();
        let record = MetadataRecord::TopicCreated {
            name: name.clone(),
            id,
            partitions,
            replication_factor: replication,
            configs,
            internal: false,
            assignment,
        };
        if version >= 7 {
            result.topic_id = id;
        }
        pending.push((results.len(), name, record));
        results.push(result);
    }
    if !pending.is_empty() {
        let records = pending.iter().map(|(_, _, r)| r.clone()).collect();
        match broker.propose(records).await {
            Ok(_) => {
                for (_, name, _) in &pending {
                    tracing::info!(topic = %name, "created topic");
                }
            }
            Err(e) => {
                for (i, _, _) in &pending {
                    let r = &mut results[*i];
                    r.error_code = e.kafka_error().code();
                    r.error_message = msg(e.to_string());
                    r.topic_id = Uuid::nil();
                }
            }
        }
    }
    drop(write_lock);
    for i in offsets_topic_at {
        if let Err(e) = broker.create_offsets_topic().await {
            let r = &mut results[i];
            r.error_code = e.kafka_error().code();
            r.error_message = msg(e.to_string());
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let authz = Authz::new(broker, conn);
    // v6 names topics by name or id in `topics`; older versions list names in `topic_names`.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let _w = broker.metadata.write_lock().await;
        let found = {
            let image = broker.metadata.image();
            match &name {
                Some(n) => image.topics.get(n).cloned(),
                None => image.topic_by_id(&id).cloned(),
            }
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        // DELETE on the topic; asked for by name, a refusal does not tell whether it exists.
        let denied = match (&found, &name) {
            (_, Some(n)) => !authz.topic(Operation::Delete, n),
            (Some(t), None) => !authz.topic(Operation::Delete, &t.name),
            (None, None) => false,
        };
        match found {
            _ if denied => {
                result.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            None => {
                result.error_code = if name.is_some() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::UnknownTopicId.code()
                };
            }
            Some(t) if t.internal => {
                result.error_code = ResponseError::InvalidTopicException.code();
                if version >= 5 {
                    result.error_message =
                        msg(format!("internal topic {} cannot be deleted", t.name));
                }
            }
            Some(t) => {
                result.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                if version >= 6 {
                    result.topic_id = t.id;
                }
                let deleted = broker
                    .propose(vec![MetadataRecord::TopicDeleted {
                        name: t.name.clone(),
                    }])
                    .await;
                match deleted {
                    Ok(_) => tracing::info!(topic = %t.name, "deleted topic"),
                    Err(e) => {
                        tracing::error!(topic = %t.name, error = %e, "deleting topic failed");
                        result.error_code = e.kafka_error().code();
                    }
                }
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let authz = Authz::new(broker, conn);
    let mut results = Vec::with_capacity(req.topics.len());
    let additional: i64 = {
        let image = broker.metadata.image();
        req.topics
            .iter()
            .filter_map(|t| {
                let current = image.topics.get(t.name.0.as_str())?.partitions;
                Some((t.count as i64 - current as i64).max(0))
            })
            .sum()
    };
    for topic in req.topics {
        let name = topic.name.0.as_str().to_string();
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let _w = broker.metadata.write_lock().await;
        let current = broker.metadata.image().topics.get(&name).cloned();
        let error = match current {
            _ if !authz.topic(Operation::Alter, &name) => Some((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            )),
            Some(_) if additional > MAX_PARTITIONS_PER_REQUEST => Some((
                ResponseError::PolicyViolation,
                "Excessively large number of additional partitions per request.".into(),
            )),
            None => Some((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            )),
            Some(t) if topic.count <= t.partitions => Some((
                ResponseError::InvalidPartitions,
                format!(
                    "Topic '{name}' has {} partitions; the new count {} must be larger.",
                    t.partitions, topic.count
                ),
            )),
            Some(_) if topic.count > MAX_PARTITIONS => Some((
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be at most {MAX_PARTITIONS}."),
            )),
            Some(_) if req.validate_only => None,
            Some(t) => {
                let first = t
                    .partition(0)
                    .map(|p| p.target_replicas())
                    .unwrap_or_default();
                let replication = first.len().max(1) as i16;
                let brokers: Vec<i32> = broker.placeable_brokers().iter().map(|b| b.0).collect();
                match broker.place(
                    t.partitions,
                    topic.count - t.partitions,
                    replication,
                    placement::start_of(&brokers, &first),
                ) {
                    Err(e) => Some((ResponseError::InvalidReplicationFactor, e.to_string())),
                    Ok(assignment) => {
                        let grown = broker
                            .propose(vec![MetadataRecord::PartitionsIncreased {
                                name: name.clone(),
                                partitions: topic.count,
                                assignment,
                            }])
                            .await;
                        match grown {
                            Ok(_) => {
                                tracing::info!(topic = %name, from = t.partitions, to = topic.count, "added partitions");
                                None
                            }
                            Err(e) => Some((e.kafka_error(), e.to_string())),
                        }
                    }
                }
            }
        };
        if let Some((code, text)) = error {
            result.error_code = code.code();
            result.error_message = msg(text);
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

pub fn delete_records(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let authz = Authz::new(broker, conn);
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.as_str().to_string();
            let allowed = authz.topic(Operation::Delete, &name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !allowed {
                        return result
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(log) = broker.log(&name, p.partition_index) else {
                        return result.with_error_code(
                            broker.missing_partition_error(&name, p.partition_index),
                        );
                    };
                    let mut log = log.lock();
                    let hw = log.high_watermark();
                    // -1 means "up to the high watermark"; beyond it there is nothing committed to delete.
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return result.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    match log.delete_records_before(target) {
                        Ok(low) => result.with_low_watermark(low),
                        Err(e) => result.with_error_code(storage_error_code(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub fn describe_cluster(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let listener = conn.listener.as_str();
    let authz = Authz::new(broker, conn);
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_cluster_authorized_operations(i32::MIN);
    if !authz.cluster(Operation::Describe) {
        return resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let resp = if req.include_cluster_authorized_operations {
        resp.with_cluster_authorized_operations(authz.operations(
            sluice_metadata::acl::ResourceType::Cluster,
            sluice_metadata::acl::CLUSTER_NAME,
            super::metadata::CLUSTER_OPERATIONS,
        ))
    } else {
        resp
    };
    // v1 endpoint type 2 asks for controllers; clients bootstrap through brokers (type 1).
    if version >= 1 && req.endpoint_type == 2 {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(msg("controller endpoints are not exposed to clients"));
    }
    let brokers = broker
        .live_endpoints(listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
                .with_rack(rack.map(StrBytes::from_string))
        })
        .collect();
    resp.with_controller_id(BrokerId(broker.node_id))
        .with_brokers(brokers)
}

/// DescribeCluster on a controller listener (KIP-919, what `--bootstrap-controller` discovers): the voters
/// at their controller listeners, and the active controller. Only endpoint type 2 (controllers) is asked here.
pub fn describe_controllers(
    broker: &Arc<Broker>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(2)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != 2 {
        return resp
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(msg(
                "this is a controller listener, which lists controllers; ask a broker listener for brokers",
            ));
    }
    let (leader, voters) = match broker.metadata.quorum() {
        Some(quorum) => {
            let status = quorum.describe();
            let voters = status
                .voters
                .iter()
                .filter_map(|v| {
                    let (host, port) = v.address.rsplit_once(':')?;
                    Some((
                        v.id as i32,
                        host.trim_matches(['[', ']']).to_string(),
                        port.parse().ok()?,
                    ))
                })
                .collect();
            (status.leader.map_or(-1, |l| l as i32), voters)
        }
        None => {
            let me = broker
                .config
                .controller_listeners()
                .first()
                .map(|l| (broker.node_id, l.host.clone(), i32::from(l.port)));
            (broker.node_id, me.into_iter().collect::<Vec<_>>())
        }
    };
    let controllers = voters
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(StrBytes::from_string(host))
                .with_port(port)
        })
        .collect();
    resp.with_controller_id(BrokerId(leader))
        .with_brokers(controllers)
}

/// DescribeLogDirs: this broker's log dirs and the partitions in each (all of them, or those asked for), with
/// their sizes. `kafka-reassign-partitions` asks it before it moves anything.
pub fn describe_log_dirs(
    broker: &Arc<Broker>,
    conn: &ConnectionInfo,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !Authz::new(broker, conn).cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let wanted = |tp: &sluice_storage::TopicPartition| match &req.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == tp.topic && t.partitions.contains(&tp.partition)),
    };
    let results = broker
        .logs
        .partitions_by_dir()
        .into_iter()
        .map(|(dir, partitions)| {
            let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
            for (tp, size) in partitions.into_iter().filter(|(tp, _)| wanted(tp)) {
                if tp.topic == METADATA_TOPIC {
                    continue;
                }
                let entry = DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(size as i64)
                    .with_offset_lag(0);
                match topics.last_mut() {
                    Some(t) if t.name.0.as_str() == tp.topic => t.partitions.push(entry),
                    _ => topics.push(
                        DescribeLogDirsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partitions(vec![entry]),
                    ),
                }
            }
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_topics(topics)
                // Kafka's "unknown" for volume sizes.
                .with_total_bytes(-1)
                .with_usable_bytes(-1)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
