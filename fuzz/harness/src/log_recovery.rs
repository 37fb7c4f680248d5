//! A partition directory as a crash, a bad disk or a hostile operator could leave it: segment files, their
//! offset and time indexes, producer snapshots and the log-start checkpoint, any of them torn, spoiled or
//! made up, with or without the clean-shutdown marker. `Log::open` must recover or refuse it with an error;
//! whatever it opens must then serve reads, timestamp lookups, replay, appends and truncation without a panic.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use sluice_storage::{Log, LogConfig, StorageError};

use crate::batches::{BatchSpec, encode_all};

#[derive(Arbitrary, Debug)]
enum Base {
    Zero,
    Small(u8),
    Any(i64),
}

impl Base {
    fn offset(&self) -> i64 {
        match *self {
            Base::Zero => 0,
            Base::Small(n) => n as i64,
            Base::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Content {
    /// Valid batches (unless spoiled), offsets from the file's base offset.
    Batches(Vec<BatchSpec>),
    /// Valid batches followed by raw bytes (a torn or overwritten tail).
    BatchesThen(Vec<BatchSpec>, Vec<u8>),
    Raw(Vec<u8>),
    /// Offset-index entries (relative offset, position), big-endian as on disk.
    OffsetEntries(Vec<(u32, u32)>),
    /// Time-index entries (timestamp, relative offset).
    TimeEntries(Vec<(i64, u32)>),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Log,
    Index,
    TimeIndex,
    Snapshot,
}

#[derive(Arbitrary, Debug)]
struct FileSpec {
    base: Base,
    kind: Kind,
    content: Content,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Read { offset: i64, max_bytes: u16 },
    OffsetForTimestamp(i64),
    MaxTimestamp,
    Replay,
    Append(Vec<BatchSpec>),
    TruncateTo(i64),
    DeleteRecordsBefore(i64),
    Retention(i64),
    Reopen,
}

#[derive(Arbitrary, Debug)]
struct Case {
    files: Vec<FileSpec>,
    log_start_checkpoint: Option<Vec<u8>>,
    clean_shutdown: bool,
    index_interval_bytes: u8,
    ops: Vec<Op>,
}

fn write_case(dir: &Path, case: &Case) -> std::io::Result<()> {
    for file in &case.files {
        let base = file.base.offset();
        let suffix = match file.kind {
            Kind::Log => "log",
            Kind::Index => "index",
            Kind::TimeIndex => "timeindex",
            Kind::Snapshot => "snapshot",
        };
        let bytes = match &file.content {
            Content::Batches(specs) => encode_all(specs, base),
            Content::BatchesThen(specs, tail) => {
                let mut bytes = encode_all(specs, base);
                bytes.extend_from_slice(tail);
                bytes
            }
            Content::Raw(bytes) => bytes.clone(),
            Content::OffsetEntries(entries) => entries
                .iter()
                .flat_map(|(o, p)| o.to_be_bytes().into_iter().chain(p.to_be_bytes()))
                .collect(),
            Content::TimeEntries(entries) => entries
                .iter()
                .flat_map(|(t, o)| t.to_be_bytes().into_iter().chain(o.to_be_bytes()))
                .collect(),
        };
        // Kafka's names: the base offset in 20 digits (a negative one makes a name the log ignores).
        std::fs::write(dir.join(format!("{base:020}.{suffix}")), bytes)?;
    }
    if let Some(checkpoint) = &case.log_start_checkpoint {
        std::fs::write(dir.join("log-start-offset-checkpoint"), checkpoint)?;
    }
    if case.clean_shutdown {
        std::fs::write(dir.join(".clean-shutdown"), b"")?;
    }
    Ok(())
}

fn config(case: &Case) -> LogConfig {
    LogConfig {
        // Small, so that appends roll segments and fill indexes.
        segment_bytes: 2048,
        max_index_size: 96,
        index_interval_bytes: case.index_interval_bytes as u32,
        retention_ms: Some(60_000),
        retention_bytes: Some(4096),
        max_decompressed_batch_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

fn exercise(log: &mut Log, op: &Op) -> Result<(), StorageError> {
    let now = 1_700_000_000_000;
    match op {
        Op::Read { offset, max_bytes } => {
            log.read(*offset, *max_bytes as u32, i64::MAX, true)?;
        }
        Op::OffsetForTimestamp(ts) => {
            log.offset_for_timestamp(*ts)?;
        }
        Op::MaxTimestamp => {
            log.max_timestamp();
        }
        Op::Replay => log.replay(&mut |_| Ok::<(), StorageError>(()))?,
        Op::Append(specs) => {
            let records = encode_all(specs, 0);
            log.append(&records, 0, now)?;
        }
        Op::TruncateTo(offset) => log.truncate_to(*offset)?,
        Op::DeleteRecordsBefore(offset) => {
            log.set_high_watermark(log.log_end_offset());
            log.delete_records_before(*offset)?;
        }
        Op::Retention(now_ms) => {
            log.enforce_retention(*now_ms)?;
        }
        // Handled by `run`, which owns the log.
        Op::Reopen => {}
    }
    Ok(())
}

pub fn run(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let Ok(dir) = crate::scratch_dir() else {
        return;
    };
    if write_case(dir.path(), &case).is_err() {
        return;
    }
    let config = config(&case);
    let Ok(mut log) = Log::open(dir.path(), config.clone()) else {
        return;
    };
    for op in case.ops.iter().take(16) {
        if let Op::Reopen = op {
            // A clean close, then the clean-shutdown path of the open.
            let _ = log.close();
            match Log::open(dir.path(), config.clone()) {
                Ok(reopened) => log = reopened,
                Err(_) => return,
            }
            continue;
        }
        // A refusal is fine; the log must still answer what comes next.
        let _ = exercise(&mut log, op);
    }
}
