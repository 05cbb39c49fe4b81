//! Flags of `sluice mock-api`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use sluice_mock_api::MockApiConfig;

use super::parse::{ApiLimit, api_limit, latency, probability};

/// Flags of `sluice mock-api`: the original test's API over real HTTP.
#[derive(Debug, Args)]
pub struct MockApiArgs {
    /// Where to listen; `127.0.0.1:0` picks a free port. The address is
    /// the first line printed.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Successes admitted per sliding window, N/UNIT (`15/s`, `1000/min`,
    /// `5/200ms`), or `none`.
    #[arg(long, default_value = "15/s", value_name = "N/UNIT|none", value_parser = api_limit)]
    pub rate_limit: ApiLimit,
    /// The probability that an admitted call fails with 503 (0 to 1).
    #[arg(long, default_value_t = 0.15, value_name = "P", value_parser = probability)]
    pub failure_rate: f64,
    /// The latency of an admitted call, MIN..MAX (each 0 to 1h), e.g.
    /// `10ms..50ms`, or one value.
    #[arg(long, default_value = "10ms..50ms", value_name = "MIN..MAX", value_parser = latency)]
    pub latency: (Duration, Duration),
    /// The seed of latencies and failures.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Refuse with 409 a call whose `Sluice-Lease` token for a partition
    /// is lower than one seen before (a stale writer), as an API that
    /// fences writers does. Without it such calls are only counted
    /// (`stale_lease_calls` in the ledger).
    #[arg(long)]
    pub refuse_stale_leases: bool,
}

impl MockApiArgs {
    /// What the API does with calls of stale writers.
    pub fn stale_leases(&self) -> sluice_mock_api::StaleLeases {
        if self.refuse_stale_leases {
            sluice_mock_api::StaleLeases::Refuse
        } else {
            sluice_mock_api::StaleLeases::Count
        }
    }

    /// The API these flags describe.
    pub fn to_config(&self) -> MockApiConfig {
        MockApiConfig {
            rate_limit: self.rate_limit.0,
            failure_rate: self.failure_rate,
            latency_min: self.latency.0,
            latency_max: self.latency.1,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::parse::latency;
    use crate::cli::{Cli, Command};

    #[test]
    fn the_defaults_are_the_original_api_on_loopback() {
        let cli = Cli::try_parse_from(["sluice", "mock-api"]).unwrap();
        let Command::MockApi(args) = cli.command else {
            panic!("parsed as mock-api")
        };
        assert!(args.listen.ip().is_loopback());
        assert_eq!(args.to_config(), MockApiConfig::default());
    }

    #[test]
    fn latencies_and_quotas_are_read_and_checked() {
        let ms = Duration::from_millis;
        assert_eq!(latency("10ms..50ms"), Ok((ms(10), ms(50))));
        assert_eq!(latency("0ms"), Ok((ms(0), ms(0))));
        assert!(latency("50ms..10ms").unwrap_err().contains("above"));
        assert!(latency("1ms..2h").is_err());
        assert_eq!(api_limit("none"), Ok(ApiLimit(None)));
        assert_eq!(api_limit("20/s").unwrap().0.unwrap().limit, 20);
        assert_eq!(
            api_limit("20").unwrap().0.unwrap().limit,
            20,
            "the old spelling"
        );
        assert!(api_limit("0/s").is_err());
    }
}
