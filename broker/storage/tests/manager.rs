//! `LogManager` across several log directories: load, create, delete, reload, tick.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use std::fs;
use std::path::PathBuf;

use common::*;
use sluice_storage::{LogConfig, LogManager, StorageError, TopicPartition};

fn dirs(root: &tempfile::TempDir) -> Vec<PathBuf> {
    vec![root.path().join("a"), root.path().join("b")]
}

#[test]
fn partitions_are_spread_created_and_reloaded() {
    let root = tempfile::tempdir().unwrap();
    let log_dirs = dirs(&root);
    let manager = LogManager::open(&log_dirs, LogConfig::default()).unwrap();
    assert!(manager.partitions().is_empty());
    let tps: Vec<TopicPartition> = (0..4)
        .map(|p| TopicPartition::new("my-topic-x", p))
        .collect();
    for (i, tp) in tps.iter().enumerate() {
        let log = manager.get_or_create(tp, LogConfig::default()).unwrap();
        let mut log = log.lock();
        for _ in 0..=i {
            append(&mut log, batch(2, 0), 0);
        }
    }
    // Creating again returns the same log.
    let again = manager
        .get_or_create(&tps[0], LogConfig::default())
        .unwrap();
    assert_eq!(again.lock().log_end_offset(), 2);
    for dir in &log_dirs {
        let count = fs::read_dir(dir).unwrap().count();
        assert_eq!(count, 2, "partitions are balanced over log dirs");
    }
    assert!(manager.get(&TopicPartition::new("nope", 0)).is_none());
    manager.close_all().unwrap();
    // A closed log refuses writes.
    assert!(matches!(
        again.lock().append(&batch(1, 0), 0, 0),
        Err(StorageError::LogClosed(_))
    ));
    drop(manager);

    fs::write(log_dirs[0].join("meta.properties"), "broker.id=1\n").unwrap();
    fs::create_dir(log_dirs[1].join("not_a_partition")).unwrap();
    let manager = LogManager::open(&log_dirs, LogConfig::default()).unwrap();
    assert_eq!(manager.partitions(), tps);
    for (i, tp) in tps.iter().enumerate() {
        let log = manager.get(tp).unwrap();
        assert_eq!(log.lock().log_end_offset(), 2 * (i as i64 + 1));
        assert_eq!(
            log.lock().dir().file_name().unwrap().to_str().unwrap(),
            tp.to_string()
        );
    }
}

#[test]
fn delete_removes_the_directory_and_leftovers_are_cleaned_on_open() {
    let root = tempfile::tempdir().unwrap();
    let log_dirs = dirs(&root);
    let manager = LogManager::open(&log_dirs, LogConfig::default()).unwrap();
    let tp = TopicPartition::new("doomed", 3);
    let log = manager.get_or_create(&tp, LogConfig::default()).unwrap();
    append(&mut log.lock(), batch(1, 0), 0);
    let dir = log.lock().dir().to_path_buf();
    assert!(dir.exists());
    manager.delete(&tp).unwrap();
    assert!(!dir.exists());
    assert!(manager.get(&tp).is_none());
    assert!(manager.partitions().is_empty());
    assert!(matches!(
        log.lock().append(&batch(1, 0), 0, 0),
        Err(StorageError::LogClosed(_))
    ));
    // Recreating starts from scratch.
    let fresh = manager.get_or_create(&tp, LogConfig::default()).unwrap();
    assert_eq!(fresh.lock().log_end_offset(), 0);
    drop(manager);

    // A crash after the rename leaves a `-delete` directory that the next open removes.
    let leftover = log_dirs[1].join("old-0.0123456789abcdef0123456789abcdef-delete");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("00000000000000000000.log"), b"x").unwrap();
    let manager = LogManager::open(&log_dirs, LogConfig::default()).unwrap();
    assert!(!leftover.exists());
    assert_eq!(manager.partitions(), vec![tp]);
}

#[test]
fn tick_applies_retention_to_every_log() {
    let root = tempfile::tempdir().unwrap();
    let manager = LogManager::open(&dirs(&root), LogConfig::default()).unwrap();
    let size = batch(1, 0).len() as u64;
    let config = LogConfig {
        retention_ms: Some(1000),
        ..small_segments(size)
    };
    let tp = TopicPartition::new("t", 0);
    let log = manager.get_or_create(&tp, config).unwrap();
    for ts in [1_000, 2_000, 3_000] {
        append(&mut log.lock(), batch(1, ts), ts);
    }
    assert_eq!(log.lock().segment_base_offsets(), vec![0, 1, 2]);
    manager.tick(3_500);
    assert_eq!(log.lock().segment_base_offsets(), vec![2]);
    assert_eq!(log.lock().log_start_offset(), 2);
}

#[test]
fn topic_partition_names_parse_from_the_last_dash() {
    assert_eq!(
        TopicPartition::from_dir_name("my-topic-12"),
        Some(TopicPartition::new("my-topic", 12))
    );
    assert_eq!(TopicPartition::new("a-b", 0).to_string(), "a-b-0");
    assert_eq!(TopicPartition::from_dir_name("topic"), None);
    assert_eq!(TopicPartition::from_dir_name("topic-"), None);
    assert_eq!(TopicPartition::from_dir_name("-3"), None);
    assert_eq!(
        TopicPartition::from_dir_name("t--1"),
        Some(TopicPartition::new("t-", 1))
    );
    assert_eq!(TopicPartition::from_dir_name("t-1.abc-delete"), None);
}
