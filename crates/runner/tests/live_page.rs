//! The live page of `sluice run --metrics-addr` (`GET /`) in headless
//! Chromium, against a real run delivering to `sluice mock-api`: the page
//! refreshes from `/status.json`, fills its charts, and shows the figures
//! `/status.json` and `/metrics` give at the same (idle) moment. A
//! screenshot of it is left at `<target>/live-page.png`.
//!
//! Needs Chromium (Debian package `chromium`): skipped without it, but
//! under `CI` installed with apt-get, and failing if that does not work.

#![allow(clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::services::{free_port, wait_listening};
use common::{MockApi, eventually, get, report, sluice, wait_bounded};
use serde_json::Value;

/// The streams of the records written, one in three each.
const STREAMS: [&str; 3] = ["orders", "payments", "clicks"];
/// Records the API is to accept.
const VALID: u64 = 300;
/// Lines that are not JSON: dead letters of reason `invalid`.
const INVALID: u64 = 6;

/// How long Chromium may take to load and dump the page, or screenshot it.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(90);

/// The page's figures: element id and where `/status.json` holds it.
const FIGURES: &[(&str, &str)] = &[
    ("version", "/version"),
    ("state", "/state"),
    ("ingested", "/records/ingested"),
    ("delivered", "/records/delivered"),
    ("dead-lettered", "/records/dead_lettered"),
    ("handed-back", "/records/handed_back"),
    ("in-pipeline", "/records/in_pipeline"),
    ("rate-delivered", "/rate/delivered_per_second"),
    ("rate-calls", "/rate/calls_per_second"),
    ("quota", "/rate/quota_per_second"),
    ("rate-limit", "/rate/limit"),
    ("rate-unit", "/rate/unit"),
    ("window-seconds", "/rate/window_seconds"),
    ("calls-total", "/calls/total"),
    ("in-flight", "/calls/in_flight"),
    ("api-failing", "/calls/api_failing"),
    ("api-outages", "/calls/api_outages"),
    ("queue-depth", "/queue/depth"),
    ("queue-capacity", "/queue/capacity"),
    ("api-p50", "/api_latency_ms/p50"),
    ("api-p90", "/api_latency_ms/p90"),
    ("api-p99", "/api_latency_ms/p99"),
    ("api-max", "/api_latency_ms/max"),
    ("api-count", "/api_latency_ms/count"),
    ("delivery-p50", "/delivery_latency_ms/p50"),
    ("delivery-p90", "/delivery_latency_ms/p90"),
    ("delivery-p99", "/delivery_latency_ms/p99"),
    ("delivery-max", "/delivery_latency_ms/max"),
    ("delivery-count", "/delivery_latency_ms/count"),
    ("share-read", "/progress/share_read"),
    ("eta", "/progress/eta_seconds"),
    ("pending", "/progress/pending"),
];

#[test]
fn the_live_page_shows_what_status_json_and_metrics_say() {
    let Some(chromium) = chromium() else {
        return;
    };
    // A real quota, some failures: several outcomes and a quota line.
    let api = MockApi::start(&[
        "--rate-limit",
        "50/s",
        "--failure-rate",
        "0.2",
        "--latency",
        "5ms..20ms",
        "--seed",
        "11",
    ]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut run = Guard(Some(
        sluice()
            .current_dir(dir.path())
            .args(["run", "-", "--profile", "json"])
            .args(["--stream-field", "stream", "--partition-field", "partition"])
            .args(["--sequence-field", "seq", "--http-url", &api.url()])
            .args(["--rate-limit", "50/s", "--max-attempts", "30"])
            .args(["--max-dead-letters", &INVALID.to_string()])
            .args(["--metrics-addr", &metrics, "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice run starts"),
    ));
    let input = records();
    // Written, and held open: the run waits for more, idle once this is
    // delivered.
    let mut stdin: ChildStdin = run.child().stdin.take().expect("the run's stdin");
    stdin
        .write_all(input.as_bytes())
        .expect("the records written to the run's stdin");
    stdin.flush().expect("the run's stdin flushed");
    wait_listening(&metrics);

    let lines = VALID + INVALID;
    eventually(
        Duration::from_secs(120),
        "every record written delivered or dead-lettered, nothing in flight, and the rates measured as 0",
        || {
            let now = status(&metrics);
            let count = |pointer: &str| now.pointer(pointer).and_then(Value::as_u64);
            count("/records/ingested") == Some(lines)
                && count("/records/delivered") == Some(VALID)
                && count("/records/dead_lettered") == Some(INVALID)
                && count("/records/in_pipeline") == Some(0)
                && count("/calls/in_flight") == Some(0)
                && count("/queue/depth") == Some(0)
                && now["rate"]["delivered_per_second"].as_f64() == Some(0.0)
                && now["rate"]["calls_per_second"].as_f64() == Some(0.0)
        },
    );

    let before = (status(&metrics), scrape(&metrics));
    let dom = dump_dom(&chromium, &format!("http://{metrics}/"));
    let after = (status(&metrics), scrape(&metrics));

    // Nothing moved between the two reads: the page read the same figures.
    for (_, pointer) in FIGURES {
        assert_eq!(
            before.0.pointer(pointer),
            after.0.pointer(pointer),
            "/status.json {pointer} moved while the page was read: the run was not idle"
        );
    }
    for key in ["dead_letters", "inputs"] {
        assert_eq!(before.0[key], after.0[key], "/status.json {key} moved");
    }
    assert_eq!(
        before.0["calls"]["by_outcome"], after.0["calls"]["by_outcome"],
        "/status.json calls.by_outcome moved"
    );
    let sluice_series = |scrape: &Scrape| -> Scrape {
        scrape
            .iter()
            .filter(|(name, _, _)| name.starts_with("sluice_"))
            .cloned()
            .collect()
    };
    assert_eq!(
        sluice_series(&before.1),
        sluice_series(&after.1),
        "/metrics moved while the page was read"
    );
    let (status, scrape) = before;
    let page = Page::parse(&dom);

    // It refreshed, more than once, and fetching never failed.
    let body = page.first("body");
    let updated: u64 = body
        .attr("data-updated")
        .and_then(|n| n.parse().ok())
        .expect("<body data-updated=N>");
    assert!(
        updated >= 2,
        "the page refreshed {updated} times in 5 s of virtual time"
    );
    assert_eq!(body.attr("data-error"), None, "the page could not fetch");

    // Every figure, as /status.json has it.
    for (id, pointer) in FIGURES {
        let json = status
            .pointer(pointer)
            .unwrap_or_else(|| panic!("/status.json has no {pointer}"));
        let shown = page.value(id);
        assert!(
            same(shown, json),
            "#{id} holds {shown:?}; /status.json {pointer} is {json}"
        );
    }
    let elapsed: f64 = page.value("elapsed").parse().expect("#elapsed a number");
    let (start, end) = (
        status["elapsed_seconds"].as_f64().expect("elapsed_seconds"),
        after.0["elapsed_seconds"]
            .as_f64()
            .expect("elapsed_seconds"),
    );
    assert!(
        (start..=end).contains(&elapsed),
        "#elapsed {elapsed} not between the reads before ({start}) and after ({end})"
    );
    // The average over the whole run falls as the idle run ages.
    let average: f64 = page.value("rate-average").parse().expect("#rate-average");
    let (high, low) = (
        status["rate"]["average_per_second"]
            .as_f64()
            .expect("average"),
        after.0["rate"]["average_per_second"]
            .as_f64()
            .expect("average"),
    );
    assert!(
        (low..=high).contains(&average),
        "#rate-average {average} not between the reads after ({low}) and before ({high})"
    );
    let by_reason = status["dead_letters"].as_object().expect("dead_letters");
    assert!(
        by_reason.len() >= 5,
        "every kind of dead letter: {by_reason:?}"
    );
    for (reason, count) in by_reason {
        let shown = page.value(&format!("dead-{reason}"));
        assert!(
            same(shown, count),
            "dead letters {reason}: page {shown:?}, JSON {count}"
        );
    }
    let by_outcome = status["calls"]["by_outcome"]
        .as_object()
        .expect("by_outcome");
    for (outcome, count) in by_outcome {
        let shown = page.value(&format!("outcome-{outcome}"));
        assert!(
            same(shown, count),
            "calls {outcome}: page {shown:?}, JSON {count}"
        );
    }
    let outcomes_seen = by_outcome.values().filter(|n| n.as_u64() > Some(0)).count();
    assert!(
        outcomes_seen >= 2,
        "a delivered and a failed outcome at least: {by_outcome:?}"
    );

    // The run's only input, stdin, read to the last byte written.
    let inputs = status["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    assert_eq!(inputs[0]["name"], "-");
    assert_eq!(inputs[0]["bytes_read"].as_u64(), Some(input.len() as u64));
    let row = page.within_first("li", "data-name", "-");
    let figure = |class: &str| {
        row.iter()
            .find(|tag| tag.attr("class") == Some(class))
            .and_then(|tag| tag.attr("data-value"))
            .unwrap_or_else(|| panic!("no .{class} with data-value in the input's row"))
    };
    assert!(same(figure("bytes-read"), &inputs[0]["bytes_read"]));
    assert!(same(figure("size-bytes"), &inputs[0]["size_bytes"]));

    // The charts: one point a second of history (the page's read fell
    // between the two reads), per-second rates from consecutive samples.
    let samples = |status: &Value| status["history"].as_array().map_or(0, Vec::len);
    let (first, last) = (samples(&status), samples(&after.0));
    assert!(first >= 8, "history of {first} samples after a run of >8 s");
    let points = |id: &str| -> usize {
        page.by_id(id)
            .attr("data-points")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("#{id} has no data-points=N"))
    };
    let rate_points = points("chart-rate");
    assert!(
        (first - 1..=last - 1).contains(&rate_points),
        "#chart-rate draws {rate_points} points, history has {first} to {last} samples"
    );
    let queue_points = points("chart-queue");
    assert!(
        (first..=last).contains(&queue_points),
        "#chart-queue draws {queue_points} points, history has {first} to {last} samples"
    );
    let chart = page.within_first("svg", "id", "chart-rate");
    assert!(
        chart
            .iter()
            .any(|tag| tag.name == "line" && tag.attr("class") == Some("s-quota")),
        "the quota's line is drawn on #chart-rate"
    );
    // What each line plots: the history the page read is a start of the
    // history read after it; the rates, its per-second differences.
    let history = after.0["history"].as_array().expect("history");
    let field = |sample: &Value, key: &str| -> f64 {
        sample[key]
            .as_f64()
            .unwrap_or_else(|| panic!("a history sample's {key}: {sample}"))
    };
    let per_second = |count: &dyn Fn(&Value) -> f64| -> Vec<f64> {
        history
            .windows(2)
            .map(|pair| {
                let seconds =
                    field(&pair[1], "elapsed_seconds") - field(&pair[0], "elapsed_seconds");
                (count(&pair[1]) - count(&pair[0])) / seconds
            })
            .collect()
    };
    let delivered = per_second(&|sample| field(sample, "delivered"));
    let succeeded = per_second(&|sample| field(sample, "calls") - field(sample, "calls_failed"));
    let depths: Vec<f64> = history
        .iter()
        .map(|sample| field(sample, "queue_depth"))
        .collect();
    assert!(
        delivered.iter().any(|&rate| rate > 10.0),
        "a second of deliveries at the quota's pace: {delivered:?}"
    );
    let mut lines = vec![("chart-rate", "s-del", rate_points, delivered)];
    if status["rate"]["unit"] == "calls" {
        lines.push(("chart-rate", "s-calls", rate_points, succeeded));
    }
    lines.push(("chart-queue", "s-queue", queue_points, depths));
    for (id, class, points, expected) in lines {
        let drawn: Vec<f64> = page
            .within_first("svg", "id", id)
            .iter()
            .find(|tag| tag.name == "path" && tag.attr("class") == Some(class))
            .and_then(|tag| tag.attr("data-values"))
            .unwrap_or_else(|| panic!("no path.{class} with data-values on #{id}"))
            .split_whitespace()
            .map(|value| value.parse().expect("data-values are numbers"))
            .collect();
        assert_eq!(drawn.len(), points, "path.{class} of #{id}: its points");
        assert_eq!(
            drawn,
            expected[..points],
            "path.{class} of #{id} against the history of /status.json"
        );
    }

    // /metrics of the same moment adds up to the same figures.
    let number = |pointer: &str| -> f64 {
        status
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("/status.json {pointer} is a number"))
    };
    for (family, pointer) in [
        ("sluice_records_ingested_total", "/records/ingested"),
        ("sluice_records_delivered_total", "/records/delivered"),
        ("sluice_records_handed_back_total", "/records/handed_back"),
        ("sluice_dead_letters_total", "/records/dead_lettered"),
        ("sluice_http_requests_in_flight", "/calls/in_flight"),
        ("sluice_queue_depth", "/queue/depth"),
        ("sluice_queue_capacity", "/queue/capacity"),
        ("sluice_records_in_pipeline", "/records/in_pipeline"),
        ("sluice_api_outages_total", "/calls/api_outages"),
        (
            "sluice_http_request_duration_seconds_count",
            "/api_latency_ms/count",
        ),
        (
            "sluice_delivery_latency_seconds_count",
            "/delivery_latency_ms/count",
        ),
    ] {
        assert_eq!(
            sum(&scrape, family, &[]),
            number(pointer),
            "{family} against {pointer}"
        );
    }
    assert_eq!(
        sum(&scrape, "sluice_api_failing", &[]),
        if status["calls"]["api_failing"] == true {
            1.0
        } else {
            0.0
        },
        "sluice_api_failing"
    );
    for stream in STREAMS {
        assert_eq!(
            sum(
                &scrape,
                "sluice_records_delivered_total",
                &[("stream", stream)]
            ),
            (VALID / 3) as f64,
            "sluice_records_delivered_total{{stream={stream}}}"
        );
    }
    for (reason, count) in by_reason {
        assert_eq!(
            Some(sum(
                &scrape,
                "sluice_dead_letters_total",
                &[("reason", reason)]
            )),
            count.as_f64(),
            "sluice_dead_letters_total{{reason={reason}}}"
        );
    }
    assert_eq!(
        by_reason.get("invalid").and_then(Value::as_u64),
        Some(INVALID)
    );
    for (outcome, count) in by_outcome {
        assert_eq!(
            Some(sum(
                &scrape,
                "sluice_http_requests_total",
                &[("outcome", outcome)]
            )),
            count.as_f64(),
            "sluice_http_requests_total{{outcome={outcome}}}"
        );
    }
    assert_eq!(
        sum(&scrape, "sluice_input_bytes_read_total", &[("input", "-")]),
        input.len() as f64,
        "sluice_input_bytes_read_total{{input=\"-\"}}"
    );
    let version = status["version"].as_str().expect("version");
    assert_eq!(
        sum(&scrape, "sluice_build_info", &[("version", version)]),
        1.0
    );
    if let Some(unit) = status["rate"]["unit"].as_str() {
        assert_eq!(
            sum(&scrape, "sluice_rate_limit", &[("unit", unit)]),
            number("/rate/limit"),
            "sluice_rate_limit{{unit={unit}}}"
        );
    }

    // The screenshot, for a person to look at.
    let shot = target_dir().join("live-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("a Chromium profile directory");
    let output = run_bounded(
        Command::new(&chromium)
            .args(HEADLESS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", shot.display()))
            .args(["--window-size=1280,800", "--hide-scrollbars"])
            .arg(format!("http://{metrics}/")),
        CHROMIUM_LIMIT,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|error| {
        panic!(
            "no screenshot at {} ({error}); chromium said: {}",
            shot.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        shot.display()
    );
    assert!(
        png.len() > 10_000,
        "{} is {} bytes: a blank page?",
        shot.display(),
        png.len()
    );
    eprintln!("the live page: {}", shot.display());

    // The end of the input ends the run, at once and well.
    drop(stdin);
    let output = wait_bounded(run.take(), Duration::from_secs(60));
    assert!(
        output.status.success(),
        "the run ended with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);
    assert_eq!(report["delivered"].as_u64(), Some(VALID), "{report}");
    assert_eq!(report["dead_lettered"].as_u64(), Some(INVALID), "{report}");
}

/// The NDJSON written to the run: [`VALID`] records over [`STREAMS`] and
/// two partitions each, in sequence, and [`INVALID`] lines among them.
fn records() -> String {
    let mut text = String::new();
    let mut sequences: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    for i in 0..VALID {
        let stream = STREAMS[(i % 3) as usize];
        let partition = i / 3 % 2;
        let seq = sequences.entry((stream, partition)).or_default();
        *seq += 1;
        text.push_str(&format!(
            "{{\"stream\":\"{stream}\",\"partition\":{partition},\"seq\":{seq},\"amount\":{}.{:02}}}\n",
            i * 7 % 1000,
            i % 100
        ));
        if i % (VALID / INVALID) == VALID / INVALID / 2 {
            text.push_str(&format!("not json, line {i}\n"));
        }
    }
    assert_eq!(text.lines().count() as u64, VALID + INVALID);
    text
}

/// Chromium's flags for a headless run that leaves nothing behind.
const HEADLESS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
];

/// Chromium, found on PATH; under `CI` installed if missing, else `None`
/// (the test skipped, saying why).
fn chromium() -> Option<PathBuf> {
    if let Some(found) = on_path("chromium") {
        return Some(found);
    }
    if std::env::var_os("CI").is_none() {
        eprintln!("skipped: chromium not installed; apt-get install chromium");
        return None;
    }
    let apt_get = |args: &[&str]| {
        try_run_bounded(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            Duration::from_secs(600),
        )
    };
    let tried = apt_get(&["update", "-q"])
        .and_then(|_| apt_get(&["install", "-y", "--no-install-recommends", "chromium"]));
    let found = on_path("chromium");
    if found.is_none() {
        let what = match tried {
            Ok(output) => format!(
                "it ended with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => error,
        };
        panic!(
            "chromium is needed under CI: `apt-get install -y chromium` (Debian package \
             chromium) left no chromium on PATH; {what}"
        );
    }
    found
}

/// `program` in a directory of PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// What headless Chromium makes of `url` after 5 s of virtual time: the
/// page's DOM as HTML.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("a Chromium profile directory");
    let output = run_bounded(
        Command::new(chromium)
            .args(HEADLESS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=5000", "--dump-dom", url]),
        CHROMIUM_LIMIT,
    );
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("<body"),
        "chromium --dump-dom {url} ended with {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// Runs `command` in a process group of its own, its output captured,
/// for at most `limit`: past it the whole group (Chromium's helpers
/// too) is killed and the test fails.
fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    try_run_bounded(command, limit).unwrap_or_else(|error| panic!("{error}"))
}

/// [`run_bounded`], its failure to start or to end in time an `Err`.
fn try_run_bounded(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let described = format!("{command:?}");
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {described}: {error}"))?;
    let group = format!("-{}", child.id());
    let kill_group = || {
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
    };
    let drain = |mut pipe: Box<dyn Read + Send>| {
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        });
        received
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() <= limit => {
                std::thread::sleep(Duration::from_millis(50));
            }
            waited => {
                // Killed while the child is unreaped: its group's id is
                // still its own.
                kill_group();
                let _ = child.wait();
                return Err(match waited {
                    Err(error) => format!("{described}: {error}"),
                    _ => format!("{described} did not end within {limit:?}: killed"),
                });
            }
        }
    };
    // Helpers it left behind may hold its pipes open: a bounded wait, then
    // what is left of the group killed.
    let collect = |received: mpsc::Receiver<Vec<u8>>| {
        received
            .recv_timeout(Duration::from_secs(10))
            .or_else(|_| {
                kill_group();
                received.recv_timeout(Duration::from_secs(10))
            })
            .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// A child killed (and reaped) when dropped, unless taken.
struct Guard(Option<Child>);

impl Guard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child not taken yet")
    }

    fn take(&mut self) -> Child {
        self.0.take().expect("the child not taken yet")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The workspace's target directory: `CARGO_TARGET_DIR`, else `target/`
/// of the workspace root above this crate.
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.contains("[workspace]"))
        })
        .unwrap_or(manifest);
    let dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    dir
}

/// `/status.json` of the run serving at `addr`.
fn status(addr: &str) -> Value {
    let body = get(addr, "/status.json");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("/status.json: {error}: {body}"))
}

/// A `/metrics` scrape: each sample's name, labels and value.
type Scrape = Vec<(String, BTreeMap<String, String>, f64)>;

/// `/metrics` of the run serving at `addr`, in the Prometheus text format.
fn scrape(addr: &str) -> Scrape {
    get(addr, "/metrics")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}")))
        .collect()
}

/// `name{label="value",...} number` parsed.
fn sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let end = line.find(['{', ' '])?;
    let name = line[..end].to_owned();
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// The sum of `name`'s samples whose labels include `labels`.
fn sum(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .iter()
        .filter(|(sample, set, _)| {
            sample == name
                && labels
                    .iter()
                    .all(|(key, value)| set.get(*key).map(String::as_str) == Some(*value))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// Whether a page's `data-value` is `json` exactly: the same number, the
/// same text, `true`/`false`, or empty for null.
fn same(shown: &str, json: &Value) -> bool {
    match json {
        Value::Null => shown.is_empty(),
        Value::Bool(b) => shown == b.to_string(),
        Value::Number(n) => shown.parse::<f64>().ok() == n.as_f64(),
        Value::String(s) => shown == s,
        _ => false,
    }
}

/// A tag of the dumped DOM: `<name attr="value">`, or `</name>`.
#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    attrs: BTreeMap<String, String>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// The dumped DOM as a list of tags, enough to find elements by id or
/// attribute and what they contain.
struct Page(Vec<Tag>);

impl Page {
    fn parse(html: &str) -> Page {
        let mut tags = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            if let Some(comment) = rest.strip_prefix("!--") {
                rest = comment.split_once("-->").map_or("", |(_, after)| after);
                continue;
            }
            if rest.starts_with('!') || rest.starts_with('?') {
                rest = rest.split_once('>').map_or("", |(_, after)| after);
                continue;
            }
            let closing = rest.starts_with('/');
            if closing {
                rest = &rest[1..];
            }
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(rest.len());
            let name = rest[..end].to_ascii_lowercase();
            rest = &rest[end..];
            let mut attrs = BTreeMap::new();
            loop {
                rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
                if rest.is_empty() {
                    break;
                }
                if let Some(after) = rest.strip_prefix('>') {
                    rest = after;
                    break;
                }
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
                    .unwrap_or(rest.len())
                    .max(1);
                let key = rest[..end].to_ascii_lowercase();
                rest = &rest[end..];
                let mut value = String::new();
                if let Some(after) = rest.strip_prefix('=') {
                    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
                    let (raw, after) = match quote {
                        Some(q) => after[1..].split_once(q).unwrap_or((&after[1..], "")),
                        None => {
                            let end = after
                                .find(|c: char| c.is_whitespace() || c == '>')
                                .unwrap_or(after.len());
                            after.split_at(end)
                        }
                    };
                    value = unescape(raw);
                    rest = after;
                }
                attrs.insert(key, value);
            }
            if !closing && (name == "script" || name == "style") {
                let close = format!("</{name}");
                rest = rest.find(&close).map_or("", |at| &rest[at..]);
            }
            tags.push(Tag {
                name,
                closing,
                attrs,
            });
        }
        Page(tags)
    }

    /// The first `<name>` tag.
    fn first(&self, name: &str) -> &Tag {
        self.0
            .iter()
            .find(|tag| !tag.closing && tag.name == name)
            .unwrap_or_else(|| panic!("no <{name}> on the page"))
    }

    fn by_id(&self, id: &str) -> &Tag {
        self.0
            .iter()
            .find(|tag| !tag.closing && tag.attr("id") == Some(id))
            .unwrap_or_else(|| panic!("no element #{id} on the page"))
    }

    /// The `data-value` of `#id`.
    fn value(&self, id: &str) -> &str {
        self.by_id(id)
            .attr("data-value")
            .unwrap_or_else(|| panic!("#{id} has no data-value"))
    }

    /// The tags inside the first `<name attr="value">`, up to its end.
    fn within_first(&self, name: &str, attr: &str, value: &str) -> &[Tag] {
        let start = self
            .0
            .iter()
            .position(|tag| !tag.closing && tag.name == name && tag.attr(attr) == Some(value))
            .unwrap_or_else(|| panic!("no <{name} {attr}={value:?}> on the page"));
        let mut depth = 0usize;
        for (i, tag) in self.0.iter().enumerate().skip(start) {
            if tag.name == name {
                if tag.closing {
                    depth -= 1;
                } else {
                    depth += 1;
                }
                if depth == 0 {
                    return &self.0[start + 1..i];
                }
            }
        }
        panic!("<{name} {attr}={value:?}> is not closed")
    }
}

/// An attribute's text with the entities an HTML serializer writes
/// decoded.
fn unescape(raw: &str) -> String {
    raw.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}
