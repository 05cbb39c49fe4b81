//! `sluice run` on a terminal: the real binary under a pseudo-terminal 80
//! columns wide, against `sluice mock-api` on 127.0.0.1. What it wrote is
//! read raw, cut at every `\r` and `\n`, stripped of ANSI escapes: each
//! piece is what a row showed at some moment.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{MockApi, generate, sluice};
use unicode_width::UnicodeWidthStr;

/// The terminal's width.
const COLUMNS: u16 = 80;

/// `sluice` with `args` on a fresh pseudo-terminal of 24 rows by
/// [`COLUMNS`], its stdout (the report) discarded: what the terminal
/// shows is stderr's, the status line and the log. Killed when dropped.
struct Terminal {
    child: Child,
    output: Receiver<Vec<u8>>,
    read: Vec<u8>,
}

impl Terminal {
    fn run(args: &[&str], dir: &Path) -> Terminal {
        let (pty, pts) = pty_process::blocking::open().unwrap();
        pty.resize(pty_process::Size::new(24, COLUMNS)).unwrap();
        let child = pty_process::blocking::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(dir)
            // The width comes from the terminal, before a stale COLUMNS; the
            // log is the default.
            .env("COLUMNS", "200")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .spawn(pts)
            .unwrap();
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut pty = pty;
            let mut buffer = [0_u8; 4096];
            // Ends when the terminal closes: EIO once the child is gone.
            while let Ok(n @ 1..) = pty.read(&mut buffer) {
                if sender.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            output,
            read: Vec::new(),
        }
    }

    /// Reads what the terminal showed until `done` holds of it (`None`:
    /// until the process ends), for at most `limit`.
    fn read_until(&mut self, limit: Duration, mut done: impl FnMut(&[String]) -> bool) {
        let start = Instant::now();
        loop {
            while let Ok(chunk) = self.output.try_recv() {
                self.read.extend(chunk);
            }
            if done(&self.rows()) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "not within {limit:?}; the terminal showed:\n{}",
                self.rows().join("\n")
            );
            if let Ok(chunk) = self.output.recv_timeout(Duration::from_millis(100)) {
                self.read.extend(chunk);
            }
        }
    }

    /// Waits for the process to end, at most `limit`, and reads what is
    /// left; whether it succeeded.
    fn wait(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < limit,
                "sluice did not end within {limit:?}; the terminal showed:\n{}",
                self.rows().join("\n")
            );
            if let Ok(chunk) = self.output.recv_timeout(Duration::from_millis(100)) {
                self.read.extend(chunk);
            }
        };
        // The rest, until the terminal closes (bounded all the same).
        while let Ok(chunk) = self.output.recv_timeout(Duration::from_secs(5)) {
            self.read.extend(chunk);
        }
        status.success()
    }

    /// What the rows showed, one piece per `\r` or `\n`, without ANSI
    /// escapes; empty pieces left out.
    fn rows(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.read);
        text.split(['\r', '\n'])
            .map(strip_ansi_escapes::strip_str)
            .filter(|row| !row.is_empty())
            .collect()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status lines among `rows`: what says how many were delivered, but
/// is neither a note (`sluice: ...`) nor a log line.
fn status_lines(rows: &[String]) -> Vec<&String> {
    rows.iter()
        .filter(|row| row.contains(" delivered"))
        .filter(|row| !row.starts_with("sluice:") && !row.contains("WARN"))
        .collect()
}

/// The percent a status line shows, if any: `62%` (narrow) or `62.3%`.
fn percent(line: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|word| word.strip_suffix('%')?.parse().ok())
}

#[test]
fn at_80_columns_the_status_line_fits_and_shows_the_share_read_and_an_eta() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "50/s"]);
    let input = generate(dir.path(), "orders.ndjson", 400, 11);
    let mut terminal = Terminal::run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--http-url",
            &api.url(),
            "--rate-limit",
            "50/s",
            "--max-attempts",
            "30",
            // Read as it is delivered, so that the share read moves.
            "--queue-capacity",
            "100",
        ],
        dir.path(),
    );
    let succeeded = terminal.wait(Duration::from_secs(90));
    let rows = terminal.rows();
    let shown = rows.join("\n");
    assert!(succeeded, "the run failed; the terminal showed:\n{shown}");

    let lines = status_lines(&rows);
    // 400 records at 50/s: about 8 s, a status line a second.
    assert!(lines.len() >= 3, "too few status lines:\n{shown}");
    for line in &lines {
        assert!(
            line.width() <= usize::from(COLUMNS),
            "{} columns: {line}",
            line.width()
        );
    }
    assert!(
        lines.iter().any(|line| line.contains("of 50/s")),
        "no quota:\n{shown}"
    );
    let shares: Vec<f64> = lines.iter().filter_map(|line| percent(line)).collect();
    assert_eq!(
        shares.len(),
        lines.len(),
        "status lines without the share read:\n{shown}"
    );
    assert!(
        shares.first() < Some(&100.0),
        "the file was read at once: {shares:?}"
    );
    assert!(
        shares.iter().all(|share| (0.0..=100.0).contains(share)),
        "{shares:?}"
    );
    assert!(
        shares.windows(2).all(|pair| pair[0] <= pair[1]),
        "the share read went back: {shares:?}"
    );
    assert!(
        lines.iter().filter(|line| line.contains("ETA ")).count() >= 2,
        "no ETA:\n{shown}"
    );
    // The last thing the terminal shows is not a status line: it is
    // erased at the end.
    let tail = String::from_utf8_lossy(&terminal.read);
    let last_erase = tail.rfind("\x1b[2K").expect("the status line erased");
    assert!(
        !tail[last_erase..].contains(" delivered"),
        "a status line left behind: {:?}",
        &tail[last_erase..]
    );
}

#[test]
fn a_log_line_of_the_api_failing_never_shares_a_row_with_the_status_line() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "50/s", "--failure-rate", "0"]);
    let addr = api.addr.clone();
    let input = generate(dir.path(), "orders.ndjson", 300, 12);
    let mut terminal = Terminal::run(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--http-url",
            &api.url(),
            "--rate-limit",
            "50/s",
            "--max-attempts",
            "30",
        ],
        dir.path(),
    );
    terminal.read_until(Duration::from_secs(30), |rows| {
        status_lines(rows)
            .iter()
            .any(|line| !line.starts_with("0 delivered"))
    });

    // The API goes down while a status line is shown: the log says it
    // fails, and the status line says so too.
    drop(api);
    terminal.read_until(Duration::from_secs(30), |rows| {
        status_lines(rows)
            .iter()
            .any(|line| line.starts_with("API FAILING  "))
    });

    // It comes back at the same address: the log says it answers again.
    let _api = restart_api(&addr);
    let succeeded = terminal.wait(Duration::from_secs(60));
    let rows = terminal.rows();
    let shown = rows.join("\n");
    assert!(succeeded, "the run failed; the terminal showed:\n{shown}");
    for said in ["the API is failing", "the API answers again"] {
        let rows: Vec<&String> = rows.iter().filter(|row| row.contains(said)).collect();
        assert!(!rows.is_empty(), "the log did not say {said:?}:\n{shown}");
        for row in rows {
            assert!(
                !row.contains(" delivered") && !row.contains("API FAILING"),
                "a log line shares a row with the status line: {row}"
            );
        }
    }
    for line in status_lines(&rows) {
        assert!(line.width() <= usize::from(COLUMNS), "{line}");
    }
}

/// `sluice mock-api` at `addr` again, once the address is free (within
/// 10 s).
fn restart_api(addr: &str) -> KillOnDrop {
    let start = Instant::now();
    loop {
        let mut api = KillOnDrop(
            sluice()
                .args(["mock-api", "--listen", addr, "--rate-limit", "none"])
                .args(["--failure-rate", "0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut first = String::new();
        let _ = BufReader::new(api.0.stdout.take().unwrap()).read_line(&mut first);
        if first.trim() == addr {
            return api;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no API at {addr} again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
