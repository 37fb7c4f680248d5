//! See `sluice_fuzz_harness::sasl_exchange` (fuzz/harness/src/sasl_exchange.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::sasl_exchange::run(data));
