//! `sluice run` processes that share a JetStream stream (and a quota):
//! each one's log read as it runs, and what the tests check of them all.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use sluice_mock_api::Quota;

use super::services::{self, Jet, NATS, REDIS, RedisKey};
use super::{Identity, MockApi, delivered_counts, expected, report, sluice};

/// The API's quota the members share.
pub const QUOTA: &str = "100/s";
/// The members' lease time.
pub const LEASE: Duration = Duration::from_secs(3);

/// One test at a time in a test binary: each starts several processes,
/// and some measure rates.
static TURN: Mutex<()> = Mutex::new(());

/// Waits for this test's turn; it lasts as long as the guard.
pub fn take_turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a test of a group needs, all of its own: its turn, a stream (and
/// lease bucket), a shared limit in Redis, and the API. Dropped after the
/// members it started, it removes them all.
pub struct Group {
    pub jet: Jet,
    pub limit: RedisKey,
    pub api: MockApi,
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Group {
    /// Takes the turn and starts `sluice mock-api --rate-limit 100/s` with
    /// `api_flags`; `None` (the test is skipped, and says why) when NATS or
    /// Redis cannot be reached, which fails under CI.
    pub fn start(api_flags: &[&str]) -> Option<Group> {
        let turn = take_turn();
        if !services::reachable(&[("NATS", NATS), ("Redis", REDIS)]) {
            return None;
        }
        let api = MockApi::start(&[&["--rate-limit", QUOTA], api_flags].concat());
        Some(Group {
            jet: Jet::new(NATS),
            limit: RedisKey::new(6379),
            api,
            dir: tempfile::tempdir().unwrap(),
            _turn: turn,
        })
    }

    /// Publishes `records` records of `sluice generate` in `partitions`
    /// partitions with `seed`; returns the valid ones.
    pub fn load(&self, records: u64, partitions: u32, seed: u64) -> BTreeSet<Identity> {
        let file = self.jet.publish(self.dir.path(), records, partitions, seed);
        expected(&file).0
    }

    /// Starts `count` members sharing the group's limit, with `extra` flags.
    pub fn members(&self, count: usize, extra: &[&str]) -> Vec<Member> {
        (0..count).map(|_| self.member(extra)).collect()
    }

    /// Starts a member sharing the group's limit, with `extra` flags.
    pub fn member(&self, extra: &[&str]) -> Member {
        Member::start(&self.jet, &self.api, Some(&self.limit.url()), extra)
    }
}

/// A `sluice run` process whose stderr is read (and timestamped) as it
/// comes, so that its logs can be searched while it runs.
pub struct Member {
    child: Option<Child>,
    log: Arc<Mutex<Vec<(SystemTime, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Its working directory, where its dead letters go; removed with it.
    _dir: tempfile::TempDir,
}

impl Member {
    pub fn start(jet: &Jet, api: &MockApi, shared: Option<&str>, extra: &[&str]) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let mut command = sluice();
        command
            .current_dir(dir.path())
            .env("RUST_LOG", "info,async_nats=warn")
            .args(["run", "--http-url", &api.url(), "--rate-limit", QUOTA])
            .args(jet.run_flags())
            .args(["--nats-lease", &format!("{}s", LEASE.as_secs())])
            .args(["--max-attempts", "30", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = shared {
            command.args(["--shared-limit", url]);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((SystemTime::now(), line));
            }
        });
        Member {
            child: Some(child),
            log,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// The partitions it took, with when it took each.
    pub fn took(&self) -> Vec<(SystemTime, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, line)| line.contains("took partition"))
            .filter_map(|(at, line)| {
                let start = line.find("partition=\"")? + "partition=\"".len();
                let end = start + line[start..].find('"')?;
                Some((*at, line[start..end].to_owned()))
            })
            .collect()
    }

    /// Waits for it to end by itself (`--until-drained`) and returns its
    /// report: exit 0, every record it took resolved or handed over to
    /// another process.
    pub fn finish(mut self) -> serde_json::Value {
        let output = self.wait();
        assert_eq!(output.status.code(), Some(0), "{}", self.logs());
        let report = report(&output);
        assert_eq!(report["conserved"], true, "{report}");
        assert_eq!(report["handed_back"], report["handed_over"], "{report}");
        report
    }

    /// Stops it with SIGTERM and returns its report (exit 3: a signal).
    pub fn stop(mut self) -> serde_json::Value {
        self.signal("-TERM");
        let output = self.wait();
        assert_eq!(output.status.code(), Some(3), "{}", self.logs());
        let report = report(&output);
        assert_eq!(report["conserved"], true, "{report}");
        report
    }

    pub fn signal(&self, signal: &str) {
        super::signal(self.child.as_ref().unwrap(), signal);
    }

    pub fn wait(&mut self) -> Output {
        let child = self.child.take().unwrap();
        let output = super::wait_bounded(child, Duration::from_secs(30));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        output
    }

    pub fn logs(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The partitions named (`partition=…`) by the lines of `logs` that say
/// one of `said`.
pub fn partitions_said(logs: &[String], said: &[&str]) -> BTreeSet<String> {
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|line| said.iter().any(|what| line.contains(what)))
        .filter_map(|line| {
            let start = line.find("partition=")? + "partition=".len();
            let token = line[start..].trim_start_matches('"');
            let end = token.find(['"', ' ']).unwrap_or(token.len());
            Some(token[..end].to_owned())
        })
        .collect()
}

/// The partitions whose lease a member said it lost to another process,
/// from the members' logs.
pub fn lost_leases(logs: &[String]) -> BTreeSet<String> {
    partitions_said(logs, &["lost the lease"])
}

/// Every valid record delivered; returns how often each was.
pub fn all_delivered(api: &MockApi, valid: &BTreeSet<Identity>) -> BTreeMap<Identity, u64> {
    let counts = delivered_counts(api);
    let missing: Vec<_> = valid
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    counts
}

/// Order per partition: each (stream, partition)'s first deliveries come
/// in sequence (a redelivery after a takeover repeats, never reorders).
pub fn assert_order_per_partition(api: &MockApi) {
    for (stream, partitions) in api.ledger().streams {
        for (partition, deliveries) in partitions {
            let mut seen = BTreeSet::new();
            let firsts: Vec<u64> = deliveries
                .delivered
                .iter()
                .copied()
                .filter(|sequence| seen.insert(*sequence))
                .collect();
            assert!(
                firsts.windows(2).all(|pair| pair[0] < pair[1]),
                "{stream}/{partition} out of order: {firsts:?}"
            );
        }
    }
}

/// Checks that the quota held (never above 100 in any second, at most 1 %
/// of the calls refused) and that at least `floor` of the ceiling was used
/// from the first success to the last: of the most the quota admits in
/// that span (`LedgerCounts::ceiling_used`).
pub fn assert_quota_kept_and_used(api: &MockApi, floor: f64) {
    let ledger = api.ledger();
    assert!(ledger.max_successes_in_any(Duration::from_secs(1)) <= 100);
    assert!(
        ledger.counts.rate_limit_hits * 100 <= ledger.counts.calls,
        "{} refused of {} calls",
        ledger.counts.rate_limit_hits,
        ledger.counts.calls
    );
    let quota = Quota::per_second(100);
    let used = ledger.counts.ceiling_used(quota).unwrap();
    let span = (ledger.counts.last_success_ms.unwrap() - ledger.counts.first_success_ms.unwrap())
        as f64
        / 1e3;
    eprintln!(
        "{used:.3} of the ceiling ({} in {span:.1}s; {} of {} calls refused)",
        ledger.counts.successes, ledger.counts.rate_limit_hits, ledger.counts.calls
    );
    assert!(
        used >= floor,
        "{used:.3} of the ceiling ({} in {span:.1}s)",
        ledger.counts.successes
    );
}

/// Distinct records delivered, from the API's counters: polled while
/// processes run, so that the test does not slow the API it measures.
pub fn delivered_total(api: &MockApi) -> usize {
    usize::try_from(api.counts().distinct_records_delivered()).unwrap()
}
