//! `Log`: one partition's ordered list of segments, with offsets, high watermark, retention,
//! truncation and recovery.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::batch::{self, BatchHeader};
use crate::checkpoint;
use crate::epoch_cache::{EpochCache, EpochEntry};
use crate::producer_snapshot;
use crate::producer_state::{ProducerState, StagedProducers};
use crate::segment::{self, LoadMode, Segment};
use crate::validate::{self, ValidBatch};
mod replay;
mod timestamps;

pub use replay::{StoredRecord, replay_bytes};

use crate::{
    AppendInfo, FileSlice, LogConfig, ReadInfo, RecoveryStats, StorageError, TimestampType,
};

/// One partition's log. Not internally synchronised: the broker wraps it in a mutex.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Keyed by base offset; never empty, the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    producers: ProducerState,
    /// The first offset of each leader epoch (`leader-epoch-checkpoint`).
    epochs: EpochCache,
    unflushed_messages: u64,
    /// `now_ms` of the oldest append not yet fsynced, for `flush_interval_ms`.
    first_unflushed_ms: Option<i64>,
    closed: bool,
    recovery: RecoveryStats,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Log {
    /// Opens the log in `dir`, creating it if missing and recovering it if it was not closed
    /// cleanly. The high watermark starts at the log end offset.
    ///
    /// Closed segments are opened from their indexes without reading the log, the producer state
    /// from the newest snapshot plus the batches after it; after a clean shutdown the active
    /// segment is opened the same way, otherwise it is recovered in full. See
    /// [`Log::recovery_stats`] for what was read.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, StorageError> {
        fs::create_dir_all(dir)?;
        // The marker goes before anything is modified: the clean path grows the active segment's
        // indexes back to their preallocated size, so from here on the files are no longer as a
        // clean shutdown left them. A failed open only costs a full recovery next time.
        let clean = checkpoint::take_clean_shutdown(dir)?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            high_watermark: 0,
            producers: ProducerState::default(),
            epochs: EpochCache::empty(dir),
            unflushed_messages: 0,
            first_unflushed_ms: None,
            closed: false,
            recovery: RecoveryStats::default(),
        };
        log.recovery = log.load(clean)?;
        log.high_watermark = log.log_end_offset();
        Ok(log)
    }

    /// (Re)builds the in-memory state from the files: segments, producer state, log start offset.
    fn load(&mut self, clean: bool) -> Result<RecoveryStats, StorageError> {
        self.segments.clear();
        self.producers.clear();
        let mut stats = RecoveryStats {
            clean_shutdown: clean,
            ..RecoveryStats::default()
        };
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
                continue;
            }
            match segment::parse_segment_file_name(name) {
                Some((base, segment::LOG_SUFFIX)) => bases.push(base),
                Some((base, segment::INDEX_SUFFIX | segment::TIME_INDEX_SUFFIX)) => {
                    index_files.push((base, entry.path()));
                }
                _ => {}
            }
        }
        bases.sort_unstable();
        // Index files whose log is gone (a crash during segment deletion).
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                fs::remove_file(path)?;
            }
        }

        // Producer state starts from the newest readable snapshot; only batches from its offset
        // on are replayed, in offset order: during the scans of segments that need one, or with
        // a header walk over segments opened from their indexes that reach past the snapshot.
        let mut replay_from = i64::MIN;
        if let Some(&first_base) = bases.first()
            && let Some((offset, state)) = self.newest_snapshot(first_base, i64::MAX)?
        {
            replay_from = offset;
            self.producers = state;
        }

        let now = wall_clock_ms();
        let producers = &mut self.producers;
        let mut replay = |h: &BatchHeader| {
            if h.base_offset >= replay_from {
                producers.replay(h);
            }
        };
        for (i, &base) in bases.iter().enumerate() {
            let segment = if let Some(&next_base) = bases.get(i + 1) {
                if let Some(segment) = Segment::open_closed(&self.dir, base, next_base)? {
                    stats.closed_segments_trusted += 1;
                    if segment.next_offset > replay_from {
                        stats.closed_segment_batches_read +=
                            segment.replay_from(replay_from, &mut replay)?;
                    }
                    segment
                } else {
                    let (segment, batches) = Segment::load(
                        &self.dir,
                        base,
                        &self.config,
                        LoadMode::Closed,
                        now,
                        &mut replay,
                    )?;
                    stats.closed_segments_scanned += 1;
                    stats.closed_segment_batches_read += batches;
                    segment
                }
            } else {
                let clean_open = if clean {
                    Segment::open_clean_active(&self.dir, base, &self.config, now)?
                } else {
                    None
                };
                if let Some((segment, mut batches)) = clean_open {
                    if segment.next_offset > replay_from {
                        batches += segment.replay_from(replay_from, &mut replay)?;
                    }
                    stats.active_segment_batches_read += batches;
                    segment
                } else {
                    let (segment, batches) = Segment::load(
                        &self.dir,
                        base,
                        &self.config,
                        LoadMode::Active,
                        now,
                        &mut replay,
                    )?;
                    stats.active_segment_recovered = true;
                    stats.active_segment_batches_read += batches;
                    segment
                }
            };
            self.segments.insert(base, segment);
        }

        let checkpointed = checkpoint::read_log_start_offset(&self.dir)?;
        if self.segments.is_empty() {
            // No data, so no producer state either.
            producer_snapshot::delete_where(&self.dir, |_| true)?;
            self.producers.clear();
            let base = checkpointed.unwrap_or(0).max(0);
            self.segments
                .insert(base, Segment::create(&self.dir, base, &self.config)?);
            return self.finish_load(checkpointed, stats);
        }

        let leo = self.log_end_offset();
        if replay_from > leo {
            // The snapshot is ahead of the data that survived (files lost or damaged): start
            // over from an older snapshot and replay everything after it, in order.
            tracing::warn!(dir = %self.dir.display(), snapshot = replay_from, log_end_offset = leo, "producer state snapshot is past the log end");
            producer_snapshot::delete_where(&self.dir, |offset| offset > leo)?;
            self.producers.clear();
            replay_from = i64::MIN;
            if let Some((offset, state)) =
                self.newest_snapshot(self.first_segment().base_offset, leo)?
            {
                replay_from = offset;
                self.producers = state;
            }
            let active_base = self.active().base_offset;
            let producers = &mut self.producers;
            for segment in self.segments.values() {
                if segment.next_offset <= replay_from {
                    continue;
                }
                let batches = segment.replay_from(replay_from, &mut |h| producers.replay(h))?;
                if segment.base_offset == active_base {
                    stats.active_segment_batches_read += batches;
                } else {
                    stats.closed_segment_batches_read += batches;
                }
            }
        }
        stats.snapshot_offset = (replay_from != i64::MIN).then_some(replay_from);
        // Snapshots of data no longer in the log (below the first segment or past the end).
        let first_base = self.first_segment().base_offset;
        producer_snapshot::delete_where(&self.dir, |offset| offset < first_base || offset > leo)?;
        self.finish_load(checkpointed, stats)
    }

    /// Sets the log start offset from the checkpoint once the segments are loaded.
    fn finish_load(
        &mut self,
        checkpointed: Option<i64>,
        stats: RecoveryStats,
    ) -> Result<RecoveryStats, StorageError> {
        let first_base = self.first_segment().base_offset;
        self.log_start_offset = checkpointed.unwrap_or(first_base).max(first_base);
        if self.log_start_offset > self.log_end_offset() {
            // The checkpoint is ahead of the data that survived: start over at the checkpoint.
            let start = self.log_start_offset;
            self.truncate_fully_and_start_at(start)?;
        }
        self.load_epochs()?;
        Ok(stats)
    }

    /// The leader epoch cache as of the loaded segments: the checkpoint trimmed to the data that survived, or,
    /// without a readable one (a log written before epochs were kept), rebuilt from every batch header.
    fn load_epochs(&mut self) -> Result<(), StorageError> {
        self.epochs = match EpochCache::load(&self.dir)? {
            Some(cache) => cache,
            None => {
                let mut cache = EpochCache::empty(&self.dir);
                if self.log_end_offset() > self.log_start_offset {
                    for segment in self.segments.values() {
                        segment.replay_from(i64::MIN, &mut |h| {
                            cache.observe(h.partition_leader_epoch, h.base_offset)
                        })?;
                    }
                }
                if !cache.entries().is_empty() {
                    cache.persist()?;
                }
                cache
            }
        };
        self.epochs.truncate_from_end(self.log_end_offset())?;
        self.epochs.truncate_from_start(self.log_start_offset)?;
        Ok(())
    }

    /// The newest readable snapshot with an offset in [min, max], deleting unreadable ones on the
    /// way (like Kafka), so a torn or corrupt snapshot costs a longer replay, never wrong state.
    fn newest_snapshot(
        &self,
        min: i64,
        max: i64,
    ) -> Result<Option<(i64, ProducerState)>, StorageError> {
        for offset in producer_snapshot::list(&self.dir)?.into_iter().rev() {
            if offset < min || offset > max {
                continue;
            }
            match producer_snapshot::read(&self.dir, offset)? {
                Some(state) => return Ok(Some((offset, state))),
                None => producer_snapshot::delete(&self.dir, offset)?,
            }
        }
        Ok(None)
    }

    /// Records the producer state as of `offset` (the log end) in a snapshot and drops older
    /// ones. A snapshot only shortens the next open, so failing to write one is not an error
    /// for the caller: the next open replays from an older snapshot or the whole log instead.
    fn write_snapshot(&self, offset: i64) {
        let written = producer_snapshot::write(&self.dir, offset, &self.producers)
            .and_then(|()| producer_snapshot::delete_old(&self.dir));
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), offset, "cannot write producer state snapshot: {e}");
        }
    }

    /// What the last [`Log::open`] read to rebuild the log (truncation reloads are not counted).
    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.recovery
    }

    fn first_segment(&self) -> &Segment {
        match self.segments.first_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active(&self) -> &Segment {
        match self.segments.last_key_value() {
            Some((_, s)) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.last_entry() {
            Some(s) => s.into_mut(),
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn ensure_open(&self) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::LogClosed(self.dir.display().to_string()));
        }
        Ok(())
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Appends the batches of one produce request (`records` is the request's raw records field).
    ///
    /// Every batch is checked first (magic 2, lengths, CRC-32C, record count, `max_message_bytes`,
    /// idempotent producer sequence and epoch) and nothing is written unless all pass. Offsets are
    /// assigned from the log end offset and stamped in place together with `leader_epoch` (and
    /// the append time under `LogAppendTime`). A retried idempotent batch returns its original
    /// offsets with `duplicate: true` and writes nothing. The high watermark is not moved.
    pub fn append(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.ensure_open()?;
        let batches = batch::validate_records(records, self.config.max_message_bytes)?
            .into_iter()
            .map(|(header, range)| ValidBatch {
                max_timestamp: header.max_timestamp,
                header,
                range,
            })
            .collect();
        self.append_batches(records, batches, leader_epoch, now_ms)
    }

    /// Appends a client's Produce records after the checks Kafka makes of them (`validate`): exactly one
    /// batch, a record count that is the records actually present, sane offsets and timestamps. A batch that
    /// fails writes nothing.
    pub fn append_from_client(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.ensure_open()?;
        let batches = validate::client_records(records, &self.config, now_ms)?;
        self.append_batches(records, batches, leader_epoch, now_ms)
    }

    /// Appends batches a leader already stamped (what a follower fetched): offsets, leader epochs and
    /// timestamps stay as they are, nothing is deduplicated, and the idempotent producer state and the leader
    /// epoch cache follow the batches, so this replica can lead with them later. Each batch's framing and CRC
    /// are checked, and offsets must only move forward from the log end. An incomplete batch at the end (a
    /// leader's answer cut at its byte limit) is left out. Answers the offsets appended, `None` if no whole
    /// batch was given.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Option<AppendInfo>, StorageError> {
        self.ensure_open()?;
        let mut batches = Vec::new();
        let mut pos = 0usize;
        let mut next = self.log_end_offset();
        while let Some(rest) = records.get(pos..).filter(|r| r.len() >= batch::HEADER_SIZE) {
            let header = BatchHeader::parse(rest)?;
            let Ok(size) = usize::try_from(header.size()) else {
                break;
            };
            if size > rest.len() {
                break;
            }
            let header = batch::validate_batch(&rest[..size])?;
            if header.base_offset < next {
                return Err(StorageError::CorruptRecord(format!(
                    "replicated batch at offset {} does not follow the log end {next}",
                    header.base_offset
                )));
            }
            next = header.last_offset() + 1;
            let mut stamped = [0u8; batch::HEADER_SIZE];
            stamped.copy_from_slice(&rest[..batch::HEADER_SIZE]);
            batches.push((header, stamped, pos..pos + size));
            pos += size;
        }
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Ok(None);
        };
        let (base_offset, last_offset) = (first.0.base_offset, last.0.last_offset());
        self.maybe_roll(pos as u64, last_offset, now_ms)?;
        for (header, _, _) in &batches {
            self.epochs
                .assign(header.partition_leader_epoch, header.base_offset)?;
        }
        let config = self.config.clone();
        self.active_mut()
            .append(&records[..pos], &batches, &config, now_ms)?;
        let mut record_count = 0u64;
        for (header, _, _) in &batches {
            self.producers.replay(header);
            record_count += header.record_count.max(0) as u64;
        }
        self.appended(record_count, now_ms)?;
        Ok(Some(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        }))
    }

    fn append_batches(
        &mut self,
        records: &[u8],
        batches: Vec<ValidBatch>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let total = records.len() as u64;
        let segment_limit = self.config.segment_bytes.min(u32::MAX as u64);
        if total > segment_limit {
            return Err(StorageError::RecordTooLarge {
                size: total,
                max: segment_limit,
            });
        }
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;

        let base_offset = self.log_end_offset();
        let mut staged = StagedProducers::new();
        let mut next_offset = base_offset;
        for ValidBatch {
            header,
            max_timestamp,
            ..
        } in &batches
        {
            let timestamp = if log_append_time {
                now_ms
            } else {
                *max_timestamp
            };
            if let Some(dup) = self
                .producers
                .check(&mut staged, header, next_offset, timestamp)?
            {
                return Ok(AppendInfo {
                    base_offset: dup.base_offset,
                    last_offset: dup.last_offset,
                    log_append_time: if log_append_time { dup.timestamp } else { -1 },
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
            next_offset += header.last_offset_delta as i64 + 1;
        }
        let last_offset = next_offset - 1;

        self.maybe_roll(total, last_offset, now_ms)?;

        let mut stamped = Vec::with_capacity(batches.len());
        let mut offset = base_offset;
        let mut record_count = 0u64;
        for ValidBatch {
            header,
            range,
            max_timestamp,
        } in batches
        {
            let new_header = batch::stamped_header(
                &records[range.clone()],
                offset,
                leader_epoch,
                if log_append_time {
                    batch::MaxTimestamp::LogAppendTime(now_ms)
                } else {
                    batch::MaxTimestamp::CreateTime(max_timestamp)
                },
            );
            offset += header.last_offset_delta as i64 + 1;
            record_count += header.record_count as u64;
            stamped.push((BatchHeader::parse(&new_header)?, new_header, range));
        }
        // The epoch is written down before its first batch, so the cache never lags the log.
        self.epochs.assign(leader_epoch, base_offset)?;
        let config = self.config.clone();
        self.active_mut()
            .append(records, &stamped, &config, now_ms)?;
        self.producers.commit(staged);
        self.appended(record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// The flush policy after `records` more records were written at `now_ms`.
    fn appended(&mut self, records: u64, now_ms: i64) -> Result<(), StorageError> {
        self.unflushed_messages += records;
        self.first_unflushed_ms.get_or_insert(now_ms);
        if self
            .config
            .flush_interval_messages
            .is_some_and(|n| self.unflushed_messages >= n)
        {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_roll(
        &mut self,
        incoming: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self.active();
        if active.size == 0 {
            return Ok(());
        }
        let limit = self.config.segment_bytes.min(u32::MAX as u64);
        let too_big = active.size + incoming > limit;
        let too_old = self.roll_due(now_ms);
        let offsets_overflow = last_offset - active.base_offset > i32::MAX as i64;
        if too_big || too_old || offsets_overflow || active.is_index_full() {
            self.roll()?;
        }
        Ok(())
    }

    fn roll_due(&self, now_ms: i64) -> bool {
        let active = self.active();
        active.size > 0
            && active.roll_base_ms.is_some_and(|base| {
                now_ms.saturating_sub(base) >= self.config.effective_segment_ms() as i64
            })
    }

    /// Seals the active segment and starts a new one at the log end offset.
    fn roll(&mut self) -> Result<(), StorageError> {
        let base = self.log_end_offset();
        self.active_mut().become_inactive()?;
        // Only now may the next segment exist: `Segment::open_closed` trusts every segment that
        // has a successor to have been fsynced with final indexes by `become_inactive`.
        let segment = Segment::create(&self.dir, base, &self.config)?;
        self.segments.insert(base, segment);
        // The producer state as of the new segment's base (the append that triggered the roll
        // commits its batches after this), so that opening after a crash replays only the new
        // segment, which it scans for recovery anyway.
        self.write_snapshot(base);
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled new segment");
        Ok(())
    }

    /// Returns the file range to send for a fetch at `offset`, without copying record bytes.
    ///
    /// The slice starts at the batch containing `offset`, stays within one segment, stops before
    /// the first batch holding any offset >= `max_offset` (pass the high watermark), and is at most
    /// `max_bytes` long (possibly ending mid-batch) unless `min_one_batch`, which guarantees the
    /// whole first batch. `offset` outside [log start, log end] is `OffsetOutOfRange`; at the log
    /// end or at/after `max_offset` the slice is `None`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, StorageError> {
        let leo = self.log_end_offset();
        if offset < self.log_start_offset || offset > leo {
            return Err(self.out_of_range(offset));
        }
        let slice = if offset == leo || offset >= max_offset {
            None
        } else {
            self.slice(offset, max_bytes, max_offset, min_one_batch)?
        };
        Ok(ReadInfo {
            slice,
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            log_end_offset: leo,
        })
    }

    fn slice(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, StorageError> {
        // The segment holding `offset`, or a later one if it only has earlier batches.
        for (_, segment) in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset.saturating_add(1)..))
        {
            let Some((start, first)) = segment.find_batch(offset, 0)? else {
                continue;
            };
            // Batches reaching max_offset (the high watermark) are not yet visible.
            if first.last_offset() >= max_offset {
                return Ok(None);
            }
            let end = if max_offset >= segment.next_offset {
                segment.size
            } else {
                match segment.find_batch(max_offset, start)? {
                    Some((position, _)) => position,
                    None => segment.size,
                }
            };
            let mut len = (end - start).min(max_bytes as u64);
            if min_one_batch {
                len = len.max(first.size());
            }
            if len == 0 {
                return Ok(None);
            }
            return Ok(Some(FileSlice {
                file: segment.log.clone(),
                position: start,
                len,
            }));
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The newest leader epoch this log holds batches of (or was told of), if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader epoch that wrote `offset` (as far as this log's epochs tell).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.epoch_for(offset)
    }

    /// Every leader epoch with the first offset it wrote, oldest first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch at or below `epoch` and the offset where it ended here
    /// (the log end for the latest epoch); (-1, -1) for an epoch newer than any here.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// A new leader epoch starts at the log end (this replica became leader): noted before any batch of it, so
    /// a follower that asks where the previous epoch ended is answered right even before this leader appends
    /// (the checkpoint gets it with the epoch's first batch).
    pub fn start_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        let leo = self.log_end_offset();
        self.epochs.start(epoch, leo);
        Ok(())
    }

    /// Sets the high watermark, clamped to [log start offset, log end offset].
    pub fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the high watermark),
    /// persists it, and deletes segments that lie wholly below it. Returns the new log start.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        self.ensure_open()?;
        if offset < 0 || offset > self.high_watermark {
            return Err(self.out_of_range(offset));
        }
        if offset > self.log_start_offset {
            checkpoint::write_log_start_offset(&self.dir, offset)?;
            self.log_start_offset = offset;
            self.epochs.truncate_from_start(offset)?;
            self.delete_segments_below_log_start()?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_oldest_segment(&mut self) -> Result<(), StorageError> {
        if self.segments.len() < 2 {
            return Ok(());
        }
        if let Some((_, segment)) = self.segments.pop_first() {
            segment.delete_files()?;
            tracing::debug!(dir = %self.dir.display(), base_offset = segment.base_offset, "deleted segment");
        }
        // Snapshots of the deleted data would start a replay from batches that are gone.
        let first_base = self.first_segment().base_offset;
        producer_snapshot::delete_where(&self.dir, |offset| offset < first_base)?;
        self.log_start_offset = self.log_start_offset.max(first_base);
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        self.epochs.truncate_from_start(self.log_start_offset)?;
        Ok(())
    }

    /// The base offset of the segment after the first one, if the first is not the active one.
    fn second_segment_base(&self) -> Option<i64> {
        self.segments.keys().nth(1).copied()
    }

    fn delete_segments_below_log_start(&mut self) -> Result<usize, StorageError> {
        let mut deleted = 0;
        while self
            .second_segment_base()
            .is_some_and(|next| next <= self.log_start_offset)
        {
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Removes everything at and after `offset`. A batch containing `offset` is removed whole,
    /// so the new log end offset may be below `offset` if it was not a batch boundary.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.ensure_open()?;
        if offset >= self.log_end_offset() {
            // No batch goes, but an epoch this log led without writing (noted at `offset`) does: a follower
            // that kept it would name it as its last fetched epoch and never agree with its leader.
            self.epochs.truncate_from_end(offset)?;
            return Ok(());
        }
        // Snapshots past the truncation point hold batches about to go; deleting them first means
        // no crash can leave one behind for a log that no longer has (or later has other) batches
        // there. (The batch containing `offset` starts below it, so none of its offsets is a
        // snapshot offset > `offset`.)
        producer_snapshot::delete_where(&self.dir, |o| o > offset)?;
        if offset <= self.log_start_offset.max(self.first_segment().base_offset) {
            return self.truncate_fully_and_start_at(offset);
        }
        // Newest first, so a crash in between leaves a contiguous run of segments, each ending
        // where the next begins, as `Segment::open_closed` assumes.
        let doomed: Vec<i64> = self
            .segments
            .range(offset..)
            .rev()
            .map(|(&b, _)| b)
            .collect();
        for base in doomed {
            if let Some(segment) = self.segments.remove(&base) {
                segment.delete_files()?;
            }
        }
        let active = self.active();
        if let Some((position, _)) = active.find_batch(offset, 0)? {
            active.log.set_len(position)?;
            active.log.sync_all()?;
        }
        // Reload from disk: the recovery path rebuilds the indexes and producer state, which now
        // must forget the truncated batches.
        let hw = self.high_watermark;
        self.load(false)?;
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
        Ok(())
    }

    /// Deletes every segment and restarts the log empty at `offset` (also the new log start).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        self.ensure_open()?;
        producer_snapshot::delete_where(&self.dir, |_| true)?;
        for segment in std::mem::take(&mut self.segments).into_values().rev() {
            segment.delete_files()?;
        }
        checkpoint::write_log_start_offset(&self.dir, offset)?;
        self.segments
            .insert(offset, Segment::create(&self.dir, offset, &self.config)?);
        self.producers.clear();
        self.epochs.clear()?;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        Ok(())
    }

    /// Deletes old closed segments by time and by size (and those below the log start offset).
    /// The active segment is never deleted. Returns how many segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.ensure_open()?;
        if !self.config.cleanup_policy_delete {
            return Ok(0);
        }
        let mut deleted = self.delete_segments_below_log_start()?;
        if let Some(retention_ms) = self.config.retention_ms.filter(|ms| *ms >= 0) {
            while self.segments.len() > 1
                && now_ms.saturating_sub(self.first_segment().largest_timestamp()) > retention_ms
            {
                self.delete_oldest_segment()?;
                deleted += 1;
            }
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            let mut excess = self.size_bytes().saturating_sub(retention_bytes);
            while self.segments.len() > 1 && excess >= self.first_segment().size {
                excess -= self.first_segment().size;
                self.delete_oldest_segment()?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Periodic work: time-based flush, time-based roll, and forgetting idle producer ids.
    pub fn tick(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.closed {
            return Ok(());
        }
        if let (Some(interval), Some(since)) =
            (self.config.flush_interval_ms, self.first_unflushed_ms)
            && now_ms.saturating_sub(since) >= interval as i64
        {
            self.flush()?;
        }
        if self.roll_due(now_ms) {
            self.roll()?;
        }
        let expired = self
            .producers
            .remove_expired(now_ms, self.config.producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "expired idle producer ids");
        }
        Ok(())
    }

    /// fsyncs the active segment and its indexes (older segments were synced when rolled).
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.active().flush()?;
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        Ok(())
    }

    /// Replaces the settings; size-related ones apply to segments created from now on.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Total bytes of all segment `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Base offsets of the segments, oldest first (the last is the active segment).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Number of producer ids with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
    /// Clean shutdown without consuming the log (used by `LogManager::close_all`): flushes,
    /// seals the active segment and writes the clean-shutdown marker. Later writes fail.
    pub(crate) fn shutdown(&mut self) -> Result<(), StorageError> {
        if self.closed {
            return Ok(());
        }
        self.active_mut().become_inactive()?;
        // The state as of the log end: a clean open then replays nothing.
        self.write_snapshot(self.log_end_offset());
        checkpoint::write_clean_shutdown(&self.dir)?;
        self.closed = true;
        Ok(())
    }

    /// Flushes, trims the indexes and marks the log cleanly shut down.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.shutdown()
    }

    pub(crate) fn mark_closed(&mut self) {
        self.closed = true;
    }
}
