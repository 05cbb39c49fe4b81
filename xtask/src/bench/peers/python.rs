//! The Python client (`xtask/peers/python_client.py`): the virtual
//! environment the bench makes for it, with pinned packages from PyPI, and
//! its command line for a job.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::{CONCURRENCY, Job};
use crate::util::root;

/// The packages the client imports, pinned.
const REQUIREMENTS: [&str; 4] = [
    "aiohttp==3.14.5",
    "aiolimiter==1.3.0",
    "tenacity==9.2.1",
    "blake3==1.0.11",
];

/// The file in the environment that records what was installed in it:
/// when it holds [`REQUIREMENTS`], the environment is reused.
const INSTALLED: &str = "sluice-bench-requirements.txt";

/// The client's script.
fn script() -> PathBuf {
    root().join("xtask/peers/python_client.py")
}

/// Makes (once) `work/venv` with `python3 -m venv` (or `$PYTHON -m
/// venv`) and installs [`REQUIREMENTS`] in it with pip; returns its
/// interpreter.
pub fn prepare(work: &Path) -> anyhow::Result<PathBuf> {
    let venv = work.join("venv");
    let python = venv.join("bin/python");
    let installed = venv.join(INSTALLED);
    let wanted = REQUIREMENTS.join("\n");
    if python.exists() && std::fs::read_to_string(&installed).is_ok_and(|had| had == wanted) {
        return Ok(python);
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    eprintln!(
        "bench: peers: making {} ({system} -m venv, pip install)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    quiet(Command::new(&system).args(["-m", "venv"]).arg(&venv))
        .with_context(|| format!("could not make a virtual environment with {system} -m venv"))?;
    quiet(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
    )
    .context("could not install the Python client's packages with pip")?;
    std::fs::write(&installed, wanted)
        .with_context(|| format!("could not write {}", installed.display()))?;
    Ok(python)
}

/// Runs `command`, its output kept for the error if it fails.
fn quiet(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The client for `job` on `input` against `url`: [`CONCURRENCY`] calls
/// in flight, the job's batch, its quota as the limiter's rate.
pub fn command(python: &Path, job: Job, input: &Path, url: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(script())
        .arg(input)
        .args(["--url", url, "--concurrency"])
        .arg(CONCURRENCY.to_string())
        .arg("--batch")
        .arg(job.batch().to_string());
    if let Some(quota) = job.quota() {
        command.arg("--rate").arg(quota.to_string());
    }
    command
}
