//! The example of a source and a sink of one's own (`examples/
//! custom_connectors.rs`), run as a test: every generated record reaches
//! the file, in order.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../examples/custom_connectors.rs"]
mod example;

#[tokio::test]
async fn a_source_and_a_sink_of_ones_own_run_through_the_configured_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let summary = example::run(&out).await.unwrap();
    assert!(summary.conserved && summary.is_complete(), "{summary:?}");
    assert_eq!((summary.ingested, summary.delivered), (25, 25));
    let written = std::fs::read_to_string(&out).unwrap();
    let expected: Vec<String> = (1..=25).map(|n| format!("{{\"n\":{n}}}")).collect();
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    assert_eq!(summary.streams.keys().collect::<Vec<_>>(), ["generated"]);
}
