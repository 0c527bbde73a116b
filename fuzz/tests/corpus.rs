//! Replays every target's committed seed corpus (`fuzz/corpus/<target>/`) through its body on
//! the stable toolchain, so `make test` catches a regression on any seed, crash reproducer
//! included, without nightly or libFuzzer.

use std::path::Path;

#[test]
fn every_target_passes_its_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut failed = Vec::new();
    for (name, body) in aetherflow_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: no seed in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).expect("a readable seed");
            let run = std::panic::catch_unwind(|| body(&data));
            if run.is_err() {
                failed.push(format!("{name}: {}", file.display()));
            }
        }
    }
    assert!(failed.is_empty(), "seeds that fail:\n{}", failed.join("\n"));
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cargo-fuzz");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("cargo-fuzz/Cargo.toml");
    for (name, _) in aetherflow_fuzz::TARGETS {
        let source = dir.join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(text.contains("aetherflow_fuzz::"), "{name}: not a wrapper");
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name}: no [[bin]]"
        );
    }
}
