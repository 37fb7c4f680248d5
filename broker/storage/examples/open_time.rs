//! Times reopening a partition log: `cargo run --release -p sluice-storage --example open_time -- [GiB] [segment MiB] [dir]`.
//!
//! Fills a log with GiB (default 4) of idempotent batches of one 1 KiB record each, from 8
//! producers, spread over segments of `segment MiB` (default 128), plus half a segment so the
//! active segment is half full. Closes it, then times reopens after a clean shutdown and after
//! removing the clean-shutdown marker (as after a crash: the active segment is recovered in full).
//! The data is in the page cache, so the figures are the CPU and syscall cost of opening, not
//! disk reads.
#![allow(clippy::unwrap_used)] // a measuring tool: any failure should abort loudly

use std::path::Path;
use std::time::Instant;

use sluice_storage::{Log, LogConfig};

const PRODUCERS: i64 = 8;
const BATCHES_PER_REQUEST: i32 = 16;
const RUNS: usize = 3;

#[path = "../tests/common/mod.rs"]
mod common;

/// A batch of one 1 KiB record for `producer_id`, whose base sequence is patched per append.
fn template(producer_id: i64) -> Vec<u8> {
    common::BatchSpec::new(1, 1_700_000_000_000)
        .producer(producer_id, 0, 0)
        .value_size(1024)
        .encode()
}

/// Sets the base sequence (bytes 53..57) and recomputes the CRC-32C (bytes 17..21, over 21..).
fn with_sequence(batch: &mut [u8], sequence: i32) {
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn timed_open(dir: &Path, config: &LogConfig, label: &str) -> Log {
    let start = Instant::now();
    let log = Log::open(dir, config.clone()).unwrap();
    let elapsed = start.elapsed();
    println!(
        "{label:>8} reopen: {:8.1} ms  (log end offset {})",
        elapsed.as_secs_f64() * 1000.0,
        log.log_end_offset()
    );
    println!("         {:?}", log.recovery_stats()); // stats
    log
}

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map_or(4.0, |a| a.parse().unwrap());
    let segment_mib: u64 = args.next().map_or(128, |a| a.parse().unwrap());
    let parent = args.next().map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(parent).unwrap();
    let dir = tmp.path().join("bench-0");
    let config = LogConfig {
        segment_bytes: segment_mib << 20,
        ..LogConfig::default()
    };

    let target = (gib * (1u64 << 30) as f64) as u64 + (segment_mib << 19);
    let templates: Vec<Vec<u8>> = (0..PRODUCERS).map(template).collect();
    let mut sequences = vec![0i32; PRODUCERS as usize];
    let mut log = Log::open(&dir, config.clone()).unwrap();
    let start = Instant::now();
    let mut request = Vec::new();
    let mut round = 0usize;
    while log.size_bytes() < target {
        let producer = round % PRODUCERS as usize;
        round += 1;
        request.clear();
        for _ in 0..BATCHES_PER_REQUEST {
            let mut batch = templates[producer].clone();
            with_sequence(&mut batch, sequences[producer]);
            sequences[producer] += 1;
            request.extend_from_slice(&batch);
        }
        log.append(&request, 0, 1_700_000_000_000).unwrap();
    }
    println!(
        "filled {:.2} GiB, {} batches, {} segments in {:.1} s",
        log.size_bytes() as f64 / (1u64 << 30) as f64,
        log.log_end_offset(),
        log.segment_base_offsets().len(),
        start.elapsed().as_secs_f64()
    );
    log.close().unwrap();

    for _ in 0..RUNS {
        timed_open(&dir, &config, "clean").close().unwrap();
    }
    for _ in 0..RUNS {
        std::fs::remove_file(dir.join(".clean-shutdown")).unwrap();
        timed_open(&dir, &config, "unclean").close().unwrap();
    }
}
