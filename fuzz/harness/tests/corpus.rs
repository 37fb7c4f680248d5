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
