use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::AclBinding;
use crate::image::PartitionState;
use crate::quota::QuotaEntity;
use crate::scram::{ScramCredential, ScramMechanism};
use crate::sessions::RegisteredBroker;

/// One change to the cluster metadata. Stored as JSON in the value of a record of `__cluster_metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    TopicCreated {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        internal: bool,
        /// The replicas of each partition, leader first. Empty in records written before placement existed
        /// (single-node logs): the node that reads them fills in itself.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignment: Vec<Vec<i32>>,
    },
    PartitionsIncreased {
        name: String,
        partitions: i32,
        /// The replicas of each new partition, as in `TopicCreated`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignment: Vec<Vec<i32>>,
    },
    /// The complete set of overrides after the change, so replay never depends on earlier records' order.
    TopicConfigChanged {
        name: String,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        name: String,
    },
    /// A broker's dynamic configs (`kafka-configs --entity-type brokers`), the complete set after the change;
    /// `broker_id: None` is the cluster-wide default (`--entity-default`).
    BrokerConfigChanged {
        broker_id: Option<i32>,
        configs: BTreeMap<String, String>,
    },
    /// A partition's replicas, ISR, leader or epochs changed: its whole new state (Kafka's
    /// `PartitionChangeRecord`), for the topic with this id only (a recreated topic keeps its name).
    PartitionChanged {
        topic: String,
        topic_id: Uuid,
        partition: i32,
        state: PartitionState,
    },
    /// Producer ids below `next` are taken; a node hands out ids from its block without a write per id.
    ProducerIdsAllocated {
        next: i64,
    },
    /// A broker registered. An `epoch` of -1 means "the offset of this record", which every node knows only
    /// once the record is in the log.
    BrokerRegistered {
        broker: RegisteredBroker,
    },
    /// The broker's session ran out (or it asked): it leaves Metadata until it is unfenced.
    BrokerFenced {
        broker_id: i32,
    },
    BrokerUnfenced {
        broker_id: i32,
    },
    /// A user's SCRAM credential for one mechanism was set (`Some`) or deleted (`None`).
    ScramCredentialChanged {
        user: String,
        mechanism: ScramMechanism,
        credential: Option<ScramCredential>,
    },
    /// An ACL was created (CreateAcls); `id` names it for its deletion.
    AclCreated {
        id: Uuid,
        acl: AclBinding,
    },
    AclDeleted {
        id: Uuid,
    },
    /// A client quota was set (`Some`) or removed (`None`) on an entity (AlterClientQuotas).
    ClientQuotaChanged {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
}
