//! Record batches built from fuzzer choices with a correct CRC, so the recovery targets get past the CRC check
//! to the code behind it, optionally with one byte spoiled afterwards.

use arbitrary::Arbitrary;
use bytes::Bytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// CRC-32C (Castagnoli) of the bytes a batch's CRC covers.
pub fn crc32c(bytes: &[u8]) -> u32 {
    ::crc32c::crc32c(bytes)
}

/// A record's (key, value); `None` is null.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Arbitrary, Debug)]
pub struct BatchSpec {
    /// Added to the previous batch's next offset (0 keeps offsets contiguous).
    pub offset_gap: u8,
    pub records: Vec<KeyValue>,
    pub timestamp: i64,
    pub timestamp_step: i8,
    pub codec: u8,
    /// (producer id, epoch, base sequence) for an idempotent batch.
    pub producer: Option<(u8, i16, i32)>,
    pub log_append_time: bool,
    /// XORs the byte at `position % len` with `mask` after the CRC was computed.
    pub spoil: Option<(u16, u8)>,
}

/// The largest timestamp magnitude a generated record gets.
const TIMESTAMP_BOUND: i64 = 1 << 61;

impl BatchSpec {
    /// The batch's bytes, with its first offset at `base_offset`; `None` when the encoder refuses it (no
    /// records).
    pub fn encode(&self, base_offset: i64) -> Option<Vec<u8>> {
        if self.records.is_empty() {
            return None;
        }
        let compression = match self.codec % 5 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            _ => Compression::Zstd,
        };
        let (producer_id, producer_epoch, base_sequence) =
            self.producer.map_or((-1, -1, -1), |(id, epoch, seq)| {
                (id as i64, epoch, seq.max(0))
            });
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: if self.log_append_time {
                    TimestampType::LogAppend
                } else {
                    TimestampType::Creation
                },
                offset: base_offset.saturating_add(i as i64),
                sequence: if producer_id < 0 {
                    -1
                } else {
                    base_sequence.wrapping_add(i as i32)
                },
                // Kept within ±2^61 so that no two timestamps of a batch are further apart than an i64
                // holds: the encoder subtracts them (a wrapped timestamp made it overflow).
                timestamp: self
                    .timestamp
                    .clamp(-TIMESTAMP_BOUND, TIMESTAMP_BOUND)
                    .saturating_add(i as i64 * self.timestamp_step as i64)
                    .clamp(-TIMESTAMP_BOUND, TIMESTAMP_BOUND),
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: Default::default(),
            })
            .collect();
        let mut out = Vec::new();
        RecordBatchEncoder::encode(
            &mut out,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .ok()?;
        if let Some((position, mask)) = self.spoil
            && !out.is_empty()
        {
            let at = position as usize % out.len();
            out[at] ^= mask;
        }
        Some(out)
    }
}

/// The concatenated batches of `specs`, offsets starting at `base_offset`.
pub fn encode_all(specs: &[BatchSpec], base_offset: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = base_offset;
    for spec in specs {
        let base = next.saturating_add(spec.offset_gap as i64);
        if let Some(bytes) = spec.encode(base) {
            next = base.saturating_add(spec.records.len() as i64);
            out.extend(bytes);
        }
    }
    out
}
