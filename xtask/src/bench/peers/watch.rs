//! A client process watched from `/proc` until its job ends: its CPU time
//! (utime + stime of `/proc/<pid>/stat`, every thread's, read once it has
//! exited and before it is reaped, or at the end of a fixed time) and its
//! peak RSS (VmHWM of `/proc/<pid>/status`, sampled every
//! [`SAMPLE_EVERY`]: the last sample before it exits).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Process;
use super::api::MockApi;

/// How often the process is looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// How often the API is asked whether every record has arrived.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// How long a stopped client may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux
/// whatever the kernel's tick).
const TICKS_PER_SECOND: f64 = 100.0;

/// When a job ends.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long (the client is still running: it is then stopped).
    Elapsed(Duration),
    /// When the client exits; failed if it takes longer than this.
    Exit(Duration),
    /// When the API's ledger holds this many distinct records; failed if
    /// it takes longer than the duration.
    Delivered(u64, Duration),
}

/// What the watch saw of the client process.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// utime + stime, seconds, at the end of the job.
    pub cpu_seconds: f64,
    /// The highest VmHWM seen, MiB.
    pub peak_rss_mib: f64,
    /// From its start to the end of the job.
    pub wall_seconds: f64,
}

/// Watches `process`, started at `started`, until `until`.
pub fn watch(
    process: &Process,
    started: Instant,
    until: Until,
    api: &MockApi,
) -> anyhow::Result<Watched> {
    let pid = process.id();
    let mut peak_rss_mib = 0.0_f64;
    let mut asked = started;
    loop {
        let (state, cpu_seconds) = stat(pid)?;
        let done = |peak_rss_mib| Watched {
            cpu_seconds,
            peak_rss_mib,
            wall_seconds: started.elapsed().as_secs_f64(),
        };
        if state == 'Z' {
            if let Until::Elapsed(time) = until {
                bail!(
                    "exited after {:.1} s, before the job's {} s were up",
                    started.elapsed().as_secs_f64(),
                    time.as_secs()
                );
            }
            return Ok(done(peak_rss_mib));
        }
        peak_rss_mib = peak_rss_mib.max(vm_hwm_mib(pid));
        match until {
            Until::Elapsed(time) if started.elapsed() >= time => return Ok(done(peak_rss_mib)),
            Until::Exit(timeout) | Until::Delivered(_, timeout) if started.elapsed() > timeout => {
                bail!("not done after {} s", timeout.as_secs())
            }
            Until::Delivered(records, _) if asked.elapsed() >= ASK_EVERY => {
                asked = Instant::now();
                let counts = api.counts()?;
                let count = |name: &str| counts[name].as_u64().unwrap_or(0);
                if count("records_delivered").saturating_sub(count("duplicates")) >= records {
                    return Ok(done(peak_rss_mib));
                }
            }
            _ => {}
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// Stops `process` if it still runs (SIGTERM; killed after
/// [`STOP_GRACE`]) and reaps it: its exit code (`None` if a signal ended
/// it).
pub fn stop(mut process: Process) -> anyhow::Result<Option<i32>> {
    if let Some(status) = process.0.try_wait()? {
        return Ok(status.code());
    }
    let status = Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .context("could not run kill")?;
    if !status.success() {
        bail!("kill -TERM {} failed ({status})", process.id());
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = process.0.try_wait()? {
            return Ok(status.code());
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    bail!(
        "did not exit within {} s of SIGTERM (killed)",
        STOP_GRACE.as_secs()
    )
}

/// The last lines of a client's standard error, for a failure's message.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The state (`R`, `S`, `Z`...) and utime + stime (seconds) of process
/// `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> anyhow::Result<(char, f64)> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    parse_stat(&text).with_context(|| format!("{path} is not as expected: {text}"))
}

/// See [`stat`]: the fields after the command name (which may hold
/// spaces and parentheses) are the state, then 10 others, then utime and
/// stime.
fn parse_stat(text: &str) -> Option<(char, f64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((state, (utime + stime) / TICKS_PER_SECOND))
}

/// VmHWM of process `pid`, MiB (0 once it has exited).
fn vm_hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_and_cpu_time_are_read_after_the_command_name() {
        let text = "4242 (a (b) c) Z 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_stat(text), Some(('Z', 3.0)));
        assert_eq!(parse_stat("4242 (short) R 1"), None);
    }
}
