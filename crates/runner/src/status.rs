//! The live status line of `sluice run` on a terminal: what a person
//! watching the run wants to know, in one line that fits the terminal.
//!
//! [`StatusLine`] keeps the last few snapshots, so that the rate it shows
//! is the current one (over about [`RATE_WINDOW`]) rather than the run's
//! average, and renders one line for a given width: delivered and the
//! current rate against the quota, the share read and an ETA for files
//! (or what a broker still holds), dead letters, calls failing now and
//! calls in flight. From [`WIDE`] columns on, every field is spelled out;
//! below, short forms come first, and fields are shortened, then dropped,
//! least important first, until the line fits; truncation is the last
//! resort. The line never exceeds the width, in terminal columns.
//!
//! [`show`] draws a line on stderr over the last one and [`hide`] erases
//! it; [`LogWriter`] is a writer for the log that erases the line before
//! a log line and draws it again after, so that the two never share a
//! row (the warnings of a failing API, say, repeated every 10 s).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sluice_processor::{CallOutcome, LimitUnit, MetricsSnapshot};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Terminals at least this wide get the wide layout.
pub const WIDE: usize = 100;

/// The span the current rates and the recent failures are measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The width assumed when neither `COLUMNS` nor the terminal tells one.
pub const DEFAULT_WIDTH: usize = 80;

/// The most snapshots kept, whatever their spacing.
const MAX_SAMPLES: usize = 64;

/// What separates two fields.
const SEPARATOR: &str = "  ";

/// Erases the terminal's current row and returns to its first column.
const ERASE: &str = "\r\x1b[2K";

/// The counts of one snapshot that rates are made of.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    elapsed: Duration,
    delivered: u64,
    successful_calls: u64,
    failed_calls: u64,
}

impl Sample {
    fn of(snapshot: &MetricsSnapshot) -> Sample {
        Sample {
            elapsed: snapshot.elapsed,
            delivered: snapshot.delivered,
            successful_calls: successful_calls(snapshot),
            failed_calls: snapshot.failed_calls,
        }
    }
}

/// Calls that delivered records, in whole or in part.
fn successful_calls(snapshot: &MetricsSnapshot) -> u64 {
    snapshot
        .calls_with(CallOutcome::Delivered)
        .saturating_add(snapshot.calls_with(CallOutcome::Partial))
}

/// What happened over the last few seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recent {
    /// Records delivered per second.
    pub records_per_second: f64,
    /// Calls that delivered records, per second.
    pub calls_per_second: f64,
    /// Calls that failed (refusals aside).
    pub failed_calls: u64,
    /// The time these are counted over.
    pub span: Duration,
}

/// The live status line: the last few snapshots, and the line they make
/// at a given width.
///
/// ```
/// use sluice::status::StatusLine;
/// use sluice_processor::MetricsSnapshot;
///
/// let mut status = StatusLine::new();
/// let snapshot = MetricsSnapshot { delivered: 12_345, ..MetricsSnapshot::default() };
/// let line = status.update(&snapshot, 80);
/// assert!(line.starts_with("12,345 delivered"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StatusLine {
    samples: VecDeque<Sample>,
}

impl StatusLine {
    /// A status line that has seen nothing yet.
    pub fn new() -> StatusLine {
        StatusLine::default()
    }

    /// Notes `snapshot`: it is the latest, and the rates are measured from
    /// the oldest kept snapshot at least [`RATE_WINDOW`] older (or the
    /// oldest kept) to it. A snapshot older than the latest (another run)
    /// starts anew.
    pub fn observe(&mut self, snapshot: &MetricsSnapshot) {
        let sample = Sample::of(snapshot);
        if self
            .samples
            .back()
            .is_some_and(|last| last.elapsed > sample.elapsed)
        {
            self.samples.clear();
        }
        self.samples.push_back(sample);
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .get(1)
                .is_some_and(|second| second.elapsed.saturating_add(RATE_WINDOW) <= sample.elapsed)
        {
            self.samples.pop_front();
        }
    }

    /// The rates and failures over the snapshots kept: from the oldest to
    /// the latest; with one snapshot, since the start. `None` before any.
    pub fn recent(&self) -> Option<Recent> {
        let last = *self.samples.back()?;
        let first = match self.samples.front() {
            Some(first) if first.elapsed < last.elapsed => *first,
            _ => Sample {
                elapsed: Duration::ZERO,
                delivered: 0,
                successful_calls: 0,
                failed_calls: 0,
            },
        };
        let span = last.elapsed.saturating_sub(first.elapsed);
        let seconds = span.as_secs_f64();
        let per_second = |to: u64, from: u64| {
            if seconds > 0.0 {
                to.saturating_sub(from) as f64 / seconds
            } else {
                0.0
            }
        };
        Some(Recent {
            records_per_second: per_second(last.delivered, first.delivered),
            calls_per_second: per_second(last.successful_calls, first.successful_calls),
            failed_calls: last.failed_calls.saturating_sub(first.failed_calls),
            span,
        })
    }

    /// Notes `snapshot` ([`observe`](Self::observe)) and renders it
    /// ([`render`](Self::render)).
    pub fn update(&mut self, snapshot: &MetricsSnapshot, width: usize) -> String {
        self.observe(snapshot);
        self.render(snapshot, width)
    }

    /// Notes `snapshot` and draws its line on stderr ([`show`]) at the
    /// terminal's width ([`terminal_width`], read anew each time, so that
    /// a resize is followed).
    pub fn draw(&mut self, snapshot: &MetricsSnapshot) {
        let line = self.update(snapshot, terminal_width());
        show(&line);
    }

    /// The line for `snapshot` (with the rates of the snapshots observed),
    /// at most `width` terminal columns wide: the wide layout from
    /// [`WIDE`] columns on, the narrow one below.
    pub fn render(&self, snapshot: &MetricsSnapshot, width: usize) -> String {
        let recent = self.recent().unwrap_or(Recent {
            records_per_second: snapshot.delivery_rate(),
            calls_per_second: 0.0,
            failed_calls: snapshot.failed_calls,
            span: snapshot.elapsed,
        });
        let layout = if width >= WIDE {
            Layout::Wide
        } else {
            Layout::Narrow
        };
        fit(fields(snapshot, &recent, layout), width)
    }
}

/// Which forms of the fields come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Spelled out.
    Wide,
    /// Short forms first.
    Narrow,
}

/// One field of the line: its forms, longest first (from `short_from` on,
/// those of the narrow layout), how much it matters (0 most), and what
/// separates it from the field before.
#[derive(Debug)]
struct Field {
    priority: u8,
    forms: Vec<String>,
    short_from: usize,
    separator: &'static str,
}

impl Field {
    /// A field with its `wide` forms and `narrow` ones: in the wide
    /// layout, the wide forms then the narrow ones not among them; in the
    /// narrow one, the narrow forms alone (none: the field is left out).
    /// `separator` sets it apart from the field before.
    fn new(
        layout: Layout,
        separator: &'static str,
        priority: u8,
        wide: Vec<String>,
        narrow: Vec<String>,
    ) -> Field {
        let narrow = dedup(narrow);
        let (forms, short_from) = match layout {
            Layout::Wide => {
                let wide: Vec<String> = dedup(wide)
                    .into_iter()
                    .filter(|form| !narrow.contains(form))
                    .collect();
                let short_from = wide.len();
                (wide.into_iter().chain(narrow).collect(), short_from)
            }
            Layout::Narrow => (narrow, 0),
        };
        Field {
            priority,
            forms,
            short_from,
            separator,
        }
    }
}

/// The fields of a line, as they are added.
struct Fields {
    layout: Layout,
    fields: Vec<Field>,
}

impl Fields {
    /// Adds a field (see [`Field::new`]) after the usual separator.
    fn add(&mut self, priority: u8, wide: Vec<String>, narrow: Vec<String>) {
        let field = Field::new(self.layout, SEPARATOR, priority, wide, narrow);
        self.fields.push(field);
    }
}

/// The fields for `snapshot`, in the order of the line. By priority:
/// the API failing and the records delivered; the current rate; the share
/// read or what a broker holds; the ETA; dead letters and calls failed
/// lately; the quota; calls in flight; the time elapsed (wide only).
fn fields(snapshot: &MetricsSnapshot, recent: &Recent, layout: Layout) -> Vec<Field> {
    let mut fields = Fields {
        layout,
        fields: Vec::new(),
    };
    if snapshot.api_failing {
        let failing = "API FAILING".to_owned();
        fields.add(0, vec![failing.clone()], vec![failing]);
    }
    let delivered = snapshot.delivered;
    fields.add(
        0,
        vec![format!("{} delivered", thousands(delivered))],
        vec![
            format!("{} delivered", thousands(delivered)),
            format!("{} delivered", compact(delivered)),
            format!("{} dlvd", compact(delivered)),
        ],
    );
    fields.add(
        1,
        vec![format!("{}/s", rate_text(recent.records_per_second, false))],
        vec![
            format!("{}/s", rate_text(recent.records_per_second, false)),
            format!("{}/s", rate_text(recent.records_per_second, true)),
        ],
    );
    // The quota qualifies the rate: it follows it, but matters less than
    // most fields after it.
    if let Some(quota) = quota_field(snapshot, recent, layout) {
        fields.fields.push(quota);
    }
    if let Some(share) = snapshot.share_read() {
        fields.add(
            2,
            vec![format!("{} read", percent(share, 1))],
            vec![percent(share, 0)],
        );
        if let Some(eta) = snapshot.eta(recent.records_per_second) {
            let eta = format!("ETA {}", clock(eta));
            fields.add(3, vec![eta.clone()], vec![eta]);
        }
    } else if let Some(pending) = snapshot.pending() {
        fields.add(
            2,
            vec![format!("{} pending", thousands(pending))],
            vec![
                format!("{} pending", thousands(pending)),
                format!("{} pending", compact(pending)),
            ],
        );
    }
    if snapshot.dead_lettered > 0 {
        let letters = snapshot.dead_lettered;
        fields.add(
            4,
            vec![format!("{} dead-lettered", thousands(letters))],
            vec![
                format!("{} dead-lettered", thousands(letters)),
                format!("{} dead", compact(letters)),
            ],
        );
    }
    if recent.failed_calls > 0 {
        let failed = recent.failed_calls;
        fields.add(
            4,
            vec![format!(
                "{} calls failed in {}s",
                thousands(failed),
                recent.span.as_secs_f64().round().max(1.0)
            )],
            vec![
                format!("{} failed", thousands(failed)),
                format!("{} failed", compact(failed)),
            ],
        );
    }
    fields.add(
        6,
        vec![format!("{} in flight", thousands(snapshot.in_flight))],
        vec![format!("{} in flight", compact(snapshot.in_flight))],
    );
    fields.add(
        7,
        vec![format!("{} elapsed", clock(snapshot.elapsed))],
        Vec::new(),
    );
    fields.fields
}

/// The quota after the rate, at priority 5, when there is one: `of 50/s`;
/// when the limit counts calls and calls carry several records, the calls
/// per second against it: `(49.8 calls/s of 50/s)`. The wide form adds
/// the limit as configured when its window is not a second.
fn quota_field(snapshot: &MetricsSnapshot, recent: &Recent, layout: Layout) -> Option<Field> {
    let (quota, as_configured) = quota(snapshot)?;
    let several = snapshot.delivered > successful_calls(snapshot);
    let counts_calls = snapshot
        .limit_window
        .is_some_and(|window| window.unit == LimitUnit::Calls);
    let (wide, narrow) = if counts_calls && several {
        let calls = rate_text(recent.calls_per_second, false);
        let wide = match &as_configured {
            Some(limit) => format!("({calls} calls/s of {quota}, {limit})"),
            None => format!("({calls} calls/s of {quota})"),
        };
        (wide, format!("({calls} calls/s of {quota})"))
    } else {
        let wide = match &as_configured {
            Some(limit) => format!("of {quota} ({limit})"),
            None => format!("of {quota}"),
        };
        (wide, format!("of {quota}"))
    };
    Some(Field::new(layout, " ", 5, vec![wide], vec![narrow]))
}

/// The quota, when there is one, and the limit as configured when its
/// window is not a second: per second (`50/s`) when that is at least one
/// a second (`5/s`, `300/1m`), else per window (`100/1day`, `None`).
fn quota(snapshot: &MetricsSnapshot) -> Option<(String, Option<String>)> {
    let limit = snapshot.client_rate_limit?;
    let window = snapshot.limit_window?.window;
    let count = thousands(u64::try_from(limit).unwrap_or(u64::MAX));
    if window == Duration::from_secs(1) {
        return Some((format!("{count}/s"), None));
    }
    let as_configured = format!(
        "{count}/{}",
        humantime::format_duration(window)
            .to_string()
            .replace(' ', "")
    );
    let seconds = window.as_secs_f64();
    let per_second = limit as f64 / seconds;
    if seconds > 0.0 && per_second >= 1.0 {
        Some((format!("{}/s", quota_text(per_second)), Some(as_configured)))
    } else {
        Some((as_configured, None))
    }
}

/// `forms` without repeats, in order.
fn dedup(forms: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(forms.len());
    for form in forms {
        if !kept.contains(&form) {
            kept.push(form);
        }
    }
    kept
}

/// The fields' line at most `width` columns wide (see [`fitted`]); cut
/// at `width` as a last resort.
fn fit(fields: Vec<Field>, width: usize) -> String {
    let line = fitted(fields, width).line();
    if line.width() <= width {
        line
    } else {
        truncate(&line, width)
    }
}

/// The fields of a line and the form chosen of each (`None`: left out).
#[derive(Debug)]
struct Fit {
    fields: Vec<Field>,
    chosen: Vec<Option<usize>>,
}

impl Fit {
    /// The chosen forms, each after its separator.
    fn line(&self) -> String {
        let mut line = String::new();
        for (field, chosen) in self.fields.iter().zip(&self.chosen) {
            if let Some(form) = chosen.and_then(|chosen| field.forms.get(chosen)) {
                if !line.is_empty() {
                    line.push_str(field.separator);
                }
                line.push_str(form);
            }
        }
        line
    }

    /// Takes one step to a shorter line: the least important field (of
    /// equal ones, the later) still in a wide-only form takes its next
    /// form; when none is, the least important field takes its next
    /// form, or is left out when it has none. `false` when the one field
    /// left is at its shortest.
    fn shorten(&mut self) -> bool {
        let present: Vec<usize> = (0..self.fields.len())
            .filter(|&i| self.chosen[i].is_some())
            .collect();
        let rank = |&i: &usize| (self.fields[i].priority, i);
        let wide_only = present
            .iter()
            .copied()
            .filter(|&i| self.chosen[i].is_some_and(|c| c < self.fields[i].short_from))
            .max_by_key(rank);
        let Some(least) = wide_only.or_else(|| present.iter().copied().max_by_key(rank)) else {
            return false;
        };
        let next = self.chosen[least].map_or(0, |chosen| chosen + 1);
        if next < self.fields[least].forms.len() {
            self.chosen[least] = Some(next);
            true
        } else if present.len() > 1 {
            self.chosen[least] = None;
            true
        } else {
            false
        }
    }
}

/// The fields, shortened and left out least important first until their
/// line is at most `width` columns wide (or one field is left, at its
/// shortest); then each field left out, most important first, is taken
/// back in its shortest form if the line still fits.
fn fitted(mut fields: Vec<Field>, width: usize) -> Fit {
    fields.retain(|field| !field.forms.is_empty());
    let mut fit = Fit {
        chosen: vec![Some(0); fields.len()],
        fields,
    };
    while fit.line().width() > width && fit.shorten() {}
    let mut left_out: Vec<usize> = (0..fit.fields.len())
        .filter(|&i| fit.chosen[i].is_none())
        .collect();
    left_out.sort_by_key(|&i| (fit.fields[i].priority, i));
    for i in left_out {
        fit.chosen[i] = Some(fit.fields[i].forms.len().saturating_sub(1));
        if fit.line().width() > width {
            fit.chosen[i] = None;
        }
    }
    fit
}

/// `text` cut to at most `width` terminal columns.
fn truncate(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

/// `n` with thousands separated by commas: `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `n` in at most about 5 characters: as is below 10,000, else with three
/// significant digits and an SI suffix: `12.3k`, `456M`, `18.4E`.
fn compact(n: u64) -> String {
    if n < 10_000 {
        return n.to_string();
    }
    const SUFFIXES: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    let mut value = n as f64;
    let mut suffix = "";
    for next in SUFFIXES {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        suffix = next;
    }
    // Cut, not rounded: 99,999 is 99.9k, not 100.0k.
    if value < 100.0 {
        format!("{:.1}{suffix}", (value * 10.0).floor() / 10.0)
    } else {
        format!("{:.0}{suffix}", value.floor())
    }
}

/// A rate: one decimal below 100, whole above; compact from 10,000 on
/// when `short`.
fn rate_text(rate: f64, short: bool) -> String {
    if !rate.is_finite() || rate < 0.0 {
        return "?".to_owned();
    }
    if rate < 99.95 {
        return format!("{rate:.1}");
    }
    // `as` saturates: a rate past u64::MAX reads u64::MAX.
    let whole = rate.round() as u64;
    if short && whole >= 10_000 {
        compact(whole)
    } else {
        thousands(whole)
    }
}

/// A quota per second, at least one: whole when it is, else like a rate.
fn quota_text(quota: f64) -> String {
    if quota.is_finite() && quota.fract() == 0.0 {
        thousands(quota as u64)
    } else {
        rate_text(quota, true)
    }
}

/// A share, 0 to 1, as a percent with `decimals` decimals, cut rather
/// than rounded (99.96 % read is not 100 %).
fn percent(share: f64, decimals: i32) -> String {
    let scale = 10_f64.powi(decimals);
    let value = (share.clamp(0.0, 1.0) * 100.0 * scale).floor() / scale;
    format!("{value:.prec$}%", prec = decimals.max(0) as usize)
}

/// A duration like a clock: `45s`, `1m23s`, `2h05m`, `3d04h`; `>99d`
/// from 100 days on.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 100 * 86_400 {
        ">99d".to_owned()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else if seconds < 86_400 {
        format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    } else {
        format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600)
    }
}

/// The width to render for: the width of the terminal on stderr (read
/// anew at each call, so a resize is followed), else `COLUMNS` when it is
/// set to a number (a terminal that reports no size, such as a serial
/// console), else [`DEFAULT_WIDTH`]. The terminal comes first, as for
/// `ls`: an exported `COLUMNS` goes stale when the window is resized.
pub fn terminal_width() -> usize {
    let terminal = terminal_size::terminal_size_of(io::stderr()).map(|(width, _)| width.0);
    let columns = std::env::var("COLUMNS").ok();
    width_from(terminal, columns.as_deref())
}

/// The width from the terminal's (`terminal`) and `COLUMNS` (`columns`):
/// see [`terminal_width`]. Zero, blank or not a number counts as unset.
fn width_from(terminal: Option<u16>, columns: Option<&str>) -> usize {
    terminal
        .filter(|&width| width > 0)
        .map(usize::from)
        .or_else(|| {
            columns
                .and_then(|columns| columns.trim().parse::<usize>().ok())
                .filter(|&columns| columns > 0)
        })
        .unwrap_or(DEFAULT_WIDTH)
}

/// The status line on the terminal now, if any; held while stderr is
/// written, so that a log line and the status line never interleave.
static SHOWN: Mutex<Option<String>> = Mutex::new(None);

fn shown() -> MutexGuard<'static, Option<String>> {
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Draws `line` on stderr in place of the status line shown (the row
/// erased first, so nothing of a longer line stays).
pub fn show(line: &str) {
    let mut shown = shown();
    // A closed stderr has nobody to tell.
    let _ = redraw(&mut io::stderr().lock(), &mut shown, Some(line));
}

/// Erases the status line, if one is shown.
pub fn hide() {
    let mut shown = shown();
    let _ = redraw(&mut io::stderr().lock(), &mut shown, None);
}

/// Puts `line` (`None`: nothing) on `out` in place of what is `shown`,
/// and notes it shown.
fn redraw(out: &mut impl Write, shown: &mut Option<String>, line: Option<&str>) -> io::Result<()> {
    match line {
        Some(line) => write!(out, "{ERASE}{line}")?,
        None if shown.is_some() => out.write_all(ERASE.as_bytes())?,
        None => return Ok(()),
    }
    *shown = line.map(str::to_owned);
    out.flush()
}

/// A [`MakeWriter`](tracing_subscriber::fmt::MakeWriter) for the log, to
/// stderr: a log line erases the status line shown, if any, and the
/// status line is drawn again after it, on the next row.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine {
            shown: shown(),
            out: io::stderr(),
            erased: false,
        }
    }
}

/// One log line being written to `W`: see [`LogWriter`]. The status line
/// stays as it is until the line is done.
#[derive(Debug)]
pub struct LogLine<W: Write> {
    shown: MutexGuard<'static, Option<String>>,
    out: W,
    erased: bool,
}

impl<W: Write> Write for LogLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.erased {
            if self.shown.is_some() {
                self.out.write_all(ERASE.as_bytes())?;
            }
            self.erased = true;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Drop for LogLine<W> {
    fn drop(&mut self) {
        if let (true, Some(line)) = (self.erased, self.shown.as_deref()) {
            let _ = write!(self.out, "{line}").and_then(|()| self.out.flush());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use sluice_processor::{CallCount, InputSnapshot, LimitWindow};

    use super::*;

    /// The widths every layout is checked at.
    const WIDTHS: [usize; 6] = [40, 60, 80, 99, 100, 160];

    /// A file of 100,000 bytes, half read: 500 records ingested, 450
    /// delivered, 50 inside; 50 records/s allowed, one record a call.
    fn file_run() -> MetricsSnapshot {
        MetricsSnapshot {
            elapsed: Duration::from_secs(10),
            ingested: 500,
            delivered: 450,
            backlog: 50,
            in_flight: 3,
            client_rate_limit: Some(50),
            limit_window: Some(LimitWindow {
                unit: LimitUnit::Calls,
                window: Duration::from_secs(1),
            }),
            calls: vec![CallCount {
                outcome: CallOutcome::Delivered,
                status: Some(200),
                calls: 450,
            }],
            inputs: vec![InputSnapshot {
                name: "orders.ndjson".to_owned(),
                bytes_read: 50_000,
                size_bytes: Some(100_000),
                checkpoint_offset: None,
                checkpoint_written_unix_seconds: None,
                pending: None,
            }],
            ..MetricsSnapshot::default()
        }
    }

    /// `snapshot` after `seconds` more at `rate` deliveries a second, as
    /// many calls.
    fn later(snapshot: &MetricsSnapshot, seconds: u64, rate: u64) -> MetricsSnapshot {
        let mut next = snapshot.clone();
        next.elapsed += Duration::from_secs(seconds);
        next.delivered += seconds * rate;
        next.ingested += seconds * rate;
        for count in &mut next.calls {
            count.calls += seconds * rate;
        }
        next
    }

    /// The line for `snapshots` in turn, at `width`.
    fn line(snapshots: &[MetricsSnapshot], width: usize) -> String {
        let mut status = StatusLine::new();
        let mut line = String::new();
        for snapshot in snapshots {
            line = status.update(snapshot, width);
        }
        line
    }

    #[test]
    fn numbers_are_grouped_and_compacted() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(compact(9_999), "9999");
        assert_eq!(compact(10_000), "10.0k");
        assert_eq!(compact(99_999), "99.9k");
        assert_eq!(compact(123_456), "123k");
        assert_eq!(compact(4_560_000), "4.5M");
        assert_eq!(compact(u64::MAX), "18.4E");
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(clock(Duration::from_millis(45_900)), "45s");
        assert_eq!(clock(Duration::from_secs(83)), "1m23s");
        assert_eq!(clock(Duration::from_secs(3725)), "1h02m");
        assert_eq!(clock(Duration::from_secs(90_000)), "1d01h");
        assert_eq!(clock(Duration::from_secs(100 * 86_400 - 1)), "99d23h");
        assert_eq!(clock(Duration::MAX), ">99d");
    }

    #[test]
    fn shares_are_cut_not_rounded() {
        assert_eq!(percent(0.9996, 1), "99.9%");
        assert_eq!(percent(0.9996, 0), "99%");
        assert_eq!(percent(1.0, 0), "100%");
        assert_eq!(percent(0.5, 1), "50.0%");
    }

    #[test]
    fn the_terminal_wins_then_columns_then_80() {
        assert_eq!(width_from(Some(60), Some("120")), 60);
        assert_eq!(width_from(None, Some("120")), 120);
        assert_eq!(width_from(Some(0), Some(" 90 ")), 90);
        assert_eq!(width_from(None, Some("0")), DEFAULT_WIDTH);
        assert_eq!(width_from(None, Some("wide")), DEFAULT_WIDTH);
        assert_eq!(width_from(None, Some("")), DEFAULT_WIDTH);
        assert_eq!(width_from(Some(0), None), DEFAULT_WIDTH);
        assert_eq!(width_from(None, None), DEFAULT_WIDTH);
    }

    #[test]
    fn the_rate_is_the_current_one_not_the_average() {
        // 10/s for a minute, then 50/s for 6 s: the run's average is
        // about 15/s, the current rate 50/s.
        let start = later(&MetricsSnapshot::default(), 60, 10);
        let mut snapshots = vec![start.clone()];
        for second in 1..=6 {
            snapshots.push(later(&start, second, 50));
        }
        let mut status = StatusLine::new();
        for snapshot in &snapshots {
            status.observe(snapshot);
        }
        let recent = status.recent().expect("snapshots observed");
        assert!(
            (recent.records_per_second - 50.0).abs() < 1e-9,
            "{recent:?}"
        );
        let last = snapshots.last().expect("snapshots");
        assert!(last.delivery_rate() < 16.0);
        assert!(status.render(last, 80).contains(" 50.0/s"));
    }

    #[test]
    fn failures_are_those_of_the_last_5_s() {
        // A call fails every second for 20 s: 5 in the last 5 s.
        let mut status = StatusLine::new();
        let mut snapshot = file_run();
        for _ in 0..20 {
            snapshot = later(&snapshot, 1, 50);
            snapshot.failed_calls += 1;
            status.observe(&snapshot);
        }
        let recent = status.recent().expect("observed");
        assert_eq!(recent.failed_calls, 5);
        assert_eq!(recent.span, RATE_WINDOW);
        let line = status.render(&snapshot, 160);
        assert!(line.contains("  5 calls failed in 5s  "), "{line}");
    }

    #[test]
    fn a_single_snapshot_shows_the_rate_since_the_start() {
        let line = line(&[later(&file_run(), 0, 0)], 80);
        assert!(line.contains(" 45.0/s of 50/s"), "{line}");
    }

    #[test]
    fn an_earlier_snapshot_starts_anew() {
        let mut status = StatusLine::new();
        status.observe(&later(&file_run(), 5, 100));
        status.observe(&file_run());
        let recent = status.recent().expect("observed");
        assert!(
            (recent.records_per_second - 45.0).abs() < 1e-9,
            "{recent:?}"
        );
    }

    #[test]
    fn a_file_run_at_80_columns_shows_progress_and_eta() {
        let run = file_run();
        // Two seconds at 50/s: 550 delivered, 600 ingested of 1,200 by
        // the share read, 600 + 50 left at 50/s: 13 s.
        let line = line(&[run.clone(), later(&run, 2, 50)], 80);
        assert_eq!(
            line, "550 delivered  50.0/s of 50/s  50%  ETA 13s  3 in flight",
            "{line}"
        );
    }

    #[test]
    fn a_file_run_at_160_columns_is_spelled_out() {
        let mut run = file_run();
        run.dead_lettered = 7;
        let mut next = later(&run, 2, 50);
        next.failed_calls = 4;
        next.api_failing = true;
        let line = line(&[run, next], 160);
        assert_eq!(
            line,
            "API FAILING  550 delivered  50.0/s of 50/s  50.0% read  ETA 13s  7 dead-lettered  \
             4 calls failed in 2s  3 in flight  12s elapsed",
            "{line}"
        );
    }

    #[test]
    fn the_narrow_layout_drops_the_least_first() {
        let mut run = later(&file_run(), 2, 50);
        run.dead_lettered = 7;
        let at = |width| line(&[file_run(), run.clone()], width);
        assert_eq!(
            at(99),
            "550 delivered  50.0/s of 50/s  50%  ETA 13s  7 dead-lettered  3 in flight"
        );
        assert_eq!(
            at(60),
            "550 delivered  50.0/s of 50/s  50%  ETA 13s  7 dead-lettered"
        );
        assert_eq!(
            at(59),
            "550 delivered  50.0/s  50%  ETA 13s  7 dead-lettered"
        );
        assert_eq!(at(40), "550 delivered  50.0/s  50%  ETA 13s");
        assert_eq!(at(30), "550 delivered  50.0/s  50%");
        assert_eq!(at(12), "550 dlvd");
        assert_eq!(at(5), "550 d");
        assert_eq!(at(0), "");
    }

    #[test]
    fn a_quota_over_a_minute_is_per_second_and_as_configured() {
        let mut run = file_run();
        run.client_rate_limit = Some(300);
        run.limit_window = Some(LimitWindow {
            unit: LimitUnit::Records,
            window: Duration::from_secs(60),
        });
        assert!(line(&[run.clone()], 160).contains(" 45.0/s of 5/s (300/1m)"));
        assert!(line(&[run.clone()], 80).contains(" 45.0/s of 5/s  "));
        run.client_rate_limit = Some(100);
        run.limit_window = Some(LimitWindow {
            unit: LimitUnit::Records,
            window: Duration::from_secs(86_400),
        });
        assert!(line(&[run], 80).contains(" 45.0/s of 100/1day  "));
    }

    #[test]
    fn a_limit_on_calls_of_several_records_is_said_in_calls() {
        let mut run = file_run();
        // 450 records in 45 calls: 10 a call.
        run.calls[0].calls = 45;
        let mut next = later(&run, 2, 50);
        next.calls[0].calls = 55;
        let wide = line(&[run.clone(), next.clone()], 160);
        assert!(wide.contains(" 50.0/s (5.0 calls/s of 50/s)  "), "{wide}");
        let narrow = line(&[run, next], 80);
        assert!(
            narrow.contains(" 50.0/s (5.0 calls/s of 50/s)  "),
            "{narrow}"
        );
    }

    #[test]
    fn no_limit_no_quota() {
        let mut run = file_run();
        run.client_rate_limit = None;
        run.limit_window = None;
        let line = line(&[run], 160);
        assert!(line.contains(" 45.0/s  50.0% read"), "{line}");
        assert!(!line.contains(" of "), "{line}");
    }

    #[test]
    fn stdin_has_no_share_and_no_eta() {
        let mut run = file_run();
        run.inputs[0].size_bytes = None;
        let line = line(&[run], 160);
        assert!(!line.contains('%') && !line.contains("ETA"), "{line}");
    }

    #[test]
    fn jetstream_shows_what_the_broker_holds() {
        let mut run = file_run();
        run.inputs = vec![
            InputSnapshot {
                name: "orders/0".to_owned(),
                bytes_read: 0,
                size_bytes: None,
                checkpoint_offset: None,
                checkpoint_written_unix_seconds: None,
                pending: Some(1_000_000),
            },
            InputSnapshot {
                name: "orders/1".to_owned(),
                bytes_read: 0,
                size_bytes: None,
                checkpoint_offset: None,
                checkpoint_written_unix_seconds: None,
                pending: Some(234),
            },
        ];
        assert!(line(&[run.clone()], 80).contains("  1,000,234 pending  "));
        let at_36 = line(&[run], 36);
        assert_eq!(at_36, "450 delivered  45.0/s  1.0M pending");
    }

    #[test]
    fn a_failing_api_is_said_first_even_when_narrow() {
        let mut run = file_run();
        run.api_failing = true;
        run.delivered = u64::MAX;
        run.failed_calls = 12;
        for width in WIDTHS {
            let line = line(&[run.clone()], width);
            assert!(line.starts_with("API FAILING  "), "{width}: {line}");
            assert!(line.width() <= width, "{width}: {line}");
        }
        run.delivered = 450;
        let at_80 = line(&[run], 80);
        assert!(
            at_80.starts_with("API FAILING  450 delivered  45.0/s of 50/s  50%  ETA "),
            "{at_80}"
        );
        assert!(at_80.contains("  12 failed"), "{at_80}");
    }

    #[test]
    fn the_log_erases_the_status_line_and_draws_it_again() {
        // Only this test takes what is shown.
        let mut shown = shown();
        let mut out = Vec::new();
        redraw(&mut out, &mut shown, Some("12 delivered")).expect("to memory");
        redraw(&mut out, &mut shown, Some("13 delivered")).expect("to memory");
        assert_eq!(out, b"\r\x1b[2K12 delivered\r\x1b[2K13 delivered");
        let mut logged = Vec::new();
        {
            let mut log = LogLine {
                shown,
                out: &mut logged,
                erased: false,
            };
            log.write_all(b"WARN the API is failing\n")
                .expect("to memory");
            log.write_all(b"since 10s\n").expect("to memory");
        }
        assert_eq!(
            logged,
            b"\r\x1b[2KWARN the API is failing\nsince 10s\n13 delivered"
        );

        // Erased, nothing is shown: the log goes as it is.
        let mut shown = super::shown();
        let mut out = Vec::new();
        redraw(&mut out, &mut shown, None).expect("to memory");
        redraw(&mut out, &mut shown, None).expect("to memory");
        assert_eq!(out, b"\r\x1b[2K");
        assert_eq!(*shown, None);
        let mut logged = Vec::new();
        {
            let mut log = LogLine {
                shown,
                out: &mut logged,
                erased: false,
            };
            log.write_all(b"INFO done\n").expect("to memory");
        }
        assert_eq!(logged, b"INFO done\n");
    }

    /// A snapshot of any shape: huge numbers, no limit or any, no sizes,
    /// sizes (read past or short of), pending, a failing API.
    fn snapshots() -> impl Strategy<Value = MetricsSnapshot> {
        let counts = prop_oneof![0..1_000_u64, 0..10_000_000_u64, any::<u64>()];
        // Sizes and pending counts that add up within a u64 over three
        // inputs (`share_read` and `pending` add them unchecked).
        let big = 0..(1_u64 << 60);
        let input = (
            big.clone(),
            prop_oneof![
                Just(None),
                (0..1_000_000_u64).prop_map(Some),
                big.clone().prop_map(Some)
            ],
            prop_oneof![Just(None), big.prop_map(Some)],
        )
            .prop_map(|(bytes_read, size_bytes, pending)| InputSnapshot {
                name: "input".to_owned(),
                bytes_read: size_bytes
                    .map_or(bytes_read, |size: u64| bytes_read % size.saturating_add(1)),
                size_bytes,
                checkpoint_offset: None,
                checkpoint_written_unix_seconds: None,
                pending,
            });
        let limit = prop_oneof![
            Just(None),
            (1..usize::MAX, 0..100_000_u64, any::<bool>()).prop_map(|(limit, window_ms, calls)| {
                Some((
                    limit,
                    LimitWindow {
                        unit: if calls {
                            LimitUnit::Calls
                        } else {
                            LimitUnit::Records
                        },
                        window: Duration::from_millis(window_ms),
                    },
                ))
            }),
        ];
        (
            (
                counts.clone(),
                counts.clone(),
                counts.clone(),
                counts.clone(),
            ),
            (counts.clone(), counts.clone(), counts),
            any::<u64>(),
            prop::collection::vec(input, 0..3),
            limit,
            any::<bool>(),
        )
            .prop_map(
                |(
                    (delivered, ingested, backlog, dead_lettered),
                    (in_flight, failed_calls, calls),
                    elapsed_ms,
                    inputs,
                    limit,
                    api_failing,
                )| MetricsSnapshot {
                    elapsed: Duration::from_millis(elapsed_ms),
                    delivered,
                    ingested,
                    backlog,
                    dead_lettered,
                    in_flight,
                    failed_calls,
                    calls: vec![CallCount {
                        outcome: CallOutcome::Delivered,
                        status: Some(200),
                        calls,
                    }],
                    client_rate_limit: limit.map(|(limit, _)| limit),
                    limit_window: limit.map(|(_, window)| window),
                    inputs,
                    api_failing,
                    by_stream: BTreeMap::new(),
                    ..MetricsSnapshot::default()
                },
            )
    }

    fn widths() -> impl Strategy<Value = usize> {
        prop_oneof![prop::sample::select(WIDTHS.to_vec()), 0..300_usize]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the snapshots, the line fits, is one line, and says
        /// how many were delivered when there is room for it.
        #[test]
        fn the_line_never_exceeds_the_width(
            earlier in snapshots(),
            snapshot in snapshots(),
            width in widths(),
        ) {
            let line = line(&[earlier, snapshot.clone()], width);
            prop_assert!(line.width() <= width, "{} > {width}: {line}", line.width());
            prop_assert!(!line.chars().any(char::is_control), "{line:?}");
            if width >= 40 {
                let delivered = [thousands(snapshot.delivered), compact(snapshot.delivered)];
                prop_assert!(
                    delivered.iter().any(|figure| line.contains(&format!("{figure} d"))),
                    "{line}"
                );
            }
        }

        /// With ordinary numbers (under ten million, a quota under a
        /// million), the figures that matter most appear at 80 columns:
        /// the API failing, the share read and the ETA, or what a broker
        /// holds; at 250, all of them.
        #[test]
        fn the_figures_appear_when_there_is_room(
            mut snapshot in snapshots(),
            width in prop::sample::select(vec![80_usize, 99, 100, 160, 250]),
        ) {
            let ordinary = |n: u64| n % 10_000_000;
            snapshot.delivered = ordinary(snapshot.delivered);
            snapshot.dead_lettered = ordinary(snapshot.dead_lettered);
            snapshot.in_flight = ordinary(snapshot.in_flight);
            snapshot.failed_calls = ordinary(snapshot.failed_calls);
            snapshot.elapsed = snapshot.elapsed.max(Duration::from_secs(1));
            snapshot.client_rate_limit = snapshot.client_rate_limit.map(|limit| limit % 1_000_000 + 1);
            for input in &mut snapshot.inputs {
                input.pending = input.pending.map(ordinary);
            }
            let line = line(&[snapshot.clone()], width);
            prop_assert!(line.width() <= width, "{line}");
            if snapshot.share_read().is_some() {
                prop_assert!(line.contains('%'), "{line}");
            }
            if snapshot.eta(snapshot.delivery_rate()).is_some() {
                prop_assert!(line.contains("ETA "), "{line}");
            }
            if snapshot.share_read().is_none() && snapshot.pending().is_some() {
                prop_assert!(line.contains(" pending"), "{line}");
            }
            if snapshot.api_failing {
                prop_assert!(line.starts_with("API FAILING"), "{line}");
            }
            if width >= 250 {
                prop_assert!(line.contains(" in flight"), "{line}");
                if snapshot.dead_lettered > 0 {
                    prop_assert!(line.contains(" dead-lettered"), "{line}");
                }
            }
        }

        /// Every field left out of a line that fits would, in its
        /// shortest form, make the line too wide: nothing is left out
        /// that there was room for.
        #[test]
        fn nothing_is_left_out_that_would_fit(
            earlier in snapshots(),
            snapshot in snapshots(),
            width in widths(),
        ) {
            let mut status = StatusLine::new();
            status.observe(&earlier);
            status.observe(&snapshot);
            let recent = status.recent().expect("snapshots observed");
            let layout = if width >= WIDE { Layout::Wide } else { Layout::Narrow };
            let mut fit = fitted(fields(&snapshot, &recent, layout), width);
            let line = fit.line();
            if line.width() <= width {
                prop_assert_eq!(&line, &status.render(&snapshot, width));
                for i in 0..fit.fields.len() {
                    if fit.chosen[i].is_none() {
                        fit.chosen[i] = Some(fit.fields[i].forms.len() - 1);
                        prop_assert!(fit.line().width() > width, "{} fits in {width}", fit.line());
                        fit.chosen[i] = None;
                    }
                }
            }
        }
    }
}
