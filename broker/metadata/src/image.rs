use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MetadataRecord;
use crate::acl::AclBinding;
use crate::quota::QuotaEntry;
use crate::scram::{ScramCredential, ScramMechanism};
use crate::sessions::RegisteredBroker;

/// "No leader": every replica that could lead is fenced or out of sync.
pub const NO_LEADER: i32 = -1;

/// One partition's replicas and leadership, as the controller decided them (Kafka's `PartitionRegistration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Every replica, the preferred leader first. During a reassignment: the target replicas, then those
    /// being removed.
    pub replicas: Vec<i32>,
    /// The in-sync replicas: they hold every committed record. Never empty.
    pub isr: Vec<i32>,
    /// `NO_LEADER` when no replica in the ISR is live.
    pub leader: i32,
    /// Bumped whenever the leader changes (or replicas leave the replica set): replicas and clients fence
    /// requests carrying an older one.
    pub leader_epoch: i32,
    /// Bumped by every change, so an AlterPartition built on a stale state is refused.
    pub partition_epoch: i32,
    /// A reassignment in progress: replicas joining, not yet in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// ... and replicas leaving once the new ones are in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// A new partition: every replica in sync (their logs are all empty), the first one leads.
    pub fn new(replicas: Vec<i32>) -> PartitionState {
        PartitionState {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    pub fn leader(&self) -> Option<i32> {
        (self.leader != NO_LEADER).then_some(self.leader)
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition keeps once its reassignment completes (all of them when none runs).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredTopic")]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
    /// Each partition's replicas and leadership, by partition index.
    pub partition_states: Vec<PartitionState>,
}

/// A topic as images were stored before partitions had state (snapshots of the quorum): replicas only.
#[derive(Deserialize)]
struct StoredTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
    internal: bool,
    #[serde(default)]
    assignment: Vec<Vec<i32>>,
    #[serde(default)]
    partition_states: Vec<PartitionState>,
}

impl From<StoredTopic> for TopicMeta {
    fn from(t: StoredTopic) -> TopicMeta {
        let partition_states = if t.partition_states.is_empty() {
            t.assignment.into_iter().map(PartitionState::new).collect()
        } else {
            t.partition_states
        };
        TopicMeta {
            name: t.name,
            id: t.id,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.configs,
            internal: t.internal,
            partition_states,
        }
    }
}

impl TopicMeta {
    /// The replicas of `partition`, preferred leader first; empty for a partition the topic does not have.
    pub fn replicas(&self, partition: i32) -> &[i32] {
        self.partition(partition)
            .map_or(&[], |p| p.replicas.as_slice())
    }

    pub fn partition(&self, partition: i32) -> Option<&PartitionState> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partition_states.get(p))
    }
}

/// The metadata as of the last applied record. Applying is pure and never fails: records were validated before
/// they were written, so replay reproduces the same image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicMeta>,
    pub topic_names: HashMap<Uuid, String>,
    pub next_producer_id: i64,
    /// Registered brokers, fenced or not.
    #[serde(default)]
    pub brokers: BTreeMap<i32, RegisteredBroker>,
    /// The offset of the last record applied (-1 before any): the image's version.
    #[serde(default = "no_offset")]
    pub offset: i64,
    /// Dynamic broker configs by broker id, "" for the cluster-wide default.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user, then mechanism.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// The ACLs, by the id their creation gave them.
    #[serde(default)]
    pub acls: BTreeMap<Uuid, AclBinding>,
    /// Client quotas, by `QuotaEntity::key`.
    #[serde(default)]
    pub client_quotas: BTreeMap<String, QuotaEntry>,
}

fn no_offset() -> i64 {
    -1
}

impl Default for MetadataImage {
    /// An image with nothing applied yet.
    fn default() -> MetadataImage {
        MetadataImage {
            topics: BTreeMap::new(),
            topic_names: HashMap::new(),
            next_producer_id: 0,
            brokers: BTreeMap::new(),
            offset: -1,
            broker_configs: BTreeMap::new(),
            scram: BTreeMap::new(),
            acls: BTreeMap::new(),
            client_quotas: BTreeMap::new(),
        }
    }
}

impl MetadataImage {
    /// Applies `record`, which is at `offset` in the metadata log.
    pub fn apply_at(&mut self, record: &MetadataRecord, offset: i64) {
        self.apply(record, offset);
        self.offset = self.offset.max(offset);
    }

    fn apply(&mut self, record: &MetadataRecord, offset: i64) {
        match record {
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                replication_factor,
                configs,
                internal,
                assignment,
            } => {
                self.topic_names.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        name: name.clone(),
                        id: *id,
                        partitions: *partitions,
                        replication_factor: *replication_factor,
                        configs: configs.clone(),
                        internal: *internal,
                        partition_states: assignment
                            .iter()
                            .cloned()
                            .map(PartitionState::new)
                            .collect(),
                    },
                );
            }
            MetadataRecord::PartitionsIncreased {
                name,
                partitions,
                assignment,
            } => {
                if let Some(t) = self.topics.get_mut(name)
                    && *partitions > t.partitions
                {
                    t.partitions = *partitions;
                    t.partition_states
                        .extend(assignment.iter().cloned().map(PartitionState::new));
                }
            }
            MetadataRecord::TopicConfigChanged { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::TopicDeleted { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.topic_names.remove(&t.id);
                }
            }
            MetadataRecord::BrokerConfigChanged { broker_id, configs } => {
                let key = broker_id.map(|id| id.to_string()).unwrap_or_default();
                if configs.is_empty() {
                    self.broker_configs.remove(&key);
                } else {
                    self.broker_configs.insert(key, configs.clone());
                }
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::PartitionChanged {
                topic,
                topic_id,
                partition,
                state,
            } => {
                if let Some(slot) = self
                    .topics
                    .get_mut(topic)
                    .filter(|t| t.id == *topic_id)
                    .and_then(|t| {
                        t.partition_states
                            .get_mut(usize::try_from(*partition).ok()?)
                    })
                {
                    *slot = state.clone();
                }
            }
            MetadataRecord::BrokerRegistered { broker } => {
                let mut broker = broker.clone();
                if broker.epoch < 0 {
                    broker.epoch = offset;
                }
                self.brokers.insert(broker.registration.broker_id, broker);
            }
            MetadataRecord::BrokerFenced { broker_id } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::BrokerUnfenced { broker_id } => {
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::AclCreated { id, acl } => {
                self.acls.insert(*id, acl.clone());
            }
            MetadataRecord::AclDeleted { id } => {
                self.acls.remove(id);
            }
            MetadataRecord::ClientQuotaChanged { entity, key, value } => {
                let slot = entity.key();
                match value {
                    Some(v) => {
                        self.client_quotas
                            .entry(slot)
                            .or_insert_with(|| QuotaEntry {
                                entity: entity.clone(),
                                values: BTreeMap::new(),
                            })
                            .values
                            .insert(key.clone(), *v);
                    }
                    None => {
                        if let Some(entry) = self.client_quotas.get_mut(&slot) {
                            entry.values.remove(key);
                            if entry.values.is_empty() {
                                self.client_quotas.remove(&slot);
                            }
                        }
                    }
                }
            }
            MetadataRecord::ScramCredentialChanged {
                user,
                mechanism,
                credential,
            } => match credential {
                Some(c) => {
                    self.scram
                        .entry(user.clone())
                        .or_default()
                        .insert(*mechanism, c.clone());
                }
                None => {
                    if let Some(creds) = self.scram.get_mut(user) {
                        creds.remove(mechanism);
                        if creds.is_empty() {
                            self.scram.remove(user);
                        }
                    }
                }
            },
        }
    }

    /// Whether `broker_id` may serve: registered and unfenced, or, in a cluster where nobody registers (a
    /// single node on its local log), any broker.
    pub fn is_live(&self, broker_id: i32) -> bool {
        if self.brokers.is_empty() {
            return true;
        }
        self.brokers.get(&broker_id).is_some_and(|b| !b.fenced)
    }

    /// Registered, unfenced brokers, by id: the ones Metadata lists and new replicas go to.
    pub fn live_brokers(&self) -> impl Iterator<Item = &RegisteredBroker> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The leader of a partition, as the controller last decided it.
    pub fn leader(&self, topic: &TopicMeta, partition: i32) -> Option<i32> {
        topic.partition(partition).and_then(PartitionState::leader)
    }

    /// A dynamic broker config for `broker`: its own value, else the cluster-wide default.
    pub fn broker_config(&self, broker: i32, key: &str) -> Option<&str> {
        self.broker_configs
            .get(&broker.to_string())
            .and_then(|c| c.get(key))
            .or_else(|| self.broker_configs.get("").and_then(|c| c.get(key)))
            .map(String::as_str)
    }

    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(user).and_then(|c| c.get(&mechanism))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::{Endpoint, Registration};

    fn created(name: &str, id: Uuid, assignment: Vec<Vec<i32>>) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id,
            partitions: assignment.len() as i32,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            assignment,
        }
    }

    #[test]
    fn apply_is_idempotent_and_tracks_ids() {
        let id = Uuid::from_u128(7);
        let records = [
            created("a", id, vec![vec![1], vec![1]]),
            MetadataRecord::PartitionsIncreased {
                name: "a".into(),
                partitions: 5,
                assignment: vec![vec![1], vec![1], vec![1]],
            },
            // A stale or repeated increase changes nothing.
            MetadataRecord::PartitionsIncreased {
                name: "a".into(),
                partitions: 4,
                assignment: vec![vec![9], vec![9]],
            },
            MetadataRecord::TopicConfigChanged {
                name: "a".into(),
                configs: [("retention.ms".to_string(), "1000".to_string())].into(),
            },
            MetadataRecord::ProducerIdsAllocated { next: 1000 },
            MetadataRecord::ProducerIdsAllocated { next: 10 },
        ];
        let mut image = MetadataImage::default();
        assert_eq!(image.offset, -1);
        for (offset, r) in records.iter().enumerate() {
            image.apply_at(r, offset as i64);
        }
        assert_eq!(image.offset, 5);
        let t = image.topic_by_id(&id).unwrap();
        assert_eq!(t.partitions, 5);
        assert_eq!(t.partition_states.len(), 5);
        assert_eq!(t.replicas(4), &[1]);
        assert!(t.replicas(5).is_empty() && t.replicas(-1).is_empty());
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(image.next_producer_id, 1000);
        image.apply_at(&MetadataRecord::TopicDeleted { name: "a".into() }, 6);
        assert!(image.topic_by_id(&id).is_none());
        assert!(image.topics.is_empty());
    }

    fn registered(id: i32) -> MetadataRecord {
        MetadataRecord::BrokerRegistered {
            broker: RegisteredBroker {
                registration: Registration {
                    broker_id: id,
                    incarnation: Uuid::from_u128(id as u128),
                    listeners: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "localhost".into(),
                        port: 9092,
                        security_protocol: 0,
                    }],
                    rack: None,
                },
                epoch: -1,
                fenced: true,
            },
        }
    }

    #[test]
    fn registrations_take_their_offset_as_epoch_and_fencing_decides_leadership() {
        let mut image = MetadataImage::default();
        // Nobody registered (a single node on its local log): every broker counts as live.
        assert!(image.is_live(1));
        image.apply_at(&registered(1), 10);
        image.apply_at(&registered(2), 11);
        assert_eq!(image.brokers[&1].epoch, 10);
        assert_eq!(image.brokers[&2].epoch, 11);
        assert_eq!(
            image.live_brokers().count(),
            0,
            "registrations start fenced"
        );
        image.apply_at(&MetadataRecord::BrokerUnfenced { broker_id: 1 }, 12);
        image.apply_at(&MetadataRecord::BrokerUnfenced { broker_id: 2 }, 13);
        image.apply_at(
            &created("t", Uuid::from_u128(1), vec![vec![1, 2], vec![2, 1]]),
            14,
        );
        let t = image.topics["t"].clone();
        assert_eq!(image.leader(&t, 0), Some(1));
        assert_eq!(image.leader(&t, 1), Some(2));
        image.apply_at(&MetadataRecord::BrokerFenced { broker_id: 2 }, 15);
        // Fencing alone moves no leadership: the controller writes that as a partition change.
        assert_eq!(image.leader(&t, 1), Some(2));
        let mut moved = t.partition_states[1].clone();
        moved.leader = 1;
        moved.isr = vec![1];
        moved.leader_epoch += 1;
        moved.partition_epoch += 1;
        image.apply_at(
            &MetadataRecord::PartitionChanged {
                topic: "t".into(),
                topic_id: Uuid::from_u128(1),
                partition: 1,
                state: moved.clone(),
            },
            16,
        );
        // A change for another incarnation of the topic is ignored.
        image.apply_at(
            &MetadataRecord::PartitionChanged {
                topic: "t".into(),
                topic_id: Uuid::from_u128(99),
                partition: 1,
                state: PartitionState::new(vec![7]),
            },
            17,
        );
        let t = image.topics["t"].clone();
        assert_eq!(t.partition(1), Some(&moved));
        assert_eq!(image.leader(&t, 1), Some(1));
        // Dynamic broker configs: a broker's own value wins over the cluster default; an empty set removes.
        let rate = |v: &str| {
            BTreeMap::from([(
                "leader.replication.throttled.rate".to_string(),
                v.to_string(),
            )])
        };
        image.apply_at(
            &MetadataRecord::BrokerConfigChanged {
                broker_id: None,
                configs: rate("10"),
            },
            18,
        );
        image.apply_at(
            &MetadataRecord::BrokerConfigChanged {
                broker_id: Some(2),
                configs: rate("20"),
            },
            19,
        );
        assert_eq!(
            image.broker_config(1, "leader.replication.throttled.rate"),
            Some("10")
        );
        assert_eq!(
            image.broker_config(2, "leader.replication.throttled.rate"),
            Some("20")
        );
        image.apply_at(
            &MetadataRecord::BrokerConfigChanged {
                broker_id: Some(2),
                configs: BTreeMap::new(),
            },
            20,
        );
        assert_eq!(
            image.broker_config(2, "leader.replication.throttled.rate"),
            Some("10")
        );
        assert!(
            !image.is_live(3),
            "an unregistered broker is not live once others registered"
        );
        assert_eq!(
            image
                .live_brokers()
                .map(|b| b.registration.broker_id)
                .collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[test]
    fn scram_credentials_are_set_replaced_and_deleted_per_mechanism() {
        let cred = |i: i32| ScramCredential {
            salt: vec![1, 2, 3],
            stored_key: vec![4; 32],
            server_key: vec![5; 32],
            iterations: i,
        };
        let change = |user: &str, m, c| MetadataRecord::ScramCredentialChanged {
            user: user.into(),
            mechanism: m,
            credential: c,
        };
        let mut image = MetadataImage::default();
        image.apply_at(
            &change("alice", ScramMechanism::Sha256, Some(cred(4096))),
            0,
        );
        image.apply_at(
            &change("alice", ScramMechanism::Sha512, Some(cred(8192))),
            1,
        );
        image.apply_at(
            &change("alice", ScramMechanism::Sha256, Some(cred(5000))),
            2,
        );
        assert_eq!(
            image
                .scram_credential("alice", ScramMechanism::Sha256)
                .map(|c| c.iterations),
            Some(5000)
        );
        image.apply_at(&change("alice", ScramMechanism::Sha256, None), 3);
        assert!(
            image
                .scram_credential("alice", ScramMechanism::Sha256)
                .is_none()
        );
        assert!(
            image
                .scram_credential("alice", ScramMechanism::Sha512)
                .is_some()
        );
        image.apply_at(&change("alice", ScramMechanism::Sha512, None), 4);
        assert!(image.scram.is_empty(), "a user without credentials is gone");
        // Deleting what is not there changes nothing.
        image.apply_at(&change("bob", ScramMechanism::Sha512, None), 5);
        assert!(image.scram.is_empty());
        // The record survives its JSON form (as stored in the log), keys as base64.
        let r = change("a,b=c", ScramMechanism::Sha512, Some(cred(4096)));
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains("\"SCRAM-SHA-512\"") && json.contains("\"AQID\""),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), r);
    }
}
