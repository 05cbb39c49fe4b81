//! A list of HTTP statuses as users write them (`408,425,5xx`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::StatusClassError;

/// One entry of a [`StatusList`]: a status code or a class of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Entry {
    /// A status code, 100 to 599.
    Code(u16),
    /// `Nxx`: every code from `N00` to `N99`.
    Class(u8),
}

impl Entry {
    pub(super) fn contains(self, status: u16) -> bool {
        match self {
            Entry::Code(code) => code == status,
            Entry::Class(class) => status / 100 == u16::from(class),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Code(code) => write!(f, "{code}"),
            Entry::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// A list of HTTP statuses, written as codes and classes separated by
/// commas: `408,425,5xx`. Spaces around entries are ignored; the empty
/// text is the empty list. Codes are 100 to 599, classes `1xx` to `5xx`.
///
/// ```
/// use sluice_http::StatusList;
///
/// let list: StatusList = "408, 425,5xx".parse()?;
/// assert!(list.contains(503) && list.contains(425) && !list.contains(404));
/// assert_eq!(list.to_string(), "408,425,5xx");
/// assert!("4x".parse::<StatusList>().is_err());
/// # Ok::<(), sluice_http::StatusClassError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusList(pub(super) Vec<Entry>);

impl StatusList {
    /// Whether `status` is one of the codes, or in one of the classes.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|entry| entry.contains(status))
    }

    /// Whether `status` is listed as a code of its own.
    pub(super) fn names(&self, status: u16) -> bool {
        self.0.contains(&Entry::Code(status))
    }

    /// Whether `status`'s class is listed.
    pub(super) fn covers(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|entry| matches!(entry, Entry::Class(_)) && entry.contains(status))
    }
}

impl FromStr for StatusList {
    type Err = StatusClassError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for word in text
            .split(',')
            .map(str::trim)
            .filter(|word| !word.is_empty())
        {
            let entry = parse_entry(word).ok_or_else(|| StatusClassError::Syntax {
                entry: word.chars().take(32).collect(),
            })?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(StatusList(entries))
    }
}

fn parse_entry(word: &str) -> Option<Entry> {
    let lower = word.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let class: u8 = class.parse().ok()?;
        return (1..=5).contains(&class).then_some(Entry::Class(class));
    }
    let code: u16 = word.parse().ok()?;
    (100..=599).contains(&code).then_some(Entry::Code(code))
}

impl fmt::Display for StatusList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

impl Serialize for StatusList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads `"408,425,5xx"`, a single code (`503`, as a configuration file
/// or a variable may give it), or a list of either (`[408, "5xx"]`).
impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = StatusList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HTTP statuses such as \"408,425,5xx\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<StatusList, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, code: u64) -> Result<StatusList, E> {
        self.visit_str(&code.to_string())
    }

    fn visit_i64<E: de::Error>(self, code: i64) -> Result<StatusList, E> {
        self.visit_str(&code.to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusList, A::Error> {
        let mut text = String::new();
        while let Some(item) = seq.next_element::<StatusList>()? {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(&item.to_string());
        }
        self.visit_str(&text)
    }
}
