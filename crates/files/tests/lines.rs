//! The line source: numbering and offsets, terminators, blank lines,
//! over-long lines, invalid UTF-8, origins, pull-based reading.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::StreamExt;
use sluice_files::{DEFAULT_MAX_LINE_BYTES, LineSource, Position, SourceEnd, SourceOptions};
use sluice_processor::{Origin, StreamName};
use tokio::io::{AsyncRead, ReadBuf};

use common::{deliver, ends, numbered, pull_with_ends};

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn lines_are_numbered_with_their_byte_spans_for_lf_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "mixed.jsonl", b"one\r\ntwo\n\r\n  \nthree\r\nfour");
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let pulled = pull_with_ends(source).await;
    assert_eq!(
        ends(&pulled[..3]),
        [
            (1, 5, "one".to_owned()),
            (2, 9, "two".to_owned()),
            // lines 3 ("\r\n") and 4 ("  \n") are blank: skipped, counted
            (5, 21, "three".to_owned()),
        ]
    );
    // No terminator: read at the end, but the watermark may not pass its
    // start (a writer may complete it).
    let (last, after) = &pulled[3];
    assert_eq!((last.position.sequence, last.text.as_str()), (6, "four"));
    assert_eq!(
        *after,
        Position {
            offset: 21,
            lines: 5
        }
    );
    let records: Vec<_> = pulled.into_iter().map(|(record, _)| record).collect();
    assert!(records.iter().all(|r| r.cut.is_none()));
    assert!(
        records
            .iter()
            .all(|r| r.position.stream.as_str() == "mixed")
    );
    assert!(records.iter().all(|r| r.position.partition == 0));
    assert_eq!(records[0].position.to_string(), "mixed/0#1");
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(records[0].origin.as_str(), canonical.to_str().unwrap());
}

#[tokio::test]
async fn blank_lines_count_as_done_so_the_watermark_reaches_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "blanks.jsonl", b"\n{}\n\n\r\n \t\n");
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let (lines, _) = deliver(source).await;
    assert_eq!(numbered(&lines), [(2, "{}".to_owned())]);
    let mark = progress.watermark();
    assert_eq!((mark.offset, mark.lines), (10, 5));
    assert_eq!(progress.resolutions().skipped, 4);
    assert_eq!(progress.resolutions().delivered, 1);
    assert_eq!(progress.end(), Some(SourceEnd::Finished));
}

#[tokio::test]
async fn an_over_long_line_is_cut_with_its_length_and_its_successors_keep_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(10_000);
    let text = format!("short\n{long}\r\nafter\n");
    let path = write(&dir, "long.jsonl", text.as_bytes());
    let options = SourceOptions {
        max_line_bytes: 16,
        buffer_bytes: 64,
        ..SourceOptions::default()
    };
    let source = LineSource::open(&path, options).await.unwrap();
    let pulled = pull_with_ends(source).await;
    assert_eq!(
        ends(&pulled),
        [
            (1, 6, "short".to_owned()),
            (2, 10_008, "x".repeat(16)),
            (3, 10_014, "after".to_owned()),
        ]
    );
    let cut: Vec<_> = pulled.iter().map(|(record, _)| record.cut).collect();
    assert_eq!(
        cut,
        [None, Some(10_002), None],
        "the whole line, CRLF included"
    );
}

#[tokio::test]
async fn a_line_of_exactly_the_maximum_is_whole_even_with_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "edge.txt", b"abcd\r\nabcde\r\nabcdef\r\n");
    let options = SourceOptions {
        max_line_bytes: 5,
        buffer_bytes: 2,
        ..SourceOptions::default()
    };
    let source = LineSource::open(&path, options).await.unwrap();
    let lines: Vec<_> = source.map(|incoming| incoming.payload).collect().await;
    let cut: Vec<_> = lines.iter().map(|l| (l.text.as_str(), l.cut)).collect();
    assert_eq!(cut, [("abcd", None), ("abcde", None), ("abcde", Some(8))]);
}

#[tokio::test]
async fn a_line_over_the_default_maximum_is_cut_to_one_mebibyte() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = vec![b'{'; 3 * DEFAULT_MAX_LINE_BYTES];
    text.extend_from_slice(b"\n{}\n");
    let path = write(&dir, "huge.jsonl", &text);
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let pulled = pull_with_ends(source).await;
    assert_eq!(pulled.len(), 2);
    assert_eq!(pulled[0].0.text.len(), DEFAULT_MAX_LINE_BYTES);
    assert_eq!(pulled[0].0.cut, Some(3 * DEFAULT_MAX_LINE_BYTES as u64 + 1));
    assert_eq!(pulled[1].0.text, "{}");
    assert_eq!(pulled[1].1.offset, 3 * DEFAULT_MAX_LINE_BYTES as u64 + 4);
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "bytes.txt", b"caf\xe9\nok\n");
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let pulled = pull_with_ends(source).await;
    assert_eq!(
        ends(&pulled),
        [(1, 5, "caf\u{fffd}".to_owned()), (2, 8, "ok".to_owned())]
    );
}

#[tokio::test]
async fn the_stream_is_the_configured_name_else_the_file_stem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "orders.eu.jsonl", b"{}\n");
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let lines: Vec<_> = source.map(|incoming| incoming.payload).collect().await;
    assert_eq!(lines[0].position.stream.as_str(), "orders.eu");
    let options = SourceOptions {
        stream: Some(StreamName::new("configured").unwrap()),
        ..SourceOptions::default()
    };
    let source = LineSource::open(&path, options).await.unwrap();
    let lines: Vec<_> = source.map(|incoming| incoming.payload).collect().await;
    assert_eq!(lines[0].position.stream.as_str(), "configured");
}

#[tokio::test]
async fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.jsonl");
    let error = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("absent.jsonl"), "{error}");
}

#[tokio::test]
async fn file_lines_carry_acks_and_reader_lines_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "acks.txt", b"a\nb\n");
    let source = LineSource::open(&path, SourceOptions::default())
        .await
        .unwrap();
    let incoming: Vec<_> = source.collect().await;
    assert!(incoming.iter().all(|i| i.ack.is_some()));

    let stream = StreamName::new("piped").unwrap();
    let reader = std::io::Cursor::new(b"a\r\n\nb".to_vec());
    let source = LineSource::reader(
        reader,
        Origin::new("pipe"),
        stream,
        SourceOptions::default(),
    );
    assert!(source.progress().is_none());
    let incoming: Vec<_> = source.collect().await;
    assert!(incoming.iter().all(|i| i.ack.is_none()));
    let lines: Vec<_> = incoming.into_iter().map(|i| i.payload).collect();
    assert_eq!(numbered(&lines), [(1, "a".to_owned()), (3, "b".to_owned())]);
    assert_eq!(lines[0].position.stream.as_str(), "piped");
    assert_eq!(lines[1].origin.as_str(), "pipe");
}

/// An endless reader of `{}\n` that counts the bytes it hands out.
struct Endless(Arc<AtomicUsize>);

impl AsyncRead for Endless {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining();
        let bytes: Vec<u8> = b"{}\n".iter().copied().cycle().take(n).collect();
        buf.put_slice(&bytes);
        self.0.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn the_source_reads_only_as_far_as_it_is_pulled() {
    let handed = Arc::new(AtomicUsize::new(0));
    let options = SourceOptions {
        buffer_bytes: 1024,
        ..SourceOptions::default()
    };
    let stream = StreamName::new("endless").unwrap();
    let origin = Origin::new("endless");
    let mut source = LineSource::reader(Endless(Arc::clone(&handed)), origin, stream, options);
    assert_eq!(
        handed.load(Ordering::Relaxed),
        0,
        "nothing read before a pull"
    );
    for n in 1..=1000 {
        let line = source.next().await.unwrap().payload;
        assert_eq!(line.position.sequence, n);
    }
    // 1000 lines are 3000 bytes: at most one buffer beyond them was read.
    assert!(handed.load(Ordering::Relaxed) <= 3000 + 1024);
}
