//! Helpers shared by the tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the `sluice` binary in release and returns its path.
pub fn build_release_sluice() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--release", "--quiet", "--package", "sluice"])
        .status()
        .context("could not run cargo build")?;
    if !status.success() {
        bail!("cargo build --release --package sluice failed ({status})");
    }
    // Where cargo put it: `CARGO_TARGET_DIR` (relative to the root, where
    // cargo ran) when set.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), |dir| root().join(dir));
    Ok(target.join("release/sluice"))
}

/// One PASS/FAIL line.
pub fn verdict(passed: bool, name: &str, detail: &str) -> String {
    format!("{} {name}: {detail}", if passed { "PASS" } else { "FAIL" })
}
