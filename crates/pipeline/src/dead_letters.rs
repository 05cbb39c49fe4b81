//! Where a run's dead letters go, and how many it may write before it
//! counts as failed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_processor::{DeadLetter, DeadLetterSink};

/// The `--dead-letters` value that discards letters (they are counted).
pub const DISCARD: &str = "none";

/// The dead-letter file of a run that names none and has no checkpoint,
/// in the working directory. Its name ends in no JSON extension, so that
/// a later run's `*.ndjson` does not read it as input.
pub const DEFAULT_FILE: &str = "sluice.dead-letters";

/// What a checkpoint's default dead-letter file adds to its name.
pub const CHECKPOINT_SUFFIX: &str = ".dead-letters";

/// Where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterTarget {
    /// Appended to this file; `chosen` when the user named it, else the
    /// default (removed at the end if the run wrote nothing to it and it
    /// did not exist before).
    File {
        /// The file.
        path: PathBuf,
        /// Whether the user named it.
        chosen: bool,
    },
    /// Discarded, counted: only when asked for (`--dead-letters none`).
    Discard,
}

impl DeadLetterTarget {
    /// The target for `setting` (`--dead-letters`), beside `checkpoint`
    /// when that is named: `CHECKPOINT.dead-letters` (or, for a checkpoint
    /// directory, [`DEFAULT_FILE`] in it), else
    /// [`DEFAULT_FILE`] in the working directory.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    /// use sluice_pipeline::DeadLetterTarget;
    ///
    /// let beside = DeadLetterTarget::of(None, Some(Path::new("/var/lib/sluice/orders.ckpt")));
    /// assert_eq!(beside, DeadLetterTarget::File {
    ///     path: PathBuf::from("/var/lib/sluice/orders.ckpt.dead-letters"),
    ///     chosen: false,
    /// });
    /// assert_eq!(DeadLetterTarget::of(Some(Path::new("none")), None), DeadLetterTarget::Discard);
    /// ```
    pub fn of(setting: Option<&Path>, checkpoint: Option<&Path>) -> DeadLetterTarget {
        match (setting, checkpoint) {
            (Some(path), _) if path.as_os_str() == DISCARD => DeadLetterTarget::Discard,
            (Some(path), _) => DeadLetterTarget::File {
                path: path.to_owned(),
                chosen: true,
            },
            (None, Some(checkpoint))
                if checkpoint.is_dir()
                    || checkpoint.as_os_str().to_string_lossy().ends_with('/') =>
            {
                DeadLetterTarget::File {
                    path: checkpoint.join(DEFAULT_FILE),
                    chosen: false,
                }
            }
            (None, Some(checkpoint)) => {
                let mut name = checkpoint.as_os_str().to_owned();
                name.push(CHECKPOINT_SUFFIX);
                DeadLetterTarget::File {
                    path: PathBuf::from(name),
                    chosen: false,
                }
            }
            (None, None) => DeadLetterTarget::File {
                path: PathBuf::from(DEFAULT_FILE),
                chosen: false,
            },
        }
    }
}

/// How many dead letters a run may write and still succeed: a count, or a
/// share of the records taken. Written `N` or `P%`.
///
/// ```
/// use sluice_pipeline::MaxDeadLetters;
///
/// let share: MaxDeadLetters = "1%".parse()?;
/// assert!(share.allows(10, 1_000));
/// assert!(!share.allows(11, 1_000));
/// let count: MaxDeadLetters = "0".parse()?;
/// assert!(count.allows(0, 5) && !count.allows(1, 5));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDeadLetters {
    /// At most this many.
    Count(u64),
    /// At most this percentage of the records taken (0 to 100).
    Percent(f64),
}

/// The default: 10 % of the records taken. Records refused on their own
/// merits (a bad line, a 422) are a matter for the letters' file, which
/// the report names; a run that dead-letters a tenth of its input has
/// something systematic wrong, and says so with its exit code.
pub const DEFAULT_MAX_DEAD_LETTERS: MaxDeadLetters = MaxDeadLetters::Percent(10.0);

impl MaxDeadLetters {
    /// Whether `dead_lettered` letters of `ingested` records are within
    /// the bound.
    pub fn allows(&self, dead_lettered: u64, ingested: u64) -> bool {
        match *self {
            MaxDeadLetters::Count(max) => dead_lettered <= max,
            MaxDeadLetters::Percent(max) => {
                dead_lettered == 0 || (dead_lettered as f64) * 100.0 <= max * (ingested as f64)
            }
        }
    }
}

impl FromStr for MaxDeadLetters {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let problem = || format!("`{text}` is not a count (10) or a percentage (0.5%)");
        match text.strip_suffix('%') {
            Some(number) => {
                let percent: f64 = number.trim().parse().map_err(|_| problem())?;
                if !(0.0..=100.0).contains(&percent) {
                    return Err(format!("`{text}`: a percentage is between 0% and 100%"));
                }
                Ok(MaxDeadLetters::Percent(percent))
            }
            None => text
                .parse()
                .map(MaxDeadLetters::Count)
                .map_err(|_| problem()),
        }
    }
}

impl fmt::Display for MaxDeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxDeadLetters::Count(count) => write!(f, "{count}"),
            MaxDeadLetters::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl Serialize for MaxDeadLetters {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaxDeadLetters {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Count(u64),
            Text(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Count(count) => Ok(MaxDeadLetters::Count(count)),
            Given::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A dead-letter outlet that keeps nothing: `--dead-letters none`. The
/// processor still counts each letter by reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

#[async_trait]
impl<R: Sync + 'static> DeadLetterSink<R> for Discard {
    async fn dead_letter(&self, _letter: &DeadLetter<R>) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bounds_parse_and_apply() {
        assert_eq!("25".parse(), Ok(MaxDeadLetters::Count(25)));
        assert_eq!(" 0.5% ".parse(), Ok(MaxDeadLetters::Percent(0.5)));
        assert!("150%".parse::<MaxDeadLetters>().is_err());
        assert!("ten".parse::<MaxDeadLetters>().unwrap_err().contains("ten"));
        assert!("-1".parse::<MaxDeadLetters>().is_err());
        let none = MaxDeadLetters::Percent(0.0);
        assert!(none.allows(0, 0) && !none.allows(1, 1_000_000));
        let all = MaxDeadLetters::Percent(100.0);
        assert!(all.allows(7, 7));
        assert_eq!(MaxDeadLetters::Percent(2.5).to_string(), "2.5%");
        let count = MaxDeadLetters::Count(25);
        assert!(count.allows(25, 30) && !count.allows(26, 1_000));
        let share = MaxDeadLetters::Percent(1.0);
        assert!(share.allows(10, 1_000) && !share.allows(11, 1_000));
        assert!(share.allows(1, 100) && !share.allows(2, 100));
        let toml: MaxDeadLetters = toml::Value::Integer(3).try_into().unwrap();
        assert_eq!(toml, MaxDeadLetters::Count(3));
    }

    #[test]
    fn the_default_file_is_beside_the_checkpoint_else_here() {
        assert_eq!(
            DeadLetterTarget::of(Some(Path::new(DISCARD)), Some(Path::new("c"))),
            DeadLetterTarget::Discard
        );
        assert_eq!(
            DeadLetterTarget::of(None, Some(Path::new("state/orders.ckpt"))),
            DeadLetterTarget::File {
                path: PathBuf::from("state/orders.ckpt.dead-letters"),
                chosen: false
            }
        );
        assert_eq!(
            DeadLetterTarget::of(None, None),
            DeadLetterTarget::File {
                path: PathBuf::from(DEFAULT_FILE),
                chosen: false
            }
        );
        assert_eq!(
            DeadLetterTarget::of(None, Some(Path::new("state/"))),
            DeadLetterTarget::File {
                path: PathBuf::from("state/sluice.dead-letters"),
                chosen: false
            }
        );
        assert_eq!(
            DeadLetterTarget::of(Some(Path::new("x.ndjson")), Some(Path::new("c"))),
            DeadLetterTarget::File {
                path: PathBuf::from("x.ndjson"),
                chosen: true
            }
        );
    }
}
