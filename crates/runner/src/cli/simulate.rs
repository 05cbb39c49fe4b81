//! Flags of `sluice simulate`.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use sluice_models::DataSource;
use sluice_pipeline::{DEFAULT_CONCURRENCY, Ordering};
use sluice_processor::{ProcessorConfig, Quota, RateLimit};
use sluice_sim::simulation::SimulationConfig;
use sluice_sim::{ApiConfig, StreamConfig, WINDOW};

use super::parse::{
    ApiLimit, MAX_RUN, MAX_WAIT, api_limit, bounded_duration, client_rate_limit, latency,
    probability, rate_per_source, source,
};

/// The processor's queue bound in `simulate` by default: the original
/// test's backlog bound (its check: final backlog at most 100), where
/// `sluice run` holds 1000.
pub const DEFAULT_SIMULATE_QUEUE_CAPACITY: u32 = 100;

/// Flags of `sluice simulate`. Names, units and defaults are `sluice
/// run`'s and `sluice mock-api`'s for the same things.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How long the sources run (e.g. 10s, 1m, 500ms): 1ms to 7 days.
    #[arg(long, default_value = "10s", value_parser = bounded_duration(Duration::from_millis(1), MAX_RUN), help_heading = "Run")]
    pub duration: Duration,
    /// The run's seed. Default: drawn from the clock (and printed).
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// Run on tokio's paused clock: as fast as the CPU allows, and
    /// deterministic with --seed.
    #[arg(long, help_heading = "Run")]
    pub virtual_time: bool,

    /// The API's quota: N/UNIT successes per sliding window (`15/s`,
    /// `1000/min`, `5/200ms`), or `none`; as `sluice mock-api
    /// --rate-limit`.
    #[arg(long, default_value = "15/s", value_name = "N/UNIT|none", value_parser = api_limit, help_heading = "Simulated API")]
    pub api_rate_limit: ApiLimit,
    /// The probability that an admitted API call fails (0 to 1).
    #[arg(long, default_value_t = 0.15, value_name = "P", value_parser = probability, help_heading = "Simulated API")]
    pub failure_rate: f64,
    /// The latency of an admitted call, MIN..MAX (each 0 to 1h), e.g.
    /// `10ms..50ms`, or one value; as `sluice mock-api --latency`.
    #[arg(long, default_value = "10ms..50ms", value_name = "MIN..MAX", value_parser = latency, help_heading = "Simulated API")]
    pub api_latency: (Duration, Duration),
    /// The API's shortest latency (the old spelling: --api-latency MIN..MAX).
    #[arg(long, hide = true, value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub api_latency_min: Option<Duration>,
    /// The API's longest latency (the old spelling: --api-latency MIN..MAX).
    #[arg(long, hide = true, value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub api_latency_max: Option<Duration>,

    /// The sources, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "user_events,transaction_data,system_metrics",
        value_parser = source,
        help_heading = "Simulated sources"
    )]
    pub sources: Vec<DataSource>,
    /// The original's rate_per_source: each source ticks rate x sources
    /// times a second and emits at 80 % of ticks. 0.001 to 1000000.
    #[arg(long, default_value_t = 3.0, value_parser = rate_per_source, help_heading = "Simulated sources")]
    pub rate_per_source: f64,
    /// The probability that a payload is one of the five problematic kinds.
    #[arg(long, default_value_t = 0.15, value_parser = probability, help_heading = "Simulated sources")]
    pub bad_data_rate: f64,
    /// Partitions per source, 1 to 1000000.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = "Simulated sources")]
    pub partitions: u32,

    /// The client's quota: N/UNIT (`15/s`), `auto` to learn it from
    /// refusals, or `none`. Default: the API's.
    #[arg(long, alias = "client-rate-limit", value_name = "N/UNIT|auto|none", value_parser = client_rate_limit, help_heading = "Limits")]
    pub rate_limit: Option<RateLimit>,
    /// The most calls in flight at once, 1 to 65536.
    #[arg(long, alias = "max-in-flight", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..=65_536), help_heading = "Limits")]
    pub concurrency: u32,
    /// The most records inside the pipeline, 1 to 10000000. Default 100:
    /// the original test's bound (its check: final backlog at most 100).
    #[arg(long, default_value_t = DEFAULT_SIMULATE_QUEUE_CAPACITY, value_parser = clap::value_parser!(u32).range(1..=10_000_000), help_heading = "Limits")]
    pub queue_capacity: u32,
    /// Delivery order: per (source, partition), or none.
    #[arg(long, value_enum, value_name = "ORDER", default_value_t = Ordering::Partition, help_heading = "Limits")]
    pub ordering: Ordering,
    /// How long a stop waits for calls in flight: 0 to 1h.
    #[arg(long, alias = "drain-timeout", default_value = "5s", value_parser = bounded_duration(Duration::ZERO, MAX_WAIT), help_heading = "Limits")]
    pub drain_deadline: Duration,

    /// Print one JSON object instead of the report.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

impl SimulateArgs {
    /// The run these flags describe, checked as a whole; an error names
    /// the flags to change.
    ///
    /// # Errors
    /// A message naming the flag whose value cannot be used with the others.
    pub fn to_checked_config(&self) -> Result<SimulationConfig, String> {
        let config = self.to_config();
        if config.api.latency_min > config.api.latency_max {
            return Err(format!(
                "--api-latency: {} is above {}",
                humantime::format_duration(config.api.latency_min),
                humantime::format_duration(config.api.latency_max)
            ));
        }
        let field_error = |field: &str, reason: String| {
            let flag = match field {
                "api.failure_rate" => "--failure-rate",
                "api.rate_limit" | "api.window" => "--api-rate-limit",
                "stream.sources" => "--sources",
                "stream.rate_per_source" => "--rate-per-source",
                "stream.partitions" => "--partitions",
                "stream.bad_data_rate" => "--bad-data-rate",
                "max_in_flight" => "--concurrency",
                "queue_capacity" => "--queue-capacity",
                "drain_deadline" => "--drain-deadline",
                _ => "a flag",
            };
            format!("{flag}: {reason}")
        };
        config
            .api
            .validate()
            .map_err(|e| field_error(e.field, e.reason))?;
        config
            .stream
            .validate()
            .map_err(|e| field_error(e.field, e.reason))?;
        config
            .processor
            .validate()
            .map_err(|e| field_error(e.field, e.reason))?;
        Ok(config)
    }

    /// The run these flags describe.
    pub fn to_config(&self) -> SimulationConfig {
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64)
        });
        let api_quota = self.api_rate_limit.0;
        let rate_limit = self.rate_limit.unwrap_or_else(|| match api_quota {
            // The client told the API's quota.
            Some(quota) => match NonZeroU32::new(quota.limit) {
                Some(limit) => RateLimit::Fixed(Quota {
                    limit,
                    window: quota.window,
                }),
                None => RateLimit::Unlimited,
            },
            None => RateLimit::Unlimited,
        });
        let (latency_min, latency_max) = self.api_latency;
        SimulationConfig {
            duration: self.duration,
            api: ApiConfig {
                rate_limit: api_quota.map(|quota| quota.limit),
                window: api_quota.map_or(WINDOW, |quota| quota.window),
                failure_rate: self.failure_rate,
                latency_min: self.api_latency_min.unwrap_or(latency_min),
                latency_max: self.api_latency_max.unwrap_or(latency_max),
                ..ApiConfig::default()
            },
            stream: StreamConfig {
                sources: self.sources.clone(),
                rate_per_source: self.rate_per_source,
                bad_data_rate: self.bad_data_rate,
                partitions: self.partitions,
                ..StreamConfig::default()
            },
            processor: ProcessorConfig {
                max_in_flight: self.concurrency as usize,
                queue_capacity: self.queue_capacity as usize,
                rate_limit,
                ordering: self.ordering.into(),
                drain_deadline: self.drain_deadline,
                ..ProcessorConfig::default()
            },
            virtual_time: self.virtual_time,
            seed,
        }
        .seeded()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use sluice_processor::DeliveryOrder;

    use super::*;

    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> Result<SimulateArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sluice", "simulate"].iter().chain(flags))?;
        let Command::Simulate(args) = cli.command else {
            panic!("parsed as simulate")
        };
        Ok(args)
    }

    fn parse(flags: &[&str]) -> Result<SimulationConfig, clap::Error> {
        args(flags).map(|args| args.to_config())
    }

    #[test]
    fn values_that_would_overflow_are_refused_naming_the_flag() {
        for (flag, value) in [
            ("--rate-per-source", "5e-324"),
            ("--rate-per-source", "1e300"),
            ("--duration", "300000000000y"),
            ("--duration", "0s"),
            ("--api-latency", "1ms..2h"),
            ("--api-latency-max", "2h"),
            ("--drain-deadline", "100000000y"),
            ("--concurrency", "65537"),
            ("--api-rate-limit", "0"),
            ("--api-rate-limit", "0/s"),
        ] {
            let error = parse(&[flag, value]).unwrap_err().to_string();
            assert!(error.contains(flag), "{flag} {value}: {error}");
        }
    }

    #[test]
    fn values_valid_alone_but_not_together_are_refused_naming_the_flags() {
        let error = args(&["--api-latency-min", "50ms", "--api-latency-max", "10ms"])
            .unwrap()
            .to_checked_config()
            .unwrap_err();
        assert!(
            error.starts_with("--api-latency: 50ms is above 10ms"),
            "{error}"
        );
        let error = args(&["--sources", "user_events,user_events"])
            .unwrap()
            .to_checked_config()
            .unwrap_err();
        assert!(error.starts_with("--sources"), "{error}");
    }

    #[test]
    fn defaults_are_the_ten_second_check() {
        let config = parse(&["--seed", "5"]).unwrap();
        assert_eq!(config, SimulationConfig::ten_second_check(5));
        assert_eq!(config.processor.max_in_flight, 16, "as sluice run");
        assert_eq!(config.processor.queue_capacity, 100, "the original's bound");
        assert_eq!(
            config.processor.drain_deadline,
            Duration::from_secs(5),
            "as sluice run"
        );
    }

    #[test]
    fn flags_reach_every_part_of_the_run() {
        let config = parse(&[
            "--duration",
            "1m",
            "--api-rate-limit",
            "50/s",
            "--failure-rate",
            "0.5",
            "--api-latency",
            "5ms..20ms",
            "--sources",
            "security_logs,user_events",
            "--partitions",
            "8",
            "--ordering",
            "none",
            "--rate-limit",
            "auto",
            "--concurrency",
            "4",
            "--queue-capacity",
            "1000",
            "--seed",
            "9",
            "--virtual-time",
        ])
        .unwrap();
        assert_eq!(config.duration, Duration::from_secs(60));
        assert_eq!(
            (config.api.rate_limit, config.api.window),
            (Some(50), WINDOW)
        );
        assert_eq!(config.api.failure_rate, 0.5);
        let ms = Duration::from_millis;
        assert_eq!(
            (config.api.latency_min, config.api.latency_max),
            (ms(5), ms(20))
        );
        assert_eq!(
            config.stream.sources,
            [DataSource::SecurityLogs, DataSource::UserEvents]
        );
        assert_eq!(config.stream.partitions, 8);
        assert_eq!(config.processor.ordering, DeliveryOrder::None);
        assert_eq!(
            config.processor.rate_limit,
            RateLimit::Adaptive { window: WINDOW }
        );
        assert_eq!(
            (
                config.processor.max_in_flight,
                config.processor.queue_capacity
            ),
            (4, 1_000)
        );
        assert_eq!(
            (config.api.seed, config.stream.seed, config.processor.seed),
            (9, 9, 9)
        );
        assert!(config.virtual_time);
    }

    #[test]
    fn quotas_of_other_windows_reach_the_api_and_the_client() {
        let config = parse(&["--api-rate-limit", "1000/min"]).unwrap();
        assert_eq!(
            (config.api.rate_limit, config.api.window),
            (Some(1_000), Duration::from_secs(60))
        );
        assert_eq!(
            config.processor.rate_limit.to_string(),
            "1000/min",
            "the client told"
        );
        let config = parse(&["--api-rate-limit", "none"]).unwrap();
        assert_eq!(config.api.rate_limit, None);
        assert_eq!(config.processor.rate_limit, RateLimit::Unlimited);
    }

    #[test]
    fn the_old_spellings_still_work() {
        let old = parse(&[
            "--api-rate-limit",
            "20",
            "--client-rate-limit",
            "10",
            "--api-latency-min",
            "1ms",
            "--api-latency-max",
            "3ms",
            "--max-in-flight",
            "2",
            "--drain-timeout",
            "1s",
            "--seed",
            "1",
        ])
        .unwrap();
        let new = parse(&[
            "--api-rate-limit",
            "20/s",
            "--rate-limit",
            "10/s",
            "--api-latency",
            "1ms..3ms",
            "--concurrency",
            "2",
            "--drain-deadline",
            "1s",
            "--seed",
            "1",
        ])
        .unwrap();
        assert_eq!(old, new);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (flags, reason) in [
            (&["--failure-rate", "1.5"][..], "not between 0 and 1"),
            (&["--duration", "0s"][..], "must be 1ms to 7days, got 0s"),
            (&["--duration", "ten"][..], "10s, 1m or 500ms"),
            (
                &["--sources", "user_events,bogus"][..],
                "unknown data source \"bogus\"",
            ),
            (&["--rate-limit", "fast"][..], "N/UNIT"),
            (&["--ordering", "random"][..], "invalid value 'random'"),
        ] {
            let error = parse(flags).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains(reason), "{flags:?}: {error}");
        }
    }
}
