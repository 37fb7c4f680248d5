//! Group coordinator for Kafka's classic consumer group protocol (JoinGroup/SyncGroup/Heartbeat/
//! LeaveGroup) and committed offsets, persisted to `__consumer_offsets` in Kafka's record format.
//!
//! A group belongs to a `__consumer_offsets` partition (Kafka's hash of its id), and the broker leading that
//! partition coordinates it: leadership of a partition loads its groups from the log, losing it unloads them,
//! and requests for a group whose partition is not loaded here answer NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS while it loads), so clients look for the coordinator again.

mod coordinator;
mod offsets;
mod records;
mod state;
#[cfg(test)]
mod tests;

use bytes::BytesMut;
use sluice_storage::StoredRecord;

pub use coordinator::GroupCoordinator;
pub use state::GroupState;

/// Settings of the group coordinator, named after Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes` in milliseconds: offsets of empty groups older than this expire.
    pub offsets_retention_ms: i64,
    /// `offsets.topic.num.partitions`
    pub num_offsets_partitions: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            num_offsets_partitions: 50,
        }
    }
}

/// What an append still has to wait for before it counts (the ISR catching up).
pub type Committing =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>;

/// Storage of the `__consumer_offsets` partitions, provided by the broker.
pub trait OffsetLog: Send + Sync + 'static {
    /// Append already-encoded record batch bytes (Kafka v2 batch, built with
    /// `kafka_protocol::records::RecordBatchEncoder`, base offset 0 — the log assigns real
    /// offsets as it does for produced batches) to partition `partition` of `__consumer_offsets`.
    /// Blocking; answers what to await before the records count as written (replication).
    fn append(&self, partition: i32, batch: BytesMut) -> Result<Committing, String>;
    /// Hands every record of that partition to `visit`, in order, for replay at startup.
    fn replay(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), GroupError>,
    ) -> Result<(), GroupError>;
}

/// Failures of the group coordinator that are not answered with a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("reading __consumer_offsets partition {partition}: {message}")]
    LogRead { partition: i32, message: String },
    #[error("appending to __consumer_offsets partition {partition}: {message}")]
    LogAppend { partition: i32, message: String },
    #[error("replaying __consumer_offsets: {0}")]
    Replay(#[from] sluice_storage::StorageError),
    #[error("malformed __consumer_offsets record: {0}")]
    Record(String),
    #[error("encoding __consumer_offsets record batch: {0}")]
    Encode(String),
}
