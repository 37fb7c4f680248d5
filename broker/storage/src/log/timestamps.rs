//! ListOffsets by timestamp: finding the first record at or after a time, and the record with the largest
//! timestamp, from the time index down to the records of one batch.

use std::ops::ControlFlow;

use crate::batch::BatchHeader;
use crate::records;
use crate::segment::Segment;
use crate::{Log, StorageError};

impl Log {
    /// ListOffsets by timestamp: the first record at or after the log start offset whose
    /// timestamp is >= `timestamp`, as (offset, record timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in self.segments.values() {
            if segment.planner.max_timestamp < timestamp
                || segment.next_offset <= self.log_start_offset
            {
                continue;
            }
            let (_, indexed_offset) = segment.time_index.lookup(timestamp);
            let mut position = segment.offset_index.lookup(indexed_offset).1 as u64;
            while position < segment.size {
                let header = segment.read_header(position)?;
                if header.max_timestamp >= timestamp
                    && header.last_offset() >= self.log_start_offset
                {
                    let found =
                        self.first_record_matching(segment, position, &header, |_, ts| {
                            ts >= timestamp
                        })?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                position += header.size();
            }
        }
        Ok(None)
    }

    /// Decodes a batch and returns (offset, timestamp) of its first record at or after the log
    /// start offset accepted by `pred`. Under LogAppendTime every record has the batch's time.
    fn first_record_matching(
        &self,
        segment: &Segment,
        position: u64,
        header: &BatchHeader,
        pred: impl Fn(i64, i64) -> bool,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let bytes = segment.read_batch(position, header)?;
        let mut found = None;
        // Stored batches were validated when appended, but the file is still input: walk it with the same
        // bounded reader, and stop at the first match.
        let walked = records::walk_batch(
            &bytes,
            header,
            self.config.max_decompressed_batch_bytes,
            &mut |_, record| {
                let offset = header.base_offset + record.offset_delta as i64;
                let ts = if header.is_log_append_time() {
                    header.max_timestamp
                } else {
                    header.base_timestamp.wrapping_add(record.timestamp_delta)
                };
                if offset >= self.log_start_offset && pred(offset, ts) {
                    found = Some((offset, ts));
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            },
        );
        match (found, walked) {
            (Some(hit), _) => Ok(Some(hit)),
            (None, Ok(())) => Ok(None),
            (None, Err(e)) => Err(StorageError::CorruptRecord(format!(
                "cannot decode the stored batch at position {position} of a segment in {}: {e}",
                self.dir.display()
            ))),
        }
    }

    /// (timestamp, offset) of the record with the largest timestamp (ListOffsets -3); `None` for
    /// an empty log.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values().filter(|s| s.size > 0) {
            if best.is_none_or(|b| segment.planner.max_timestamp > b.planner.max_timestamp) {
                best = Some(segment);
            }
        }
        let segment = best?;
        let max_ts = segment.planner.max_timestamp;
        let batch_last_offset = segment.planner.offset_of_max_timestamp;
        let exact = segment
            .find_batch(batch_last_offset, 0)
            .and_then(|found| match found {
                Some((position, header)) => {
                    self.first_record_matching(segment, position, &header, |_, ts| ts == max_ts)
                }
                None => Ok(None),
            });
        match exact {
            Ok(Some((offset, ts))) => Some((ts, offset)),
            Ok(None) => Some((max_ts, batch_last_offset)),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "max timestamp lookup fell back to batch level: {e}");
                Some((max_ts, batch_last_offset))
            }
        }
    }
}
