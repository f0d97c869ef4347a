//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`) through its target's body: this is how CI runs
//! the fuzzers' findings on stable.

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(kind)
        .join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, body) = syncfabric_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .expect("a known target");
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ is empty");
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(file).expect("a readable input");
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: inputs that fail: {failed:#?}");
}

#[test]
fn vault_json() {
    replay("vault_json");
}

#[test]
fn state_json() {
    replay("state_json");
}

#[test]
fn config_toml() {
    replay("config_toml");
}

#[test]
fn webdav_multistatus() {
    replay("webdav_multistatus");
}

#[test]
fn graph_json() {
    replay("graph_json");
}

#[test]
fn retry_after() {
    replay("retry_after");
}

/// Every target has a test above, a fuzz target and a corpus.
#[test]
fn every_target_is_wired() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (name, _) in syncfabric_fuzz::TARGETS {
        let target = root.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "missing {}", target.display());
    }
}
