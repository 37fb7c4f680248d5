//! Reading a log back record by record, keys and values included: how the broker rebuilds its state from
//! its internal logs (`__cluster_metadata`, `__consumer_offsets`) at start-up.
//!
//! Those logs are read whole, so everything here is bounded by the bytes actually on disk: one batch is in
//! memory at a time, its CRC is checked before its records are trusted, records are walked with the same
//! bounded reader as client batches, and compressed records inflate to at most
//! `sluice.max.decompressed.batch.bytes`. A batch that does not hold up is an error naming the file and
//! the position, never a panic or an allocation sized by a claim.

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::records::{self, RecordView};
use crate::{Log, StorageError};

/// One stored record, as replay hands it out.
#[derive(Clone, Copy, Debug)]
pub struct StoredRecord<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The batch is a control batch (a transaction marker).
    pub control: bool,
    /// The batch belongs to a transaction.
    pub transactional: bool,
}

const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// Hands every record of one whole, CRC-checked batch at or after `min_offset` to `visit`.
fn visit_batch<E: From<StorageError>>(
    bytes: &[u8],
    header: &BatchHeader,
    min_offset: i64,
    max_decompressed_bytes: u64,
    visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), E>,
    place: &dyn Fn() -> String,
) -> Result<(), E> {
    let mut failure = None;
    let walked = records::read_batch_records(
        bytes,
        header,
        max_decompressed_bytes,
        &mut |record: RecordView<'_>| {
            let offset = header.base_offset + record.offset_delta as i64;
            if offset < min_offset {
                return Ok(());
            }
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(record.timestamp_delta)
            };
            let stored = StoredRecord {
                offset,
                timestamp,
                key: record.key,
                value: record.value,
                control: header.attributes & CONTROL != 0,
                transactional: header.attributes & TRANSACTIONAL != 0,
            };
            visit(stored).map_err(|e| {
                failure = Some(e);
                records::RecordsError::Invalid(String::new())
            })
        },
    );
    if let Some(e) = failure {
        return Err(e);
    }
    walked.map_err(|e| {
        StorageError::CorruptRecord(format!(
            "cannot read the records of the batch {}: {e}",
            place()
        ))
        .into()
    })
}

/// Replays the record batches concatenated in `bytes` (a raw `.log` file's contents, say): every record,
/// in order. Trailing bytes too short for a batch header are ignored, as a torn write at the end of a
/// segment would leave them; anything else that does not parse is an error.
pub fn replay_bytes<E: From<StorageError>>(
    bytes: &[u8],
    max_decompressed_bytes: u64,
    visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut position = 0usize;
    while bytes.len() - position >= HEADER_SIZE {
        let place = || format!("at byte {position}");
        let header = BatchHeader::parse(&bytes[position..])?;
        let end = usize::try_from(header.size())
            .ok()
            .and_then(|size| position.checked_add(size))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                StorageError::CorruptRecord(format!(
                    "the batch {} claims {} bytes, {} are left",
                    place(),
                    header.size(),
                    bytes.len() - position
                ))
            })?;
        let batch = &bytes[position..end];
        batch::validate_batch(batch)?;
        visit_batch(
            batch,
            &header,
            i64::MIN,
            max_decompressed_bytes,
            visit,
            &place,
        )?;
        position = end;
    }
    Ok(())
}

impl Log {
    /// Replays every record from the log start offset to the log end, in order, one batch in memory at a
    /// time. Errors name the segment file and the position of the batch that failed.
    pub fn replay<E: From<StorageError>>(
        &self,
        visit: &mut dyn FnMut(StoredRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let limit = self.config.max_decompressed_batch_bytes;
        for segment in self.segments.values() {
            if segment.next_offset <= self.log_start_offset {
                continue;
            }
            let Some((mut position, _)) = segment.find_batch(self.log_start_offset, 0)? else {
                continue;
            };
            while position < segment.size {
                let place =
                    || format!("at position {position} of {}", segment.log_path().display());
                let header = segment.read_header(position)?;
                let bytes = segment.read_batch(position, &header)?;
                batch::validate_batch(&bytes).map_err(|e| {
                    StorageError::CorruptRecord(format!("the batch {}: {e}", place()))
                })?;
                visit_batch(&bytes, &header, self.log_start_offset, limit, visit, &place)?;
                position += header.size();
            }
        }
        Ok(())
    }
}
