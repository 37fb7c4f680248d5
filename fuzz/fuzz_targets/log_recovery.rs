//! See `sluice_fuzz_harness::log_recovery` (fuzz/harness/src/log_recovery.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::log_recovery::run(data));
