//! The lines resolved past a watermark, as a few spans of a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::progress::Position;

/// A run of whole lines of a file, from the start of its first line to
/// the end of its last (terminator included): `from..to`. Saved in a
/// checkpoint as `[from.offset, from.lines, to.offset, to.lines]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u64; 4]", into = "[u64; 4]")]
pub struct Span {
    /// Where its first line starts.
    pub from: Position,
    /// Just past its last line.
    pub to: Position,
}

impl From<[u64; 4]> for Span {
    fn from([offset, lines, end, end_lines]: [u64; 4]) -> Span {
        Span {
            from: Position { offset, lines },
            to: Position {
                offset: end,
                lines: end_lines,
            },
        }
    }
}

impl From<Span> for [u64; 4] {
    fn from(span: Span) -> [u64; 4] {
        [
            span.from.offset,
            span.from.lines,
            span.to.offset,
            span.to.lines,
        ]
    }
}

/// The lines of a file resolved for good (delivered, dead-lettered or
/// blank) that a watermark has not passed yet, as disjoint spans, adjacent
/// ones merged: as many spans as there are gaps (lines in flight or handed
/// back) between them, whatever the number of lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Spans(BTreeMap<u64, Span>);

impl Spans {
    /// The spans `spans`, as a checkpoint saved them (merged again, and
    /// those that are not runs of lines, `to` before `from`, left out).
    pub(crate) fn of(spans: &[Span]) -> Spans {
        let mut set = Spans::default();
        for span in spans {
            set.insert(span.from, span.to);
        }
        set
    }

    /// The lines `from..to` are resolved.
    pub(crate) fn insert(&mut self, mut from: Position, mut to: Position) {
        if to.offset < from.offset || to.lines < from.lines {
            return;
        }
        // Merge with the span ending where this one starts (or overlapping
        // it), and with those starting within or just after it.
        if let Some((_, before)) = self.0.range(..=from.offset).next_back()
            && before.to.offset >= from.offset
        {
            let before = *before;
            self.0.remove(&before.from.offset);
            from = before.from;
            to = to.max(before.to);
        }
        while let Some((_, after)) = self.0.range(from.offset..).next()
            && after.from.offset <= to.offset
        {
            let after = *after;
            self.0.remove(&after.from.offset);
            to = to.max(after.to);
        }
        self.0.insert(from.offset, Span { from, to });
    }

    /// Whether the line `from..to` is resolved: one span holds it whole,
    /// starting at the same line.
    pub(crate) fn covers(&self, from: Position, to: Position) -> bool {
        self.0
            .range(..=from.offset)
            .next_back()
            .is_some_and(|(_, span)| {
                span.from.lines <= from.lines
                    && to.offset <= span.to.offset
                    && to.lines <= span.to.lines
            })
    }

    /// Forgets the spans, and the parts of spans, a watermark at `mark`
    /// (a line start) has passed.
    pub(crate) fn prune(&mut self, mark: Position) {
        self.0.retain(|_, span| span.to.offset > mark.offset);
        if let Some((&key, span)) = self.0.range(..mark.offset).next_back() {
            let to = span.to;
            self.0.remove(&key);
            self.0.insert(mark.offset, Span { from: mark, to });
        }
    }

    /// The spans past `mark`, in file order.
    pub(crate) fn past(&self, mark: Position) -> Vec<Span> {
        self.0
            .values()
            .filter(|span| span.to.offset > mark.offset)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64, lines: u64) -> Position {
        Position { offset, lines }
    }

    #[test]
    fn adjacent_lines_merge_and_gaps_stay() {
        let mut spans = Spans::default();
        spans.insert(at(10, 1), at(20, 2));
        spans.insert(at(30, 3), at(40, 4));
        assert_eq!(spans.past(at(0, 0)).len(), 2, "a gap: line 3");
        spans.insert(at(20, 2), at(30, 3));
        assert_eq!(
            spans.past(at(0, 0)),
            [Span {
                from: at(10, 1),
                to: at(40, 4)
            }]
        );
        assert!(spans.covers(at(20, 2), at(30, 3)));
        assert!(spans.covers(at(10, 1), at(40, 4)));
        assert!(!spans.covers(at(30, 3), at(45, 4)), "a longer line");
        assert!(!spans.covers(at(40, 4), at(50, 5)));
        assert!(!spans.covers(at(0, 0), at(10, 1)));
        spans.prune(at(20, 2));
        assert_eq!(
            spans.past(at(0, 0)),
            [Span {
                from: at(20, 2),
                to: at(40, 4)
            }],
            "cut at the watermark"
        );
        spans.prune(at(40, 4));
        assert!(spans.past(at(0, 0)).is_empty());
    }

    #[test]
    fn spans_round_trip_as_four_numbers() {
        let span = Span {
            from: at(5, 1),
            to: at(9, 2),
        };
        let json = serde_json::to_string(&span).unwrap_or_default();
        assert_eq!(json, "[5,1,9,2]");
        let back: Span = serde_json::from_str(&json).unwrap_or(Span {
            from: at(0, 0),
            to: at(0, 0),
        });
        assert_eq!(back, span);
        assert_eq!(Spans::of(&[span, span]).past(at(0, 0)), [span]);
    }
}
