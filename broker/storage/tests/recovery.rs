//! Crash recovery: torn tails, garbage, corrupt CRCs, missing, zeroed or insane indexes, the fast
//! open of closed segments from their indexes, and a real `kill -9` of a writer process.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use kafka_protocol::records::RecordSet;
use sluice_storage::{Log, LogConfig, RecoveryStats};

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
    let stats = log.recovery_stats();
    assert_eq!(stats.closed_segments_scanned, 2, "{stats:?}");
    // Clean shutdown, but the active segment's index is gone: full recovery.
    assert!(stats.clean_shutdown && stats.active_segment_recovered);
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

    // Closed segments were opened from their indexes; the producer state came from the snapshot
    // of a roll plus a replay of what followed it.
    let stats = log.recovery_stats().clone();
    assert!(
        !stats.clean_shutdown && stats.active_segment_recovered,
        "{stats:?}"
    );
    assert_eq!(stats.closed_segments_scanned, 0, "{stats:?}");
    assert_eq!(
        stats.closed_segments_trusted,
        log.segment_base_offsets().len() - 1
    );
    assert!(stats.snapshot_offset.is_some(), "{stats:?}");
    // The writer's last batch in the log, retried, is recognised as a duplicate.
    let mut log = log;
    let last = last_batch(&log);
    let (base, count, sequence) = (
        last.records[0].offset,
        last.records.len(),
        last.records[0].sequence,
    );
    let retry = BatchSpec::new(count, 0)
        .producer(4242, 0, sequence)
        .encode();
    let info = log.append(&retry, 0, 0).unwrap();
    assert!(info.duplicate);
    assert_eq!(info.base_offset, base);
    let next = BatchSpec::new(1, 0)
        .producer(4242, 0, sequence + count as i32)
        .encode();
    let leo = log.log_end_offset();
    assert_eq!(log.append(&next, 0, 0).unwrap().base_offset, leo);
}

/// The last record batch of the log, decoded.
fn last_batch(log: &Log) -> RecordSet {
    let info = log
        .read(log.log_end_offset() - 1, 1 << 20, i64::MAX, true)
        .unwrap();
    decode_complete(&slice_bytes(&info.slice.unwrap()))
        .pop()
        .unwrap()
}

/// A log of 10 segments of 10 batches with timestamps that go back and forth.
fn many_segments(dir: &Path) -> (Log, LogConfig) {
    let size = BatchSpec::timestamps(&[0, 0, 0]).encode().len() as u64;
    let config = small_segments(size * 10);
    let mut log = Log::open(dir, config.clone()).unwrap();
    for i in 0..100i64 {
        let t = 1_000 + (i * 37) % 100;
        append(
            &mut log,
            BatchSpec::timestamps(&[t, t + 2, t - 3]).encode(),
            0,
        );
    }
    assert_eq!(log.segment_base_offsets().len(), 10);
    (log, config)
}

/// Everything a reader can ask a log, to compare a fast open with what the log said before.
fn observe(log: &Log) -> Vec<String> {
    let mut seen = vec![format!(
        "start {} end {} size {} segments {:?} max {:?}",
        log.log_start_offset(),
        log.log_end_offset(),
        log.size_bytes(),
        log.segment_base_offsets(),
        log.max_timestamp()
    )];
    for offset in 0..log.log_end_offset() {
        for (max_bytes, min_one) in [(1, true), (300, false), (1 << 20, false)] {
            let slice = log
                .read(offset, max_bytes, i64::MAX, min_one)
                .unwrap()
                .slice;
            seen.push(format!(
                "read {offset} {max_bytes}: {:?}",
                slice.map(|s| (s.position, s.len, slice_bytes(&s)))
            ));
        }
    }
    for timestamp in (900..1_120).step_by(3) {
        seen.push(format!(
            "ts {timestamp}: {:?}",
            log.offset_for_timestamp(timestamp).unwrap()
        ));
    }
    seen
}

fn index_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [".index", ".timeindex"]
        .iter()
        .flat_map(|s| files_with_suffix(dir, s))
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn clean_reopen_reads_no_closed_segment_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config) = many_segments(dir.path());
    let before = observe(&log);
    log.close().unwrap();

    let log = Log::open(dir.path(), config.clone()).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(
        stats,
        RecoveryStats {
            clean_shutdown: true,
            snapshot_offset: Some(300),
            closed_segments_trusted: 9,
            closed_segments_scanned: 0,
            closed_segment_batches_read: 0,
            // Only the batches after the last index entry, to find the log end.
            active_segment_batches_read: stats.active_segment_batches_read,
            active_segment_recovered: false,
        }
    );
    assert!(
        (1..=3).contains(&stats.active_segment_batches_read),
        "{stats:?}"
    );
    assert_eq!(observe(&log), before);
    log.close().unwrap();

    // Unclean: closed segments are still trusted, only the active one is recovered.
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(
        (
            stats.clean_shutdown,
            stats.active_segment_recovered,
            stats.closed_segments_trusted,
            stats.closed_segment_batches_read,
            stats.active_segment_batches_read
        ),
        (false, true, 9, 0, 10)
    );
    assert_eq!(observe(&log), before);
}

#[test]
fn appends_after_a_fast_open_write_the_indexes_a_rebuild_would() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, config) = many_segments(dir.path());
    // Leave the active segment half full, so the fast open resumes its index planning mid-way.
    for i in 0..5 {
        append(
            &mut log,
            BatchSpec::timestamps(&[2_000 + i, 1, 2]).encode(),
            0,
        );
    }
    log.close().unwrap();
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    assert!(!log.recovery_stats().active_segment_recovered);
    for i in 0..20 {
        append(
            &mut log,
            BatchSpec::timestamps(&[3_000 - i, 5, 3_100]).encode(),
            0,
        );
    }
    let expected = observe(&log);
    log.close().unwrap();
    let written = index_files(dir.path());

    // Rebuild every index from the log alone.
    for (name, _) in &written {
        fs::remove_file(dir.path().join(name)).unwrap();
    }
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(
        log.recovery_stats().closed_segments_scanned,
        log.segment_base_offsets().len() - 1
    );
    assert_eq!(observe(&log), expected);
    log.close().unwrap();
    assert_eq!(index_files(dir.path()), written);
}

#[test]
fn closed_segments_with_insane_indexes_are_scanned_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config) = many_segments(dir.path());
    let before = observe(&log);
    log.close().unwrap();
    let original = index_files(dir.path());
    let path = |base: i64, suffix: &str| dir.path().join(format!("{base:020}.{suffix}"));

    // Entries out of order (file length still a whole number of entries).
    let mut bytes = fs::read(path(30, "index")).unwrap();
    assert!(bytes.len() >= 16);
    bytes.swap(3, 11);
    fs::write(path(30, "index"), bytes).unwrap();
    // The last entry's offset reaches into the next segment.
    let mut bytes = fs::read(path(60, "index")).unwrap();
    let at = bytes.len() - 8;
    bytes[at..at + 4].copy_from_slice(&30u32.to_be_bytes());
    fs::write(path(60, "index"), bytes).unwrap();
    // A position past the end of the log file.
    let mut bytes = fs::read(path(90, "index")).unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(path(90, "index"), bytes).unwrap();
    // A time index whose timestamps do not increase.
    let mut bytes = fs::read(path(120, "timeindex")).unwrap();
    assert!(bytes.len() >= 24);
    let first_ts: [u8; 8] = bytes[..8].try_into().unwrap();
    bytes[12..20].copy_from_slice(&first_ts);
    fs::write(path(120, "timeindex"), bytes).unwrap();
    // A time index of an impossible length.
    fs::write(path(150, "timeindex"), [7u8; 13]).unwrap();

    let log = Log::open(dir.path(), config).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(
        (stats.closed_segments_scanned, stats.closed_segments_trusted),
        (5, 4),
        "{stats:?}"
    );
    assert_eq!(stats.closed_segment_batches_read, 50);
    assert_eq!(observe(&log), before);
    log.close().unwrap();
    assert_eq!(index_files(dir.path()), original);
}
