//! The four data sources a record can come from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a record comes from. Serialized as its snake_case name
/// (`"user_events"`, ...), the names the downstream API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// Clicks, logins, purchases.
    UserEvents,
    /// Payments.
    TransactionData,
    /// Host CPU, memory and disk readings.
    SystemMetrics,
    /// Firewall and intrusion events.
    SecurityLogs,
}

impl DataSource {
    /// Every source, in declaration order.
    pub const ALL: [DataSource; 4] = [
        DataSource::UserEvents,
        DataSource::TransactionData,
        DataSource::SystemMetrics,
        DataSource::SecurityLogs,
    ];

    /// The wire name, as serialized.
    ///
    /// ```
    /// use sluice_models::DataSource;
    /// assert_eq!(DataSource::UserEvents.as_str(), "user_events");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            DataSource::UserEvents => "user_events",
            DataSource::TransactionData => "transaction_data",
            DataSource::SystemMetrics => "system_metrics",
            DataSource::SecurityLogs => "security_logs",
        }
    }

    /// A dense index in `0..4`, for per-source counters kept in arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`DataSource`] from a name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown data source {0:?}: expected one of user_events, transaction_data, system_metrics, security_logs"
)]
pub struct UnknownSource(pub String);

impl FromStr for DataSource {
    type Err = UnknownSource;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DataSource::ALL
            .into_iter()
            .find(|source| source.as_str() == name)
            .ok_or_else(|| UnknownSource(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for source in DataSource::ALL {
            assert_eq!(source.as_str().parse::<DataSource>(), Ok(source));
            let json = serde_json::to_string(&source).unwrap();
            assert_eq!(json, format!("\"{}\"", source.as_str()));
            assert_eq!(serde_json::from_str::<DataSource>(&json).unwrap(), source);
        }
    }

    #[test]
    fn unknown_names_are_rejected_with_the_name() {
        let error = "invalid_source".parse::<DataSource>().unwrap_err();
        assert!(error.to_string().contains("\"invalid_source\""));
        assert!("".parse::<DataSource>().is_err());
        assert!("User_Events".parse::<DataSource>().is_err());
    }

    #[test]
    fn indices_are_dense_and_distinct() {
        let indices: Vec<usize> = DataSource::ALL.iter().map(|s| s.index()).collect();
        assert_eq!(indices, vec![0, 1, 2, 3]);
    }
}
