//! The leader epoch cache of one partition: the first offset each leader epoch wrote, kept in
//! `leader-epoch-checkpoint` (Kafka's text format: a version line, a count line, then `epoch offset` lines).
//!
//! A replica that comes back after a leader change asks the new leader where its last epoch ended (Fetch's
//! diverging epoch, OffsetForLeaderEpoch) and truncates there, so a former leader never keeps records the
//! cluster did not commit. The answer comes from this cache, so it must never lag the log: an epoch is
//! written down (and fsynced) before the first batch of that epoch is appended. It may run ahead of the log
//! after a crash; opening the log trims it back to the log end.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::fsync_dir;

pub(crate) const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const FORMAT_VERSION: &str = "0";

/// An epoch and the first offset it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Kafka's answer when an epoch is unknown: (-1, -1).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug)]
pub(crate) struct EpochCache {
    file: PathBuf,
    /// Strictly increasing in both epoch and start offset.
    entries: Vec<EpochEntry>,
    /// Entries noted but not written down yet (`start`): written before the first batch that needs them.
    dirty: bool,
}

impl EpochCache {
    /// Reads the checkpoint in `dir`. `None` when there is none or it is unreadable: the caller rebuilds the
    /// cache from the batches in the log.
    pub fn load(dir: &Path) -> io::Result<Option<EpochCache>> {
        let file = dir.join(EPOCH_CHECKPOINT_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match parse(&text) {
            Some(entries) => Ok(Some(EpochCache {
                file,
                entries,
                dirty: false,
            })),
            None => {
                tracing::warn!(file = %file.display(), "ignoring malformed leader epoch checkpoint; rebuilding it from the log");
                Ok(None)
            }
        }
    }

    /// An empty cache for `dir`, written on its first change.
    pub fn empty(dir: &Path) -> EpochCache {
        EpochCache {
            file: dir.join(EPOCH_CHECKPOINT_FILE),
            entries: Vec::new(),
            dirty: false,
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Notes that `epoch` starts at `start_offset`, in memory only (`persist` writes it down). A new epoch
    /// replaces every entry it contradicts (same or later epoch, same or later start); an epoch already
    /// latest keeps its earlier start. Answers whether anything changed.
    fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return false;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// As `assign_in_memory`, and writes the checkpoint when it changed (or held an entry not written yet):
    /// call before appending the batch at `start_offset`.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if self.assign_in_memory(epoch, start_offset) || self.dirty {
            self.persist()?;
        }
        Ok(())
    }

    /// A leader takes over at `start_offset`: noted for the answers it gives followers at once, written down
    /// only with the first batch of the epoch (an epoch that wrote nothing needs no record of it).
    pub fn start(&mut self, epoch: i32, start_offset: i64) {
        if self.assign_in_memory(epoch, start_offset) {
            self.dirty = true;
        }
    }

    /// Rebuilding from the log: each batch's epoch in offset order, written once at the end.
    pub fn observe(&mut self, epoch: i32, base_offset: i64) {
        self.assign_in_memory(epoch, base_offset);
    }

    /// The epoch that wrote `offset`: the newest one starting at or below it.
    pub fn epoch_for(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset where the epoch after
    /// it began (the log end offset for the latest epoch). (-1, -1) when `requested` is undefined or newer
    /// than every epoch known here.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().position(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        let start_of_higher = self.entries[higher].start_offset;
        match higher.checked_sub(1) {
            // Older than anything here: the requested epoch ends where the oldest known one starts.
            None => (requested, start_of_higher),
            Some(floor) => (self.entries[floor].epoch, start_of_higher),
        }
    }

    /// The log was cut at `end_offset`: epochs that started at or after it are gone.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: epochs wholly below it go, the one containing it starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> io::Result<()> {
        let Some(keep) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..keep);
        self.entries[0].start_offset = start_offset;
        self.persist()
    }

    pub fn clear(&mut self) -> io::Result<()> {
        if self.entries.is_empty() && !self.file.exists() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }

    /// Replaces the checkpoint atomically: temp file, fsync, rename, directory fsync.
    pub fn persist(&mut self) -> io::Result<()> {
        self.dirty = false;
        let mut text = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let tmp = self.file.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.file)?;
        match self.file.parent() {
            Some(dir) => fsync_dir(dir),
            None => Ok(()),
        }
    }
}

fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != FORMAT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let epoch: i32 = fields.next()?.parse().ok()?;
        let start_offset: i64 = fields.next()?.parse().ok()?;
        if fields.next().is_some() || epoch < 0 || start_offset < 0 {
            return None;
        }
        if entries
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
        {
            return None;
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, EpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::empty(dir.path());
        for &(e, o) in entries {
            c.assign(e, o).unwrap();
        }
        (dir, c)
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let (dir, mut c) = cache(&[(0, 0), (0, 5), (2, 10), (3, 20)]);
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (3, 20)]);
        // A new epoch starting below later entries replaces them (a leader that truncated, then leads).
        c.assign(4, 15).unwrap();
        assert_eq!(pairs(&c), vec![(0, 0), (2, 10), (4, 15)]);
        // Negative epochs (records written without one) are ignored.
        c.assign(-1, 30).unwrap();
        assert_eq!(c.latest_epoch(), Some(4));
        let reread = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(pairs(&reread), pairs(&c));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_dir, c) = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert_eq!(
            c.end_offset_for(5, 40),
            (5, 40),
            "latest epoch: the log end"
        );
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(
            c.end_offset_for(4, 40),
            (3, 25),
            "an epoch in between: the one below"
        );
        assert_eq!(c.end_offset_for(2, 40), (1, 10));
        assert_eq!(
            c.end_offset_for(0, 40),
            (0, 0),
            "older than all: where the first starts"
        );
        assert_eq!(c.end_offset_for(6, 40), (-1, -1), "newer than all: unknown");
        assert_eq!(c.end_offset_for(-1, 40), (-1, -1));
        assert_eq!(c.epoch_for(0), Some(1));
        assert_eq!(c.epoch_for(24), Some(3));
        assert_eq!(c.epoch_for(25), Some(5));
    }

    #[test]
    fn truncation_from_both_ends() {
        let (dir, mut c) = cache(&[(1, 0), (3, 10), (5, 25)]);
        c.truncate_from_end(25).unwrap();
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        c.truncate_from_start(12).unwrap();
        assert_eq!(pairs(&c), vec![(3, 12)]);
        c.truncate_from_start(5).unwrap();
        assert_eq!(
            pairs(&c),
            vec![(3, 12)],
            "below the first start: nothing to do"
        );
        assert_eq!(
            pairs(&EpochCache::load(dir.path()).unwrap().unwrap()),
            vec![(3, 12)]
        );
        c.clear().unwrap();
        assert!(
            EpochCache::load(dir.path())
                .unwrap()
                .unwrap()
                .entries()
                .is_empty()
        );
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 0\n",
            "0\n2\n3 10\n1 20\n",
            "0\n1\nx y\n",
            "0\n1\n-2 4\n",
        ] {
            fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), bad).unwrap();
            assert!(EpochCache::load(dir.path()).unwrap().is_none(), "{bad:?}");
        }
        fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), "0\n2\n1 0\n4 7\n").unwrap();
        let c = EpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(pairs(&c), vec![(1, 0), (4, 7)]);
    }
}
