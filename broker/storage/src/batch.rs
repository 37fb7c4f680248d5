//! The record batch v2 header: parsing, validation and the fields the broker stamps.

use crate::StorageError;

/// Size of the fixed batch header; the records follow it.
pub(crate) const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the part of the header not counted by `batchLength`.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength` (a header with no records).
pub(crate) const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;

const TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;

/// The decoded fixed header of one record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Decodes a header from at least `HEADER_SIZE` bytes. Performs no validation beyond length.
    pub fn parse(b: &[u8]) -> Result<BatchHeader, StorageError> {
        if b.len() < HEADER_SIZE {
            return Err(StorageError::CorruptRecord(format!(
                "batch header needs {HEADER_SIZE} bytes, only {} left",
                b.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_OFFSET),
            magic: b[MAGIC_OFFSET] as i8,
            crc: be_i32(b, CRC_OFFSET) as u32,
            attributes: be_i16(b, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            record_count: be_i32(b, 57),
        })
    }

    /// Total size on disk, header included.
    pub fn size(&self) -> u64 {
        LOG_OVERHEAD as u64 + self.batch_length.max(0) as u64
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_LOG_APPEND != 0
    }

    /// Last sequence number in the batch; sequences wrap from `i32::MAX` to 0.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Checks the structural fields that can be verified without the record bytes.
    pub fn check_structure(&self) -> Result<(), StorageError> {
        if self.magic != 2 {
            return Err(StorageError::CorruptRecord(format!(
                "unsupported magic {} (only record batch v2 is accepted)",
                self.magic
            )));
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(StorageError::CorruptRecord(format!(
                "batch length {} is below the minimum {MIN_BATCH_LENGTH}",
                self.batch_length
            )));
        }
        if self.record_count <= 0 {
            return Err(StorageError::CorruptRecord(format!(
                "batch has {} records",
                self.record_count
            )));
        }
        if self.last_offset_delta != self.record_count - 1 {
            return Err(StorageError::CorruptRecord(format!(
                "last offset delta {} does not match record count {}",
                self.last_offset_delta, self.record_count
            )));
        }
        Ok(())
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap at `i32::MAX` back to 0.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// CRC-32C of a whole batch's covered bytes (attributes to end).
pub(crate) fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Validates one complete batch (header fields and CRC). `batch` is exactly one batch.
pub(crate) fn validate_batch(batch: &[u8]) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(batch)?;
    header.check_structure()?;
    if header.size() != batch.len() as u64 {
        return Err(StorageError::CorruptRecord(format!(
            "batch length {} does not match the {} bytes given",
            header.size(),
            batch.len()
        )));
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(StorageError::CorruptRecord(format!(
            "CRC mismatch: batch says {:#010x}, computed {actual:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// Splits a produce request's records field into batches, validating each. Returns the header and
/// byte range of every batch, or the first problem found.
pub(crate) fn validate_records(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, StorageError> {
    let mut batches = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(StorageError::CorruptRecord(format!(
                "{} trailing bytes are too short for a batch",
                rest.len()
            )));
        }
        let batch_length = be_i32(rest, 8);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(StorageError::CorruptRecord(format!(
                "batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}"
            )));
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > max_message_bytes as usize {
            return Err(StorageError::RecordTooLarge {
                size: size as u64,
                max: max_message_bytes as u64,
            });
        }
        if size > rest.len() {
            return Err(StorageError::CorruptRecord(format!(
                "batch of {size} bytes overruns the {} bytes left",
                rest.len()
            )));
        }
        let header = validate_batch(&rest[..size])?;
        batches.push((header, pos..pos + size));
        pos += size;
    }
    if batches.is_empty() {
        return Err(StorageError::CorruptRecord("no record batches".into()));
    }
    Ok(batches)
}

/// The max timestamp the log stores for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaxTimestamp {
    /// The topic uses LogAppendTime: the broker's clock, and the timestamp type bit set.
    LogAppendTime(i64),
    /// The largest record timestamp, which the producer's header may have got wrong.
    CreateTime(i64),
}

/// The header of `batch` as the log stores it: the broker-assigned base offset and leader epoch stamped in
/// (both lie outside the CRC), and, when the stored max timestamp differs from the producer's (LogAppendTime,
/// or a producer that got it wrong, which Kafka corrects too), the timestamp type, maxTimestamp and a CRC
/// recomputed over the new header and the untouched records. The records themselves are never copied or
/// recompressed.
pub(crate) fn stamped_header(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    max_timestamp: MaxTimestamp,
) -> [u8; HEADER_SIZE] {
    let mut header = [0u8; HEADER_SIZE];
    header.copy_from_slice(&batch[..HEADER_SIZE]);
    header[0..8].copy_from_slice(&base_offset.to_be_bytes());
    header[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
    let (attributes, timestamp) = match max_timestamp {
        MaxTimestamp::LogAppendTime(now_ms) => (
            be_i16(&header, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_LOG_APPEND,
            now_ms,
        ),
        MaxTimestamp::CreateTime(ts) => (be_i16(&header, ATTRIBUTES_OFFSET), ts),
    };
    if attributes != be_i16(&header, ATTRIBUTES_OFFSET)
        || timestamp != be_i64(&header, MAX_TIMESTAMP_OFFSET)
    {
        header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&timestamp.to_be_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&header[ATTRIBUTES_OFFSET..]),
            &batch[HEADER_SIZE..],
        );
        header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(5, 1), 6);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(0, 0), 0);
    }

    #[test]
    fn short_and_empty_inputs_are_corrupt() {
        assert!(matches!(
            validate_records(&[], 1000),
            Err(StorageError::CorruptRecord(_))
        ));
        assert!(matches!(
            validate_records(&[0u8; 11], 1000),
            Err(StorageError::CorruptRecord(_))
        ));
        // Length field claims fewer bytes than a header.
        let mut b = vec![0u8; 61];
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            validate_records(&b, 1000),
            Err(StorageError::CorruptRecord(_))
        ));
    }
}
