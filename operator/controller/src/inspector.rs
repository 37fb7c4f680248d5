//! What the operator needs to ask a running Kafka cluster, behind a trait so that the reconciler
//! does not depend on a particular client.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use sluice_kafka_admin::{AdminClient, QuorumInfo, Uuid};
use sluice_kafka_client::Security;

use crate::error::Error;
use crate::kafka_cluster::live_config::LiveChange;
use crate::kafka_cluster::moves::{Move, Replicas};
use crate::kafka_cluster::quorum::{Quorum, Replica};
use crate::kafka_cluster::roll::Health;

/// Where and how the operator reaches a cluster's brokers: their bootstrap address, and for a
/// secured cluster the TLS config with the operator's own client certificate.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub bootstrap: String,
    pub security: Security,
}

impl Endpoint {
    /// In the clear.
    pub fn plain(bootstrap: impl Into<String>) -> Endpoint {
        Endpoint {
            bootstrap: bootstrap.into(),
            security: Security::default(),
        }
    }

    /// An admin client connected to the cluster.
    pub async fn connect(
        &self,
        client_id: &str,
    ) -> Result<AdminClient, sluice_kafka_admin::AdminError> {
        AdminClient::connect_with(
            &self.bootstrap,
            client_id,
            ADMIN_TIMEOUT,
            self.security.clone(),
        )
        .await
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.bootstrap)
    }
}

/// What the operator decides its day-2 steps on, read from the cluster in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Brokers registered and serving (Metadata).
    pub brokers: Vec<i32>,
    pub partitions: Vec<PartitionState>,
    /// Partitions being reassigned.
    pub reassigning: usize,
    pub quorum: Quorum,
    /// The cluster-wide dynamic broker configs.
    pub live_configs: BTreeMap<String, String>,
}

/// One partition: its replicas, in-sync replicas and leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: Option<i32>,
}

impl ClusterState {
    pub fn health(&self) -> Health {
        Health {
            under_replicated: self
                .partitions
                .iter()
                .filter(|p| p.isr.len() < p.replicas.len())
                .count(),
            offline: self
                .partitions
                .iter()
                .filter(|p| p.leader.is_none())
                .count(),
            reassigning: self.reassigning,
            active_controller: self.quorum.leader,
            lagging_voters: self.quorum.lagging_voters(),
        }
    }

    /// For each of `broker_ids`, the sorted names of the topics with a replica on it (an empty list
    /// for a broker holding nothing).
    pub fn topics_on(&self, broker_ids: &[i32]) -> BTreeMap<i32, Vec<String>> {
        broker_ids
            .iter()
            .map(|&id| {
                let names: BTreeSet<&str> = self
                    .partitions
                    .iter()
                    .filter(|p| p.replicas.contains(&id))
                    .map(|p| p.topic.as_str())
                    .collect();
                (id, names.into_iter().map(str::to_owned).collect())
            })
            .collect()
    }

    /// A state of just these partitions (numbered in order), each fully in sync and led by its
    /// first replica: for tests of the decisions made from it.
    #[cfg(test)]
    pub fn of_partitions(partitions: &[(&str, &[i32])]) -> ClusterState {
        ClusterState {
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, (topic, r))| PartitionState {
                    topic: (*topic).to_owned(),
                    partition: i as i32,
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                    leader: r.first().copied(),
                })
                .collect(),
            ..ClusterState::default()
        }
    }

    pub fn replicas(&self) -> Vec<Replicas> {
        self.partitions
            .iter()
            .map(|p| Replicas {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
            })
            .collect()
    }
}

/// A change the operator asks of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alteration {
    /// Give these partitions new replica lists (AlterPartitionReassignments).
    Reassign(Vec<Move>),
    /// Change the cluster-wide dynamic broker configs (IncrementalAlterConfigs).
    LiveConfig(LiveChange),
    /// Make a controller a voter (AddRaftVoter), reached at `host:port`.
    AddVoter {
        id: i32,
        directory_id: Uuid,
        host: String,
        port: u16,
    },
    /// Stop a controller voting (RemoveRaftVoter).
    RemoveVoter { id: i32, directory_id: Uuid },
    /// Mark (`on`) or unmark the replication of these topics as throttled: every replica not in
    /// sync is then held to the brokers' throttle rates, as `kafka-reassign-partitions
    /// --throttle` does.
    Throttle { topics: Vec<String>, on: bool },
}

/// The topic configs that name which replicas the brokers' throttle rates hold back.
pub const THROTTLED_REPLICAS_KEYS: [&str; 2] = [
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

async fn throttle_topics(
    client: &AdminClient,
    topics: &[String],
    on: bool,
) -> Result<(), sluice_kafka_admin::AdminError> {
    let keys = THROTTLED_REPLICAS_KEYS.map(str::to_owned);
    for topic in topics {
        let result = if on {
            let set = keys.iter().map(|k| (k.clone(), "*".to_owned())).collect();
            client.alter_topic_configs(topic, &set, &[]).await
        } else {
            client
                .alter_topic_configs(topic, &BTreeMap::new(), &keys)
                .await
        };
        match result {
            // A topic deleted meanwhile needs no throttle.
            Err(e) if e.is_unknown_topic() => {}
            other => other?,
        }
    }
    Ok(())
}

/// Questions the reconciler asks the cluster itself (not the Kubernetes API).
pub trait ClusterInspector: Send + Sync + 'static {
    /// The brokers, partitions, reassignments, quorum and dynamic configs, as one snapshot.
    fn state(
        &self,
        bootstrap: &Endpoint,
    ) -> impl Future<Output = Result<ClusterState, Error>> + Send;

    /// Asks the cluster for one change.
    fn alter(
        &self,
        bootstrap: &Endpoint,
        alteration: &Alteration,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The production inspector: asks the brokers over the Kafka protocol.
#[derive(Debug, Clone, Default)]
pub struct KafkaAdminInspector;

impl ClusterInspector for KafkaAdminInspector {
    async fn state(&self, bootstrap: &Endpoint) -> Result<ClusterState, Error> {
        let inspect_error = inspect_error(bootstrap);
        let client = connect(bootstrap).await?;
        let cluster = client.cluster().await.map_err(&inspect_error)?;
        let topics = client.list_topics().await.map_err(&inspect_error)?;
        let reassigning = client
            .list_partition_reassignments()
            .await
            .map_err(&inspect_error)?
            .len();
        let quorum = quorum_of(client.describe_quorum().await.map_err(&inspect_error)?);
        let live_configs = client
            .cluster_default_configs()
            .await
            .map_err(&inspect_error)?;
        let mut brokers: Vec<i32> = cluster.brokers.iter().map(|b| b.id).collect();
        brokers.sort_unstable();
        Ok(ClusterState {
            brokers,
            partitions: topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| PartitionState {
                        topic: t.name.clone(),
                        partition: p.id,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        leader: p.leader,
                    })
                })
                .collect(),
            reassigning,
            quorum,
            live_configs,
        })
    }

    async fn alter(&self, bootstrap: &Endpoint, alteration: &Alteration) -> Result<(), Error> {
        let inspect_error = inspect_error(bootstrap);
        let client = connect(bootstrap).await?;
        match alteration {
            Alteration::Reassign(moves) => {
                let asked: Vec<(String, i32, Vec<i32>)> = moves
                    .iter()
                    .map(|m| (m.topic.clone(), m.partition, m.to.clone()))
                    .collect();
                client.alter_partition_reassignments(&asked).await
            }
            Alteration::LiveConfig(change) => {
                client
                    .alter_cluster_default_configs(&change.set, &change.delete)
                    .await
            }
            Alteration::AddVoter {
                id,
                directory_id,
                host,
                port,
            } => {
                client
                    .add_raft_voter(*id, *directory_id, "CONTROLLER", host, *port)
                    .await
            }
            Alteration::RemoveVoter { id, directory_id } => {
                client.remove_raft_voter(*id, *directory_id).await
            }
            Alteration::Throttle { topics, on } => throttle_topics(&client, topics, *on).await,
        }
        .map_err(&inspect_error)
    }
}

fn quorum_of(info: QuorumInfo) -> Quorum {
    let replica = |r: &sluice_kafka_admin::QuorumReplica| Replica {
        id: r.id,
        directory_id: r.directory_id,
        log_end_offset: r.log_end_offset,
    };
    Quorum {
        leader: info.leader,
        high_watermark: info.high_watermark,
        voters: info.voters.iter().map(replica).collect(),
        observers: info.observers.iter().map(replica).collect(),
    }
}

/// An admin failure as the reconciler reports it, naming where it asked.
fn inspect_error(bootstrap: &Endpoint) -> impl Fn(sluice_kafka_admin::AdminError) -> Error + '_ {
    move |e| Error::Inspect {
        bootstrap: bootstrap.to_string(),
        reason: e.to_string(),
    }
}

async fn connect(bootstrap: &Endpoint) -> Result<AdminClient, Error> {
    bootstrap
        .connect("sluice-operator")
        .await
        .map_err(inspect_error(bootstrap))
}

pub const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_listed_under_every_broker_holding_a_replica() {
        let s = ClusterState::of_partitions(&[
            ("a", &[0, 1]),
            ("a", &[1, 2]),
            ("b", &[2]),
            ("c", &[0]),
        ]);
        let got = s.topics_on(&[1, 2, 5]);
        assert_eq!(got[&1], vec!["a"]);
        assert_eq!(got[&2], vec!["a", "b"]);
        assert!(got[&5].is_empty());
        assert_eq!(got.len(), 3);
    }
}
