//! Every seed in `fuzz/corpus/<target>/` and every past crash in `fuzz/regressions/<target>/`, through its
//! target's `run`, without libFuzzer: a fixed bug stays fixed in plain `cargo test`. A panic fails the test.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_every_past_crash_runs_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (target, run) in sluice_fuzz_harness::TARGETS {
        let seeds = inputs(&fuzz.join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
        let crashes = inputs(&fuzz.join("regressions").join(target));
        for path in seeds.iter().chain(&crashes) {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("{target}: {}", path.display());
            run(&data);
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .expect("fuzz/Cargo.toml");
    for (target, _) in sluice_fuzz_harness::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml lacks [[bin]] {target}"
        );
    }
}

/// Every API and version the broker serves has a default-body seed in both request corpora, byte for byte
/// what `seeds::default_requests` builds (rewrite them with `--example write_seeds`), and each one decodes.
#[test]
fn every_served_api_and_version_has_a_seed() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = sluice_fuzz_harness::seeds::default_requests();
    let served: i16 = sluice_protocol::versions::SUPPORTED
        .iter()
        .map(|&(_, min, max)| max - min + 1)
        .sum();
    assert_eq!(
        seeds.len(),
        served as usize,
        "a served version whose default body does not encode"
    );
    for (name, frame) in &seeds {
        sluice_protocol::parse_request(bytes::Bytes::copy_from_slice(frame))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for target in ["request_frame", "requests"] {
            let path = fuzz.join("corpus").join(target).join(name);
            let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                &stored,
                frame,
                "{} differs from what the generator builds",
                path.display()
            );
        }
    }
}
