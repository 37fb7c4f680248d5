//! Any bytes as one request frame (what follows the size prefix), through the broker's own entry point, for
//! every API and version its table serves.

pub fn run(data: &[u8]) {
    let _ = sluice_protocol::parse_request(bytes::Bytes::copy_from_slice(data));
}
