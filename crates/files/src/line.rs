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
}

/// Cuts lines out of a buffered byte stream, keeping at most `max` bytes
/// of any line in memory.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    max: usize,
    /// Bytes consumed so far, counting from the input's start.
    offset: u64,
    /// Lines read so far, counting from the input's start.
    lines: u64,
    buf: Vec<u8>,
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
            buf: Vec::new(),
        }
    }

    /// The next line, or `None` at the end of the input. `observe` sees
    /// every byte consumed, with the input offset of its first byte.
    ///
    /// An error may leave a line half consumed; the reader should then be
    /// dropped.
    pub(crate) async fn next(
        &mut self,
        mut observe: impl FnMut(u64, &[u8]),
    ) -> io::Result<Option<ReadLine>> {
        let start = self.offset;
        // One byte over the maximum is kept, so that a `\r` before the
        // `\n` of a line of exactly `max` bytes is not mistaken for text.
        let keep = self.max.saturating_add(1);
        let mut overflow = false;
        let mut terminated = false;
        self.buf.clear();
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                break;
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let content = &chunk[..if found { take - 1 } else { take }];
            let room = keep.saturating_sub(self.buf.len());
            if content.len() > room {
                overflow = true;
            }
            self.buf
                .extend_from_slice(&content[..content.len().min(room)]);
            observe(self.offset, &chunk[..take]);
            self.reader.consume(take);
            self.offset += take as u64;
            if found {
                terminated = true;
                break;
            }
        }
        if self.offset == start {
            return Ok(None);
        }
        if terminated && !overflow && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let mut truncated = overflow;
        if self.buf.len() > self.max {
            self.buf.truncate(self.max);
            truncated = true;
        }
        self.lines += 1;
        let blank = !truncated && self.buf.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        let text = if blank {
            String::new()
        } else {
            match String::from_utf8(std::mem::take(&mut self.buf)) {
                Ok(text) => text,
                Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
            }
        };
        Ok(Some(ReadLine {
            text,
            line_number: self.lines,
            offset: start,
            end: self.offset,
            truncated,
            blank,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

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
    async fn invalid_utf8_is_replaced() {
        let seen = lines(b"a\xffb\n", 100).await;
        assert_eq!(seen[0].text, "a\u{fffd}b");
    }
}
