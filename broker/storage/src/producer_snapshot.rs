//! Producer-state snapshots: `<20-digit offset>.snapshot` files in the partition directory holding
//! the idempotent producer state as of an offset (the state after every batch below it), so that
//! opening a log replays only the batches from the newest snapshot on, as Kafka does.
//!
//! Format (big-endian), versioned and checksummed like Kafka's so a torn or corrupt file is noticed
//! and ignored (opening then falls back to an older snapshot or to scanning the log):
//!
//! ```text
//! version: u16 (1) | crc: u32, CRC-32C of everything after it | offset: i64 | producers: u32
//! per producer: producer id i64 | epoch i16 | batches u8 (<= 5)
//!   per batch, oldest first: first seq i32 | last seq i32 | base offset i64 | last offset i64 | timestamp i64
//! ```

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::producer_state::{BatchMetadata, MAX_CACHED_BATCHES, ProducerEntry, ProducerState};
use crate::segment;

pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Snapshots kept after writing a new one: the newest is the one normally loaded, the one before
/// it is the fallback if the newest turns out unreadable.
pub(crate) const SNAPSHOTS_KEPT: usize = 2;

const VERSION: u16 = 1;
/// version + crc
const PREFIX_LEN: usize = 6;
const PRODUCER_LEN: usize = 8 + 2 + 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;

pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    segment::segment_file(dir, offset, SNAPSHOT_SUFFIX)
}

fn encode(offset: i64, state: &ProducerState) -> Vec<u8> {
    let entries = state.entries();
    let mut body = Vec::with_capacity(12 + entries.len() * (PRODUCER_LEN + 2 * BATCH_LEN));
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (producer_id, entry) in entries {
        body.extend_from_slice(&producer_id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.push(entry.batches.len() as u8);
        for b in &entry.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.base_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
            body.extend_from_slice(&b.timestamp.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads big-endian fields off the front of a byte slice; `None` once it runs short.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

fn decode(bytes: &[u8], expected_offset: i64) -> Result<ProducerState, String> {
    let mut r = Reader(bytes);
    let version = r.take().map(u16::from_be_bytes).ok_or("too short")?;
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let crc = r.u32().ok_or("too short")?;
    let actual = crc32c::crc32c(r.0);
    if crc != actual {
        return Err(format!(
            "CRC mismatch: file says {crc:#010x}, computed {actual:#010x}"
        ));
    }
    let offset = r.i64().ok_or("too short")?;
    if offset != expected_offset {
        return Err(format!(
            "holds offset {offset}, its name says {expected_offset}"
        ));
    }
    let count = r.u32().ok_or("too short")?;
    let mut state = ProducerState::default();
    for _ in 0..count {
        let (Some(producer_id), Some(epoch), Some(batches)) = (r.i64(), r.i16(), r.u8()) else {
            return Err("cut short".into());
        };
        if batches as usize > MAX_CACHED_BATCHES {
            return Err(format!("producer {producer_id} has {batches} batches"));
        }
        let mut entry = ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(batches as usize),
        };
        for _ in 0..batches {
            let (
                Some(first_seq),
                Some(last_seq),
                Some(base_offset),
                Some(last_offset),
                Some(timestamp),
            ) = (r.i32(), r.i32(), r.i64(), r.i64(), r.i64())
            else {
                return Err("cut short".into());
            };
            entry.batches.push_back(BatchMetadata {
                first_seq,
                last_seq,
                base_offset,
                last_offset,
                timestamp,
            });
        }
        state.insert(producer_id, entry);
    }
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok(state)
}

/// Writes the snapshot of `state` as of `offset` durably: temp file, fsync, rename, fsync dir, so
/// a crash leaves the old file set or the new one, never a half-written snapshot under the name.
pub(crate) fn write(dir: &Path, offset: i64, state: &ProducerState) -> io::Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&encode(offset, state))?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    checkpoint::fsync_dir(dir)
}

/// Reads the snapshot at `offset`; `None` (after a warning) when it is torn or corrupt.
pub(crate) fn read(dir: &Path, offset: i64) -> io::Result<Option<ProducerState>> {
    let path = snapshot_path(dir, offset);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match decode(&bytes, offset) {
        Ok(state) => Ok(Some(state)),
        Err(problem) => {
            tracing::warn!(snapshot = %path.display(), "ignoring corrupt producer state snapshot: {problem}");
            Ok(None)
        }
    }
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some((offset, SNAPSHOT_SUFFIX)) =
            name.to_str().and_then(segment::parse_segment_file_name)
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

pub(crate) fn delete(dir: &Path, offset: i64) -> io::Result<()> {
    match fs::remove_file(snapshot_path(dir, offset)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Deletes every snapshot whose offset `doomed` returns true for.
pub(crate) fn delete_where(dir: &Path, doomed: impl Fn(i64) -> bool) -> io::Result<()> {
    for offset in list(dir)? {
        if doomed(offset) {
            delete(dir, offset)?;
        }
    }
    Ok(())
}

/// Deletes all but the newest `SNAPSHOTS_KEPT` snapshots.
pub(crate) fn delete_old(dir: &Path) -> io::Result<()> {
    let offsets = list(dir)?;
    for &offset in offsets.iter().rev().skip(SNAPSHOTS_KEPT) {
        delete(dir, offset)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchHeader;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: 1,
            base_timestamp: 10,
            max_timestamp: 20 + base_offset,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: 2,
        }
    }

    fn state() -> ProducerState {
        let mut state = ProducerState::default();
        for i in 0..7 {
            state.replay(&header(1, 3, i * 2, i as i64 * 2));
        }
        state.replay(&header(99, 0, 0, 14));
        state
    }

    #[test]
    fn snapshot_round_trips_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 16, &state()).unwrap();
        let loaded = read(dir.path(), 16).unwrap().unwrap();
        assert_eq!(encode(16, &loaded), encode(16, &state()));
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.entries()[0].1.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(list(dir.path()).unwrap(), vec![16]);
        assert!(
            !snapshot_path(dir.path(), 16)
                .with_extension("snapshot.tmp")
                .exists()
        );
    }

    #[test]
    fn corrupt_torn_or_misnamed_snapshots_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let good = encode(16, &state());
        let path = snapshot_path(dir.path(), 16);
        for i in [0, 3, 10, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            assert!(read(dir.path(), 16).unwrap().is_none(), "flipped byte {i}");
        }
        fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(read(dir.path(), 16).unwrap().is_none());
        fs::write(&path, []).unwrap();
        assert!(read(dir.path(), 16).unwrap().is_none());
        fs::write(snapshot_path(dir.path(), 17), &good).unwrap();
        assert!(read(dir.path(), 17).unwrap().is_none());
        assert!(read(dir.path(), 18).unwrap().is_none());
    }

    #[test]
    fn only_the_newest_snapshots_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [5, 40, 12, 30] {
            write(dir.path(), offset, &state()).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![5, 12, 30, 40]);
        delete_old(dir.path()).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![30, 40]);
        delete_where(dir.path(), |o| o > 30).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![30]);
    }
}
