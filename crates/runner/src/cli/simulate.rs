//! Flags of `sluice simulate`.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use sluice_models::DataSource;
use sluice_processor::{DeliveryOrder, ProcessorConfig, RateLimit};
use sluice_sim::{ApiConfig, StreamConfig, WINDOW};

use super::parse::{
    MAX_RUN, MAX_WAIT, bounded_duration, client_rate_limit, probability, rate_per_source, source,
};
use sluice_sim::simulation::SimulationConfig;

/// Flags of `sluice simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How long the sources run (e.g. 10s, 1m, 500ms): 1ms to 7 days.
    #[arg(long, default_value = "10s", value_parser = bounded_duration(Duration::from_millis(1), MAX_RUN))]
    pub duration: Duration,
    /// The API's limit: successful calls per sliding second, 1 to 1000000.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub api_rate_limit: u32,
    /// The probability that an admitted API call fails (0 to 1).
    #[arg(long, default_value_t = 0.15, value_parser = probability)]
    pub failure_rate: f64,
    /// The API's shortest latency: 0 to 1h.
    #[arg(long, default_value = "10ms", value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub api_latency_min: Duration,
    /// The API's longest latency: 0 to 1h, at least --api-latency-min.
    #[arg(long, default_value = "50ms", value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub api_latency_max: Duration,
    /// The sources, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "user_events,transaction_data,system_metrics",
        value_parser = source
    )]
    pub sources: Vec<DataSource>,
    /// The original's rate_per_source: each source ticks rate x sources
    /// times a second and emits at 80 % of ticks. 0.001 to 1000000.
    #[arg(long, default_value_t = 3.0, value_parser = rate_per_source)]
    pub rate_per_source: f64,
    /// The probability that a payload is one of the five problematic kinds.
    #[arg(long, default_value_t = 0.15, value_parser = probability)]
    pub bad_data_rate: f64,
    /// Partitions per source, 1 to 1000000.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub partitions: u32,
    /// Most API calls in flight at once, 1 to 65536.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub concurrency: u32,
    /// The processor's queue bound (the most records inside), 1 to 10000000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_capacity: u32,
    /// Delivery order: per (source, partition), or none.
    #[arg(long, value_enum, default_value_t = OrderingArg::Partition)]
    pub ordering: OrderingArg,
    /// The client-side limit: successes per second (1 to 4294967295),
    /// `auto` to learn it from refusals, or `none`. Default: the API's limit.
    #[arg(long, value_parser = client_rate_limit)]
    pub client_rate_limit: Option<ClientRateLimit>,
    /// How long a stop waits for calls in flight: 0 to 1h.
    #[arg(long, default_value = "5s", value_parser = bounded_duration(Duration::ZERO, MAX_WAIT))]
    pub drain_deadline: Duration,
    /// The run's seed. Default: drawn from the clock (and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run on tokio's paused clock: as fast as the CPU allows, and
    /// deterministic with --seed.
    #[arg(long)]
    pub virtual_time: bool,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// `--ordering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderingArg {
    /// In sequence within each (source, partition).
    Partition,
    /// No order promised.
    None,
}

/// `--client-rate-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRateLimit {
    /// A known limit.
    PerSecond(NonZeroU32),
    /// Learned from refusals.
    Auto,
    /// No client-side limit.
    Unlimited,
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
                "--api-latency-min {} is above --api-latency-max {}",
                humantime::format_duration(config.api.latency_min),
                humantime::format_duration(config.api.latency_max)
            ));
        }
        let field_error = |field: &str, reason: String| {
            let flag = match field {
                "api.failure_rate" => "--failure-rate",
                "api.rate_limit" => "--api-rate-limit",
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
        let rate_limit = match self.client_rate_limit {
            None => RateLimit::per_second(
                NonZeroU32::new(self.api_rate_limit).unwrap_or(NonZeroU32::MIN),
            ),
            Some(ClientRateLimit::PerSecond(limit)) => RateLimit::per_second(limit),
            Some(ClientRateLimit::Auto) => RateLimit::Adaptive { window: WINDOW },
            Some(ClientRateLimit::Unlimited) => RateLimit::Unlimited,
        };
        SimulationConfig {
            duration: self.duration,
            api: ApiConfig {
                rate_limit: Some(self.api_rate_limit),
                failure_rate: self.failure_rate,
                latency_min: self.api_latency_min,
                latency_max: self.api_latency_max,
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
                ordering: match self.ordering {
                    OrderingArg::Partition => DeliveryOrder::Partition,
                    OrderingArg::None => DeliveryOrder::None,
                },
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

    use super::*;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<SimulationConfig, clap::Error> {
        let cli = Cli::try_parse_from(["sluice", "simulate"].iter().chain(args))?;
        let Command::Simulate(args) = cli.command else {
            panic!("parsed as simulate")
        };
        Ok(args.to_config())
    }

    #[test]
    fn values_that_would_overflow_are_refused_naming_the_flag() {
        for (flag, value) in [
            ("--rate-per-source", "5e-324"),
            ("--rate-per-source", "1e300"),
            ("--duration", "300000000000y"),
            ("--duration", "0s"),
            ("--api-latency-max", "2h"),
            ("--drain-deadline", "100000000y"),
            ("--concurrency", "65537"),
            ("--api-rate-limit", "0"),
        ] {
            let error = parse(&[flag, value]).unwrap_err().to_string();
            assert!(error.contains(flag), "{flag} {value}: {error}");
        }
    }

    #[test]
    fn values_valid_alone_but_not_together_are_refused_naming_the_flags() {
        let cli = Cli::try_parse_from([
            "sluice",
            "simulate",
            "--api-latency-min",
            "50ms",
            "--api-latency-max",
            "10ms",
        ])
        .unwrap();
        let Command::Simulate(args) = cli.command else {
            panic!("parsed as simulate")
        };
        let error = args.to_checked_config().unwrap_err();
        assert!(
            error.contains("--api-latency-min") && error.contains("--api-latency-max"),
            "{error}"
        );
        let cli =
            Cli::try_parse_from(["sluice", "simulate", "--sources", "user_events,user_events"])
                .unwrap();
        let Command::Simulate(args) = cli.command else {
            panic!("parsed as simulate")
        };
        assert!(
            args.to_checked_config()
                .unwrap_err()
                .starts_with("--sources")
        );
    }

    #[test]
    fn defaults_are_the_ten_second_check() {
        let config = parse(&["--seed", "5"]).unwrap();
        assert_eq!(config, SimulationConfig::ten_second_check(5));
    }

    #[test]
    fn flags_reach_every_part_of_the_run() {
        let config = parse(&[
            "--duration",
            "1m",
            "--api-rate-limit",
            "50",
            "--failure-rate",
            "0.5",
            "--sources",
            "security_logs,user_events",
            "--partitions",
            "8",
            "--ordering",
            "none",
            "--client-rate-limit",
            "auto",
            "--concurrency",
            "16",
            "--seed",
            "9",
            "--virtual-time",
        ])
        .unwrap();
        assert_eq!(config.duration, Duration::from_secs(60));
        assert_eq!(config.api.rate_limit, Some(50));
        assert_eq!(config.api.failure_rate, 0.5);
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
        assert_eq!(config.processor.max_in_flight, 16);
        assert_eq!(
            (config.api.seed, config.stream.seed, config.processor.seed),
            (9, 9, 9)
        );
        assert!(config.virtual_time);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (args, reason) in [
            (&["--failure-rate", "1.5"][..], "not between 0 and 1"),
            (&["--duration", "0s"][..], "must be 1ms to 7days, got 0s"),
            (&["--duration", "ten"][..], "10s, 1m or 500ms"),
            (
                &["--sources", "user_events,bogus"][..],
                "unknown data source \"bogus\"",
            ),
            (&["--client-rate-limit", "fast"][..], "`auto` or `none`"),
            (&["--api-rate-limit", "0"][..], "0 is not in 1..=1000000"),
            (&["--ordering", "random"][..], "invalid value 'random'"),
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains(reason), "{args:?}: {error}");
        }
    }
}
