//! The sparse `.index` and `.timeindex` files, memory-mapped like Kafka's. All `unsafe` of the
//! crate lives here.
//!
//! Entries are fixed-size big-endian records in offset order. The active segment's files are
//! preallocated to `max_index_size` (so appends are plain memory writes) and trimmed to their real
//! length when the segment stops being active.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// One memory-mapped index file of `N`-byte entries.
struct MappedFile<const N: usize> {
    path: PathBuf,
    file: File,
    mmap: MmapMut,
    entries: usize,
    capacity: usize,
}

impl<const N: usize> MappedFile<N> {
    fn map(file: &File) -> io::Result<MmapMut> {
        // SAFETY: the mapping is backed by a file that only this process modifies (the partition
        // directory belongs to one broker). We never shrink the file while the mapping is alive:
        // `resize` drops the old mapping before `set_len` and maps again afterwards, so no access
        // can hit a page past the end of the file (which would raise SIGBUS).
        unsafe { MmapMut::map_mut(file) }
    }

    /// Creates (or empties) the file and sizes it for `capacity` entries.
    fn create(path: &Path, capacity: usize) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len((capacity * N) as u64)?;
        let mmap = Self::map(&file)?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            mmap,
            entries: 0,
            capacity,
        })
    }

    /// Opens an existing file trusting its length as the entry count (a trimmed file). Returns
    /// `None` when it is missing or not a whole number of entries.
    fn open_trimmed(path: &Path) -> io::Result<Option<Self>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len % N as u64 != 0 {
            return Ok(None);
        }
        let entries = (len / N as u64) as usize;
        let mmap = Self::map(&file)?;
        Ok(Some(MappedFile {
            path: path.to_path_buf(),
            file,
            mmap,
            entries,
            capacity: entries,
        }))
    }

    fn entry(&self, i: usize) -> &[u8] {
        &self.mmap[i * N..(i + 1) * N]
    }

    fn append(&mut self, bytes: [u8; N]) -> bool {
        if self.entries >= self.capacity {
            return false;
        }
        self.mmap[self.entries * N..(self.entries + 1) * N].copy_from_slice(&bytes);
        self.entries += 1;
        true
    }

    /// Index of the last entry whose key is <= target, by binary search over the mapping.
    fn floor(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        // Invariant: entries [0, lo) have key <= target, entries [hi, len) have key > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Changes the file to hold exactly `capacity` entries and remaps it.
    fn resize(&mut self, capacity: usize) -> io::Result<()> {
        // Replace the mapping with an anonymous one first so the old file mapping is unmapped
        // before the file shrinks.
        self.mmap = MmapMut::map_anon(0)?;
        self.file.set_len((capacity * N) as u64)?;
        self.mmap = Self::map(&self.file)?;
        self.capacity = capacity;
        self.entries = self.entries.min(capacity);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.mmap.flush()?;
        self.file.sync_all()
    }

    /// Makes room for at least `capacity` entries (never drops any).
    fn grow_to(&mut self, capacity: usize) -> io::Result<()> {
        if capacity > self.capacity {
            self.resize(capacity)?;
        }
        Ok(())
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// `.index`: (offset relative to the segment base as u32, file position as u32). As in Kafka the
/// offset is the LAST offset of the batch that starts at the position.
pub(crate) struct OffsetIndex {
    base_offset: i64,
    file: MappedFile<8>,
}

impl OffsetIndex {
    pub const ENTRY_SIZE: usize = 8;

    /// Creates an empty index able to hold `max_size` bytes of entries.
    pub fn create(path: &Path, base_offset: i64, max_size: u32) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            base_offset,
            file: MappedFile::create(path, max_size as usize / Self::ENTRY_SIZE)?,
        })
    }

    /// Opens a trimmed index of a closed segment, `None` if missing or of an impossible size.
    pub fn open_trimmed(path: &Path, base_offset: i64) -> io::Result<Option<OffsetIndex>> {
        Ok(MappedFile::open_trimmed(path)?.map(|file| OffsetIndex { base_offset, file }))
    }

    /// Writes a fresh index with exactly these entries and room for `capacity` in total.
    pub fn rebuild(
        path: &Path,
        base_offset: i64,
        entries: &[(i64, u32)],
        capacity: usize,
    ) -> io::Result<OffsetIndex> {
        let mut index = OffsetIndex {
            base_offset,
            file: MappedFile::create(path, capacity.max(entries.len()))?,
        };
        for &(offset, position) in entries {
            index.append(offset, position);
        }
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    pub fn entries(&self) -> Vec<(i64, u32)> {
        (0..self.file.entries).map(|i| self.get(i)).collect()
    }

    fn get(&self, i: usize) -> (i64, u32) {
        let e = self.file.entry(i);
        (self.base_offset + be_u32(e, 0) as i64, be_u32(e, 4))
    }

    pub fn is_full(&self) -> bool {
        self.file.entries >= self.file.capacity
    }

    /// Appends an entry; callers check `is_full` first (a full index rolls the segment), so a
    /// full index just drops the entry, which only makes lookups scan a little further.
    pub fn append(&mut self, offset: i64, position: u32) {
        let relative = (offset - self.base_offset) as u32;
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&relative.to_be_bytes());
        bytes[4..].copy_from_slice(&position.to_be_bytes());
        self.file.append(bytes);
    }

    /// The last entry with offset <= target, or (base offset, 0) when there is none: scanning
    /// from the returned position reaches the batch containing `target`.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let relative_target = target - self.base_offset;
        match self.file.floor(relative_target, |e| be_u32(e, 0) as i64) {
            Some(i) => self.get(i),
            None => (self.base_offset, 0),
        }
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.file.resize(self.file.entries)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.flush()
    }

    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.file.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// Reopens a trimmed index for appends, preallocated to `max_size` bytes again.
    pub fn grow_to(&mut self, max_size: u32) -> io::Result<()> {
        self.file.grow_to(max_size as usize / Self::ENTRY_SIZE)
    }

    /// Kafka's sanity check before trusting an index without reading the log, made a little
    /// stricter: offsets and positions strictly increase, every position lies inside the log
    /// file, and every offset is below `offset_limit` (the next segment's base offset).
    pub fn sanity_check(&self, offset_limit: Option<i64>, log_size: u64) -> Result<(), String> {
        let mut previous: Option<(i64, u32)> = None;
        for i in 0..self.file.entries {
            let (offset, position) = self.get(i);
            if let Some((prev_offset, prev_position)) = previous
                && (offset <= prev_offset || position <= prev_position)
            {
                return Err(format!(
                    "entry {i} ({offset}, {position}) does not follow ({prev_offset}, {prev_position})"
                ));
            }
            if position as u64 >= log_size {
                return Err(format!(
                    "entry {i} points at {position}, past the log end {log_size}"
                ));
            }
            if offset_limit.is_some_and(|limit| offset >= limit) {
                return Err(format!("entry {i} has offset {offset}, past the segment"));
            }
            previous = Some((offset, position));
        }
        Ok(())
    }
}

/// `.timeindex`: (timestamp i64, relative offset u32). Timestamps strictly increase; each entry is
/// the largest timestamp seen so far in the segment and the (last) offset of its batch.
pub(crate) struct TimeIndex {
    base_offset: i64,
    file: MappedFile<12>,
}

impl TimeIndex {
    pub const ENTRY_SIZE: usize = 12;

    pub fn open_trimmed(path: &Path, base_offset: i64) -> io::Result<Option<TimeIndex>> {
        Ok(MappedFile::open_trimmed(path)?.map(|file| TimeIndex { base_offset, file }))
    }

    pub fn rebuild(
        path: &Path,
        base_offset: i64,
        entries: &[(i64, i64)],
        capacity: usize,
    ) -> io::Result<TimeIndex> {
        let mut index = TimeIndex {
            base_offset,
            file: MappedFile::create(path, capacity.max(entries.len()))?,
        };
        for &(timestamp, offset) in entries {
            index.append(timestamp, offset);
        }
        Ok(index)
    }

    pub fn create(path: &Path, base_offset: i64, max_size: u32) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            file: MappedFile::create(path, max_size as usize / Self::ENTRY_SIZE)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    pub fn entries(&self) -> Vec<(i64, i64)> {
        (0..self.file.entries).map(|i| self.get(i)).collect()
    }

    fn get(&self, i: usize) -> (i64, i64) {
        let e = self.file.entry(i);
        (be_i64(e, 0), self.base_offset + be_u32(e, 8) as i64)
    }

    pub fn is_full(&self) -> bool {
        self.file.entries >= self.file.capacity
    }

    pub fn append(&mut self, timestamp: i64, offset: i64) {
        let relative = (offset - self.base_offset) as u32;
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&timestamp.to_be_bytes());
        bytes[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.append(bytes);
    }

    /// The last entry with timestamp <= target, or (-1, base offset) when there is none.
    pub fn lookup(&self, target: i64) -> (i64, i64) {
        match self.file.floor(target, |e| be_i64(e, 0)) {
            Some(i) => self.get(i),
            None => (-1, self.base_offset),
        }
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.file.resize(self.file.entries)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.file.flush()
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.file.entries.checked_sub(1).map(|i| self.get(i))
    }

    /// Appends the entry a segment records when it stops being active, growing a full index by
    /// one entry: a closed segment's last time entry must be its max timestamp, because reopening
    /// takes the max timestamp from there instead of scanning the log.
    pub fn append_final(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if self.is_full() {
            self.file.grow_to(self.file.entries + 1)?;
        }
        self.append(timestamp, offset);
        Ok(())
    }

    /// Reopens a trimmed index for appends, preallocated to `max_size` bytes again.
    pub fn grow_to(&mut self, max_size: u32) -> io::Result<()> {
        self.file.grow_to(max_size as usize / Self::ENTRY_SIZE)
    }

    /// Like [`OffsetIndex::sanity_check`]: timestamps strictly increase (each entry is a new max
    /// timestamp), offsets do not decrease and stay below `offset_limit`.
    pub fn sanity_check(&self, offset_limit: Option<i64>) -> Result<(), String> {
        let mut previous: Option<(i64, i64)> = None;
        for i in 0..self.file.entries {
            let (timestamp, offset) = self.get(i);
            if let Some((prev_timestamp, prev_offset)) = previous
                && (timestamp <= prev_timestamp || offset < prev_offset)
            {
                return Err(format!(
                    "entry {i} ({timestamp}, {offset}) does not follow ({prev_timestamp}, {prev_offset})"
                ));
            }
            if offset_limit.is_some_and(|limit| offset >= limit) {
                return Err(format!("entry {i} has offset {offset}, past the segment"));
            }
            previous = Some((timestamp, offset));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_floor_lookup_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut index = OffsetIndex::create(&path, 100, 8 * 4).unwrap();
        assert_eq!(index.lookup(150), (100, 0));
        index.append(110, 4096);
        index.append(120, 8192);
        index.append(130, 12288);
        assert!(!index.is_full());
        assert_eq!(index.lookup(105), (100, 0));
        assert_eq!(index.lookup(110), (110, 4096));
        assert_eq!(index.lookup(119), (110, 4096));
        assert_eq!(index.lookup(1000), (130, 12288));
        index.append(140, 16384);
        assert!(index.is_full());
        index.append(150, 20480);
        assert_eq!(index.entries().len(), 4);

        index.trim().unwrap();
        drop(index);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let reopened = OffsetIndex::open_trimmed(&path, 100).unwrap().unwrap();
        assert_eq!(reopened.lookup(135), (130, 12288));
        assert_eq!(
            reopened.entries(),
            vec![(110, 4096), (120, 8192), (130, 12288), (140, 16384)]
        );
    }

    #[test]
    fn time_index_floor_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut index = TimeIndex::create(&path, 0, 1200).unwrap();
        assert_eq!(index.lookup(5), (-1, 0));
        index.append(1000, 3);
        index.append(2000, 9);
        assert_eq!(index.lookup(999), (-1, 0));
        assert_eq!(index.lookup(1500), (1000, 3));
        assert_eq!(index.lookup(2000), (2000, 9));
        index.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
    }

    #[test]
    fn odd_sized_or_missing_files_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        assert!(OffsetIndex::open_trimmed(&path, 0).unwrap().is_none());
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(OffsetIndex::open_trimmed(&path, 0).unwrap().is_none());
    }

    #[test]
    fn sanity_checks_reject_disorder_and_out_of_range_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let good = OffsetIndex::rebuild(&path, 100, &[(110, 4096), (120, 8192)], 0).unwrap();
        assert_eq!(good.sanity_check(Some(130), 10_000), Ok(()));
        assert_eq!(good.sanity_check(None, 10_000), Ok(()));
        assert!(good.sanity_check(Some(120), 10_000).is_err());
        assert!(good.sanity_check(Some(130), 8192).is_err());
        let zeroed = OffsetIndex::rebuild(&path, 100, &[(100, 0), (100, 0)], 0).unwrap();
        assert!(zeroed.sanity_check(None, 10_000).is_err());

        let path = dir.path().join("00000000000000000100.timeindex");
        let good = TimeIndex::rebuild(&path, 100, &[(5, 101), (9, 101), (12, 140)], 0).unwrap();
        assert_eq!(good.sanity_check(Some(141)), Ok(()));
        assert!(good.sanity_check(Some(140)).is_err());
        let bad = TimeIndex::rebuild(&path, 100, &[(9, 101), (9, 102)], 0).unwrap();
        assert!(bad.sanity_check(None).is_err());
    }

    #[test]
    fn final_time_entry_fits_even_in_a_full_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.timeindex");
        let mut index = TimeIndex::create(&path, 0, 24).unwrap();
        index.append(1, 1);
        index.append(2, 2);
        assert!(index.is_full());
        index.append_final(3, 3).unwrap();
        assert_eq!(index.last_entry(), Some((3, 3)));
        index.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 36);
    }
}
