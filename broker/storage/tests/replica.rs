//! What a replica needs from its log, on real files: appending what a leader stamped (follower appends), the
//! leader epoch cache and its checkpoint, truncation to a diverging epoch, and the high watermark checkpoint.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use common::*;
use sluice_storage::{Log, LogConfig, LogManager, StorageError, TopicPartition};

/// Everything `log` holds from `from`, as the bytes a leader would send a follower.
fn fetched(log: &Log, from: i64) -> Vec<u8> {
    log.read(from, u32::MAX, i64::MAX, true)
        .unwrap()
        .slice
        .map(|s| slice_bytes(&s))
        .unwrap_or_default()
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = Log::open(ld.path(), LogConfig::default()).unwrap();
    let mut follower = Log::open(fd.path(), LogConfig::default()).unwrap();
    leader.append(&batch(3, 10), 4, 0).unwrap();
    leader.append(&batch(2, 11), 5, 0).unwrap();
    let bytes = fetched(&leader, 0);
    let info = follower.append_as_follower(&bytes, 0).unwrap().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    assert_eq!(follower.log_end_offset(), 5);
    assert_eq!(
        fetched(&follower, 0),
        bytes,
        "offsets, epochs and CRCs kept"
    );
    assert_eq!(follower.latest_epoch(), Some(5));
    assert_eq!(follower.end_offset_for_epoch(4), (4, 3));
    // Nothing is appended twice: a batch below the log end is refused.
    let again = follower.append_as_follower(&bytes, 0).unwrap_err();
    assert!(matches!(again, StorageError::CorruptRecord(_)), "{again}");
    assert_eq!(follower.log_end_offset(), 5);
}

#[test]
fn an_incomplete_last_batch_is_left_out_and_a_bad_crc_refused() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = Log::open(ld.path(), LogConfig::default()).unwrap();
    let mut follower = Log::open(fd.path(), LogConfig::default()).unwrap();
    leader.append(&batch(3, 10), 1, 0).unwrap();
    leader.append(&batch(3, 10), 1, 0).unwrap();
    let bytes = fetched(&leader, 0);
    let cut = &bytes[..bytes.len() - 5];
    let info = follower.append_as_follower(cut, 0).unwrap().unwrap();
    assert_eq!(info.last_offset, 2);
    assert_eq!(follower.log_end_offset(), 3);
    assert!(
        follower
            .append_as_follower(&cut[..10], 0)
            .unwrap()
            .is_none()
    );
    let mut spoiled = fetched(&leader, 3);
    let last = spoiled.len() - 1;
    spoiled[last] ^= 0xff;
    assert!(follower.append_as_follower(&spoiled, 0).is_err());
    assert_eq!(
        follower.log_end_offset(),
        3,
        "a corrupt batch writes nothing"
    );
}

#[test]
fn idempotent_producer_state_follows_replicated_batches() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = Log::open(ld.path(), LogConfig::default()).unwrap();
    let mut follower = Log::open(fd.path(), LogConfig::default()).unwrap();
    let first = BatchSpec::new(2, 10).producer(77, 0, 0).encode();
    leader.append_from_client(&first, 1, 10).unwrap();
    follower
        .append_as_follower(&fetched(&leader, 0), 10)
        .unwrap();
    // The follower now leads: the producer's retry of its last batch is a duplicate, not a second copy.
    follower.start_epoch(2).unwrap();
    let retry = follower.append_from_client(&first, 2, 20).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (0, 1));
    let next = BatchSpec::new(1, 10).producer(77, 0, 2).encode();
    let info = follower.append_from_client(&next, 2, 20).unwrap();
    assert_eq!(info.base_offset, 2);
    assert_eq!(follower.end_offset_for_epoch(1), (1, 2));
}

#[test]
fn the_epoch_cache_survives_reopen_and_is_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&batch(2, 0), 0, 0).unwrap();
        log.append(&batch(2, 0), 3, 0).unwrap();
        log.start_epoch(6).unwrap();
        // A new leader's epoch answers followers at once...
        assert_eq!(log.end_offset_for_epoch(3), (3, 4));
        log.append(&batch(2, 0), 6, 0).unwrap();
        // ...and is on disk by the time its first batch is: a crash now must not lose it.
        let on_disk = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
        assert!(on_disk.ends_with("6 4\n"), "{on_disk:?}");
        log.close().unwrap();
    }
    let want = vec![(0, 0), (3, 2), (6, 4)];
    let entries = |log: &Log| -> Vec<(i32, i64)> {
        log.epoch_entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    };
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(entries(&log), want);
    drop(log);
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(entries(&log), want, "rebuilt from the batches");
    assert!(dir.path().join("leader-epoch-checkpoint").exists());
}

#[test]
fn a_former_leader_truncates_where_the_new_leaders_epoch_diverged() {
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Log::open(old.path(), LogConfig::default()).unwrap();
    let mut b = Log::open(new.path(), LogConfig::default()).unwrap();
    // Both hold epoch 1's first three records; A, leading epoch 1, took two more that never reached B.
    a.append(&batch(3, 0), 1, 0).unwrap();
    b.append_as_follower(&fetched(&a, 0), 0).unwrap();
    a.append(&batch(2, 0), 1, 0).unwrap();
    // B leads epoch 2 and appends.
    b.start_epoch(2).unwrap();
    b.append(&batch(4, 0), 2, 0).unwrap();
    // A asks where its last epoch ended on B, truncates there and copies the rest.
    let (epoch, end) = b.end_offset_for_epoch(a.latest_epoch().unwrap());
    assert_eq!((epoch, end), (1, 3));
    a.truncate_to(end).unwrap();
    assert_eq!(a.log_end_offset(), 3);
    assert_eq!(a.latest_epoch(), Some(1));
    a.append_as_follower(&fetched(&b, 3), 0).unwrap();
    assert_eq!(fetched(&a, 0), fetched(&b, 0));
    assert_eq!(a.end_offset_for_epoch(1), (1, 3));
    assert_eq!(a.latest_epoch(), Some(2));
}

#[test]
fn a_leader_that_wrote_nothing_forgets_its_epoch_when_truncated_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch(3, 0), 4, 0).unwrap();
    log.start_epoch(5).unwrap();
    assert_eq!(log.latest_epoch(), Some(5));
    // The new leader (epoch 9) says our epoch 5 ends at 3, where its log diverges: nothing to cut but the epoch.
    log.truncate_to(3).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn log_start_moves_trim_the_epoch_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments(300)).unwrap();
    for epoch in 0..6 {
        log.append(&batch(2, 0), epoch, 0).unwrap();
    }
    log.set_high_watermark(i64::MAX);
    log.delete_records_before(5).unwrap();
    let first = log.epoch_entries()[0];
    assert_eq!((first.epoch, first.start_offset), (2, 5));
    log.truncate_fully_and_start_at(20).unwrap();
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.end_offset_for_epoch(2), (-1, -1));
}

#[test]
fn high_watermarks_are_checkpointed_and_bound_the_log_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    let tp = TopicPartition::new("orders", 0);
    {
        let logs = LogManager::open(&dirs, LogConfig::default()).unwrap();
        let log = logs.get_or_create(&tp, LogConfig::default()).unwrap();
        let mut log = log.lock();
        log.append(&batch(5, 0), 0, 0).unwrap();
        log.set_high_watermark(3);
        drop(log);
        logs.close_all().unwrap();
    }
    let logs = LogManager::open(&dirs, LogConfig::default()).unwrap();
    let log = logs.get(&tp).unwrap();
    assert_eq!(log.lock().log_end_offset(), 5);
    assert_eq!(
        log.lock().high_watermark(),
        3,
        "records 3 and 4 were never committed"
    );
    // A periodic checkpoint (no clean shutdown) is read the same way.
    log.lock().set_high_watermark(4);
    logs.checkpoint_high_watermarks().unwrap();
    drop(log);
    drop(logs);
    let logs = LogManager::open(&dirs, LogConfig::default()).unwrap();
    assert_eq!(logs.get(&tp).unwrap().lock().high_watermark(), 4);
}
