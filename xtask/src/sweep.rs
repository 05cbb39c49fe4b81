//! `cargo xtask sweep`: the deterministic simulation sweep over more seeds,
//! built in release.

use std::process::Command;

use anyhow::{Context, bail};

use crate::util::root;

/// Flags of `cargo xtask sweep`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many scenarios to run.
    #[arg(long, default_value_t = 1_000)]
    runs: u64,
    /// The first seed; scenario i uses seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs the sweep test with the chosen seeds; `Ok(false)` if a scenario fails.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!(
        "sweep: seeds {}..{} (release build)",
        args.seed,
        args.seed.saturating_add(args.runs)
    );
    let status = Command::new(cargo)
        .current_dir(root())
        .args([
            "test",
            "--release",
            "--quiet",
            "--package",
            "sluice-tests",
            "--test",
            "sweep",
            "--",
            "--nocapture",
        ])
        .env("SLUICE_SWEEP_SEED", args.seed.to_string())
        .env("SLUICE_SWEEP_RUNS", args.runs.to_string())
        .status()
        .context("could not run cargo test")?;
    Ok(status.success())
}
