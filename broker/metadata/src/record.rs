use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    },
    PartitionsIncreased {
        name: String,
        partitions: i32,
    },
    /// The complete set of overrides after the change, so replay never depends on earlier records' order.
    TopicConfigChanged {
        name: String,
        configs: BTreeMap<String, String>,
    },
    TopicDeleted {
        name: String,
    },
    /// Producer ids below `next` are taken; a node hands out ids from its block without a write per id.
    ProducerIdsAllocated {
        next: i64,
    },
}
