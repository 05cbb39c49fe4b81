//! The bounded reader that cuts lines out of a byte stream.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The default longest line kept, in bytes (1 MiB), terminator excluded.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// A line as read, before the source decides what to do with it.
///
/// `offset..end` are the bytes the line occupies in its input, its
/// terminator included, so the next line starts at `end`. `text` is the
/// line without its terminator (`\n`, or `\r\n`), at most the reader's
/// maximum in bytes (else `truncated`), converted from UTF-8 lossily.
#[derive(Debug)]
pub(crate) struct ReadLine {
    pub(crate) text: String,
    pub(crate) line_number: u64,
    pub(crate) offset: u64,
    pub(crate) end: u64,
    pub(crate) truncated: bool,
    /// Empty, or only spaces, tabs and carriage returns: `text` is then
    /// left empty.
    pub(crate) blank: bool,
    /// Ended by the end of the input, not by a `\n`: a writer may still
    /// complete it.
    pub(crate) unterminated: bool,
}

/// Cuts lines out of a buffered byte stream, keeping at most `max` bytes
/// of any line in memory.
///
/// A line is complete at its `\n`. At the end of what the stream holds,
/// the bytes of a line without terminator are kept, so that a stream that
/// grows (a followed file) completes it later; [`take_partial`](Self::take_partial)
/// makes them a line when the stream is known to be complete.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    max: usize,
    /// Bytes consumed so far, counting from the input's start.
    offset: u64,
    /// Lines read so far, counting from the input's start.
    lines: u64,
    /// Where the line under way started (`offset` when none is).
    start: u64,
    /// The line under way's first bytes, at most `max + 1`.
    buf: Vec<u8>,
    /// Whether the line under way had more than `max + 1` bytes.
    overflow: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Reads `reader`, whose next byte is at `offset` of the input and
    /// begins line `lines + 1`. `max` is at least 1.
    pub(crate) fn new(reader: R, max: usize, offset: u64, lines: u64) -> LineReader<R> {
        LineReader {
            reader,
            max: max.max(1),
            offset,
            lines,
            start: offset,
            buf: Vec::new(),
            overflow: false,
        }
    }

    /// Bytes consumed so far, a line under way included.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next complete line, or `None` at the end of what the input
    /// holds now (a line under way is kept). `observe` sees every byte
    /// consumed, with the input offset of its first byte.
    ///
    /// An error may leave a line half consumed; the reader should then be
    /// dropped.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes are consumed only between awaits.
    pub(crate) async fn next(
        &mut self,
        mut observe: impl FnMut(u64, &[u8]),
    ) -> io::Result<Option<ReadLine>> {
        // One byte over the maximum is kept, so that a `\r` before the
        // `\n` of a line of exactly `max` bytes is not mistaken for text.
        let keep = self.max.saturating_add(1);
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let content = &chunk[..if found { take - 1 } else { take }];
            let room = keep.saturating_sub(self.buf.len());
            if content.len() > room {
                self.overflow = true;
            }
            self.buf
                .extend_from_slice(&content[..content.len().min(room)]);
            observe(self.offset, &chunk[..take]);
            self.reader.consume(take);
            self.offset += take as u64;
            if found {
                return Ok(Some(self.finish_line(true)));
            }
        }
    }

    /// The line under way, without terminator, as a whole line: the input
    /// is complete. `None` when no byte of one was read.
    pub(crate) fn take_partial(&mut self) -> Option<ReadLine> {
        (self.offset > self.start).then(|| self.finish_line(false))
    }

    /// The line under way, ended by a `\n` (`terminated`) or by the end of
    /// the input.
    fn finish_line(&mut self, terminated: bool) -> ReadLine {
        let mut truncated = std::mem::take(&mut self.overflow);
        if terminated && !truncated && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > self.max {
            self.buf.truncate(self.max);
            truncated = true;
        }
        self.lines += 1;
        let blank = !truncated && self.buf.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        let bytes = std::mem::take(&mut self.buf);
        let text = if blank {
            String::new()
        } else {
            match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
            }
        };
        let offset = std::mem::replace(&mut self.start, self.offset);
        ReadLine {
            text,
            line_number: self.lines,
            offset,
            end: self.offset,
            truncated,
            blank,
            unterminated: !terminated,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<ReadLine> {
        // A tiny buffer, so that lines span several chunks.
        let reader = tokio::io::BufReader::with_capacity(3, input);
        let mut reader = LineReader::new(reader, max, 0, 0);
        let mut seen = Vec::new();
        let mut observed = Vec::new();
        while let Some(line) = reader
            .next(|at, bytes| {
                assert_eq!(at as usize, observed.len());
                observed.extend_from_slice(bytes);
            })
            .await
            .unwrap()
        {
            seen.push(line);
        }
        seen.extend(reader.take_partial());
        assert!(reader.take_partial().is_none(), "taken once");
        assert_eq!(observed, input);
        seen
    }

    #[tokio::test]
    async fn cuts_terminators_and_long_lines() {
        let seen = lines(b"abcd\r\nabcde\r\n\r\nabcdef\nab\r", 5).await;
        let texts: Vec<_> = seen.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["abcd", "abcde", "", "abcde", "ab\r"]);
        let cut: Vec<_> = seen.iter().map(|l| l.truncated).collect();
        assert_eq!(cut, [false, false, false, true, false]);
        assert!(seen[2].blank);
        let spans: Vec<_> = seen.iter().map(|l| (l.offset, l.end)).collect();
        assert_eq!(spans, [(0, 6), (6, 13), (13, 15), (15, 22), (22, 25)]);
    }

    #[tokio::test]
    async fn a_line_under_way_is_kept_until_its_end_arrives() {
        let (mut writer, pipe) = tokio::io::duplex(64);
        let mut reader = LineReader::new(tokio::io::BufReader::new(pipe), 4, 0, 0);
        writer.write_all(b"one\ntw").await.unwrap();
        let first = reader.next(|_, _| {}).await.unwrap().unwrap();
        assert_eq!((first.text.as_str(), first.end), ("one", 4));
        writer.write_all(b"o-and-more").await.unwrap();
        drop(writer); // the end: fill_buf answers empty
        assert!(reader.next(|_, _| {}).await.unwrap().is_none());
        assert_eq!(reader.offset(), 16);
        let second = reader.take_partial().unwrap();
        assert_eq!(second.text, "two-");
        assert!(second.truncated, "cut at the maximum across reads");
        assert_eq!((second.line_number, second.offset, second.end), (2, 4, 16));
    }

    #[tokio::test]
    async fn a_line_completed_after_an_end_is_one_line() {
        let (mut writer, pipe) = tokio::io::duplex(64);
        let mut reader = LineReader::new(tokio::io::BufReader::new(pipe), 100, 10, 3);
        writer.write_all(b"ab").await.unwrap();
        // Nothing more now: the duplex would wait; a read cancelled then
        // loses nothing.
        let pending = tokio::time::timeout(std::time::Duration::ZERO, reader.next(|_, _| {})).await;
        assert!(pending.is_err(), "no complete line yet");
        writer.write_all(b"c\r\n").await.unwrap();
        let line = reader.next(|_, _| {}).await.unwrap().unwrap();
        assert_eq!((line.text.as_str(), line.truncated), ("abc", false));
        assert_eq!((line.line_number, line.offset, line.end), (4, 10, 15));
        assert!(reader.take_partial().is_none());
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced() {
        let seen = lines(b"a\xffb\n", 100).await;
        assert_eq!(seen[0].text, "a\u{fffd}b");
    }
}
