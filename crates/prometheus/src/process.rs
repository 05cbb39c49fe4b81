//! The process's own metrics, named as Prometheus client libraries name
//! them (`process_*`), read from `/proc/self` at each scrape (Linux only;
//! elsewhere none).

/// The process's resource use at one moment; a figure the system would
/// not give is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) resident_memory_bytes: Option<u64>,
    pub(crate) virtual_memory_bytes: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
}

impl ProcessStats {
    /// This process's, now.
    #[cfg(target_os = "linux")]
    pub(crate) fn now() -> ProcessStats {
        use procfs::WithCurrentSystemInfo;
        use procfs::process::{LimitValue, Process};

        let Ok(me) = Process::myself() else {
            return ProcessStats::default();
        };
        let mut stats = ProcessStats {
            open_fds: me.fd_count().ok().and_then(|n| u64::try_from(n).ok()),
            ..ProcessStats::default()
        };
        if let Ok(limits) = me.limits() {
            stats.max_fds = match limits.max_open_files.soft_limit {
                LimitValue::Value(value) => Some(value),
                LimitValue::Unlimited => None,
            };
        }
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            stats.resident_memory_bytes = Some(stat.rss_bytes().get());
            stats.virtual_memory_bytes = Some(stat.vsize);
            if ticks > 0.0 {
                stats.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
                stats.start_time_seconds = procfs::boot_time_secs()
                    .ok()
                    .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
            }
        }
        stats
    }

    /// Nothing, off Linux.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn now() -> ProcessStats {
        ProcessStats::default()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_cpu_a_start_and_open_files() {
        let stats = ProcessStats::now();
        assert!(
            stats.resident_memory_bytes.unwrap() > 1_000_000,
            "{stats:?}"
        );
        assert!(stats.virtual_memory_bytes.unwrap() >= stats.resident_memory_bytes.unwrap());
        assert!(stats.cpu_seconds.unwrap() >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = stats.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        let open = stats.open_fds.unwrap();
        assert!(open >= 3, "stdin, stdout, stderr at least: {open}");
        assert!(stats.max_fds.is_none_or(|max| max >= open));
    }
}
