//! See `sluice_fuzz_harness::internal_logs` (fuzz/harness/src/internal_logs.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::internal_logs::run(data));
