//! `Log::replay` and `replay_bytes`: reading internal logs back record by record at start-up, bounded by
//! the bytes on disk whatever a batch claims.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::*;
use kafka_protocol::records::Compression;
use sluice_storage::{Log, LogConfig, StorageError, StoredRecord, replay_bytes};

/// (offset, key, value length) of every replayed record.
fn replayed(log: &Log) -> Result<Vec<(i64, String, usize)>, StorageError> {
    let mut out = Vec::new();
    log.replay(&mut |r: StoredRecord<'_>| {
        out.push((
            r.offset,
            String::from_utf8_lossy(r.key.unwrap_or_default()).into_owned(),
            r.value.map_or(0, <[u8]>::len),
        ));
        Ok::<(), StorageError>(())
    })?;
    Ok(out)
}

#[test]
fn replay_hands_out_every_record_from_the_log_start_with_keys_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(3, 0).len() as u64;
    let mut log = Log::open(dir.path(), small_segments(size * 2)).unwrap();
    for _ in 0..3 {
        append(&mut log, batch(3, 0), 0);
    }
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        append(
            &mut log,
            BatchSpec::new(2, 0)
                .compression(codec)
                .value_size(100)
                .encode(),
            0,
        );
    }
    commit_all(&mut log);
    assert!(
        log.segment_base_offsets().len() > 2,
        "the records span segments"
    );
    // Inside the second batch: offsets 3 and 4 go, 5 stays.
    log.delete_records_before(5).unwrap();
    let records = replayed(&log).unwrap();
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (5..17).collect::<Vec<_>>());
    assert_eq!(records[0].1, "key-2");
    assert_eq!(records[0].2, 16);
    // The compressed batches' records come out inflated, keys and values whole.
    assert_eq!(
        &records[4..],
        &[
            (9, "key-0".into(), 100),
            (10, "key-1".into(), 100),
            (11, "key-0".into(), 100),
            (12, "key-1".into(), 100),
            (13, "key-0".into(), 100),
            (14, "key-1".into(), 100),
            (15, "key-0".into(), 100),
            (16, "key-1".into(), 100),
        ]
    );
}

#[test]
fn a_corrupt_stored_batch_is_an_error_naming_its_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0).len() as u64;
    let mut log = Log::open(dir.path(), small_segments(size * 2)).unwrap();
    for _ in 0..4 {
        append(&mut log, batch(2, 0), 0);
    }
    commit_all(&mut log);
    let first_segment = dir.path().join("00000000000000000000.log");
    // A bit flipped in the second batch's last value byte: framing intact, CRC wrong.
    let file = OpenOptions::new().write(true).open(&first_segment).unwrap();
    file.write_all_at(b"!", 2 * size - 1).unwrap();
    let err = replayed(&log).unwrap_err().to_string();
    assert!(err.contains("00000000000000000000.log"), "{err}");
    assert!(err.contains(&format!("position {size}")), "{err}");
    assert!(err.contains("CRC"), "{err}");
}

#[test]
fn a_batch_that_inflates_past_the_limit_is_refused_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_decompressed_batch_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let bomb = BatchSpec::new(4, 0)
        .compression(Compression::Zstd)
        .value_size(1 << 20)
        .encode();
    assert!(
        bomb.len() < 64 * 1024,
        "compresses well: {} bytes",
        bomb.len()
    );
    append(&mut log, bomb, 0);
    commit_all(&mut log);
    let err = replayed(&log).unwrap_err().to_string();
    assert!(
        err.contains("inflate past the limit of 65536 bytes"),
        "{err}"
    );
}

#[test]
fn replay_bytes_ignores_a_torn_tail_and_refuses_a_batch_longer_than_the_bytes() {
    let mut bytes = batch(2, 0);
    bytes.extend(batch(1, 0));
    let whole = bytes.len();
    bytes.extend_from_slice(&[0u8; 30]);
    let mut count = 0;
    replay_bytes(&bytes, 1 << 20, &mut |_| {
        count += 1;
        Ok::<(), StorageError>(())
    })
    .unwrap();
    assert_eq!(count, 3);

    // A header whose length runs past the end.
    let mut cut = bytes[..whole].to_vec();
    cut.extend(&batch(1, 0)[..70]);
    let err = replay_bytes(&cut, 1 << 20, &mut |_| Ok::<(), StorageError>(())).unwrap_err();
    assert!(
        err.to_string().contains(&format!("at byte {whole} claims")),
        "{err}"
    );
}

#[test]
fn a_visitor_error_stops_the_replay_and_comes_back_unchanged() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Mine {
        Stop(i64),
        Storage(StorageError),
    }
    impl From<StorageError> for Mine {
        fn from(e: StorageError) -> Mine {
            Mine::Storage(e)
        }
    }
    let mut bytes = batch(3, 0);
    bytes.extend(batch(3, 0));
    let mut seen = 0;
    let result = replay_bytes(&bytes, 1 << 20, &mut |r| {
        seen += 1;
        if r.offset == 1 {
            Err(Mine::Stop(r.offset))
        } else {
            Ok(())
        }
    });
    assert!(matches!(result, Err(Mine::Stop(1))), "{result:?}");
    assert_eq!(seen, 2);
}
