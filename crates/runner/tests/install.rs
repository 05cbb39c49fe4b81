//! What installing sluice relies on: `sluice completions`, `sluice man`,
//! the global `-v`/`-q` flags, and the example systemd unit and its
//! configuration in contrib/systemd.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use clap::CommandFactory;
use common::{MockApi, sluice, wait_bounded};
use sluice::cli::Cli;
use sluice::commands::run::{EXIT_API_REFUSED, EXIT_DEAD_LETTERS, EXIT_INTERRUPTED, EXIT_SETTING};

/// Every subcommand, as typed.
const SUBCOMMANDS: [&str; 7] = [
    "simulate",
    "run",
    "check",
    "mock-api",
    "generate",
    "completions",
    "man",
];

/// `sluice args...`, its output once it exits.
fn output(args: &[&str]) -> Output {
    sluice().args(args).output().expect("the binary runs")
}

/// Its stdout, after checking that it exited 0.
fn stdout_of(args: &[&str]) -> String {
    let output = output(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 on stdout")
}

/// The repository's root.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_subcommands_listed_here_are_those_of_the_cli() {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|command| command.get_name().to_owned())
        .collect();
    assert_eq!(names, SUBCOMMANDS, "a new subcommand: list it in this test");
}

#[test]
fn each_shell_gets_its_own_completion_script_naming_every_subcommand() {
    for (shell, marker) in [
        ("bash", "complete -F _sluice"),
        ("zsh", "#compdef sluice"),
        ("fish", "complete -c sluice"),
        ("elvish", "edit:completion:arg-completer[sluice]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for subcommand in SUBCOMMANDS {
            assert!(script.contains(subcommand), "{shell}: no {subcommand}");
        }
        // Without their dashes: fish spells `--verbose` as `-l verbose`.
        for flag in ["verbose", "quiet", "http-url", "print-config"] {
            assert!(script.contains(flag), "{shell}: no {flag}");
        }
    }
}

#[test]
fn bash_completes_a_subcommand_and_a_flag_of_run() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.bash");
    std::fs::write(&path, script).unwrap();
    // What bash does on TAB after `sluice com` and after `sluice run --print`.
    let complete = |words: &str| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sluice sluice \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; echo \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(complete("sluice com").trim(), "completions");
    assert_eq!(complete("sluice run --print").trim(), "--print-config");
}

#[test]
fn an_unknown_shell_is_refused_with_the_shells_known() {
    let output = output(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("invalid value 'tcsh'"), "{said}");
    assert!(said.contains("bash") && said.contains("zsh") && said.contains("fish"));
    assert!(output.stdout.is_empty());
}

/// `page` with roff's escaped hyphens (`\-`) made plain.
fn plain(page: &str) -> String {
    page.replace("\\-", "-")
}

#[test]
fn the_manual_page_is_roff_and_names_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(page.contains(".TH sluice 1 "), "no title line");
    assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH SUBCOMMANDS"));
    let page = plain(&page);
    for subcommand in SUBCOMMANDS {
        assert!(
            page.contains(&format!("sluice-{subcommand}(1)")),
            "no sluice-{subcommand}(1)"
        );
    }
    assert!(page.contains("--verbose") && page.contains("--quiet"));
    assert!(!page.contains("sluice-help(1)"), "help has no page");
}

#[test]
fn man_dir_writes_a_page_per_subcommand_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("share/man/man1");
    let listed = stdout_of(&["man", "--dir", man1.to_str().unwrap()]);
    let mut expected = vec![man1.join("sluice.1")];
    expected.extend(SUBCOMMANDS.map(|name| man1.join(format!("sluice-{name}.1"))));
    let listed: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    assert_eq!(listed, expected);
    let mut written: Vec<PathBuf> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    written.sort();
    expected.sort();
    assert_eq!(written, expected, "no other file");
    let run = plain(&std::fs::read_to_string(man1.join("sluice-run.1")).unwrap());
    assert!(run.contains(".TH sluice-run 1 "), "no title line");
    assert!(run.contains("--http-url") && run.contains("Exit codes:"));
    assert_eq!(
        std::fs::read_to_string(man1.join("sluice.1")).unwrap(),
        stdout_of(&["man"]),
        "the page on stdout is the one in the directory"
    );
}

#[test]
fn man_dir_that_cannot_be_made_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let output = output(&["man", "--dir", file.join("man1").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.starts_with("sluice: could not create "), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn a_closed_stdout_ends_completions_and_man_quietly() {
    for args in [&["completions", "zsh"][..], &["man"]] {
        let mut child = sluice()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the first write: `sluice ... | head -0`.
        drop(child.stdout.take());
        let output = wait_bounded(child, Duration::from_secs(30));
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!said.contains("panicked"), "{args:?}: {said}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {said}");
    }
}

#[test]
fn v_and_q_are_global_flags_and_refused_together() {
    for args in [
        &["-v", "run", "--help"][..],
        &["-vvv", "completions", "bash"],
        &["completions", "bash", "--verbose"],
        &["-q", "completions", "bash"],
        &["man", "--quiet"],
    ] {
        stdout_of(args);
    }
    for args in [
        &["-q", "-v", "man"][..],
        &["man", "-qv"],
        &["-v", "man", "--quiet"],
    ] {
        let output = output(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("cannot be used with"), "{args:?}: {said}");
    }
}

#[test]
fn an_invalid_rust_log_is_refused_and_a_valid_one_is_taken() {
    let output = sluice()
        .args(["man"])
        .env("RUST_LOG", "sluice=loudest")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(EXIT_SETTING)));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.starts_with("sluice: RUST_LOG is not a valid log filter"),
        "{said}"
    );
    let output = sluice()
        .args(["-v", "man"])
        .env("RUST_LOG", "sluice=debug,hyper=warn")
        .output()
        .unwrap();
    assert!(output.status.success());
}

/// `sluice run` of `numbers.ndjson` (20 JSON objects and one line that is
/// not JSON) into `api`, with `flags` before `run` and `extra` after it;
/// its exit code, stdout and stderr.
fn run_numbers(api: &MockApi, flags: &[&str], extra: &[&str]) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let mut lines: String = (1..=20).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    lines.push_str("not json\n");
    std::fs::write(tmp.path().join("numbers.ndjson"), lines).unwrap();
    let child = sluice()
        .current_dir(tmp.path())
        .args(flags)
        .args(["run", "numbers.ndjson", "--profile", "json"])
        .args(["--http-url", &api.url(), "--rate-limit", "none"])
        .args(["--dead-letters", "dead.ndjson"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child, Duration::from_secs(60));
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn quiet_keeps_the_json_report_where_the_dead_letters_are_and_why_a_run_failed() {
    let api = MockApi::start(&["--rate-limit", "none", "--failure-rate", "0"]);
    let letters = "1 record(s) dead-lettered; the letters are in dead.ndjson";
    let note = "name no partition";

    let (code, report, said) = run_numbers(&api, &[], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!report.trim().is_empty(), "a human report");
    assert!(said.contains(note), "{said}");
    assert!(said.contains(letters), "{said}");

    let (code, report, said) = run_numbers(&api, &["-q"], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(report, "", "no report of a run that did its job");
    assert!(!said.contains(note), "no note when quiet: {said}");
    assert!(said.contains(letters), "{said}");

    let (code, report, said) = run_numbers(&api, &[], &["--json", "--quiet"]);
    assert_eq!(code, Some(0), "{said}");
    let report: serde_json::Value = serde_json::from_str(&report).expect("the JSON report");
    assert_eq!(report["delivered"], 20, "{report}");
    assert_eq!(report["dead_lettered"], 1, "{report}");
    assert!(said.contains(letters), "{said}");

    // One dead letter too many: the report says why the run exits 4.
    let (code, report, said) = run_numbers(&api, &["-q"], &["--max-dead-letters", "0"]);
    assert_eq!(code, Some(i32::from(EXIT_DEAD_LETTERS)), "{said}");
    assert!(!report.trim().is_empty(), "the report, which says why");
    assert!(said.contains(letters), "{said}");

    assert_eq!(api.counts().records_delivered, 80, "four runs of 20");
}

/// The value of `key` in the `[Service]` section of `unit` (the last one
/// set).
fn service_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .skip_while(|line| line.trim() != "[Service]")
        .take_while(|line| !line.starts_with("[Install]"))
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim())
        .last()
}

/// `30s`, `2min`, `90` (seconds) as seconds.
fn seconds(value: &str) -> f64 {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| c.is_alphabetic())
            .unwrap_or(value.len()),
    );
    let number: f64 = number.parse().unwrap();
    number
        * match unit {
            "" | "s" | "sec" => 1.0,
            "ms" => 0.001,
            "min" | "m" => 60.0,
            other => panic!("unit {other}"),
        }
}

#[test]
fn the_example_configuration_parses() {
    let config = repository().join("contrib/systemd/run.toml");
    let printed = stdout_of(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--print-config",
    ]);
    let printed: toml::Table = printed.parse().unwrap();
    assert_eq!(printed["source"].as_str(), Some("nats"));
    assert_eq!(printed["nats"]["stream"].as_str(), Some("RECORDS"));
    let header = printed["http"]["headers"][0].as_str().unwrap();
    assert!(
        header.ends_with("${API_TOKEN}"),
        "the secret stays in the environment: {header}"
    );
}

#[test]
fn the_example_unit_runs_that_configuration_and_outlives_its_drain() {
    let unit =
        std::fs::read_to_string(repository().join("contrib/systemd/sluice.service")).unwrap();
    assert_eq!(service_value(&unit, "Type"), Some("simple"));
    assert_eq!(
        service_value(&unit, "ExecStart"),
        Some("/usr/local/bin/sluice run --config /etc/sluice/run.toml")
    );
    assert_eq!(
        service_value(&unit, "EnvironmentFile"),
        Some("/etc/sluice/env")
    );
    assert_eq!(service_value(&unit, "KillSignal"), Some("SIGTERM"));
    assert_eq!(service_value(&unit, "Restart"), Some("on-failure"));
    assert_eq!(
        service_value(&unit, "SuccessExitStatus"),
        Some(EXIT_INTERRUPTED.to_string().as_str()),
        "stopped by systemctl stop is no failure"
    );
    assert_eq!(
        service_value(&unit, "RestartPreventExitStatus"),
        Some(EXIT_API_REFUSED.to_string().as_str())
    );
    let config = repository().join("contrib/systemd/run.toml");
    let printed: toml::Table = stdout_of(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--print-config",
    ])
    .parse()
    .unwrap();
    let drain = seconds(printed["drain_deadline"].as_str().unwrap());
    let stop = seconds(service_value(&unit, "TimeoutStopSec").unwrap());
    assert!(
        stop >= 2.0 * drain,
        "TimeoutStopSec {stop}s against a drain deadline of {drain}s"
    );
    let dead_letters = printed["dead_letters"].as_str().unwrap();
    let state = service_value(&unit, "StateDirectory").unwrap();
    assert!(
        dead_letters.starts_with(&format!("/var/lib/{state}/")),
        "{dead_letters} outside the StateDirectory, which alone is writable"
    );
}
