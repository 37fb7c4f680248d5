//! Helpers shared by the integration tests: batches built with kafka-protocol's encoder (the
//! same code clients use) and readers for what the log hands back.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
    TimestampType,
};
use sluice_storage::{FileSlice, Log, LogConfig};

pub struct BatchSpec {
    pub timestamps: Vec<i64>,
    pub compression: Compression,
    /// (producer id, epoch, base sequence) for idempotent batches.
    pub producer: Option<(i64, i16, i32)>,
    pub value_size: usize,
}

impl BatchSpec {
    pub fn new(count: usize, timestamp: i64) -> BatchSpec {
        BatchSpec {
            timestamps: vec![timestamp; count],
            compression: Compression::None,
            producer: None,
            value_size: 16,
        }
    }

    pub fn timestamps(timestamps: &[i64]) -> BatchSpec {
        BatchSpec {
            timestamps: timestamps.to_vec(),
            ..BatchSpec::new(0, 0)
        }
    }

    pub fn producer(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> BatchSpec {
        self.producer = Some((producer_id, epoch, base_sequence));
        self
    }

    pub fn compression(mut self, compression: Compression) -> BatchSpec {
        self.compression = compression;
        self
    }

    pub fn value_size(mut self, size: usize) -> BatchSpec {
        self.value_size = size;
        self
    }

    /// Encodes exactly one record batch (the encoder splits batches when producer fields or
    /// offset-sequence spacing differ, so every record shares them).
    pub fn encode(&self) -> Vec<u8> {
        let (producer_id, producer_epoch, base_sequence) = self.producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = self
            .timestamps
            .iter()
            .enumerate()
            .map(|(i, &timestamp)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base_sequence.wrapping_add(i as i32),
                timestamp,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; self.value_size])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = Vec::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: self.compression,
            },
        )
        .unwrap();
        buf
    }
}

/// A plain batch of `count` records all stamped `timestamp`.
pub fn batch(count: usize, timestamp: i64) -> Vec<u8> {
    BatchSpec::new(count, timestamp).encode()
}

pub fn append(log: &mut Log, bytes: Vec<u8>, now_ms: i64) -> sluice_storage::AppendInfo {
    log.append(&bytes, 0, now_ms).unwrap()
}

pub fn slice_bytes(slice: &FileSlice) -> Vec<u8> {
    let mut buf = vec![0u8; slice.len as usize];
    slice.file.read_exact_at(&mut buf, slice.position).unwrap();
    buf
}

/// Decodes the complete batches in `bytes`, ignoring a trailing partial batch as clients do.
pub fn decode_complete(bytes: &[u8]) -> Vec<RecordSet> {
    let mut sets = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 12 {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if pos + 12 + len > bytes.len() {
            break;
        }
        let mut one = Bytes::copy_from_slice(&bytes[pos..pos + 12 + len]);
        sets.push(RecordBatchDecoder::decode(&mut one).unwrap());
        pos += 12 + len;
    }
    sets
}

/// Offsets of every record in the complete batches of a read starting at `offset`.
pub fn read_offsets(log: &Log, offset: i64, max_bytes: u32) -> Vec<i64> {
    let info = log.read(offset, max_bytes, i64::MAX, true).unwrap();
    match info.slice {
        Some(slice) => decode_complete(&slice_bytes(&slice))
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.offset))
            .collect(),
        None => Vec::new(),
    }
}

/// Base offsets of the complete batches in `bytes`.
pub fn batch_base_offsets(bytes: &[u8]) -> Vec<i64> {
    decode_complete(bytes)
        .iter()
        .map(|s| s.records[0].offset)
        .collect()
}

pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Sets the high watermark to the log end, as a single-replica broker does after each append.
pub fn commit_all(log: &mut Log) {
    let leo = log.log_end_offset();
    log.set_high_watermark(leo);
}
