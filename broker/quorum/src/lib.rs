//! sluice-quorum: the controller quorum's Raft, on openraft. This crate holds the storage openraft runs on:
//! the Raft log in a `sluice_storage::Log` (one record batch per entry, so a Raft index is a Kafka offset of
//! `__cluster_metadata-0`), the vote and commit point in small fsynced files, and the state machine that
//! applies committed entries to a `sluice_metadata::MetadataImage`, with snapshots; the messages controllers
//! send each other and their transports (TCP, and an in-memory router with faults); and `QuorumNode`, one
//! controller, which proposes changes and answers its peers. `sluice-server` runs one per voter (see
//! `docs/design/controller-quorum.md`).

mod files;
mod log_store;
pub mod memory;
pub mod network;
mod node;
pub mod rpc;
mod state_machine;
pub mod tcp;

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sluice_metadata::MetadataRecord;

pub use log_store::LogStore;
pub use node::{ProposeError, QuorumNode, QuorumStatus, Settings, Timing, VoterStatus};
pub use state_machine::StateMachine;

/// A Kafka `node.id`, widened as openraft wants it.
pub type NodeId = u64;

/// One entry's payload: the metadata records of one change, applied together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry answers: its index, the offset the change has in the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
}

/// A member of the quorum as its membership holds it: the `host:port` its controller listener is reached at, and
/// the directory id of its metadata log dir (KIP-853). The id tells a controller whose disk was replaced from the
/// one that voted; a static quorum's voters have none. Serialized as openraft's `Member` was, plus the id,
/// so a log written before the id existed still reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<uuid::Uuid>,
}

impl Member {
    pub fn new(addr: impl ToString) -> Member {
        Member {
            addr: addr.to_string(),
            directory_id: None,
        }
    }

    pub fn with_directory(addr: impl ToString, directory_id: Option<uuid::Uuid>) -> Member {
        Member {
            addr: addr.to_string(),
            directory_id,
        }
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.directory_id {
            Some(d) => write!(f, "{}@{d}", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

openraft::declare_raft_types!(
    /// The quorum's openraft types.
    pub Quorum:
        D = MetadataBatch,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Failures of this crate outside openraft's own error types.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("raft log: {0}")]
    Storage(#[from] sluice_storage::StorageError),
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Corrupt(String),
    #[error("raft: {0}")]
    Raft(String),
}
