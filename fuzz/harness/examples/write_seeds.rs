//! Writes the default-body request seeds (`sluice_fuzz_harness::seeds`) into the request targets' corpora:
//! `cargo run -p sluice-fuzz-harness --example write_seeds`.

fn main() -> std::io::Result<()> {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let seeds = sluice_fuzz_harness::seeds::default_requests();
    for target in ["request_frame", "requests"] {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, frame) in &seeds {
            std::fs::write(dir.join(name), frame)?;
        }
    }
    println!("{} seeds written to each request target", seeds.len());
    // A real ClientHello, without and with required client certificates, read whole or record by record.
    let dir = corpus.join("tls_handshake");
    std::fs::create_dir_all(&dir)?;
    for mode in [0u8, 1, 2, 3] {
        let hello = sluice_fuzz_harness::tls_handshake::client_hello(mode);
        std::fs::write(dir.join(format!("client-hello-{mode}")), hello)?;
    }
    let dir = corpus.join("sasl_exchange");
    std::fs::create_dir_all(&dir)?;
    for (name, seed) in sluice_fuzz_harness::sasl_exchange::seeds() {
        std::fs::write(dir.join(name), seed)?;
    }
    Ok(())
}
