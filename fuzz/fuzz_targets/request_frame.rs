//! See `sluice_fuzz_harness::request_frame` (fuzz/harness/src/request_frame.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::request_frame::run(data));
