//! See `sluice_fuzz_harness::tls_handshake` (fuzz/harness/src/tls_handshake.rs) for what this target drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz_harness::tls_handshake::run(data));
