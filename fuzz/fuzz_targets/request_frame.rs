//! Any bytes as one request frame (what follows the size prefix): decoded by the broker's own entry point,
//! for every API and version its table serves. A crash, an abort on allocation or a hang is a bug; an error
//! is the right answer to garbage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_protocol::parse_request(bytes::Bytes::copy_from_slice(data));
});
