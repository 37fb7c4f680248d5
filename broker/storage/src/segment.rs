//! One segment: a `.log` file of record batches plus its two sparse indexes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::index::{OffsetIndex, TimeIndex};
use crate::{LogConfig, StorageError};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<20-digit base offset>.<suffix>`, Kafka's naming.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Parses `00000000000000000042.log` style names into (base offset, suffix).
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// Decides where sparse index entries go. Shared by the append path and by index rebuilds, so a
/// rebuilt index is byte-identical to one written by appends with the same settings.
#[derive(Clone, Debug)]
pub(crate) struct IndexPlanner {
    bytes_since_last_entry: u64,
    /// Largest batch maxTimestamp in the segment, -1 if none.
    pub max_timestamp: i64,
    /// Last offset of the (first) batch holding `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    last_time_entry: i64,
}

type PlannedEntries = (Option<(i64, u32)>, Option<(i64, i64)>);

impl IndexPlanner {
    fn new(base_offset: i64) -> IndexPlanner {
        IndexPlanner {
            bytes_since_last_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            last_time_entry: -1,
        }
    }

    /// The planner of a segment opened from its indexes: `last_time_entry` (the segment's max
    /// timestamp and its offset, recorded last) and the bytes written after the last offset entry.
    fn resumed(
        base_offset: i64,
        last_time_entry: Option<(i64, i64)>,
        bytes_since_last_entry: u64,
    ) -> IndexPlanner {
        let (max_timestamp, offset_of_max_timestamp) = last_time_entry.unwrap_or((-1, base_offset));
        IndexPlanner {
            bytes_since_last_entry,
            max_timestamp,
            offset_of_max_timestamp,
            last_time_entry: max_timestamp,
        }
    }

    /// Like Kafka's `LogSegment.append`: an entry (batch last offset, batch position) once more
    /// than `interval` bytes were written since the previous one, plus a time entry when the
    /// segment's max timestamp grew.
    fn on_batch(&mut self, position: u64, header: &BatchHeader, interval: u32) -> PlannedEntries {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        let mut planned = (None, None);
        if self.bytes_since_last_entry > interval as u64 {
            planned.0 = Some((header.last_offset(), position as u32));
            planned.1 = self.time_entry();
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry += header.size();
        planned
    }

    /// The time entry recording the current max timestamp, if it is not recorded yet.
    fn time_entry(&mut self) -> Option<(i64, i64)> {
        if self.max_timestamp > self.last_time_entry {
            self.last_time_entry = self.max_timestamp;
            Some((self.max_timestamp, self.offset_of_max_timestamp))
        } else {
            None
        }
    }
}

/// How a segment is scanned by [`Segment::load`] (the slow path, when its indexes cannot be
/// trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadMode {
    /// An older segment whose indexes failed the sanity check: check batch headers; keep each
    /// index if it matches the log, rebuild it otherwise.
    Closed,
    /// The last segment after an unclean shutdown (or a failed clean open): verify every CRC and
    /// rebuild its (preallocated) indexes.
    Active,
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log: Arc<File>,
    log_path: PathBuf,
    /// Bytes of complete batches; readers never see past it.
    pub size: u64,
    /// Offset after the last batch (the base offset when empty).
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub planner: IndexPlanner,
    /// When the segment got its first batch; drives time-based rolling.
    pub roll_base_ms: Option<i64>,
}

/// Buffered positional reads for scanning a file batch by batch without one syscall per header.
struct Scanner<'a> {
    file: &'a File,
    file_len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl<'a> Scanner<'a> {
    const CHUNK: usize = 64 * 1024;

    fn new(file: &'a File, file_len: u64) -> Scanner<'a> {
        Scanner {
            file,
            file_len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Bytes [pos, pos + len); the caller guarantees they lie within the file.
    fn bytes(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let cached = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !cached {
            let want = (len.max(Self::CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }
}

fn open_log_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
}

/// Where a scan of batch headers stopped.
struct ScanEnd {
    /// End of the last good batch.
    position: u64,
    /// Offset after the last good batch (`min_offset` if there was none).
    next_offset: i64,
    /// Why the scan stopped before `file_len`, if it did.
    problem: Option<String>,
    batches: u64,
}

/// Walks the batches of `file` from `from` to `file_len`, checking each header's structure, that
/// it fits in the file and that offsets grow from `min_offset` (and, if asked, the CRC), and calls
/// `on_batch` with each good batch's position and header. Stops at the first bad one.
fn scan(
    file: &File,
    from: u64,
    file_len: u64,
    min_offset: i64,
    verify_crc: bool,
    on_batch: &mut dyn FnMut(u64, &BatchHeader),
) -> io::Result<ScanEnd> {
    let mut scanner = Scanner::new(file, file_len);
    let mut end = ScanEnd {
        position: from,
        next_offset: min_offset,
        problem: None,
        batches: 0,
    };
    while end.position < file_len {
        let pos = end.position;
        if file_len - pos < HEADER_SIZE as u64 {
            end.problem = Some(format!("{} trailing bytes", file_len - pos));
            break;
        }
        let header = match BatchHeader::parse(scanner.bytes(pos, HEADER_SIZE)?)
            .and_then(|h| h.check_structure().map(|()| h))
        {
            Ok(h) => h,
            Err(e) => {
                end.problem = Some(e.to_string());
                break;
            }
        };
        end.batches += 1;
        if pos + header.size() > file_len {
            end.problem = Some(format!("batch at {pos} is cut short"));
            break;
        }
        if header.base_offset < end.next_offset {
            end.problem = Some(format!(
                "batch at {pos} has offset {} below {}",
                header.base_offset, end.next_offset
            ));
            break;
        }
        if verify_crc
            && let Err(e) = batch::validate_batch(scanner.bytes(pos, header.size() as usize)?)
        {
            end.problem = Some(e.to_string());
            break;
        }
        on_batch(pos, &header);
        end.next_offset = header.last_offset() + 1;
        end.position = pos + header.size();
    }
    Ok(end)
}

/// Opens a segment's trimmed indexes if both exist and pass the sanity check.
fn open_checked_indexes(
    dir: &Path,
    base_offset: i64,
    next_base_offset: Option<i64>,
    log_size: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, StorageError> {
    let index_path = segment_file(dir, base_offset, INDEX_SUFFIX);
    let time_index_path = segment_file(dir, base_offset, TIME_INDEX_SUFFIX);
    let Some(offset_index) = OffsetIndex::open_trimmed(&index_path, base_offset)? else {
        return Ok(None);
    };
    let Some(time_index) = TimeIndex::open_trimmed(&time_index_path, base_offset)? else {
        return Ok(None);
    };
    let checked = offset_index
        .sanity_check(next_base_offset, log_size)
        .and_then(|()| time_index.sanity_check(next_base_offset));
    if let Err(problem) = checked {
        tracing::warn!(segment = %segment_file(dir, base_offset, LOG_SUFFIX).display(), "index failed the sanity check, scanning the segment: {problem}");
        return Ok(None);
    }
    Ok(Some((offset_index, time_index)))
}

impl Segment {
    /// Creates a new empty segment (any stale files with that base offset are replaced).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<Segment, StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, true)?;
        let offset_index = OffsetIndex::create(
            &segment_file(dir, base_offset, INDEX_SUFFIX),
            base_offset,
            config.max_index_size,
        )?;
        let time_index = TimeIndex::create(
            &segment_file(dir, base_offset, TIME_INDEX_SUFFIX),
            base_offset,
            config.max_index_size,
        )?;
        crate::checkpoint::fsync_dir(dir)?;
        Ok(Segment {
            base_offset,
            log: Arc::new(log),
            log_path,
            size: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            planner: IndexPlanner::new(base_offset),
            roll_base_ms: None,
        })
    }

    /// Opens a closed segment (one with a successor) from its indexes alone, without reading the
    /// log: the size is the file length, the next offset is the next segment's base offset, the
    /// max timestamp is the last time-index entry. Returns `None` when an index is missing or
    /// fails the sanity check; the caller then scans the segment.
    ///
    /// This is sound because a segment only gets a successor after `become_inactive` fsynced its
    /// log and trimmed indexes (`Log::roll` creates the next segment afterwards), a closed segment
    /// is never written again, and `truncate_to` deletes segments newest first: whatever the
    /// shutdown, a segment followed by another one is complete on disk, ends exactly where its
    /// successor starts, and its indexes are final. Kafka needs a recovery-point checkpoint for
    /// this because it flushes rolled segments asynchronously; here the roll is the recovery point.
    pub fn open_closed(
        dir: &Path,
        base_offset: i64,
        next_base_offset: i64,
    ) -> Result<Option<Segment>, StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, false)?;
        let size = log.metadata()?.len();
        if size == 0 || size > u32::MAX as u64 {
            return Ok(None);
        }
        let Some((offset_index, time_index)) =
            open_checked_indexes(dir, base_offset, Some(next_base_offset), size)?
        else {
            return Ok(None);
        };
        let planner = IndexPlanner::resumed(base_offset, time_index.last_entry(), 0);
        Ok(Some(Segment {
            base_offset,
            log: Arc::new(log),
            log_path,
            size,
            next_offset: next_base_offset,
            offset_index,
            time_index,
            planner,
            // Only the active segment rolls by time.
            roll_base_ms: None,
        }))
    }

    /// Opens the active segment after a clean shutdown, which trimmed and fsynced its indexes
    /// and recorded its final max timestamp: like Kafka, it trusts the indexes (after the sanity
    /// check) and reads only the batches after the last offset-index entry (at most about
    /// `index_interval_bytes`) to find the log end, plus the first batch for time-based rolling.
    /// Returns the segment and the number of batch headers read, or `None` if anything does not
    /// add up, in which case the caller runs the full recovery.
    pub fn open_clean_active(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Option<(Segment, u64)>, StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, false)?;
        let size = log.metadata()?.len();
        if size > u32::MAX as u64 {
            return Ok(None);
        }
        let Some((mut offset_index, mut time_index)) =
            open_checked_indexes(dir, base_offset, None, size)?
        else {
            return Ok(None);
        };
        let (entry_offset, from) = offset_index
            .last_entry()
            .map_or((None, 0), |(offset, position)| {
                (Some(offset), position as u64)
            });
        let mut first = None;
        let mut tail_max_timestamp = -1;
        let tail = scan(&log, from, size, base_offset, false, &mut |_, header| {
            first.get_or_insert(*header);
            tail_max_timestamp = tail_max_timestamp.max(header.max_timestamp);
        })?;
        let last_time_entry = time_index.last_entry();
        let recorded_max_timestamp = last_time_entry.map_or(-1, |(ts, _)| ts);
        let problem = if let Some(problem) = tail.problem {
            Some(problem)
        } else if let (Some(expected), Some(found)) = (entry_offset, first)
            && found.last_offset() != expected
        {
            Some(format!(
                "last index entry says offset {expected}, the batch there ends at {}",
                found.last_offset()
            ))
        } else if tail_max_timestamp > recorded_max_timestamp {
            Some(format!(
                "batch timestamp {tail_max_timestamp} above the time index's {recorded_max_timestamp}"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::warn!(segment = %log_path.display(), "not trusting the indexes of a cleanly closed segment: {problem}");
            return Ok(None);
        }
        let mut batches = tail.batches;
        let first_timestamp = if from == 0 {
            first.map(|h| h.max_timestamp)
        } else {
            batches += 1;
            let mut buf = [0u8; HEADER_SIZE];
            log.read_exact_at(&mut buf, 0)?;
            Some(BatchHeader::parse(&buf)?.max_timestamp)
        };
        offset_index.grow_to(config.max_index_size)?;
        time_index.grow_to(config.max_index_size)?;
        let planner = IndexPlanner::resumed(base_offset, last_time_entry, size - from);
        let segment = Segment {
            base_offset,
            log: Arc::new(log),
            log_path,
            size,
            next_offset: tail.next_offset,
            offset_index,
            time_index,
            planner,
            roll_base_ms: first_timestamp.map(|ts| if ts >= 0 { ts } else { now_ms }),
        };
        Ok(Some((segment, batches)))
    }

    /// Opens an existing segment by scanning all its batches (truncating the file at the first
    /// torn or corrupt one), feeds every batch header to `on_batch`, and rebuilds indexes as
    /// needed. Returns the segment and the number of batch headers read.
    pub fn load(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        mode: LoadMode,
        now_ms: i64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(Segment, u64), StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let log = open_log_file(&log_path, false)?;
        let file_len = log.metadata()?.len();
        let verify_crc = mode == LoadMode::Active;

        let mut planner = IndexPlanner::new(base_offset);
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        let mut first_batch_timestamp = None;
        let scanned = scan(
            &log,
            0,
            file_len,
            base_offset,
            verify_crc,
            &mut |pos, header| {
                let (offset_entry, time_entry) =
                    planner.on_batch(pos, header, config.index_interval_bytes);
                offset_entries.extend(offset_entry);
                time_entries.extend(time_entry);
                on_batch(header);
                first_batch_timestamp.get_or_insert(header.max_timestamp);
            },
        )?;
        let pos = scanned.position;
        if let Some(problem) = scanned.problem {
            tracing::warn!(
                segment = %log_path.display(),
                position = pos,
                dropped_bytes = file_len - pos,
                "truncating log segment at a torn or corrupt batch: {problem}"
            );
            log.set_len(pos)?;
            log.sync_all()?;
        }
        // A closed segment records its final max timestamp (see `become_inactive`); recording it
        // for the active one too keeps every loaded segment's time index complete.
        time_entries.extend(planner.time_entry());

        let index_path = segment_file(dir, base_offset, INDEX_SUFFIX);
        let time_index_path = segment_file(dir, base_offset, TIME_INDEX_SUFFIX);
        let (offset_index, time_index) = match mode {
            LoadMode::Active => (
                OffsetIndex::rebuild(
                    &index_path,
                    base_offset,
                    &offset_entries,
                    config.max_index_size as usize / OffsetIndex::ENTRY_SIZE,
                )?,
                TimeIndex::rebuild(
                    &time_index_path,
                    base_offset,
                    &time_entries,
                    config.max_index_size as usize / TimeIndex::ENTRY_SIZE,
                )?,
            ),
            LoadMode::Closed => {
                let offset_index = match OffsetIndex::open_trimmed(&index_path, base_offset)? {
                    Some(index) if index.entries() == offset_entries => index,
                    _ => {
                        tracing::info!(index = %index_path.display(), "rebuilding offset index");
                        let index =
                            OffsetIndex::rebuild(&index_path, base_offset, &offset_entries, 0)?;
                        index.flush()?;
                        index
                    }
                };
                let time_index = match TimeIndex::open_trimmed(&time_index_path, base_offset)? {
                    Some(index) if index.entries() == time_entries => index,
                    _ => {
                        tracing::info!(index = %time_index_path.display(), "rebuilding time index");
                        let index =
                            TimeIndex::rebuild(&time_index_path, base_offset, &time_entries, 0)?;
                        index.flush()?;
                        index
                    }
                };
                (offset_index, time_index)
            }
        };
        let roll_base_ms = first_batch_timestamp.map(|ts| if ts >= 0 { ts } else { now_ms });
        let segment = Segment {
            base_offset,
            log: Arc::new(log),
            log_path,
            size: pos,
            next_offset: scanned.next_offset,
            offset_index,
            time_index,
            planner,
            roll_base_ms,
        };
        Ok((segment, scanned.batches))
    }

    /// Feeds `on_batch` every batch header of this (already loaded) segment whose base offset is
    /// at least `from_offset`, starting from the index entry below it. Rebuilds producer state
    /// past a snapshot. Returns the number of headers read; a corrupt header ends the replay with a
    /// warning (the segment was trusted from its indexes, so only reads will notice it).
    pub fn replay_from(
        &self,
        from_offset: i64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<u64, StorageError> {
        let start = if from_offset > self.base_offset {
            self.offset_index.lookup(from_offset).1 as u64
        } else {
            0
        };
        let scanned = scan(
            &self.log,
            start,
            self.size,
            self.base_offset,
            false,
            &mut |_, h| {
                if h.base_offset >= from_offset {
                    on_batch(h);
                }
            },
        )?;
        if let Some(problem) = scanned.problem {
            tracing::warn!(segment = %self.log_path.display(), position = scanned.position, "producer state replay stopped: {problem}");
        }
        Ok(scanned.batches)
    }

    pub fn is_index_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Writes already validated and stamped batches (`batches` gives each one's header and range
    /// within `records`) at the end of the segment with one write.
    pub fn append(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, [u8; HEADER_SIZE], Range<usize>)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if let Err(e) = self.write_batches(records, batches) {
            // Do not leave a partial batch behind a later successful append.
            if let Err(trunc) = self.log.set_len(self.size) {
                tracing::error!(segment = %self.log_path.display(), "cannot undo failed write: {trunc}");
            }
            return Err(e.into());
        }
        let mut position = self.size;
        for (header, _, range) in batches {
            let (offset_entry, time_entry) =
                self.planner
                    .on_batch(position, header, config.index_interval_bytes);
            if let Some((offset, pos)) = offset_entry {
                self.offset_index.append(offset, pos);
            }
            if let Some((timestamp, offset)) = time_entry {
                self.time_index.append(timestamp, offset);
            }
            self.next_offset = header.last_offset() + 1;
            position += range.len() as u64;
        }
        self.size = position;
        self.roll_base_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Writes each batch as its stamped header followed by its records, straight from the request buffer, in
    /// one vectored write at the end of the segment.
    fn write_batches(
        &self,
        records: &[u8],
        batches: &[(BatchHeader, [u8; HEADER_SIZE], Range<usize>)],
    ) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
        for (_, header, range) in batches {
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(&records[range.start + HEADER_SIZE..range.end]));
        }
        // Only appends move the file cursor (readers use pread and sendfile with explicit offsets), and the
        // caller holds the log's lock, so seeking then writing is safe.
        let mut file: &File = &self.log;
        file.seek(SeekFrom::Start(self.size))?;
        let mut remaining: &mut [IoSlice<'_>] = &mut slices;
        while !remaining.is_empty() {
            match file.write_vectored(remaining) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut remaining, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the batch header at `position` (which must be a batch boundary below `size`).
    pub fn read_header(&self, position: u64) -> Result<BatchHeader, StorageError> {
        let mut buf = [0u8; HEADER_SIZE];
        self.log.read_exact_at(&mut buf, position)?;
        let header = BatchHeader::parse(&buf)?;
        header.check_structure()?;
        if position + header.size() > self.size {
            return Err(StorageError::CorruptRecord(format!(
                "batch at {position} of {} overruns the segment",
                self.log_path.display()
            )));
        }
        Ok(header)
    }

    /// The first batch at or after `from_position` whose last offset is >= `target`, i.e. the
    /// batch containing `target` or the first one after it.
    pub fn find_batch(
        &self,
        target: i64,
        from_position: u64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let mut position = from_position.max(self.offset_index.lookup(target).1 as u64);
        while position < self.size {
            let header = self.read_header(position)?;
            if header.last_offset() >= target {
                return Ok(Some((position, header)));
            }
            position += header.size();
        }
        Ok(None)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Reads one whole batch's bytes (for decoding records).
    pub fn read_batch(&self, position: u64, header: &BatchHeader) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; header.size() as usize];
        self.log.read_exact_at(&mut buf, position)?;
        Ok(buf)
    }

    /// The segment's newest timestamp for time retention; like Kafka, the file's modification
    /// time when no batch carries a timestamp.
    pub fn largest_timestamp(&self) -> i64 {
        if self.planner.max_timestamp >= 0 {
            return self.planner.max_timestamp;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Seals the segment when a newer one takes over (or at shutdown): records the final max
    /// timestamp, trims the indexes to their real size and makes everything durable.
    pub fn become_inactive(&mut self) -> Result<(), StorageError> {
        if let Some((timestamp, offset)) = self.planner.time_entry() {
            self.time_index.append_final(timestamp, offset)?;
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.flush()
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.log.sync_data()?;
        self.offset_index.flush()?;
        self.time_index.flush()?;
        Ok(())
    }

    /// Removes the segment's files, the log first so a crash in between leaves only orphan
    /// index files, which the next open deletes.
    pub fn delete_files(&self) -> Result<(), StorageError> {
        for path in [
            self.log_path.as_path(),
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_round_trip() {
        let dir = Path::new("/x");
        let p = segment_file(dir, 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/x/00000000000000000042.log"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_segment_file_name(name), Some((42, "log")));
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("meta.properties"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000042.timeindex"),
            Some((42, "timeindex"))
        );
    }
}
