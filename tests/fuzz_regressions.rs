//! Replays every input in `fuzz/regressions/<target>/` through the fuzz targets' own checks
//! (`fuzz/src/lib.rs`, compiled here as a module), so that inputs the fuzzers found, and the
//! hand-made ones next to them, keep passing without nightly or cargo-fuzz.
//!
//! To add one: copy the crash file from `fuzz/artifacts/<target>/` into
//! `fuzz/regressions/<target>/` under a name that says what it tests.
//!

#[path = "../fuzz/src/lib.rs"]
mod fuzz_logic;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

/// The inputs of `target` in `fuzz/<set>/<target>/`, sorted by name (none if the directory
/// does not exist).
fn inputs(set: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(set)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<_> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, data)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Runs each input with `run`, reporting every failing input (not only the first).
fn replay(target: &str, inputs: &[(String, Vec<u8>)], run: fn(&str, &[u8]) -> bool) {
    let failed: Vec<_> = inputs
        .iter()
        .filter(|(_, data)| {
            panic::catch_unwind(AssertUnwindSafe(|| {
                assert!(run(target, data), "unknown target {target}");
            }))
            .is_err()
        })
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed: {failed:?}",
        failed.len(),
        inputs.len()
    );
}

/// Replays `fuzz/regressions/<target>/`, which must not be empty.
fn regressions(target: &str) {
    let inputs = inputs("regressions", target);
    assert!(!inputs.is_empty(), "fuzz/regressions/{target} is empty");
    replay(target, &inputs, fuzz_logic::run);
}

#[test]
fn external_bytes() {
    regressions("external_bytes");
}

#[test]
fn mailbox_ops() {
    regressions("mailbox_ops");
}

#[test]
fn arena_layout() {
    regressions("arena_layout");
}

#[test]
fn every_target_is_replayed() {
    assert_eq!(
        fuzz_logic::TARGETS,
        ["external_bytes", "mailbox_ops", "arena_layout"]
    );
}

/// The targets take any bytes: degenerate inputs must pass too.
#[test]
fn degenerate_inputs() {
    for target in fuzz_logic::TARGETS {
        for data in [&[][..], &[0], &[0xff], &[0; 64], &[0xff; 64]] {
            assert!(fuzz_logic::run(target, data));
        }
    }
}
