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
