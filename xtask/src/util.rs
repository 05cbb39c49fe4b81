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

/// `sluice generate --records RECORDS --seed 1 --partitions 8 EXTRA` into
/// `path`, unless it is there already (made once: the same seed makes the
/// same file).
pub fn generated_file(
    sluice: &Path,
    path: &Path,
    records: u64,
    extra: &[&str],
) -> anyhow::Result<PathBuf> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = path.with_extension("partial");
        let status = Command::new(sluice)
            .args(["generate", "--records"])
            .arg(records.to_string())
            .args(["--seed", "1", "--partitions", "8"])
            .args(extra)
            .stdout(std::fs::File::create(&partial)?)
            .status()
            .context("could not run sluice generate")?;
        if !status.success() {
            bail!("sluice generate failed ({status})");
        }
        std::fs::rename(&partial, path)?;
    }
    Ok(path.to_path_buf())
}

/// The time now, UTC, as the machine's `date -u FORMAT` prints it.
pub fn utc(format: &str) -> String {
    Command::new("date")
        .args(["-u", format])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
