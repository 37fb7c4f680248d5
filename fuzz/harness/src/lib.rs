//! The fuzz targets' bodies. Each module's `run` takes libFuzzer's bytes and drives one decoder or one recovery
//! path of the broker; a panic, an abort on allocation or a hang is a bug, an error is the right answer to
//! garbage. The cargo-fuzz binaries in `fuzz/fuzz_targets/` are one line each around these; `tests/corpus.rs`
//! replays every seed and every past crash through them in the main workspace's `cargo test`.

pub mod batches;
pub mod internal_logs;
pub mod log_recovery;
pub mod produce_batch;
pub mod request_frame;
pub mod requests;
pub mod sasl_exchange;
pub mod seeds;
pub mod tls_handshake;

/// A target's body: libFuzzer's bytes in, a panic out if there is a bug.
pub type Target = fn(&[u8]);

/// The targets, by the name cargo-fuzz knows them by.
pub const TARGETS: &[(&str, Target)] = &[
    ("request_frame", request_frame::run),
    ("produce_batch", produce_batch::run),
    ("log_recovery", log_recovery::run),
    ("internal_logs", internal_logs::run),
    ("requests", requests::run),
    ("tls_handshake", tls_handshake::run),
    ("sasl_exchange", sasl_exchange::run),
];

/// A scratch directory, in memory when the machine has /dev/shm: the recovery targets write files on every
/// input, and a disk would make them a hundred times slower.
pub(crate) fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("sluice-fuzz")
            .tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
}
