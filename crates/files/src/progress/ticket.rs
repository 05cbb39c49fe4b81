//! The acknowledgement of one tracked line.

use sluice_processor::{Acknowledge, Resolution};

use super::{Position, Progress};

/// The acknowledgement receiver of one tracked line: tells its
/// [`Progress`] the line's fate. Dropped untold, it tells
/// [`NotProcessed`](Resolution::NotProcessed).
#[derive(Debug)]
pub struct LineTicket {
    progress: Option<Progress>,
    file: u64,
    at: Position,
    /// Just past the line.
    end: Position,
}

impl LineTicket {
    pub(super) fn new(progress: Progress, file: u64, at: Position, end: Position) -> LineTicket {
        LineTicket {
            progress: Some(progress),
            file,
            at,
            end,
        }
    }

    /// The offset of the line.
    pub fn offset(&self) -> u64 {
        self.at.offset
    }
}

impl Acknowledge for LineTicket {
    fn acknowledge(mut self: Box<Self>, resolution: Resolution<'_>) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.file, self.at, self.end, resolution);
        }
    }
}

impl Drop for LineTicket {
    fn drop(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.resolve(self.file, self.at, self.end, Resolution::NotProcessed);
        }
    }
}
