//! The Raft log in a `sluice_storage::Log`: entry `i` is the one-record batch at offset `i`, its value the
//! entry in JSON (payload records, log id, membership). Openraft's vote, commit point and purge point live in
//! files beside it. Appends are fsynced before openraft is told they are durable.
//!
//! Every entry is also kept in memory, by index: a metadata log is small, and snapshots cut it, so reads never
//! touch the disk and the file is read once, at open.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use sluice_storage::{Log, LogConfig, StoredRecord};
use tokio::sync::Mutex;

use crate::{NodeId, Quorum, QuorumError, files};

const VOTE: &str = "raft-vote.json";
const COMMITTED: &str = "raft-committed.json";
const PURGED: &str = "raft-purged.json";

struct Inner {
    dir: PathBuf,
    log: Log,
    entries: BTreeMap<u64, Entry<Quorum>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

/// The Raft log of one node. Cheap to clone; clones share the log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn write_error(e: QuorumError) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One entry as the record batch that holds it.
fn encode(entry: &Entry<Quorum>) -> Result<BytesMut, QuorumError> {
    let value = serde_json::to_vec(entry).map_err(|e| QuorumError::Corrupt(e.to_string()))?;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        // The term, as Kafka stamps the leader epoch on every batch.
        partition_leader_epoch: entry.log_id.leader_id.term as i32,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: None,
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| QuorumError::Corrupt(format!("cannot encode a raft entry: {e}")))?;
    Ok(buf)
}

impl LogStore {
    /// Opens (or creates) the Raft log in `dir` and reads it into memory.
    pub fn open(dir: &Path, config: LogConfig) -> Result<LogStore, QuorumError> {
        let log = Log::open(dir, config)?;
        let mut entries = BTreeMap::new();
        log.replay(&mut |r: StoredRecord<'_>| {
            let value = r.value.ok_or_else(|| {
                QuorumError::Corrupt(format!("raft log offset {} has no value", r.offset))
            })?;
            let entry: Entry<Quorum> = serde_json::from_slice(value)
                .map_err(|e| QuorumError::Corrupt(format!("raft log offset {}: {e}", r.offset)))?;
            if entry.log_id.index != r.offset as u64 {
                return Err(QuorumError::Corrupt(format!(
                    "raft log offset {} holds the entry of index {}",
                    r.offset, entry.log_id.index
                )));
            }
            entries.insert(entry.log_id.index, entry);
            Ok(())
        })?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                log,
                entries,
                vote: files::read(dir, VOTE)?,
                committed: files::read::<Option<LogId<NodeId>>>(dir, COMMITTED)?.flatten(),
                purged: files::read(dir, PURGED)?,
            })),
        })
    }
}

impl Inner {
    fn append_one(&mut self, entry: Entry<Quorum>) -> Result<(), QuorumError> {
        let index = entry.log_id.index;
        let next = self.log.log_end_offset() as u64;
        if index != next {
            if !self.entries.is_empty() {
                return Err(QuorumError::Corrupt(format!(
                    "entry {index} would leave a hole: the log ends before {next}"
                )));
            }
            // The first entry after a purge or a snapshot install: the log starts there.
            self.log.truncate_fully_and_start_at(index as i64)?;
        }
        let info = self.log.append(
            &encode(&entry)?,
            entry.log_id.leader_id.term as i32,
            now_ms(),
        )?;
        if info.base_offset as u64 != index {
            return Err(QuorumError::Corrupt(format!(
                "entry {index} landed at offset {}",
                info.base_offset
            )));
        }
        self.entries.insert(index, entry);
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> Result<(), QuorumError> {
        drop(self.entries.split_off(&index));
        self.log.truncate_to(index as i64)?;
        self.log.flush()?;
        Ok(())
    }

    fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), QuorumError> {
        // Recorded first: after a crash the purge point is known even if the files were not cut yet.
        files::write(&self.dir, PURGED, &log_id)?;
        self.purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        let start = log_id.index as i64 + 1;
        let end = self.log.log_end_offset();
        if start >= end {
            self.log.truncate_fully_and_start_at(start)?;
        } else {
            self.log.set_high_watermark(end);
            self.log.delete_records_before(start)?;
        }
        Ok(())
    }
}

/// The entries of `range` as one run from its start, or none; what replication reads. Openraft takes the
/// first entry returned to be the one at the start of the range and sends the run after the entry before it. A replication task of a
/// leader that just stepped down can still read after a purge removed the start of its range; handing it the
/// entries that remain would make it send entries that do not follow its `prev_log_id` (a follower of the
/// same term accepts those and trips openraft's own assertion). An empty answer makes the task send a
/// heartbeat instead (openraft 0.9 handles it so, after a 10 ms pause). Other readers keep the plain range
/// read: openraft's storage contract lets them ask for ranges that start before the first entry.
fn contiguous_from_start<RB: RangeBounds<u64>>(
    entries: &BTreeMap<u64, Entry<Quorum>>,
    range: RB,
) -> Vec<Entry<Quorum>> {
    use std::ops::Bound;
    let mut expected = match range.start_bound() {
        Bound::Included(&i) => Some(i),
        Bound::Excluded(&i) => i.checked_add(1),
        Bound::Unbounded => entries.keys().next().copied(),
    };
    let mut run = Vec::new();
    for (&index, entry) in entries.range(range) {
        if Some(index) != expected {
            break;
        }
        run.push(entry.clone());
        expected = index.checked_add(1);
    }
    run
}

impl RaftLogReader<Quorum> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Quorum>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<Quorum>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(contiguous_from_start(&inner.entries, start..end))
    }
}

impl RaftLogStorage<Quorum> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Quorum>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        files::write(&inner.dir, VOTE, vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        files::write(&inner.dir, COMMITTED, &committed).map_err(write_error)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Quorum>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Quorum>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        for entry in entries {
            inner.append_one(entry).map_err(write_error)?;
        }
        // Durable before openraft counts the entries toward a quorum.
        let flushed = inner.log.flush().map_err(|e| write_error(e.into()));
        match flushed {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner
            .lock()
            .await
            .truncate(log_id.index)
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.inner.lock().await.purge(log_id).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn log(indexes: &[u64]) -> BTreeMap<u64, Entry<Quorum>> {
        indexes
            .iter()
            .map(|&i| {
                let entry = Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                    payload: EntryPayload::Blank,
                };
                (i, entry)
            })
            .collect()
    }

    fn indexes(run: &[Entry<Quorum>]) -> Vec<u64> {
        run.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn a_read_gives_the_run_from_the_start_of_its_range() {
        let entries = log(&[3, 4, 5, 6]);
        assert_eq!(indexes(&contiguous_from_start(&entries, 4..6)), [4, 5]);
        assert_eq!(indexes(&contiguous_from_start(&entries, 4..10)), [4, 5, 6]);
        assert_eq!(indexes(&contiguous_from_start(&entries, ..)), [3, 4, 5, 6]);
        assert_eq!(indexes(&contiguous_from_start(&entries, 3..=3)), [3]);
    }

    #[test]
    fn a_read_whose_start_was_purged_gives_nothing() {
        // What a stale replication task sees after a purge: entries 3.. remain, it asks for 1..5.
        let entries = log(&[3, 4, 5]);
        assert!(contiguous_from_start(&entries, 1..5).is_empty());
    }

    #[test]
    fn a_read_stops_at_a_hole() {
        let entries = log(&[1, 2, 4, 5]);
        assert_eq!(indexes(&contiguous_from_start(&entries, 1..6)), [1, 2]);
    }
}
