//! sluice-storage: the Kafka-compatible on-disk partition log.
//!
//! A partition is a directory `<topic>-<partition>` holding segments named by their 20-digit base
//! offset (`.log`, `.index`, `.timeindex`), in Kafka's own format, so the bytes a producer sent are
//! the bytes a consumer receives (the server `sendfile()`s [`FileSlice`]s straight from `.log` files).
//! See README.md for the design.

mod batch;
mod checkpoint;
mod epoch_cache;
mod error;
mod index;
mod log;
mod manager;
mod producer_snapshot;
mod producer_state;
mod records;
mod segment;
mod validate;

use std::fmt;
use std::fs::File;
use std::sync::Arc;

pub use epoch_cache::{EpochEntry, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
pub use error::StorageError;
pub use log::{Log, StoredRecord, replay_bytes};

/// The checks [`Log::append_from_client`] makes of a Produce request's records, without a log: what the
/// fuzzers drive, and what a caller can use to refuse records before taking a log's lock.
pub fn check_client_records(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<(), StorageError> {
    validate::client_records(records, config, now_ms).map(|_| ())
}
pub use manager::LogManager;

/// A topic partition; its log directory is named by its `Display` form, `topic-0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Parses a partition directory name. The partition is after the LAST '-' because topic
    /// names may themselves contain '-'.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Per-log settings; `Default` gives Kafka's broker defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would exceed this size.
    pub segment_bytes: u64,
    /// Roll a non-empty active segment after this age; `None` means Kafka's default of 7 days
    /// (`log.roll.hours=168`).
    pub segment_ms: Option<u64>,
    /// Delete closed segments whose newest timestamp is older than this; `None` = unlimited.
    pub retention_ms: Option<i64>,
    /// Delete the oldest closed segments while the log is larger than this; `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// fsync once this many messages (records) are unflushed; `None` leaves flushing to the OS.
    pub flush_interval_messages: Option<u64>,
    /// fsync (from `tick`) when unflushed data is older than this.
    pub flush_interval_ms: Option<u64>,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// Preallocated size of each index file; a full index rolls the segment.
    pub max_index_size: u32,
    /// Largest accepted record batch (Kafka's `message.max.bytes`).
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` contains `delete`; retention only applies when true.
    pub cleanup_policy_delete: bool,
    /// Forget an idempotent producer this long after its last batch's timestamp (Kafka's
    /// `producer.id.expiration.ms`, KIP-854), so that short-lived producers do not pile up.
    pub producer_id_expiration_ms: i64,
    /// A CreateTime record may be at most this much older than the broker's clock (Kafka's
    /// `message.timestamp.before.max.ms`, unlimited by default).
    pub message_timestamp_before_max_ms: i64,
    /// ... and at most this much newer (`message.timestamp.after.max.ms`; Kafka 4 defaults to one hour).
    pub message_timestamp_after_max_ms: i64,
    /// A compressed batch may inflate to at most this many bytes while it is validated. Kafka has no such
    /// limit; without one a few KiB of zstd could keep a core busy for minutes.
    pub max_decompressed_batch_bytes: u64,
}

/// Kafka's `log.roll.hours=168`, used when `segment_ms` is `None`.
pub const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: None,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            index_interval_bytes: 4096,
            max_index_size: 10 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy_delete: true,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 60 * 60 * 1000,
            max_decompressed_batch_bytes: 128 << 20,
        }
    }
}

impl LogConfig {
    /// The segment age that triggers a roll, resolving `None` to Kafka's default.
    pub fn effective_segment_ms(&self) -> u64 {
        self.segment_ms.unwrap_or(DEFAULT_SEGMENT_MS)
    }
}

/// One refused record of a batch, as Produce v8+ reports it (`BatchIndexAndErrorMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The record's position in its batch.
    pub batch_index: i32,
    pub message: Option<String>,
}

/// Result of a successful (or duplicate) append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches, or -1 unless the log uses `LogAppendTime`.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batch had already been appended (idempotent producer retry); nothing was written.
    pub duplicate: bool,
}

/// A byte range of a segment file for the server to `sendfile()`. It always starts at a batch
/// boundary; it may end mid-batch (clients discard a trailing partial batch, as with Kafka).
#[derive(Clone, Debug)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

/// What [`Log::open`] had to read to rebuild the log's state ([`Log::recovery_stats`]), so the
/// fast path can be observed: after a clean shutdown no closed segment is read and the producer
/// state comes from a snapshot at the log end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// The `.clean-shutdown` marker was present.
    pub clean_shutdown: bool,
    /// Offset of the producer-state snapshot loaded; `None`: rebuilt from the whole log.
    pub snapshot_offset: Option<i64>,
    /// Closed segments opened from their indexes alone, without reading the log.
    pub closed_segments_trusted: usize,
    /// Closed segments scanned because an index was missing or failed the sanity check.
    pub closed_segments_scanned: usize,
    /// Batch headers read from closed segments (scans and producer-state replay).
    pub closed_segment_batches_read: u64,
    /// Batch headers read from the active segment.
    pub active_segment_batches_read: u64,
    /// The active segment went through full recovery (every CRC checked, indexes rebuilt).
    pub active_segment_recovered: bool,
}

/// Result of [`Log::read`].
#[derive(Clone, Debug)]
pub struct ReadInfo {
    /// `None` when there is nothing to return (at the log end or at `max_offset`).
    pub slice: Option<FileSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}
