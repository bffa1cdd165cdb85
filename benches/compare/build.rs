//! Records, for the report, the compiler's version and the versions of the compared crates
//! (from the workspace's `Cargo.lock`).

use std::process::Command;

/// The crates whose versions the report names.
const CRATES: [&str; 7] = [
    "airssys-rt",
    "ractor",
    "kameo",
    "actix",
    "xtra",
    "tokio",
    "crossbeam-channel",
];

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc (unknown version)".to_string());
    println!("cargo:rustc-env=COMPARE_RUSTC_VERSION={version}");

    let lock = std::fs::read_to_string("../../Cargo.lock").unwrap_or_default();
    let mut found = Vec::new();
    for name in CRATES {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(at) = lock.find(&needle) {
            let rest = &lock[at + needle.len()..];
            if let Some(end) = rest.find('"') {
                found.push(format!("{name} {}", &rest[..end]));
            }
        }
    }
    println!("cargo:rustc-env=COMPARE_CRATE_VERSIONS={}", found.join(","));
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
