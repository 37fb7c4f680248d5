//! See `sluice_fuzz_harness::requests` (fuzz/harness/src/requests.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::requests::run(data));
