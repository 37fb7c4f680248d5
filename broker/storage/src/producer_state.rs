//! Idempotent producer bookkeeping: per producer id, its epoch and the last few batches, to
//! detect retried (duplicate) batches and sequence gaps the way Kafka does.

use std::collections::{HashMap, VecDeque};

use crate::StorageError;
use crate::batch::{BatchHeader, increment_sequence};

/// Kafka keeps the metadata of the last 5 batches (max.in.flight.requests.per.connection = 5).
pub(crate) const MAX_CACHED_BATCHES: usize = 5;
const CONTROL_BIT: i16 = 0x20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time under LogAppendTime).
    pub timestamp: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most `MAX_CACHED_BATCHES`.
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    fn push(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// Changes checked against the current state but not yet applied, so one append of several
/// batches either applies entirely or not at all.
pub(crate) type StagedProducers = HashMap<i64, ProducerEntry>;

#[derive(Default)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

/// Batches that take part in idempotence: a producer id, a sequence, and not a control batch.
fn is_idempotent(header: &BatchHeader) -> bool {
    header.producer_id >= 0 && header.base_sequence >= 0 && header.attributes & CONTROL_BIT == 0
}

fn metadata(header: &BatchHeader, base_offset: i64, timestamp: i64) -> BatchMetadata {
    BatchMetadata {
        first_seq: header.base_sequence,
        last_seq: header.last_sequence(),
        base_offset,
        last_offset: base_offset + header.last_offset_delta as i64,
        timestamp,
    }
}

impl ProducerState {
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Forgets producers whose newest batch is older than `expiration_ms` at `now_ms`; returns
    /// how many. A forgotten producer that writes again is treated as new, as in Kafka.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry
                .batches
                .back()
                .is_some_and(|last| now_ms.saturating_sub(last.timestamp) < expiration_ms)
        });
        before - self.producers.len()
    }

    /// Every producer, by id (sorted, so a snapshot of the same state is the same bytes).
    pub fn entries(&self) -> Vec<(i64, &ProducerEntry)> {
        let mut entries: Vec<_> = self.producers.iter().map(|(&pid, e)| (pid, e)).collect();
        entries.sort_unstable_by_key(|&(pid, _)| pid);
        entries
    }

    /// Sets one producer's state (loading a snapshot).
    pub fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// Checks a batch about to be written at `base_offset` and stages its effect. Returns the
    /// original batch when it is a duplicate (same producer epoch and sequence range).
    pub fn check(
        &self,
        staged: &mut StagedProducers,
        header: &BatchHeader,
        base_offset: i64,
        timestamp: i64,
    ) -> Result<Option<BatchMetadata>, StorageError> {
        if !is_idempotent(header) {
            return Ok(None);
        }
        let pid = header.producer_id;
        let epoch = header.producer_epoch;
        let first = header.base_sequence;
        let current = staged.get(&pid).or_else(|| self.producers.get(&pid));
        let out_of_order = |expected: i32| StorageError::OutOfOrderSequence {
            producer_id: pid,
            expected,
            found: first,
        };
        match current {
            None if first != 0 => return Err(out_of_order(0)),
            None => {}
            Some(entry) if epoch < entry.epoch => {
                return Err(StorageError::InvalidProducerEpoch {
                    producer_id: pid,
                    current: entry.epoch,
                    found: epoch,
                });
            }
            // A new epoch must restart the sequence at 0.
            Some(entry) if epoch > entry.epoch && first != 0 => return Err(out_of_order(0)),
            Some(entry) if epoch > entry.epoch => {}
            Some(entry) => {
                let last = header.last_sequence();
                if let Some(dup) = entry
                    .batches
                    .iter()
                    .find(|b| b.first_seq == first && b.last_seq == last)
                {
                    return Ok(Some(*dup));
                }
                let expected = entry
                    .batches
                    .back()
                    .map_or(0, |b| increment_sequence(b.last_seq, 1));
                if first != expected {
                    return Err(out_of_order(expected));
                }
            }
        }
        let mut entry = current.cloned().unwrap_or(ProducerEntry {
            epoch,
            batches: VecDeque::new(),
        });
        entry.push(epoch, metadata(header, base_offset, timestamp));
        staged.insert(pid, entry);
        Ok(None)
    }

    pub fn commit(&mut self, staged: StagedProducers) {
        self.producers.extend(staged);
    }

    /// Rebuilds state from a batch already in the log (no checks: the log is the truth).
    pub fn replay(&mut self, header: &BatchHeader) {
        if !is_idempotent(header) {
            return;
        }
        let batch = metadata(header, header.base_offset, header.max_timestamp);
        self.producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
            })
            .push(header.producer_epoch, batch);
    }
}
