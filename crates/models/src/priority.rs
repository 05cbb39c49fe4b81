//! Record priority, LOW=1 to CRITICAL=4.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How urgent a record is. Serialized as its number (1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Priority {
    /// 1
    Low = 1,
    /// 2
    Medium = 2,
    /// 3
    High = 3,
    /// 4
    Critical = 4,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    /// The numeric value, 1 to 4.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// A dense index in `0..4`, for per-priority counters kept in arrays.
    pub const fn index(self) -> usize {
        self as usize - 1
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Priority::Low => "LOW",
            Priority::Medium => "MEDIUM",
            Priority::High => "HIGH",
            Priority::Critical => "CRITICAL",
        };
        f.write_str(name)
    }
}

/// The error of converting a number outside 1 to 4 into a [`Priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("priority {0} is out of range: expected 1 (LOW) to 4 (CRITICAL)")]
pub struct PriorityOutOfRange(pub u8);

impl TryFrom<u8> for Priority {
    type Error = PriorityOutOfRange;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Priority::Low),
            2 => Ok(Priority::Medium),
            3 => Ok(Priority::High),
            4 => Ok(Priority::Critical),
            other => Err(PriorityOutOfRange(other)),
        }
    }
}

impl From<Priority> for u8 {
    fn from(priority: Priority) -> u8 {
        priority.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_serde_are_the_numbers_one_to_four() {
        for (expected, priority) in (1u8..=4).zip(Priority::ALL) {
            assert_eq!(priority.value(), expected);
            assert_eq!(Priority::try_from(expected), Ok(priority));
            assert_eq!(
                serde_json::to_string(&priority).unwrap(),
                expected.to_string()
            );
        }
    }

    #[test]
    fn out_of_range_numbers_are_rejected() {
        assert_eq!(Priority::try_from(0), Err(PriorityOutOfRange(0)));
        assert_eq!(Priority::try_from(5), Err(PriorityOutOfRange(5)));
        assert!(serde_json::from_str::<Priority>("5").is_err());
        assert!(serde_json::from_str::<Priority>("\"HIGH\"").is_err());
    }
}
