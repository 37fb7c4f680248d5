//! Test support, not a tool: appends idempotent batches (producer id `PRODUCER_ID`, epoch 0) to a log with
//! fsync after each and prints every acknowledged offset, until it is killed. `tests/recovery.rs` kills it with SIGKILL mid-append and checks that every
//! acknowledged batch survived recovery. A separate process is the only honest way to test `kill -9`.
#![allow(clippy::unwrap_used, dead_code)] // a test helper: any failure should abort loudly

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;

use sluice_storage::{Log, LogConfig};

const PRODUCER_ID: i64 = 4242;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: crash_writer DIR");
    let config = LogConfig {
        flush_interval_messages: Some(1),
        ..common::small_segments(4096)
    };
    let mut log = Log::open(Path::new(&dir), config).unwrap();
    let mut out = std::io::stdout();
    let mut sequence = 0i32;
    for i in 0usize.. {
        let count = 1 + i % 4;
        let batch = common::BatchSpec::new(count, i as i64)
            .producer(PRODUCER_ID, 0, sequence)
            .encode();
        sequence += count as i32;
        let info = common::append(&mut log, batch, i as i64);
        writeln!(out, "acked {}", info.last_offset).unwrap();
        out.flush().unwrap();
    }
}
