//! Several `sluice run` processes sharing one JetStream stream and one
//! quota (Redis), against `sluice mock-api --rate-limit 100/s`: nothing
//! lost, order per partition held, the ceiling used and not exceeded; with
//! a process killed, with uneven load, with the NATS server restarted and
//! with the shared limit's store stopped. Real processes, real servers,
//! real signals, on 127.0.0.1; the tests take turns (one lock), so that
//! none measures a ceiling while another loads the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::members::{
    Group, LEASE, Member, QUOTA, all_delivered, assert_order_per_partition,
    assert_quota_kept_and_used, delivered_total, lost_leases, take_turn,
};
use common::services::{self, Jet, RedisKey, Server};
use common::{Identity, MockApi, eventually, expected, report, sluice};

#[test]
fn three_processes_share_a_stream_and_one_quota_at_its_ceiling() {
    let Some(group) = Group::start(&[]) else {
        return;
    };
    let api = &group.api;
    let valid = group.load(6_000, 8, 11);
    // Each ends by itself once the stream is drained.
    let drained = ["--until-drained=2s"];
    let members = group.members(3, &drained);
    eventually(Duration::from_secs(150), "every record delivered", || {
        delivered_total(api) >= valid.len()
    });
    let took: Vec<BTreeSet<String>> = members
        .iter()
        .map(|member| member.took().into_iter().map(|(_, p)| p).collect())
        .collect();
    let logs: Vec<String> = members.iter().map(Member::logs).collect();
    let reports: Vec<_> = members.into_iter().map(Member::finish).collect();

    let counts = all_delivered(api, &valid);
    // Each once, but in a partition whose lease a process lost: stalled
    // past the lease time (a busy machine), it may still have sent what it
    // held after another took the partition over, which nothing fences yet
    // (ARCHITECTURE.md). Said when it happens.
    let lost = lost_leases(&logs);
    if !lost.is_empty() {
        eprintln!("leases lost to a stall, duplicates allowed there: {lost:?}");
    }
    let twice: Vec<_> = counts
        .iter()
        .filter(|((_, partition, _), n)| **n > 1 && !lost.contains(&partition.to_string()))
        .collect();
    assert!(
        twice.is_empty(),
        "delivered twice: {twice:?}\n{}",
        logs.join("\n---\n")
    );
    assert_eq!(api.ledger().counts.order_violations, 0);
    // A regression floor, not the target: 0.960 is measured on a quiet
    // machine (BENCHMARKS.md), and one window more in the span (a busy
    // machine, CI with other builds) reads 0.944. What keeps it below 1:
    // each success holds its shared slot a window and a 25 ms margin from
    // its reservation, or a window from its answer if sooner; a failed
    // call holds one for its latency; the last lanes to finish run alone.
    assert_quota_kept_and_used(api, 0.85);
    // Each partition taken, some more than once: by a process that came
    // up first and then handed its excess over, or from one that ended
    // first (`--until-drained`).
    let all: BTreeSet<&String> = took.iter().flatten().collect();
    assert_eq!(all.len(), 8, "every partition taken: {took:?}");
    assert!(
        took.iter().all(|partitions| partitions.len() >= 2),
        "every process has a share: {took:?}"
    );
    let delivered: u64 = reports
        .iter()
        .map(|r| r["delivered"].as_u64().unwrap())
        .sum();
    let dead: u64 = reports
        .iter()
        .map(|r| r["dead_lettered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, valid.len() as u64);
    assert_eq!(
        delivered + dead,
        6_000,
        "every record delivered or dead-lettered"
    );
}

#[test]
fn a_killed_process_loses_nothing_and_its_partitions_are_taken_over() {
    let Some(group) = Group::start(&[]) else {
        return;
    };
    let api = &group.api;
    let valid = group.load(6_000, 8, 12);
    // A small queue: the records pending acknowledgement at the kill, all
    // JetStream redelivers, are at most 200.
    let extra = ["--queue-capacity", "200"];
    let mut members = group.members(3, &extra);
    eventually(Duration::from_secs(60), "a third delivered", || {
        delivered_total(api) >= 2_000
    });
    let victim = members.remove(0);
    let orphaned: BTreeSet<String> = victim.took().into_iter().map(|(_, p)| p).collect();
    assert!(!orphaned.is_empty(), "the killed process held partitions");
    victim.signal("-9");
    let killed_at = SystemTime::now();
    drop(victim);
    eventually(Duration::from_secs(150), "every record delivered", || {
        delivered_total(api) >= valid.len()
    });

    // Taken over: each orphaned partition taken by a survivor within the
    // lease time, plus one look for free partitions (0.5 s) and a second of
    // slack for the server's expiry and the consumer's making.
    let bound = LEASE + Duration::from_millis(1_500);
    for partition in &orphaned {
        let taken = members
            .iter()
            .flat_map(Member::took)
            .filter(|(at, p)| p == partition && *at > killed_at)
            .map(|(at, _)| at.duration_since(killed_at).unwrap())
            .min();
        let taken = taken.unwrap_or_else(|| panic!("partition {partition} never taken over"));
        eprintln!("partition {partition} taken over {taken:?} after the kill");
        assert!(
            taken <= bound,
            "partition {partition} taken over after {taken:?}"
        );
    }
    let reports: Vec<_> = members.into_iter().map(Member::stop).collect();
    // Nothing left behind but records handed over to a process that took
    // their partition (a rebalancing while the members came up).
    assert!(
        reports.iter().all(|r| r["handed_back"] == r["handed_over"]),
        "{reports:?}"
    );

    let counts = all_delivered(api, &valid);
    assert_order_per_partition(api);
    // The only duplicates: records of the killed process's partitions
    // that it had taken and not acknowledged, each sent again under the
    // same idempotency key.
    let duplicated: Vec<&Identity> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "{} records delivered twice after the kill",
        duplicated.len()
    );
    assert!(duplicated.len() <= 200, "{} duplicates", duplicated.len());
    for (stream, partition, _) in &duplicated {
        assert!(
            orphaned.contains(&partition.to_string()),
            "{stream}/{partition} was not orphaned"
        );
    }
    common::sent_again_under_the_same_key(api, duplicated);
}

#[test]
fn uneven_partitions_lose_nothing_and_keep_the_quota() {
    let Some(group) = Group::start(&[]) else {
        return;
    };
    let api = &group.api;
    // One partition holds half the records; seven share the rest.
    let valid = publish_uneven(&group.jet, 4_000);
    let members = group.members(3, &[]);
    eventually(Duration::from_secs(150), "every record delivered", || {
        delivered_total(api) >= valid.len()
    });
    for member in members {
        member.stop();
    }
    let counts = all_delivered(api, &valid);
    assert!(counts.values().all(|&n| n == 1), "each once");
    assert_eq!(api.ledger().counts.order_violations, 0);
    // The target is 0.95 of the ceiling; this load misses it
    // (0.930 measured, BENCHMARKS.md): the hot partition's four (source,
    // partition) lanes, one call in flight each, wait for shared slots as
    // often as the other 28 lanes do, so the hot partition is left to
    // finish alone at what its four lanes carry (ARCHITECTURE.md, "Skewed
    // partitions"); and at the shared window's 96.4/s, 4 000 records span
    // 42 windows, 0.952, even unskewed. Asserted: a floor that shows a
    // regression.
    assert_quota_kept_and_used(api, 0.85);
}

/// Publishes `records` records of the four sources, half of each
/// source's to partition 0 and the rest over partitions 1 to 7, each
/// (source, partition)'s sequence counting from 1.
fn publish_uneven(jet: &Jet, records: u64) -> BTreeSet<Identity> {
    let template = sluice()
        .args(["generate", "--records", &records.to_string()])
        .args(["--partitions", "1", "--invalid-rate", "0"])
        .output()
        .unwrap();
    let mut next: BTreeMap<(String, usize), u64> = BTreeMap::new();
    let mut turns: BTreeMap<String, usize> = BTreeMap::new();
    let mut valid = BTreeSet::new();
    let mut lines = Vec::new();
    for line in String::from_utf8(template.stdout).unwrap().lines() {
        let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
        let source = record["source"].as_str().unwrap().to_owned();
        let turn = turns.entry(source.clone()).or_default();
        let partition = if (*turn).is_multiple_of(2) {
            0
        } else {
            1 + (*turn / 2) % 7
        };
        *turn += 1;
        let sequence = next.entry((source.clone(), partition)).or_default();
        *sequence += 1;
        record["partition"] = partition.into();
        record["sequence_id"] = (*sequence).into();
        valid.insert((source.clone(), partition as u64, *sequence));
        lines.push((source, partition as u32, record.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let publisher = sluice_nats::JetStreamPublisher::connect(&jet.url)
            .await
            .unwrap()
            .with_prefix(&jet.prefix);
        publisher
            .create_stream_if_missing(&jet.stream, vec![format!("{}.>", jet.prefix)])
            .await
            .unwrap();
        publisher.publish_all(lines).await.unwrap();
    });
    valid
}

#[test]
fn a_nats_server_restarted_mid_run_loses_nothing() {
    let _turn = take_turn();
    if !services::installed("nats-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Server::nats(dir.path());
    let jet = Jet::new(&nats.addr);
    let api = MockApi::start(&["--rate-limit", QUOTA]);
    let valid = expected(&jet.publish(dir.path(), 2_000, 4, 13)).0;
    let members: Vec<Member> = (0..2)
        .map(|_| Member::start(&jet, &api, None, &[]))
        .collect();
    eventually(Duration::from_secs(60), "a quarter delivered", || {
        delivered_total(&api) >= 500
    });
    nats.stop();
    std::thread::sleep(Duration::from_secs(2));
    nats.restart();
    eventually(Duration::from_secs(120), "every record delivered", || {
        delivered_total(&api) >= valid.len()
    });
    for member in members {
        member.stop();
    }
    all_delivered(&api, &valid);
    assert_order_per_partition(&api);
}

#[test]
fn the_quota_holds_while_the_shared_limit_is_down_and_the_run_completes_after() {
    let _turn = take_turn();
    if !services::installed("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Server::redis(dir.path());
    let limit = RedisKey::new(redis.port());
    let api = MockApi::start(&["--rate-limit", QUOTA]);
    let input = common::generate(dir.path(), "records.ndjson", 1_500, 14);
    // Its dead letters go to ./sluice.dead-letters: in its own directory.
    let run = sluice()
        .current_dir(dir.path())
        .args([
            "run",
            "--input",
            input.to_str().unwrap(),
            "--http-url",
            &api.url(),
        ])
        .args(["--rate-limit", QUOTA, "--shared-limit", &limit.url()])
        .args(["--max-attempts", "30", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(60), "a third delivered", || {
        delivered_total(&api) >= 500
    });
    redis.stop();
    let down = api.counts().last_success_ms.unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let up = api.counts().last_success_ms.unwrap();
    redis.restart();
    let output = common::wait_bounded(run, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the shared limit is unreachable"),
        "{stderr}"
    );
    assert!(stderr.contains("the shared limit is back"), "{stderr}");

    // While the store was down only the calls already admitted (at most
    // 16, the calls in flight) could succeed; then nothing until it was
    // back; and never more than the quota.
    let ledger = api.ledger();
    let during = ledger
        .success_times_ms
        .iter()
        .filter(|&&at| at > down && at <= up)
        .count();
    assert!(during <= 16, "{during} successes while the store was down");
    assert!(ledger.max_successes_in_any(Duration::from_secs(1)) <= 100);
    let (valid, _) = expected(&input);
    all_delivered(&api, &valid);
    assert_eq!(report(&output)["conserved"], true);
}
