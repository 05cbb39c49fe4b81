//! `sluice mock-api` as a child process, for the HTTP scenarios.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cpu_time_of;

/// A `sluice mock-api` process on 127.0.0.1 with no limit, no failures and
/// no latency. The binary is `$SLUICE_BIN`, else `target/release/sluice`
/// (`cargo xtask bench` builds it).
pub struct MockApi {
    child: Child,
    /// `http://ADDR`.
    pub url: String,
}

impl MockApi {
    /// Starts the server and reads its address (its first line).
    pub fn start() -> MockApi {
        let binary = std::env::var_os("SLUICE_BIN").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/sluice"),
            PathBuf::from,
        );
        let mut child = Command::new(&binary)
            .args([
                "mock-api",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "none",
                "--failure-rate",
                "0",
                "--latency",
                "0ms",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut address = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        MockApi {
            child,
            url: format!("http://{}", address.trim()),
        }
    }

    /// The server process's CPU time.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Stops the server with SIGTERM; its closing line (calls, successes,
    /// records).
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut closing = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut closing);
        }
        let _ = self.child.wait();
        closing.trim().to_owned()
    }
}

impl Drop for MockApi {
    /// A scenario that panics leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
