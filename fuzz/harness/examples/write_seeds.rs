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
    Ok(())
}
