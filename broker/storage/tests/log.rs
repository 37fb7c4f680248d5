//! Append/read/roll/retention/truncation behaviour of a single `Log`, on real files.
#![allow(clippy::unwrap_used)] // tests may unwrap (project rule)

mod common;

use common::*;
use kafka_protocol::records::Compression;
use sluice_storage::{Log, LogConfig, StorageError, TimestampType};

#[test]
fn append_read_round_trip_assigns_offsets_and_stamps_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let first = batch(3, 1000);
    let info = log.append(&first, 7, 5000).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(info.log_append_time, -1);
    assert!(!info.duplicate);
    let info = log.append(&batch(2, 1001), 7, 5001).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);

    let read = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(read.log_end_offset, 5);
    let bytes = slice_bytes(&read.slice.unwrap());
    assert_eq!(bytes.len() as u64, log.size_bytes());
    // The first batch is stored exactly as sent apart from offset and leader epoch; the caller's
    // buffer is not modified.
    let mut expected = first.clone();
    expected[0..8].copy_from_slice(&0i64.to_be_bytes());
    expected[12..16].copy_from_slice(&7i32.to_be_bytes());
    assert_eq!(&bytes[..first.len()], &expected[..]);
    assert_eq!(&first[12..16], &(-1i32).to_be_bytes());
    let sets = decode_complete(&bytes);
    let offsets: Vec<i64> = sets
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert!(
        sets.iter()
            .all(|s| s.records[0].partition_leader_epoch == 7)
    );
    assert_eq!(
        sets[1].records[1].value.as_deref(),
        Some(&b"bbbbbbbbbbbbbbbb"[..])
    );
}

#[test]
fn one_request_with_several_batches_gets_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, batch(1, 0), 0);
    let mut request = batch(2, 0);
    request.extend(batch(4, 0));
    let info = log.append(&request, 0, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (1, 6));
    let bytes = slice_bytes(
        &log.read(0, 1 << 20, i64::MAX, false)
            .unwrap()
            .slice
            .unwrap(),
    );
    assert_eq!(batch_base_offsets(&bytes), vec![0, 1, 3]);
}

#[test]
fn reading_inside_a_batch_returns_the_whole_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let first_len = batch(5, 0).len() as u64;
    append(&mut log, batch(5, 0), 0);
    append(&mut log, batch(5, 0), 0);
    let slice = log
        .read(7, 1 << 20, i64::MAX, false)
        .unwrap()
        .slice
        .unwrap();
    assert_eq!(slice.position, first_len);
    assert_eq!(batch_base_offsets(&slice_bytes(&slice)), vec![5]);
    assert_eq!(read_offsets(&log, 4, 1 << 20), (0..10).collect::<Vec<_>>());
}

#[test]
fn max_bytes_may_cut_a_batch_and_min_one_batch_returns_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let size = batch(4, 0).len() as u64;
    for _ in 0..3 {
        append(&mut log, batch(4, 0), 0);
    }
    let cut = log.read(0, 10, i64::MAX, false).unwrap().slice.unwrap();
    assert_eq!(cut.len, 10);
    let whole = log.read(0, 10, i64::MAX, true).unwrap().slice.unwrap();
    assert_eq!(whole.len, size);
    let mid = log
        .read(0, (size + 10) as u32, i64::MAX, true)
        .unwrap()
        .slice
        .unwrap();
    assert_eq!(mid.len, size + 10);
    assert_eq!(batch_base_offsets(&slice_bytes(&mid)), vec![0]);
    assert!(log.read(0, 0, i64::MAX, false).unwrap().slice.is_none());
}

#[test]
fn max_offset_hides_batches_at_or_beyond_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let size = batch(2, 0).len() as u64;
    for _ in 0..3 {
        append(&mut log, batch(2, 0), 0);
    }
    log.set_high_watermark(4);
    let read = log.read(0, 1 << 20, log.high_watermark(), false).unwrap();
    assert_eq!(read.high_watermark, 4);
    let slice = read.slice.unwrap();
    assert_eq!(slice.len, 2 * size);
    assert_eq!(batch_base_offsets(&slice_bytes(&slice)), vec![0, 2]);
    assert!(log.read(4, 1 << 20, 4, true).unwrap().slice.is_none());
    // min_one_batch does not override the bound.
    assert!(log.read(4, 1, 4, true).unwrap().slice.is_none());
    log.set_high_watermark(100);
    assert_eq!(log.high_watermark(), 6, "clamped to the log end");
}

#[test]
fn offsets_outside_the_log_are_out_of_range_and_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, batch(3, 0), 0);
    assert!(
        log.read(3, 1 << 20, i64::MAX, true)
            .unwrap()
            .slice
            .is_none()
    );
    for bad in [-1, 4, 100] {
        assert!(matches!(
            log.read(bad, 1 << 20, i64::MAX, true),
            Err(StorageError::OffsetOutOfRange { offset, .. }) if offset == bad
        ));
    }
}

#[test]
fn segments_roll_by_size_and_reads_stay_within_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(3, 0).len() as u64;
    let mut log = Log::open(dir.path(), small_segments(size * 2)).unwrap();
    for _ in 0..5 {
        append(&mut log, batch(3, 0), 0);
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    assert_eq!(
        files_with_suffix(dir.path(), ".log"),
        vec![
            "00000000000000000000.log",
            "00000000000000000006.log",
            "00000000000000000012.log"
        ]
    );
    assert_eq!(files_with_suffix(dir.path(), ".timeindex").len(), 3);
    assert_eq!(read_offsets(&log, 0, 1 << 20), (0..6).collect::<Vec<_>>());
    assert_eq!(read_offsets(&log, 7, 1 << 20), (6..12).collect::<Vec<_>>());
    assert_eq!(
        read_offsets(&log, 12, 1 << 20),
        (12..15).collect::<Vec<_>>()
    );
    // A request larger than a whole segment cannot be stored.
    let mut huge = batch(3, 0);
    huge.extend(batch(3, 0));
    huge.extend(batch(3, 0));
    assert!(matches!(
        log.append(&huge, 0, 0),
        Err(StorageError::RecordTooLarge { .. })
    ));
}

#[test]
fn segments_roll_by_age_on_append_and_on_tick() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(1000),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append(&mut log, batch(1, 0), 10_000);
    append(&mut log, batch(1, 0), 10_500);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    append(&mut log, batch(1, 0), 11_000);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.tick(11_500).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    log.tick(12_000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
    // An empty active segment is never rolled.
    log.tick(50_000).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
}

#[test]
fn index_lookups_find_every_offset_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_segments(1500);
    config.index_interval_bytes = 100;
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    let mut expected_bases = Vec::new();
    for i in 0..150 {
        let count = 1 + i % 3;
        expected_bases.push(append(&mut log, batch(count, i as i64), 0).base_offset);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() > 10, "{segments:?}");
    let leo = log.log_end_offset();
    for offset in 0..leo {
        let slice = log.read(offset, 1, i64::MAX, true).unwrap().slice.unwrap();
        let sets = decode_complete(&slice_bytes(&slice));
        assert_eq!(sets.len(), 1);
        let first = sets[0].records.first().unwrap().offset;
        let last = sets[0].records.last().unwrap().offset;
        assert!(
            first <= offset && offset <= last,
            "offset {offset} read batch {first}..={last}"
        );
        assert!(expected_bases.contains(&first));
    }
    // Closed segments have trimmed, non-empty indexes.
    for name in files_with_suffix(dir.path(), ".index") {
        let len = std::fs::metadata(dir.path().join(&name)).unwrap().len();
        if !name.starts_with(&format!("{:020}", segments.last().unwrap())) {
            assert!(len > 0 && len.is_multiple_of(8), "{name}: {len}");
        } else {
            assert_eq!(
                len,
                config.max_index_size as u64 / 8 * 8,
                "active index is preallocated"
            );
        }
    }
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_segments(600);
    config.index_interval_bytes = 1;
    let mut log = Log::open(dir.path(), config).unwrap();
    append(
        &mut log,
        BatchSpec::timestamps(&[100, 110, 120]).encode(),
        0,
    ); // 0..=2
    append(
        &mut log,
        BatchSpec::timestamps(&[200, 230, 210, 260])
            .compression(Compression::Gzip)
            .encode(),
        0,
    ); // 3..=6
    for i in 0..10 {
        append(&mut log, batch(2, 300 + i * 10), 0); // 7..=26
    }
    assert!(log.segment_base_offsets().len() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(100).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(105).unwrap(), Some((1, 110)));
    assert_eq!(log.offset_for_timestamp(121).unwrap(), Some((3, 200)));
    // Inside the compressed batch: first record (not the smallest greater one) with ts >= 205.
    assert_eq!(log.offset_for_timestamp(205).unwrap(), Some((4, 230)));
    assert_eq!(log.offset_for_timestamp(240).unwrap(), Some((6, 260)));
    assert_eq!(log.offset_for_timestamp(345).unwrap(), Some((17, 350)));
    assert_eq!(log.offset_for_timestamp(390).unwrap(), Some((25, 390)));
    assert_eq!(log.offset_for_timestamp(391).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((390, 25)));
}

#[test]
fn max_timestamp_points_at_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.max_timestamp(), None);
    append(&mut log, BatchSpec::timestamps(&[5, 9]).encode(), 0);
    append(
        &mut log,
        BatchSpec::timestamps(&[10, 50, 20])
            .compression(Compression::Snappy)
            .encode(),
        0,
    );
    append(&mut log, BatchSpec::timestamps(&[30]).encode(), 0);
    assert_eq!(log.max_timestamp(), Some((50, 3)));
}

#[test]
fn log_append_time_stamps_batches_and_keeps_them_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let info = append(&mut log, batch(3, 1), 777_000);
    assert_eq!(info.log_append_time, 777_000);
    append(&mut log, batch(2, 1), 778_000);
    let bytes = slice_bytes(
        &log.read(0, 1 << 20, i64::MAX, false)
            .unwrap()
            .slice
            .unwrap(),
    );
    // The decoder verifies the recomputed CRC.
    let sets = decode_complete(&bytes);
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].records[0].timestamp_type,
        kafka_protocol::records::TimestampType::LogAppend
    );
    assert_eq!(&bytes[35..43], &777_000i64.to_be_bytes());
    assert_eq!(
        log.offset_for_timestamp(777_500).unwrap(),
        Some((3, 778_000))
    );
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 777_000)));
    assert_eq!(log.max_timestamp(), Some((778_000, 3)));
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append(&mut log, batch(1, 0), 0);
    let size_before = log.size_bytes();

    // CRC: a flipped record byte in the second batch of the request.
    let mut request = batch(2, 0);
    let mut bad = batch(2, 0);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    request.extend(bad);
    assert!(matches!(
        log.append(&request, 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));

    // Wrong magic.
    let mut magic = batch(1, 0);
    magic[16] = 1;
    assert!(matches!(
        log.append(&magic, 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));

    // Length running past the request.
    let mut short = batch(2, 0);
    short.truncate(short.len() - 3);
    assert!(matches!(
        log.append(&short, 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));

    // Zero records (with a correct CRC).
    let mut empty = batch(1, 0);
    empty[57..61].copy_from_slice(&0i32.to_be_bytes());
    empty[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&empty[21..]);
    empty[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append(&empty, 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));

    // Over max_message_bytes.
    let big = BatchSpec::new(1, 0).value_size(2000).encode();
    assert!(matches!(
        log.append(&big, 0, 0),
        Err(StorageError::RecordTooLarge { max: 1000, .. })
    ));

    assert!(matches!(
        log.append(&[], 0, 0),
        Err(StorageError::CorruptRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.size_bytes(), size_before);
    assert_eq!(
        std::fs::metadata(dir.path().join("00000000000000000000.log"))
            .unwrap()
            .len(),
        size_before
    );
}

#[test]
fn retention_by_time_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0).len() as u64;
    let mut config = small_segments(size);
    config.retention_ms = Some(1000);
    let mut log = Log::open(dir.path(), config).unwrap();
    for ts in [1000, 2000, 3000, 4000] {
        append(&mut log, batch(2, ts), ts);
    }
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 4, 6]);
    assert_eq!(log.enforce_retention(3500).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![4, 6]);
    assert_eq!(log.log_start_offset(), 4);
    assert!(!dir.path().join("00000000000000000000.log").exists());
    assert!(!dir.path().join("00000000000000000000.index").exists());
    assert!(!dir.path().join("00000000000000000002.timeindex").exists());
    // Everything expired: the active segment still stays.
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.segment_base_offsets(), vec![6]);
    assert_eq!(read_offsets(&log, 6, 1 << 20), vec![6, 7]);
    assert!(matches!(
        log.read(5, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0).len() as u64;
    let mut config = small_segments(size);
    config.retention_ms = None;
    config.retention_bytes = Some(2 * size + 1);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for _ in 0..5 {
        append(&mut log, batch(2, 0), 0);
    }
    assert_eq!(log.enforce_retention(0).unwrap(), 2);
    assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
    assert_eq!(log.size_bytes(), 3 * size);
    assert_eq!(log.log_start_offset(), 4);

    // A compact-only topic is left alone.
    config.cleanup_policy_delete = false;
    config.retention_bytes = Some(0);
    log.update_config(config);
    assert_eq!(log.enforce_retention(0).unwrap(), 0);
    assert_eq!(log.segment_base_offsets(), vec![4, 6, 8]);
}

#[test]
fn delete_records_moves_the_start_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(3, 0).len() as u64;
    let config = small_segments(size * 2);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for _ in 0..5 {
        append(&mut log, batch(3, 0), 0);
    }
    assert!(
        matches!(
            log.delete_records_before(3),
            Err(StorageError::OffsetOutOfRange { .. })
        ),
        "beyond the high watermark"
    );
    commit_all(&mut log);
    assert_eq!(log.segment_base_offsets(), vec![0, 6, 12]);
    assert_eq!(log.delete_records_before(7).unwrap(), 7);
    assert_eq!(log.segment_base_offsets(), vec![6, 12]);
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(
        log.delete_records_before(2).unwrap(),
        7,
        "never moves backwards"
    );
    assert!(matches!(
        log.read(6, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // The batch containing the new start is returned whole.
    assert_eq!(read_offsets(&log, 7, 1 << 20)[0], 6);
    assert!(matches!(
        log.delete_records_before(16),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    drop(log);

    let log = Log::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((7, 0)));
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_start_offset(), 7);
}

#[test]
fn truncate_to_drops_the_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0).len() as u64;
    let config = small_segments(size * 2);
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..6 {
        append(&mut log, batch(2, i), 0);
    }
    commit_all(&mut log);
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(log.segment_base_offsets(), vec![0, 4]);
    assert!(!dir.path().join("00000000000000000008.log").exists());
    assert_eq!(read_offsets(&log, 4, 1 << 20), vec![4, 5]);

    // Mid-batch: the containing batch goes too.
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.segment_base_offsets(), vec![0]);
    let info = append(&mut log, batch(3, 9), 0);
    assert_eq!((info.base_offset, info.last_offset), (2, 4));
    assert_eq!(read_offsets(&log, 0, 1 << 20), vec![0, 1]);
    assert_eq!(read_offsets(&log, 2, 1 << 20), vec![2, 3, 4]);
    assert_eq!(log.max_timestamp(), Some((9, 2)));

    // Below the log start: start over there.
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    append(&mut log, batch(1, 0), 0);
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn flush_policies_run_without_disturbing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_messages: Some(2),
        flush_interval_ms: Some(100),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append(&mut log, batch(1, 0), 0);
    append(&mut log, batch(1, 0), 10);
    log.tick(500).unwrap();
    log.flush().unwrap();
    assert_eq!(read_offsets(&log, 0, 1 << 20), vec![0, 1]);
}

#[test]
fn a_full_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1,
        // Room for two offset entries but only one time entry.
        max_index_size: 16,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    append(&mut log, batch(1, 10), 0);
    append(&mut log, batch(1, 20), 0); // first index entries: the time index is now full
    assert_eq!(log.segment_base_offsets(), vec![0]);
    append(&mut log, batch(1, 30), 0);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    assert_eq!(read_offsets(&log, 0, 1 << 20), vec![0, 1]);
    assert_eq!(log.offset_for_timestamp(15).unwrap(), Some((1, 20)));
}
