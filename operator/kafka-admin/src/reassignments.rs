//! Moving partition replicas between brokers: AlterPartitionReassignments and
//! ListPartitionReassignments, both answered by the controller (brokers forward them).

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ListPartitionReassignmentsRequest,
};

use crate::AdminClient;
use crate::client::{check, topic_name};
use crate::error::AdminError;

/// A partition whose replicas are moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica during the move: the target ones and those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl AdminClient {
    /// Asks the controller to give each `(topic, partition)` the replica list `replicas` (the first
    /// is the preferred leader). The moves run in the background: new replicas catch up as
    /// followers, old ones leave once the new ones are in sync. The first partition refused is the
    /// error; the others may have been accepted.
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[(String, i32, Vec<i32>)],
    ) -> Result<(), AdminError> {
        let timeout_ms = self.timeout_ms();
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for (topic, partition, replicas) in moves {
            let entry = ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(Some(replicas.iter().map(|b| BrokerId(*b)).collect()));
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(entry),
                None => topics.push(
                    ReassignableTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        let (resp, _) = self
            .call_controller(|_| {
                Ok(AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(topics))
            })
            .await?;
        check(
            ApiKey::AlterPartitionReassignments,
            "",
            resp.error_code,
            resp.error_message,
        )?;
        for t in resp.responses {
            for p in t.partitions {
                check(
                    ApiKey::AlterPartitionReassignments,
                    &format!("{}-{}", t.name.0.as_str(), p.partition_index),
                    p.error_code,
                    p.error_message,
                )?;
            }
        }
        Ok(())
    }

    /// Every reassignment in progress, sorted by topic and partition.
    pub async fn list_partition_reassignments(&self) -> Result<Vec<Reassignment>, AdminError> {
        let timeout_ms = self.timeout_ms();
        let (resp, _) = self
            .call_controller(|_| {
                Ok(ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(None))
            })
            .await?;
        check(
            ApiKey::ListPartitionReassignments,
            "",
            resp.error_code,
            resp.error_message,
        )?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out: Vec<Reassignment> = resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| Reassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }
}
