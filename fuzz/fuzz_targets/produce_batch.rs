//! See `sluice_fuzz_harness::produce_batch` (fuzz/harness/src/produce_batch.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::produce_batch::run(data));
