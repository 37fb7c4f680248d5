//! What the operator needs to ask a running Kafka cluster, behind a trait so that the reconciler
//! does not depend on a particular client.

use std::collections::BTreeMap;
use std::future::Future;

use sluice_kafka_admin::{AdminClient, TopicInfo};

use crate::error::Error;
use crate::kafka_cluster::moves::{self, Replicas};

/// Where moving the replicas off brokers that are to be removed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drain {
    /// Reassignments are running (this many partitions); nothing new is asked until they finish.
    InProgress(usize),
    /// This many partitions were just asked to move.
    Started(usize),
    /// The brokers that stay cannot hold some topic's replicas: why, naming the topics.
    Impossible(String),
    /// No partition has a replica on those brokers.
    Done,
}

/// Questions the reconciler asks the cluster itself (not the Kubernetes API).
pub trait ClusterInspector: Send + Sync + 'static {
    /// For each of `broker_ids`, the topics that have a partition replica on that broker, sorted
    /// and without duplicates. Every requested id is a key; a broker hosting nothing maps to an
    /// empty list. `bootstrap` is a `host:port` list as in `bootstrap.servers`.
    fn partitions_on_brokers(
        &self,
        bootstrap: &str,
        broker_ids: &[i32],
    ) -> impl Future<Output = Result<BTreeMap<i32, Vec<String>>, Error>> + Send;

    /// Moves every replica on `leaving` to brokers of `staying` (AlterPartitionReassignments),
    /// unless moves are already running. Asked again on every reconcile until it answers `Done`.
    fn drain(
        &self,
        bootstrap: &str,
        staying: &[i32],
        leaving: &[i32],
    ) -> impl Future<Output = Result<Drain, Error>> + Send;
}

/// The production inspector: asks the brokers over the Kafka protocol.
#[derive(Debug, Clone, Default)]
pub struct KafkaAdminInspector;

impl ClusterInspector for KafkaAdminInspector {
    async fn partitions_on_brokers(
        &self,
        bootstrap: &str,
        broker_ids: &[i32],
    ) -> Result<BTreeMap<i32, Vec<String>>, Error> {
        metadata_partitions_on_brokers(bootstrap, broker_ids).await
    }

    async fn drain(
        &self,
        bootstrap: &str,
        staying: &[i32],
        leaving: &[i32],
    ) -> Result<Drain, Error> {
        let inspect_error = inspect_error(bootstrap);
        let client = connect(bootstrap).await?;
        let running = client
            .list_partition_reassignments()
            .await
            .map_err(&inspect_error)?;
        if !running.is_empty() {
            return Ok(Drain::InProgress(running.len()));
        }
        let topics = client.list_topics().await.map_err(&inspect_error)?;
        let plan = moves::drain(
            &replicas_of(&topics),
            &staying.iter().copied().collect(),
            &leaving.iter().copied().collect(),
        );
        match plan {
            Err(cannot) => Ok(Drain::Impossible(cannot.to_string())),
            Ok(plan) if plan.is_empty() => Ok(Drain::Done),
            Ok(plan) => {
                let asked: Vec<(String, i32, Vec<i32>)> = plan
                    .into_iter()
                    .map(|m| (m.topic, m.partition, m.to))
                    .collect();
                client
                    .alter_partition_reassignments(&asked)
                    .await
                    .map_err(&inspect_error)?;
                Ok(Drain::Started(asked.len()))
            }
        }
    }
}

/// Every partition's replica list.
fn replicas_of(topics: &[TopicInfo]) -> Vec<Replicas> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Replicas {
                topic: t.name.clone(),
                partition: p.id,
                replicas: p.replicas.clone(),
            })
        })
        .collect()
}

/// A Metadata request for all topics, then, for each partition, its replica list intersected with
/// `broker_ids`. Any failure is returned, and a failure blocks broker scale-down (the safe direction: no
/// broker that may hold data is removed).
pub async fn metadata_partitions_on_brokers(
    bootstrap: &str,
    broker_ids: &[i32],
) -> Result<BTreeMap<i32, Vec<String>>, Error> {
    let client = connect(bootstrap).await?;
    let topics = client
        .list_topics()
        .await
        .map_err(inspect_error(bootstrap))?;
    Ok(topics_per_broker(&topics, broker_ids))
}

/// An admin failure as the reconciler reports it, naming where it asked.
fn inspect_error(bootstrap: &str) -> impl Fn(sluice_kafka_admin::AdminError) -> Error + '_ {
    move |e| Error::Inspect {
        bootstrap: bootstrap.to_owned(),
        reason: e.to_string(),
    }
}

async fn connect(bootstrap: &str) -> Result<AdminClient, Error> {
    AdminClient::connect(bootstrap, "sluice-operator", ADMIN_TIMEOUT)
        .await
        .map_err(inspect_error(bootstrap))
}

const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// For each broker id, the sorted names of the topics with a replica on it.
fn topics_per_broker(topics: &[TopicInfo], broker_ids: &[i32]) -> BTreeMap<i32, Vec<String>> {
    broker_ids
        .iter()
        .map(|&id| {
            let names: std::collections::BTreeSet<&str> = topics
                .iter()
                .filter(|t| t.partitions.iter().any(|p| p.replicas.contains(&id)))
                .map(|t| t.name.as_str())
                .collect();
            (id, names.into_iter().map(str::to_owned).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_kafka_admin::PartitionInfo;

    fn topic(name: &str, replicas: &[&[i32]]) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: None,
            internal: false,
            partitions: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionInfo {
                    id: i as i32,
                    leader: r.first().copied(),
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn topics_are_listed_under_every_broker_holding_a_replica() {
        let topics = [
            topic("a", &[&[0, 1], &[1, 2]]),
            topic("b", &[&[2]]),
            topic("c", &[&[0]]),
        ];
        let got = topics_per_broker(&topics, &[1, 2, 5]);
        assert_eq!(got[&1], vec!["a"]);
        assert_eq!(got[&2], vec!["a", "b"]);
        assert!(got[&5].is_empty());
        assert_eq!(got.len(), 3);
    }
}
