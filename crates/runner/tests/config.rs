//! `sluice run`'s settings through the binary: the same settings as flags,
//! as a TOML file and as `SLUICE_` variables print the same effective
//! configuration; flags win over variables, variables over the file; the
//! old spellings still work; errors name the key and where it was set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::process::{Command, Output};

/// `sluice run ARGS --print-config` with `env` (and no other `SLUICE_`
/// variable).
fn print_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("run").args(args).arg("--print-config");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SLUICE_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every setting of this test, as flags.
const FLAGS: &[&str] = &[
    "a.ndjson",
    "b.ndjson",
    "--profile",
    "json",
    "--stream-field",
    "/meta/stream",
    "--checkpoint",
    "state",
    "--stream",
    "orders",
    "--rate-limit",
    "1000/min",
    "--concurrency",
    "4",
    "--queue-capacity",
    "200",
    "--batch-max",
    "10",
    "--max-attempts",
    "3",
    "--ordering",
    "partition",
    "--drain-deadline",
    "2s",
    "--dead-letters",
    "dead.ndjson",
    "--metrics-addr",
    "127.0.0.1:9898",
    "--http-url",
    "http://127.0.0.1:8080/records",
    "--http-header",
    "X-Client: sluice",
    "--http-timeout",
    "3s",
    "--json",
];

/// The same settings as a config file.
const FILE: &str = r#"
inputs = ["a.ndjson", "b.ndjson"]
profile = "json"
stream_field = "/meta/stream"
checkpoint = "state"
rate_limit = "1000/min"
concurrency = 4
queue_capacity = 200
batch_max = 10
max_attempts = 3
ordering = "partition"
drain_deadline = "2s"
dead_letters = "dead.ndjson"
metrics_addr = "127.0.0.1:9898"
json = true

[files]
stream = "orders"

[http]
url = "http://127.0.0.1:8080/records"
headers = ["X-Client: sluice"]
timeout = "3s"
"#;

/// The same settings as variables.
const ENV: &[(&str, &str)] = &[
    ("SLUICE_INPUTS", "[a.ndjson, b.ndjson]"),
    ("SLUICE_PROFILE", "json"),
    ("SLUICE_STREAM_FIELD", "/meta/stream"),
    ("SLUICE_CHECKPOINT", "state"),
    ("SLUICE_FILES_STREAM", "orders"),
    ("SLUICE_RATE_LIMIT", "1000/min"),
    ("SLUICE_CONCURRENCY", "4"),
    ("SLUICE_QUEUE_CAPACITY", "200"),
    ("SLUICE_BATCH_MAX", "10"),
    ("SLUICE_MAX_ATTEMPTS", "3"),
    ("SLUICE_ORDERING", "partition"),
    ("SLUICE_DRAIN_DEADLINE", "2s"),
    ("SLUICE_DEAD_LETTERS", "dead.ndjson"),
    ("SLUICE_METRICS_ADDR", "127.0.0.1:9898"),
    ("SLUICE_HTTP_URL", "http://127.0.0.1:8080/records"),
    ("SLUICE_HTTP_HEADERS", "[\"X-Client: sluice\"]"),
    ("SLUICE_HTTP_TIMEOUT", "3s"),
    ("SLUICE_JSON", "true"),
];

fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

#[test]
fn flags_a_file_and_variables_print_the_same_configuration() {
    let from_flags = stdout(&print_config(FLAGS, &[]));
    for line in [
        "concurrency = 4",
        "rate_limit = \"1000/min\"",
        "json = true",
        "stream = \"orders\"",
        "timeout = \"3s\"",
        "source = \"files\"",
    ] {
        assert!(from_flags.contains(line), "{line} in\n{from_flags}");
    }
    let (_dir, path) = config_file(FILE);
    let from_file = stdout(&print_config(&["--config", &path], &[]));
    assert_eq!(from_file, from_flags);
    let from_env = stdout(&print_config(&[], ENV));
    assert_eq!(from_env, from_flags);
}

#[test]
fn every_flag_changes_the_effective_configuration() {
    // With nothing else given, each key holds its default (or is absent);
    // each flag of FLAGS changes what is printed.
    let base = ["--profile", "json"];
    let defaults = stdout(&print_config(&base, &[]));
    assert!(defaults.contains("concurrency = 16") && defaults.contains("queue_capacity = 1000"));
    for pair in FLAGS[4..FLAGS.len() - 1].chunks(2) {
        let printed = stdout(&print_config(&[&base[..], pair].concat(), &[]));
        assert_ne!(printed, defaults, "{pair:?} changed nothing");
    }
    assert_ne!(
        stdout(&print_config(&["--json"], &[])),
        stdout(&print_config(&[], &[]))
    );
}

#[test]
fn flags_win_over_variables_which_win_over_the_file() {
    let (_dir, path) = config_file("concurrency = 1\nbatch_max = 1\nqueue_capacity = 1\n");
    let printed = stdout(&print_config(
        &["--config", &path, "--queue-capacity", "3"],
        &[("SLUICE_BATCH_MAX", "2"), ("SLUICE_QUEUE_CAPACITY", "2")],
    ));
    assert!(printed.contains("concurrency = 1\n"), "{printed}");
    assert!(printed.contains("batch_max = 2\n"), "{printed}");
    assert!(printed.contains("queue_capacity = 3\n"), "{printed}");
}

#[test]
fn old_spellings_are_read_as_the_new_ones() {
    let new = stdout(&print_config(
        &[
            "a.ndjson",
            "--concurrency",
            "5",
            "--drain-deadline",
            "1s",
            "--http-timeout",
            "4s",
        ],
        &[],
    ));
    let old = stdout(&print_config(
        &[
            "--input",
            "a.ndjson",
            "--max-in-flight",
            "5",
            "--drain-timeout",
            "1s",
            "--timeout",
            "4s",
        ],
        &[],
    ));
    assert_eq!(old, new);
    let (_dir, path) = config_file(
        "input = ['a.ndjson']\nmax_in_flight = 5\ndrain_timeout = '1s'\ntimeout = '4s'\n",
    );
    assert_eq!(stdout(&print_config(&["--config", &path], &[])), new);
}

#[test]
fn secrets_are_not_printed() {
    let printed = stdout(&print_config(
        &[
            "--http-url",
            "https://me:hunter2@api.example.com/records",
            "--http-header",
            "Authorization: Bearer hunter2",
            "--http-header",
            "X-Api-Key: ${API_KEY}",
        ],
        &[],
    ));
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("X-Api-Key: ${API_KEY}"), "{printed}");
}

#[test]
fn a_bad_value_or_unknown_key_is_named_with_where_it_was_set_and_exits_2() {
    let output = print_config(&[], &[("SLUICE_CONCURENCY", "4")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown key `concurency`"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("SLUICE_CONCURENCY"),
        "{}",
        stderr(&output)
    );

    let (_dir, path) = config_file("[http]\ntimeout = 'soon'\n");
    let output = print_config(&["--config", &path], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("http.timeout"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains(&path), "{}", stderr(&output));

    let output = print_config(&["--concurrency", "0"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("concurrency (--concurrency): must be 1 to 65536, got 0"),
        "{message}"
    );
    assert!(message.contains("command-line flags"), "{message}");

    let output = print_config(&["--rate-limit", "fast"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--rate-limit"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/run.toml");
    let printed = stdout(&print_config(&["--config", example], &[]));
    for line in [
        "rate_limit = \"15/s\"",
        "metrics_addr = \"127.0.0.1:9898\"",
        "headers = [\"Authorization: Bearer ${API_TOKEN}\"]",
        "url = \"http://127.0.0.1:8080/records\"",
    ] {
        assert!(printed.contains(line), "{line} in\n{printed}");
    }
}

#[test]
fn a_password_in_a_url_is_never_printed_whatever_its_characters() {
    for password in ["hunter/2", "hun?ter#2", "h@nter:2", "hünter%2F2"] {
        // Every URL --print-config shows: the API's, NATS' and Redis'.
        let http = format!("https://me:{password}@api.example.com/records");
        let nats = format!("nats://me:{password}@127.0.0.1:4222");
        let redis = format!("redis://me:{password}@127.0.0.1:6379/quota");
        let printed = print_config(
            &[
                &nats,
                "--nats-stream",
                "S",
                "--http-url",
                &http,
                "--shared-limit",
                &redis,
                "--rate-limit",
                "10/s",
            ],
            &[],
        );
        let shown = format!("{}{}", stdout(&printed), stderr(&printed));
        assert!(!shown.contains(password), "{password}: {shown}");
        assert!(shown.contains("127.0.0.1:4222"), "{shown}");
        // And a run that cannot reach the API names it without one.
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "-", "--http-url"])
            .arg(format!("http://me:{password}@127.0.0.1:1/records"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let said = stderr(&output);
        assert!(said.contains("127.0.0.1:1"), "{said}");
        assert!(!said.contains(password), "{password}: {said}");
    }
}
