//! The watermark: lines resolved out of order, dead letters done, lines
//! handed back (or acknowledgements dropped) holding it for good.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_files::{LineTicket, Position, Progress};
use sluice_processor::{Ack, Acknowledge, DeadLetterReason, Resolution};

fn at(offset: u64, lines: u64) -> Position {
    Position { offset, lines }
}

fn tell(ticket: LineTicket, resolution: Resolution<'_>) {
    Box::new(ticket).acknowledge(resolution);
}

/// Tracks lines 1..=n of 10 bytes each.
fn lines(progress: &Progress, n: u64) -> Vec<LineTicket> {
    (1..=n)
        .map(|line| progress.track((line - 1) * 10, line * 10, line))
        .collect()
}

#[test]
fn the_watermark_passes_only_a_prefix_of_done_lines() {
    let progress = Progress::new("/f", Position::default());
    let mut tickets = lines(&progress, 5).into_iter();
    let (t1, t2, t3, t4, t5) = (
        tickets.next().unwrap(),
        tickets.next().unwrap(),
        tickets.next().unwrap(),
        tickets.next().unwrap(),
        tickets.next().unwrap(),
    );
    assert_eq!(progress.read(), at(50, 5));
    assert_eq!(progress.watermark(), at(0, 0));
    tell(t3, Resolution::Delivered);
    tell(t5, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(0, 0), "line 1 is in flight");
    tell(t1, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(10, 1), "line 2 is in flight");
    let reason = DeadLetterReason::Invalid("bad".into());
    tell(t2, Resolution::DeadLettered(&reason));
    assert_eq!(progress.watermark(), at(30, 3), "dead-lettered is done");
    tell(t4, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(50, 5));
    assert_eq!(progress.in_flight(), 0);
    let resolutions = progress.resolutions();
    assert_eq!((resolutions.delivered, resolutions.dead_lettered), (4, 1));
}

#[test]
fn a_line_handed_back_holds_the_watermark_for_good() {
    let progress = Progress::new("/f", Position::default());
    let tickets = lines(&progress, 4);
    let mut tickets = tickets.into_iter();
    let t1 = tickets.next().unwrap();
    let t2 = tickets.next().unwrap();
    let rest: Vec<_> = tickets.collect();
    tell(t2, Resolution::NotProcessed);
    tell(t1, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(10, 1));
    for ticket in rest {
        tell(ticket, Resolution::Delivered);
    }
    // Lines 3 and 4 are done, line 2 is not: the watermark stays before it.
    assert_eq!(progress.watermark(), at(10, 1));
    assert_eq!(progress.blocked_at(), Some(at(10, 1)));
    assert_eq!(progress.in_flight(), 0, "no memory kept for resolved lines");
    // Later lines, read and done, do not move it either.
    let later = progress.track(40, 50, 5);
    tell(later, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(10, 1));
    assert_eq!(progress.resolutions().not_processed, 1);
}

#[test]
fn the_earliest_line_handed_back_is_the_one_that_counts() {
    let progress = Progress::new("/f", Position::default());
    let mut tickets = lines(&progress, 3).into_iter();
    let (t1, t2, t3) = (
        tickets.next().unwrap(),
        tickets.next().unwrap(),
        tickets.next().unwrap(),
    );
    tell(t3, Resolution::NotProcessed);
    tell(t1, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(10, 1));
    tell(t2, Resolution::NotProcessed);
    assert_eq!(progress.watermark(), at(10, 1));
    assert_eq!(progress.blocked_at(), Some(at(10, 1)));
}

#[test]
fn an_ack_dropped_unresolved_counts_as_not_processed() {
    let progress = Progress::new("/f", Position::default());
    let mut tickets = lines(&progress, 2).into_iter();
    let first = Ack::new(tickets.next().unwrap());
    let second = tickets.next().unwrap();
    drop(first);
    tell(second, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(0, 0));
    assert_eq!(progress.blocked_at(), Some(at(0, 0)));
    assert_eq!(progress.resolutions().not_processed, 1);
}

#[test]
fn a_ticket_dropped_unresolved_counts_as_not_processed() {
    let progress = Progress::new("/f", Position::default());
    drop(lines(&progress, 1));
    assert_eq!(progress.watermark(), at(0, 0));
    assert_eq!(progress.resolutions().not_processed, 1);
}

#[test]
fn skipped_lines_are_done_at_once_and_a_resumed_progress_starts_at_its_start() {
    let progress = Progress::new("/f", at(100, 7));
    assert_eq!(progress.watermark(), at(100, 7));
    assert_eq!(progress.start(), at(100, 7));
    progress.skip(101, 8);
    assert_eq!(progress.watermark(), at(101, 8));
    let ticket = progress.track(101, 120, 9);
    assert_eq!(ticket.offset(), 101);
    progress.skip(121, 10);
    assert_eq!(progress.watermark(), at(101, 8));
    tell(ticket, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(121, 10));
    assert_eq!(progress.resolutions().skipped, 2);
}

#[test]
fn the_checkpoint_is_at_the_watermark() {
    let progress = Progress::new("/data/f.jsonl", Position::default());
    let mut tickets = lines(&progress, 2).into_iter();
    tell(tickets.next().unwrap(), Resolution::Delivered);
    let checkpoint = progress.checkpoint();
    assert_eq!(checkpoint.path, std::path::Path::new("/data/f.jsonl"));
    assert_eq!((checkpoint.offset, checkpoint.lines), (10, 1));
    drop(tickets);
}

#[tokio::test]
async fn resolutions_from_many_threads_are_all_counted() {
    let progress = Progress::new("/f", Position::default());
    let tickets = lines(&progress, 1000);
    let mut tasks = Vec::new();
    for (i, ticket) in tickets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros((i % 7) as u64)).await;
            tell(ticket, Resolution::Delivered);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(progress.watermark(), at(10_000, 1000));
}
