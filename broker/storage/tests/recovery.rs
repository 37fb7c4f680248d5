//! Crash recovery: torn tails, garbage, corrupt CRCs, missing or zeroed indexes, and a real
//! `kill -9` of a writer process.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use sluice_storage::{Log, LogConfig};

fn log_file(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0).len() as u64;
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for _ in 0..3 {
        append(&mut log, batch(2, 0), 0);
    }
    drop(log); // no clean shutdown
    let path = log_file(dir.path(), 0);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(2 * size + 10)
        .unwrap();

    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(file_len(&path), 2 * size);
    assert_eq!(read_offsets(&log, 0, 1 << 20), vec![0, 1, 2, 3]);
    let info = append(&mut log, batch(2, 0), 0);
    assert_eq!(info.base_offset, 4);
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_offsets(&log, 0, 1 << 20), (0..6).collect::<Vec<_>>());
}

#[test]
fn garbage_and_crc_corrupt_tails_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, batch(2, 0), 0);
    append(&mut log, batch(2, 0), 0);
    let good_len = log.size_bytes();
    drop(log);
    let path = log_file(dir.path(), 0);

    // Random-looking bytes after the last batch.
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0xab; 100])
        .unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(file_len(&path), good_len);
    drop(log);

    // A complete-looking batch whose contents do not match its CRC (only a CRC check sees it).
    let mut fake = batch(2, 0);
    fake[0..8].copy_from_slice(&4i64.to_be_bytes());
    let last = fake.len() - 1;
    fake[last] ^= 0x01;
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&fake)
        .unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(file_len(&path), good_len);
    assert_eq!(read_offsets(&log, 0, 1 << 20), vec![0, 1, 2, 3]);
}

#[test]
fn clean_close_trims_indexes_and_reopens_intact() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments(1 << 20);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..20 {
        append(&mut log, batch(3, i), 0);
    }
    let active_index = dir.path().join("00000000000000000000.index");
    assert_eq!(file_len(&active_index), config.max_index_size as u64);
    log.close().unwrap();
    let index_len = file_len(&active_index);
    assert!(
        index_len > 0 && index_len.is_multiple_of(8) && index_len < 1024,
        "{index_len}"
    );
    let time_len = file_len(&dir.path().join("00000000000000000000.timeindex"));
    assert!(time_len > 0 && time_len.is_multiple_of(12), "{time_len}");
    assert!(dir.path().join(".clean-shutdown").exists());

    let mut log = Log::open(dir.path(), config).unwrap();
    assert!(!dir.path().join(".clean-shutdown").exists());
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.max_timestamp(), Some((19, 57)));
    for offset in 0..60 {
        assert!(read_offsets(&log, offset, 1).contains(&offset));
    }
    assert_eq!(append(&mut log, batch(1, 0), 0).base_offset, 60);
}

#[test]
fn missing_zeroed_or_odd_sized_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(3, 0).len() as u64;
    let config = small_segments(size * 8);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..20 {
        append(&mut log, batch(3, 100 + i), 0);
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 24, 48]);
    log.close().unwrap();
    let original: Vec<(String, Vec<u8>)> = [".index", ".timeindex"]
        .iter()
        .flat_map(|s| files_with_suffix(dir.path(), s))
        .map(|n| {
            let bytes = fs::read(dir.path().join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    assert!(original.iter().all(|(_, b)| !b.is_empty()));

    fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    fs::remove_file(dir.path().join("00000000000000000000.timeindex")).unwrap();
    let zeroed = dir.path().join("00000000000000000024.index");
    fs::write(&zeroed, vec![0u8; file_len(&zeroed) as usize]).unwrap();
    fs::write(dir.path().join("00000000000000000024.timeindex"), [1u8; 13]).unwrap();
    fs::remove_file(dir.path().join("00000000000000000048.index")).unwrap();

    let log = Log::open(dir.path(), config).unwrap();
    for offset in 0..60 {
        assert!(read_offsets(&log, offset, 1).contains(&offset), "{offset}");
    }
    assert_eq!(log.offset_for_timestamp(110).unwrap(), Some((30, 110)));
    log.close().unwrap();
    for (name, bytes) in original {
        assert_eq!(fs::read(dir.path().join(&name)).unwrap(), bytes, "{name}");
    }
}

#[test]
fn preallocated_index_of_an_unclean_shutdown_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments(1 << 20);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..30 {
        append(&mut log, batch(2, i), 0);
    }
    drop(log); // the index stays preallocated with a zero-filled tail
    let index = dir.path().join("00000000000000000000.index");
    assert_eq!(file_len(&index), config.max_index_size as u64);
    // Also lose the tail of the written entries, as if their pages never reached disk.
    let mut bytes = fs::read(&index).unwrap();
    bytes[16..64].fill(0);
    fs::write(&index, bytes).unwrap();

    let log = Log::open(dir.path(), config).unwrap();
    for offset in 0..60 {
        assert!(read_offsets(&log, offset, 1).contains(&offset), "{offset}");
    }
    assert_eq!(log.offset_for_timestamp(17).unwrap(), Some((34, 17)));
}

#[test]
fn orphan_index_files_are_removed_and_foreign_files_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, batch(1, 0), 0);
    log.close().unwrap();
    fs::write(dir.path().join("00000000000000000500.index"), [0u8; 8]).unwrap();
    fs::write(dir.path().join("00000000000000000500.timeindex"), [0u8; 12]).unwrap();
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    fs::write(dir.path().join("log-start-offset-checkpoint.tmp"), "junk").unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert!(!dir.path().join("00000000000000000500.index").exists());
    assert!(!dir.path().join("00000000000000000500.timeindex").exists());
    assert!(!dir.path().join("log-start-offset-checkpoint.tmp").exists());
    assert!(dir.path().join("notes.txt").exists());
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn kill_9_during_appends_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    // The writer is a separate binary of this crate (src/bin/crash_writer.rs), so it can really be SIGKILLed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last_acked = -1;
    while last_acked < 300 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(offset) = line.strip_prefix("acked ") {
            last_acked = offset.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-append
    child.wait().unwrap();

    let log = Log::open(dir.path(), small_segments(4096)).unwrap();
    assert!(
        log.log_end_offset() > last_acked,
        "{} <= {last_acked}",
        log.log_end_offset()
    );
    assert!(log.segment_base_offsets().len() > 3);
    // Every offset is readable, in a batch that decodes (CRC checked), with no gaps.
    let mut next = 0;
    while next < log.log_end_offset() {
        let offsets = read_offsets(&log, next, 1 << 20);
        assert_eq!(offsets.first(), Some(&next));
        for pair in offsets.windows(2) {
            assert_eq!(pair[1], pair[0] + 1);
        }
        next = offsets.last().unwrap() + 1;
    }
    assert_eq!(next, log.log_end_offset());
}
