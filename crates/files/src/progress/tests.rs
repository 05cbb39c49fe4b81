//! A path's files over time: each file's watermark apart, the files
//! rotated away kept in the checkpoint until their lines are done.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_processor::{Acknowledge, DeadLetterReason, Resolution};

use super::*;

fn at(offset: u64, lines: u64) -> Position {
    Position { offset, lines }
}

fn id(inode: u64) -> Option<FileId> {
    Some(FileId { device: 1, inode })
}

fn tell(ticket: LineTicket, resolution: Resolution<'_>) {
    Box::new(ticket).acknowledge(resolution);
}

/// A progress reading file 1 of `/log`, from its start.
fn progress() -> Progress {
    Progress::of_files(
        PathBuf::from("/log"),
        vec![FileStart {
            id: id(1),
            ..FileStart::default()
        }],
        None,
        None,
    )
}

#[test]
fn a_new_file_numbers_on_and_the_old_one_stays_in_the_checkpoint_until_done() {
    let progress = progress();
    progress.observe(0, b"a\nb\nc\n");
    let a = progress.track(0, 2, 1);
    progress.skip(4, 2);
    let c = progress.track(4, 6, 3);
    progress.new_file(id(2), Vec::new(), false);
    assert_eq!(progress.sequence_base(), 3, "the old file's 3 lines");
    assert_eq!(progress.read(), at(0, 0), "the new file is read");
    progress.observe(0, b"d\n");
    let d = progress.track(0, 2, 1);
    tell(d, Resolution::Delivered);
    assert_eq!(progress.watermark(), at(2, 1));
    assert_eq!(progress.in_flight(), 2, "the old file's two lines");

    let checkpoint = progress.checkpoint();
    assert_eq!((checkpoint.offset, checkpoint.file_id), (2, id(2)));
    assert_eq!(checkpoint.sequence_base, 3);
    assert_eq!(checkpoint.rotated.len(), 1);
    let old = &checkpoint.rotated[0];
    assert_eq!((old.offset, old.lines, old.file_id), (0, 0, id(1)));
    assert!(old.rotated.is_empty());

    // The old file's tickets resolve in the old file's watermark.
    tell(a, Resolution::Delivered);
    assert_eq!(progress.checkpoint().rotated[0].offset, 4, "past the blank");
    let reason = DeadLetterReason::Invalid("bad".into());
    tell(c, Resolution::DeadLettered(&reason));
    let checkpoint = progress.checkpoint();
    assert!(checkpoint.rotated.is_empty(), "the old file is done");
    assert_eq!(checkpoint.offset, 2);
    let resolutions = progress.resolutions();
    assert_eq!(
        (
            resolutions.delivered,
            resolutions.dead_lettered,
            resolutions.skipped
        ),
        (2, 1, 1),
        "the forgotten file's resolutions still count"
    );
    assert_eq!(progress.in_flight(), 0);
}

#[test]
fn a_file_with_a_line_handed_back_stays_in_the_checkpoint() {
    let progress = progress();
    let a = progress.track(0, 2, 1);
    tell(a, Resolution::NotProcessed);
    progress.new_file(id(2), Vec::new(), false);
    progress.new_file(id(3), Vec::new(), false);
    let checkpoint = progress.checkpoint();
    assert_eq!(checkpoint.file_id, id(3));
    let rotated: Vec<_> = checkpoint.rotated.iter().map(|c| c.file_id).collect();
    assert_eq!(rotated, [id(1)], "file 2 is done (empty), file 1 is not");
    assert_eq!(progress.resolutions().not_processed, 1);
}

#[test]
fn a_lost_file_leaves_the_checkpoint_and_is_forgotten_once_resolved() {
    let progress = progress();
    let a = progress.track(0, 2, 1);
    progress.new_file(id(1), Vec::new(), true);
    assert_eq!(progress.sequence_base(), 1);
    let checkpoint = progress.checkpoint();
    assert!(checkpoint.rotated.is_empty(), "its bytes are gone");
    assert_eq!(progress.in_flight(), 1, "its line is still in flight");
    tell(a, Resolution::Delivered);
    assert_eq!(progress.in_flight(), 0);
    assert_eq!(progress.resolutions().delivered, 1);
    progress.checkpoint();
    assert_eq!(progress.resolutions().delivered, 1, "counted once");
}

#[test]
fn the_next_planned_file_is_read_with_its_own_start() {
    let progress = Progress::of_files(
        PathBuf::from("/log"),
        vec![
            FileStart {
                start: at(10, 2),
                prefix: b"0123456789".to_vec(),
                id: id(1),
                sequence_base: 0,
                resolved: Vec::new(),
            },
            FileStart {
                start: at(4, 1),
                prefix: b"abcd".to_vec(),
                id: id(2),
                sequence_base: 5,
                resolved: Vec::new(),
            },
        ],
        None,
        None,
    );
    assert_eq!((progress.start(), progress.sequence_base()), (at(10, 2), 0));
    let checkpoint = progress.checkpoint();
    assert_eq!((checkpoint.offset, checkpoint.sequence_base), (4, 5));
    assert_eq!(checkpoint.fingerprint_bytes, 4);
    assert_eq!(checkpoint.rotated.len(), 1);
    assert_eq!(checkpoint.rotated[0].fingerprint_bytes, 10);

    let line = progress.track(10, 14, 3);
    progress.next_file();
    assert_eq!((progress.start(), progress.sequence_base()), (at(4, 1), 5));
    assert_eq!(progress.checkpoint().rotated.len(), 1, "line 3 in flight");
    tell(line, Resolution::Delivered);
    assert!(progress.checkpoint().rotated.is_empty());
    // Past the last file, reading stays on it.
    progress.next_file();
    assert_eq!(progress.start(), at(4, 1));
}

#[test]
fn the_prefix_is_kept_up_to_the_fingerprint_and_only_in_order() {
    let progress = progress();
    progress.observe(0, b"ab");
    progress.observe(5, b"zz"); // not where the prefix ends: ignored
    progress.observe(2, &vec![b'c'; FINGERPRINT_BYTES]);
    progress.observe(FINGERPRINT_BYTES as u64 + 2, b"late");
    let ticket = progress.track(0, 5000, 1);
    tell(ticket, Resolution::Delivered);
    let checkpoint = progress.checkpoint();
    assert_eq!(checkpoint.fingerprint_bytes, FINGERPRINT_BYTES as u64);
    let mut expected = b"ab".to_vec();
    expected.extend(vec![b'c'; FINGERPRINT_BYTES - 2]);
    assert!(checkpoint.matches(&expected));
}
