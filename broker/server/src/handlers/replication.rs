//! The replication APIs clients and Kafka's tools use: OffsetForLeaderEpoch (consumers checking their position
//! after a leader change, KIP-320), and, on the active controller (forwarded there from any broker),
//! ElectLeaders (`kafka-leader-election`), AlterPartitionReassignments and ListPartitionReassignments
//! (`kafka-reassign-partitions`). The decisions are `sluice_metadata::leadership`'s; this is the wire.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_metadata::leadership::{
    self, ElectionError, ElectionKind, ReassignError, reassignments,
};

use crate::broker::Broker;
use crate::metadata::MetadataRecord;

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// Where each asked-for epoch ended on this leader: the largest epoch at or below it and the offset where the
/// next began (the log end for the current epoch).
pub fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = broker.metadata.image();
    let topics =
        req.topics
            .into_iter()
            .map(|topic| {
                let name = topic.topic.0.to_string();
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let answer = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        let partition = broker
                            .replicas
                            .leader(&image, &name, p.partition)
                            .and_then(|partition| {
                                partition
                                    .check_leader_epoch(p.current_leader_epoch)
                                    .map(|()| partition)
                            });
                        match partition {
                            Ok(partition) => {
                                let (epoch, end) = partition.end_offset_for_epoch(p.leader_epoch);
                                answer.with_leader_epoch(epoch).with_end_offset(end)
                            }
                            Err(code) => answer.with_error_code(code),
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic)
                    .with_partitions(partitions)
            })
            .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// One partition's election: `None` when it happened.
type Elected = (i32, Option<ElectionError>);

fn election_error(e: &ElectionError) -> ResponseError {
    match e {
        ElectionError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ElectionError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        ElectionError::PreferredLeaderNotAvailable => ResponseError::PreferredLeaderNotAvailable,
        ElectionError::EligibleLeadersNotAvailable => ResponseError::EligibleLeadersNotAvailable,
    }
}

/// ElectLeaders on the active controller. Without a partition list every partition is tried and only the
/// elections that happened are listed, as Kafka answers it.
pub async fn elect_leaders(
    broker: &Arc<Broker>,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let kind = match req.election_type {
        0 => ElectionKind::Preferred,
        1 => ElectionKind::Unclean,
        _ => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let _w = broker.metadata.write_lock().await;
    let image = broker.metadata.image();
    let everything = req.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => image
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
    };
    let mut records: Vec<MetadataRecord> = Vec::new();
    let mut results: Vec<(String, Vec<Elected>)> = Vec::new();
    for (topic, partitions) in wanted {
        let mut outcome = Vec::new();
        for p in partitions {
            match leadership::elect(&image, &topic, p, kind) {
                Ok(record) => {
                    records.push(record);
                    outcome.push((p, None));
                }
                Err(_) if everything => {}
                Err(e) => outcome.push((p, Some(e))),
            }
        }
        if !outcome.is_empty() {
            results.push((topic, outcome));
        }
    }
    let committed = if records.is_empty() {
        Ok(0)
    } else {
        broker.propose(records).await
    };
    let failure = committed.err().map(|e| e.kafka_error());
    let results = results
        .into_iter()
        .map(|(topic, outcome)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partition_result(
                    outcome
                        .into_iter()
                        .map(|(p, e)| {
                            let (code, message) = match (&e, failure) {
                                (Some(e), _) => (election_error(e).code(), text(e.to_string())),
                                (None, Some(f)) => (f.code(), None),
                                (None, None) => (0, None),
                            };
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(code)
                                .with_error_message(message)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut resp = ElectLeadersResponse::default().with_replica_election_results(results);
    if version >= 1 {
        resp.error_code = 0;
    }
    resp
}

/// AlterPartitionReassignments on the active controller: each partition's new target replicas (or `None` to
/// cancel), started as one metadata write. The data moves as the new replicas fetch; the reassignment
/// completes when they are all in the ISR.
pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let _w = broker.metadata.write_lock().await;
    let image = broker.metadata.image();
    // Registered brokers, fenced or not (a single node on its local log registers nobody: just itself).
    let brokers: Vec<i32> = if image.brokers.is_empty() {
        vec![broker.node_id]
    } else {
        image.brokers.keys().copied().collect()
    };
    let unclean = crate::dynamic_config::unclean_leader_election_default(
        broker.config.unclean_leader_election_enable,
        &image,
        broker.node_id,
    );
    let mut records = Vec::new();
    let mut responses = Vec::new();
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current_rf = image
                .topics
                .get(&name)
                .and_then(|t| t.partition(p.partition_index))
                .map(|s| s.target_replicas().len());
            let result = match (&target, current_rf) {
                (Some(t), Some(rf))
                    if version >= 1 && !req.allow_replication_factor_change && t.len() != rf =>
                {
                    Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "The replication factor would change from {rf} to {}",
                            t.len()
                        ),
                    ))
                }
                _ => leadership::reassign(
                    &image,
                    &name,
                    p.partition_index,
                    target.as_deref(),
                    &brokers,
                    unclean,
                )
                .map_err(|e| {
                    let code = match e {
                        ReassignError::UnknownTopicOrPartition => {
                            ResponseError::UnknownTopicOrPartition
                        }
                        ReassignError::InvalidReplicaAssignment(_) => {
                            ResponseError::InvalidReplicaAssignment
                        }
                        ReassignError::NoReassignmentInProgress => {
                            ResponseError::NoReassignmentInProgress
                        }
                    };
                    (code, e.to_string())
                }),
            };
            let mut entry =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            match result {
                Ok(record) => {
                    if let Some(record) = record {
                        tracing::info!(topic = %name, partition = p.partition_index, target = ?target, "partition reassignment");
                        records.push(record);
                    }
                }
                Err((code, message)) => {
                    entry.error_code = code.code();
                    entry.error_message = text(message);
                }
            }
            partitions.push(entry);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let mut resp = AlterPartitionReassignmentsResponse::default();
    if !records.is_empty()
        && let Err(e) = broker.propose(records).await
    {
        resp.error_code = e.kafka_error().code();
        resp.error_message = text(e.to_string());
        return resp;
    }
    if version >= 1 {
        resp.allow_replication_factor_change = req.allow_replication_factor_change;
    }
    resp.with_responses(responses)
}

/// The reassignments in progress (all of them, or of the partitions asked for).
pub fn list_partition_reassignments(
    broker: &Arc<Broker>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = broker.metadata.image();
    let ongoing = reassignments(&image);
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let topics = ongoing
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let asked: Option<&Vec<i32>> = match &req.topics {
                None => None,
                Some(list) => Some(
                    &list
                        .iter()
                        .find(|t| t.name.0.as_str() == topic)?
                        .partition_indexes,
                ),
            };
            let partitions: Vec<OngoingPartitionReassignment> = partitions
                .into_iter()
                .filter(|(p, _)| asked.is_none_or(|a| a.contains(p)))
                .map(|(p, s)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p)
                        .with_replicas(ids(&s.replicas))
                        .with_adding_replicas(ids(&s.adding))
                        .with_removing_replicas(ids(&s.removing))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
