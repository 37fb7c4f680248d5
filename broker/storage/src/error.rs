use std::io;

/// Every failure of this crate. The server maps the first variants to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Kafka `OFFSET_OUT_OF_RANGE`.
    #[error("offset {offset} is outside the log range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// Kafka `CORRUPT_MESSAGE`: bad CRC, bad magic, bad length, zero records, or an on-disk batch
    /// that no longer decodes.
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// Kafka `INVALID_RECORD`: the batch's framing is sound but its fields or records are not what a client
    /// may send (a record count that is not the records present, a non-zero base offset, ...).
    #[error("{message}")]
    InvalidRecord {
        message: String,
        record_errors: Vec<crate::RecordError>,
    },
    /// Kafka `INVALID_TIMESTAMP`: a record's timestamp is outside `message.timestamp.{before,after}.max.ms`.
    #[error("{message}")]
    InvalidTimestamp {
        message: String,
        record_errors: Vec<crate::RecordError>,
    },
    /// Compressed records that do not decompress, or an unknown codec id. Kafka lets the exception escape
    /// its validator, so clients see UNKNOWN_SERVER_ERROR; Sluice gives them the same code.
    #[error("{0}")]
    Undecodable(String),
    /// Kafka `MESSAGE_TOO_LARGE`.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: u64, max: u64 },
    /// Kafka `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, found {found}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    /// Kafka `INVALID_PRODUCER_EPOCH`.
    #[error("producer {producer_id} epoch {found} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        found: i16,
    },
    /// The log was closed (broker shutting down) or its partition deleted.
    #[error("log {0} is closed")]
    LogClosed(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
