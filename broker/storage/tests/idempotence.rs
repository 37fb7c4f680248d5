//! Idempotent producer checks: duplicates, sequence gaps, epochs, and state rebuilt on open.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{Log, LogConfig, StorageError, TimestampType};

const PID: i64 = 1000;

fn produce(
    log: &mut Log,
    epoch: i16,
    seq: i32,
    count: usize,
) -> Result<sluice_storage::AppendInfo, StorageError> {
    let bytes = BatchSpec::new(count, 0).producer(PID, epoch, seq).encode();
    log.append(&bytes, 0, 1_000)
}

#[test]
fn a_retried_batch_returns_its_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, batch(2, 0), 0); // non-idempotent traffic is unaffected
    let first = produce(&mut log, 0, 0, 3).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (2, 4, false)
    );
    let second = produce(&mut log, 0, 3, 2).unwrap();
    assert_eq!((second.base_offset, second.last_offset), (5, 6));
    let size = log.size_bytes();

    let retry = produce(&mut log, 0, 0, 3).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (2, 4, true)
    );
    let retry = produce(&mut log, 0, 3, 2).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (5, 6, true)
    );
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(produce(&mut log, 0, 5, 1).unwrap().base_offset, 7);
}

#[test]
fn idle_producer_ids_expire_and_active_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 10_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let bytes = |pid: i64, ts: i64| BatchSpec::new(1, ts).producer(pid, 0, 0).encode();
    assert_eq!(
        log.append(&bytes(1, 1_000), 0, 1_000).unwrap().base_offset,
        0
    );
    assert_eq!(
        log.append(&bytes(2, 8_000), 0, 8_000).unwrap().base_offset,
        1
    );

    log.tick(10_999).unwrap();
    assert_eq!(
        log.producer_count(),
        2,
        "producer 1 is not idle for 10 s yet"
    );
    log.tick(11_000).unwrap();
    assert_eq!(log.producer_count(), 1);
    // Producer 1 is forgotten: its old batch is new again. Producer 2 is still deduplicated.
    let again = log.append(&bytes(1, 1_000), 0, 11_000).unwrap();
    assert_eq!((again.base_offset, again.duplicate), (2, false));
    let retry = log.append(&bytes(2, 8_000), 0, 11_000).unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (1, true));
}

#[test]
fn sequence_gaps_and_unknown_producers_are_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert!(matches!(
        produce(&mut log, 0, 5, 1),
        Err(StorageError::OutOfOrderSequence {
            producer_id: PID,
            expected: 0,
            found: 5
        })
    ));
    produce(&mut log, 0, 0, 2).unwrap();
    assert!(matches!(
        produce(&mut log, 0, 3, 1),
        Err(StorageError::OutOfOrderSequence {
            expected: 2,
            found: 3,
            ..
        })
    ));
    // Overlapping but not identical to an earlier batch.
    assert!(matches!(
        produce(&mut log, 0, 1, 2),
        Err(StorageError::OutOfOrderSequence { expected: 2, .. })
    ));
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn epochs_fence_old_producers_and_new_epochs_restart_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    produce(&mut log, 3, 0, 2).unwrap();
    assert!(matches!(
        produce(&mut log, 2, 2, 1),
        Err(StorageError::InvalidProducerEpoch {
            current: 3,
            found: 2,
            ..
        })
    ));
    assert!(matches!(
        produce(&mut log, 4, 2, 1),
        Err(StorageError::OutOfOrderSequence {
            expected: 0,
            found: 2,
            ..
        })
    ));
    assert_eq!(produce(&mut log, 4, 0, 1).unwrap().base_offset, 2);
    assert!(matches!(
        produce(&mut log, 3, 2, 1),
        Err(StorageError::InvalidProducerEpoch { current: 4, .. })
    ));
    assert_eq!(produce(&mut log, 4, 1, 1).unwrap().base_offset, 3);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for seq in 0..6 {
        produce(&mut log, 0, seq, 1).unwrap();
    }
    assert!(produce(&mut log, 0, 1, 1).unwrap().duplicate);
    assert!(matches!(
        produce(&mut log, 0, 0, 1),
        Err(StorageError::OutOfOrderSequence { expected: 6, .. })
    ));
}

#[test]
fn a_bad_batch_rejects_the_whole_request_and_leaves_state_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut request = BatchSpec::new(2, 0).producer(PID, 0, 0).encode();
    request.extend(BatchSpec::new(2, 0).producer(PID, 0, 5).encode());
    assert!(matches!(
        log.append(&request, 0, 0),
        Err(StorageError::OutOfOrderSequence {
            expected: 2,
            found: 5,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 0);
    // Sequence 0 was not consumed by the failed request.
    let mut request = BatchSpec::new(2, 0).producer(PID, 0, 0).encode();
    request.extend(BatchSpec::new(2, 0).producer(PID, 0, 2).encode());
    let info = log.append(&request, 0, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 3));
}

#[test]
fn producer_state_is_rebuilt_from_the_log_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let size = BatchSpec::new(2, 0).producer(PID, 0, 0).encode().len() as u64;
    let config = small_segments(size * 2);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for seq in (0..10).step_by(2) {
        produce(&mut log, 1, seq, 2).unwrap();
    }
    let other = BatchSpec::new(1, 0).producer(7, 0, 0).encode();
    log.append(&other, 0, 0).unwrap();
    assert!(log.segment_base_offsets().len() > 2);
    drop(log); // unclean

    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.producer_count(), 2);
    let retry = produce(&mut log, 1, 8, 2).unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (8, true));
    assert!(matches!(
        produce(&mut log, 1, 11, 1),
        Err(StorageError::OutOfOrderSequence { expected: 10, .. })
    ));
    assert!(matches!(
        produce(&mut log, 0, 10, 1),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(produce(&mut log, 1, 10, 1).unwrap().base_offset, 11);
    log.close().unwrap();

    let mut log = Log::open(dir.path(), config).unwrap();
    assert!(produce(&mut log, 1, 10, 1).unwrap().duplicate);
    // Truncation forgets the truncated batches' sequences.
    log.truncate_to(11).unwrap();
    assert_eq!(produce(&mut log, 1, 10, 1).unwrap().base_offset, 11);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A new producer must start at 0, so write the high-sequence batch straight into the file,
    // as if it had been appended long ago, and let recovery load it.
    drop(Log::open(dir.path(), LogConfig::default()).unwrap());
    let high = BatchSpec::new(2, 0).producer(PID, 0, i32::MAX - 1).encode();
    std::fs::write(
        Path::new(dir.path()).join("00000000000000000000.log"),
        &high,
    )
    .unwrap();

    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert!(produce(&mut log, 0, i32::MAX - 1, 2).unwrap().duplicate);
    assert!(matches!(
        produce(&mut log, 0, 1, 1),
        Err(StorageError::OutOfOrderSequence { expected: 0, .. })
    ));
    assert_eq!(produce(&mut log, 0, 0, 1).unwrap().base_offset, 2);
}

#[test]
fn duplicates_report_the_original_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let bytes = BatchSpec::new(1, 0).producer(PID, 0, 0).encode();
    let first = log.append(&bytes.clone(), 0, 5_000).unwrap();
    assert_eq!(first.log_append_time, 5_000);
    let retry = log.append(&bytes, 0, 9_000).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.log_append_time, 5_000);
}

/// Several segments of idempotent batches: producer `PID` writes 2-record batches throughout,
/// producer 7 only in the first segment. Returns the log and the next sequence of `PID`.
fn idempotent_segments(dir: &Path) -> (Log, LogConfig, i32) {
    let size = BatchSpec::new(2, 0).producer(PID, 1, 0).encode().len() as u64;
    let config = small_segments(size * 4);
    let mut log = Log::open(dir, config.clone()).unwrap();
    log.append(&BatchSpec::new(1, 0).producer(7, 0, 0).encode(), 0, 0)
        .unwrap();
    let mut seq = 0;
    for _ in 0..20 {
        produce(&mut log, 1, seq, 2).unwrap();
        seq += 2;
    }
    assert!(log.segment_base_offsets().len() >= 5);
    (log, config, seq)
}

/// Checks the state rebuilt on open: retries of `PID`'s last batch (`last` = its base sequence
/// and record count) and of producer 7's only batch are duplicates, a gap is out of order, an
/// old epoch is fenced, and the next sequence appends one record at the log end.
fn assert_producer_state(log: &mut Log, last: (i32, usize)) {
    let leo = log.log_end_offset();
    let next_seq = last.0 + last.1 as i32;
    let retry = produce(log, 1, last.0, last.1).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.last_offset, leo - 1);
    let retry = log
        .append(&BatchSpec::new(1, 0).producer(7, 0, 0).encode(), 0, 0)
        .unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (0, true));
    assert!(matches!(
        produce(log, 1, next_seq + 1, 1),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        produce(log, 0, 0, 1),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(produce(log, 1, next_seq, 1).unwrap().base_offset, leo);
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    files_with_suffix(dir, ".snapshot")
        .iter()
        .map(|n| n.trim_end_matches(".snapshot").parse().unwrap())
        .collect()
}

#[test]
fn a_clean_restart_takes_producer_state_from_the_snapshot_without_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config, seq) = idempotent_segments(dir.path());
    let leo = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    log.close().unwrap();
    // The newest two: the last roll's and the clean shutdown's.
    assert_eq!(snapshot_offsets(dir.path()), vec![active_base, leo]);

    let mut log = Log::open(dir.path(), config).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(stats.snapshot_offset, Some(leo));
    assert_eq!(stats.closed_segment_batches_read, 0, "{stats:?}");
    assert!(!stats.active_segment_recovered);
    assert_eq!(log.producer_count(), 2);
    assert_producer_state(&mut log, (seq - 2, 2));
}

#[test]
fn an_unclean_restart_replays_only_the_batches_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config, seq) = idempotent_segments(dir.path());
    let active_base = *log.segment_base_offsets().last().unwrap();
    let active_batches = (log.log_end_offset() - active_base) as u64 / 2;
    assert!(active_batches > 0);
    drop(log); // as after kill -9: no snapshot at the log end, no clean-shutdown marker

    let mut log = Log::open(dir.path(), config).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(stats.snapshot_offset, Some(active_base));
    assert_eq!(stats.closed_segment_batches_read, 0, "{stats:?}");
    assert!(stats.active_segment_recovered);
    assert_eq!(stats.active_segment_batches_read, active_batches);
    assert_producer_state(&mut log, (seq - 2, 2));
}

#[test]
fn corrupt_snapshots_fall_back_to_an_older_one_then_to_the_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config, seq) = idempotent_segments(dir.path());
    let leo = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    log.close().unwrap();
    let flip_byte = |offset: i64| {
        let path = dir.path().join(format!("{offset:020}.snapshot"));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
    };

    flip_byte(leo);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(stats.snapshot_offset, Some(active_base));
    assert_eq!(stats.closed_segment_batches_read, 0, "{stats:?}");
    assert!(stats.active_segment_batches_read > 1, "{stats:?}");
    assert_eq!(snapshot_offsets(dir.path()), vec![active_base]);
    assert_producer_state(&mut log, (seq - 2, 2));
    log.close().unwrap();

    // Every snapshot unreadable (one torn to nothing): the whole log is replayed.
    let snapshots = snapshot_offsets(dir.path());
    flip_byte(snapshots[0]);
    std::fs::write(
        dir.path().join(format!("{:020}.snapshot", snapshots[1])),
        [0u8; 3],
    )
    .unwrap();
    let mut log = Log::open(dir.path(), config).unwrap();
    let stats = log.recovery_stats().clone();
    assert_eq!(stats.snapshot_offset, None);
    assert_eq!(stats.closed_segments_scanned, 0);
    // All batches but the two of the active segment (the last 2-record one and the 1-record
    // one `assert_producer_state` added).
    assert_eq!(stats.closed_segment_batches_read, 20, "{stats:?}");
    assert_producer_state(&mut log, (seq, 1));
}

#[test]
fn truncation_deletes_later_snapshots_and_state_follows_the_truncated_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config, _) = idempotent_segments(dir.path());
    log.close().unwrap();
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    // Offset 1 + 2k starts PID's batch of sequence 2k; cut inside the batch of sequence 12.
    let bases = log.segment_base_offsets();
    log.truncate_to(1 + 12 + 1).unwrap();
    assert_eq!(log.log_end_offset(), 13);
    assert!(snapshot_offsets(dir.path()).iter().all(|&o| o <= 13));
    assert!(log.segment_base_offsets().len() < bases.len());
    // Sequence 12 is gone: it is new again, not a duplicate, and 10 still is one.
    assert!(produce(&mut log, 1, 10, 2).unwrap().duplicate);
    assert_eq!(produce(&mut log, 1, 12, 2).unwrap().base_offset, 13);
    drop(log); // unclean

    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    assert!(log.recovery_stats().snapshot_offset.is_none_or(|o| o <= 15));
    assert_producer_state(&mut log, (12, 2));
    log.close().unwrap();
    let mut log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.recovery_stats().closed_segment_batches_read, 0);
    assert_eq!(log.recovery_stats().snapshot_offset, Some(16));
    assert_producer_state(&mut log, (14, 1));
}

#[test]
fn retention_deletes_snapshots_below_the_log_start_and_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, config, seq) = idempotent_segments(dir.path());
    let active_base = *log.segment_base_offsets().last().unwrap();
    // Two roll snapshots exist; retention then keeps only the active segment.
    let before_roll = snapshot_offsets(dir.path());
    assert_eq!(before_roll.len(), 2);
    assert!(before_roll[0] < active_base);
    log.update_config(LogConfig {
        retention_bytes: Some(0),
        ..config.clone()
    });
    assert!(log.enforce_retention(0).unwrap() >= 4);
    assert_eq!(log.segment_base_offsets(), vec![active_base]);
    assert_eq!(snapshot_offsets(dir.path()), vec![active_base]);
    drop(log); // unclean: the snapshot at the active base is what the open starts from

    let mut log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.recovery_stats().snapshot_offset, Some(active_base));
    assert_eq!(log.log_start_offset(), active_base);
    assert_producer_state(&mut log, (seq - 2, 2));
}

#[test]
fn a_snapshot_past_the_surviving_log_end_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (log, config, seq) = idempotent_segments(dir.path());
    let leo = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert_eq!(leo - active_base, 2, "one batch in the active segment");
    log.close().unwrap();
    // Lose the active segment's only batch (its last byte), as if the disk had failed.
    let path = dir.path().join(format!("{active_base:020}.log"));
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(file.metadata().unwrap().len() - 1).unwrap();

    let mut log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), active_base);
    assert_eq!(log.recovery_stats().snapshot_offset, Some(active_base));
    assert_eq!(snapshot_offsets(dir.path()), vec![active_base]);
    // The lost batch is not a duplicate: it is written again where it was.
    let info = produce(&mut log, 1, seq - 2, 2).unwrap();
    assert_eq!((info.base_offset, info.duplicate), (active_base, false));
    assert_producer_state(&mut log, (seq - 2, 2));
}
