//! What a client's records must pass before the log takes them: Kafka's `LogValidator`, for magic v2.
//!
//! The batch framing and CRC are checked first (`batch::validate_records`), then each batch's header fields
//! against each other, then every record, walked within the batch's bytes (and, for compressed batches,
//! within a capped decompressed stream): the count the header claims must be the count actually there, and
//! every timestamp must fall inside the topic's window. The first failure refuses the whole append, so a
//! refused produce writes nothing. The refusals, and their order, are the ones Apache Kafka 4.4.0 gives for
//! the same bytes (`e2e/broker/test_hostile_produce.py` runs against both).

use std::ops::{ControlFlow, Range};

use crate::batch::{self, BatchHeader};
use crate::records::{self, Codec, RecordsError};
use crate::{LogConfig, RecordError, StorageError, TimestampType};

const ATTR_CONTROL: i16 = 0x20;
/// A record timestamp of -1 means "none" and is never range-checked.
const NO_TIMESTAMP: i64 = -1;

/// One batch that passed, with what the log needs to stamp and index it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidBatch {
    pub header: BatchHeader,
    pub range: Range<usize>,
    /// The largest record timestamp, which may differ from the one the producer put in the header; Kafka
    /// stamps the true one (and recomputes the CRC), and so does the log.
    pub max_timestamp: i64,
}

fn invalid_record(message: String) -> StorageError {
    StorageError::InvalidRecord {
        message,
        record_errors: Vec::new(),
    }
}

/// Validates a Produce request's records for one partition, as Kafka does for v3+ requests: exactly one
/// batch of magic 2, then the batch and its records.
pub(crate) fn client_records(
    records: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<Vec<ValidBatch>, StorageError> {
    let (header, range) = split_one_batch(records, config.max_message_bytes)?;
    let max_timestamp = client_batch(&records[range.clone()], &header, config, now_ms)?;
    Ok(vec![ValidBatch {
        header,
        range,
        max_timestamp,
    }])
}

/// Frames the records as Kafka's `ByteBufferLogInputStream` does for a Produce request: a trailing piece
/// too short to be a whole batch is ignored (so a lone truncated batch is no batch at all), a length below
/// the v2 header or a magic above 2 is corruption; then `ProduceRequest.validateRecords`: one batch, magic
/// 2; then the size limit and the CRC; then the header fields that must agree with each other.
fn split_one_batch(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<(BatchHeader, Range<usize>), StorageError> {
    let mut batches = Vec::new();
    let mut pos = 0usize;
    while records.len() - pos >= batch::LOG_OVERHEAD {
        let rest = &records[pos..];
        let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if batch_length < batch::MIN_BATCH_LENGTH {
            return Err(StorageError::CorruptRecord(format!(
                "batch length {batch_length} is below the minimum {}",
                batch::MIN_BATCH_LENGTH
            )));
        }
        let size = batch::LOG_OVERHEAD + batch_length as usize;
        if size > rest.len() {
            break;
        }
        let magic = rest[batch::MAGIC_OFFSET] as i8;
        if !(0..=2).contains(&magic) {
            return Err(StorageError::CorruptRecord(format!(
                "Invalid magic found in record: {magic}"
            )));
        }
        batches.push((magic, pos..pos + size));
        pos += size;
    }
    let Some((magic, range)) = batches.first().cloned() else {
        return Err(invalid_record(
            "Produce requests with version 3 and above must have at least one record batch per partition"
                .into(),
        ));
    };
    if magic != 2 {
        return Err(invalid_record(
            "Produce requests with version 3 and above are only allowed to contain record batches with \
             magic version 2"
                .into(),
        ));
    }
    if batches.len() > 1 {
        return Err(invalid_record(
            "Produce requests with version 3 and above are only allowed to contain exactly one record batch \
             per partition"
                .into(),
        ));
    }
    if range.len() > max_message_bytes as usize {
        return Err(StorageError::RecordTooLarge {
            size: range.len() as u64,
            max: max_message_bytes as u64,
        });
    }
    let bytes = &records[range.clone()];
    let header = BatchHeader::parse(bytes)?;
    let crc = batch::compute_crc(bytes);
    if crc != header.crc {
        return Err(StorageError::CorruptRecord(format!(
            "CRC mismatch: batch says {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    let offset_range = header.last_offset_delta as i64 + 1;
    if offset_range <= 0 {
        return Err(invalid_record(format!(
            "Batch has an invalid offset range: [0, {}]",
            header.last_offset_delta
        )));
    }
    if header.record_count <= 0 {
        return Err(invalid_record(format!(
            "Invalid reported count for record batch: {}",
            header.record_count
        )));
    }
    if offset_range != header.record_count as i64 {
        return Err(invalid_record(format!(
            "Inconsistent batch offset range [0, {}] and count of records {}",
            header.last_offset_delta, header.record_count
        )));
    }
    Ok((header, range))
}

/// Validates one batch whose framing and CRC already passed; returns its true max timestamp.
fn client_batch(
    bytes: &[u8],
    header: &BatchHeader,
    config: &LogConfig,
    now_ms: i64,
) -> Result<i64, StorageError> {
    if header.base_offset != 0 {
        return Err(invalid_record(format!(
            "The baseOffset of the record batch in the append should be 0, but it is {}",
            header.base_offset
        )));
    }
    if header.attributes & ATTR_CONTROL != 0 {
        return Err(invalid_record(
            "Clients are not allowed to write control records".into(),
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(invalid_record(format!(
            "Invalid sequence number {} in record batch with producerId {}",
            header.base_sequence, header.producer_id
        )));
    }
    let codec = Codec::from_attributes(header.attributes);
    let compressed = codec.is_some_and(|c| c != Codec::None);
    let check_timestamps = config.timestamp_type == TimestampType::CreateTime;
    if check_timestamps && header.is_log_append_time() {
        return Err(StorageError::InvalidTimestamp {
            message: "One or more records have been rejected due to invalid timestamp".into(),
            record_errors: vec![RecordError {
                batch_index: 0,
                message: Some(
                    "Invalid timestamp type in message. Producer should not set timestamp type to \
                     LogAppendTime."
                        .into(),
                ),
            }],
        });
    }
    let earliest = now_ms.saturating_sub(config.message_timestamp_before_max_ms);
    let latest = now_ms.saturating_add(config.message_timestamp_after_max_ms);
    let mut record_errors = Vec::new();
    let mut max_timestamp = NO_TIMESTAMP;
    let mut visit = |index: usize, record: &records::RecordFields| {
        let timestamp = header.base_timestamp.wrapping_add(record.timestamp_delta);
        // Inside a compressed batch, Kafka demands offset deltas 0, 1, 2, ... (it may assign offsets in
        // place only then); a plain batch's deltas are overwritten by position.
        if compressed && record.offset_delta as i64 != index as i64 {
            record_errors.push((
                false,
                RecordError {
                    batch_index: index as i32,
                    message: Some(format!(
                        "Inner record inside the compressed record batch does not have incremental offsets, \
                         expected offset is {index}"
                    )),
                },
            ));
        }
        if check_timestamps
            && timestamp != NO_TIMESTAMP
            && (timestamp < earliest || timestamp > latest)
        {
            record_errors.push((
                true,
                RecordError {
                    batch_index: index as i32,
                    message: Some(format!(
                        "Timestamp {timestamp} of message with offset {} is out of range. The timestamp \
                         should be within [{earliest}, {latest}]",
                        record.offset_delta
                    )),
                },
            ));
        }
        max_timestamp = max_timestamp.max(timestamp);
        Ok(ControlFlow::Continue(()))
    };
    records::walk_batch(
        bytes,
        header,
        config.max_decompressed_batch_bytes,
        &mut visit,
    )
    .map_err(|e| match e {
        // Kafka answers these with UNKNOWN_SERVER_ERROR: the exception escapes its validator unmapped.
        RecordsError::UnknownCodec(_) | RecordsError::Decompression { .. } => {
            StorageError::Undecodable(e.to_string())
        }
        RecordsError::Invalid(message) => invalid_record(message),
        RecordsError::TooLarge { .. } => invalid_record(e.to_string()),
    })?;
    if !record_errors.is_empty() {
        let any_timestamp = record_errors.iter().any(|(ts, _)| *ts);
        let errors: Vec<RecordError> = record_errors.into_iter().map(|(_, e)| e).collect();
        return Err(if any_timestamp {
            StorageError::InvalidTimestamp {
                message: "One or more records have been rejected due to invalid timestamp".into(),
                record_errors: errors,
            }
        } else {
            StorageError::InvalidRecord {
                message: format!(
                    "One or more records have been rejected due to {} record errors in total, and only \
                     showing the first three errors at most: {:?}",
                    errors.len(),
                    errors
                        .iter()
                        .take(3)
                        .map(|e| e.message.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                ),
                record_errors: errors,
            }
        });
    }
    Ok(max_timestamp)
}
