//! Which HTTP statuses mean what: [`StatusClasses`], lists of statuses
//! ([`StatusList`]) as users write them (`408,425,5xx`).

mod list;

use sluice_processor::SinkError;

use self::list::Entry;
pub use self::list::StatusList;

/// A status list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusClassError {
    /// An entry is neither a code (100 to 599) nor a class (`1xx` to `5xx`).
    #[error("`{entry}` is not an HTTP status (100 to 599) or class (1xx to 5xx)")]
    Syntax {
        /// The entry as written (its first 32 characters).
        entry: String,
    },
    /// The same code or class is in two lists.
    #[error("{entry} is in both {first} and {second}")]
    Conflict {
        /// The code or class, as written in the lists (`404`, `5xx`).
        entry: String,
        /// The first list naming it: `retry_on`, `reject_on` or `fatal_on`.
        first: &'static str,
        /// The second.
        second: &'static str,
    },
    /// A success status (2xx) is in a list: it always means delivered.
    #[error("{entry} in {list}: a 2xx status always means delivered")]
    Success {
        /// The code or class.
        entry: String,
        /// The list naming it.
        list: &'static str,
    },
    /// 429 is in `reject_on` or `fatal_on`: it always means rate limited.
    #[error("429 in {list}: it always means rate limited")]
    TooManyRequests {
        /// The list naming it.
        list: &'static str,
    },
}

impl StatusClassError {
    /// The list the error is about (the second, for a conflict):
    /// `retry_on`, `reject_on` or `fatal_on`.
    pub fn list(&self) -> Option<&'static str> {
        match self {
            StatusClassError::Syntax { .. } => None,
            StatusClassError::Conflict { second: list, .. }
            | StatusClassError::Success { list, .. }
            | StatusClassError::TooManyRequests { list } => Some(list),
        }
    }
}

/// What each failed HTTP status means to the processor.
///
/// 2xx is always a delivery and 429 always
/// [`RateLimited`](SinkError::RateLimited). Any other status is looked up
/// in the three lists: a status listed by its own code follows that list,
/// else its class's list; a status in none is rejected.
///
/// | list | outcome | default |
/// | --- | --- | --- |
/// | `retry_on` | [`SinkError::Transient`]: retried, an attempt used while the API gets other records | `408,425,5xx` |
/// | `reject_on` | [`SinkError::Rejected`]: the record is dead-lettered | `4xx` |
/// | `fatal_on` | [`SinkError::Misconfigured`]: retried without using an attempt; after a few in a row the processor halts | `3xx,401,403,404,405` |
///
/// The same code or class in two lists is an error ([`validate`](Self::validate)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusClasses {
    /// Statuses retried as transient failures.
    pub retry_on: StatusList,
    /// Statuses that reject the record.
    pub reject_on: StatusList,
    /// Statuses that say the client's configuration is wrong.
    pub fatal_on: StatusList,
}

/// The default `retry_on`.
pub(crate) const DEFAULT_RETRY_ON: &str = "408,425,5xx";
/// The default `reject_on`.
pub(crate) const DEFAULT_REJECT_ON: &str = "4xx";
/// The default `fatal_on`.
pub(crate) const DEFAULT_FATAL_ON: &str = "3xx,401,403,404,405";

impl Default for StatusClasses {
    fn default() -> Self {
        let list = |text: &str| text.parse().unwrap_or_default();
        StatusClasses {
            retry_on: list(DEFAULT_RETRY_ON),
            reject_on: list(DEFAULT_REJECT_ON),
            fatal_on: list(DEFAULT_FATAL_ON),
        }
    }
}

/// What a failed status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    RateLimited,
    Retry,
    Reject,
    Fatal,
}

impl StatusClasses {
    /// Checks that no code or class is in two lists, that no list holds a
    /// success status, and that 429 is at most in `retry_on`.
    ///
    /// # Errors
    /// A [`StatusClassError`] naming the entry and the list(s).
    pub fn validate(&self) -> Result<(), StatusClassError> {
        let lists = self.lists();
        for (i, (name, list)) in lists.iter().enumerate() {
            for entry in &list.0 {
                let success = match *entry {
                    Entry::Code(code) => (200..300).contains(&code),
                    Entry::Class(class) => class == 2,
                };
                if success {
                    return Err(StatusClassError::Success {
                        entry: entry.to_string(),
                        list: name,
                    });
                }
                if *entry == Entry::Code(429) && *name != "retry_on" {
                    return Err(StatusClassError::TooManyRequests { list: name });
                }
                if let Some((other, _)) = lists[i + 1..]
                    .iter()
                    .find(|(_, other)| other.0.contains(entry))
                {
                    return Err(StatusClassError::Conflict {
                        entry: entry.to_string(),
                        first: name,
                        second: other,
                    });
                }
            }
        }
        Ok(())
    }

    fn lists(&self) -> [(&'static str, &StatusList); 3] {
        [
            ("retry_on", &self.retry_on),
            ("reject_on", &self.reject_on),
            ("fatal_on", &self.fatal_on),
        ]
    }

    /// What a failed (non-2xx) `status` means.
    pub(crate) fn class(&self, status: u16) -> Class {
        if status == 429 {
            return Class::RateLimited;
        }
        let classes = [
            (&self.retry_on, Class::Retry),
            (&self.reject_on, Class::Reject),
            (&self.fatal_on, Class::Fatal),
        ];
        let named = classes.iter().find(|(list, _)| list.names(status));
        let covered = || classes.iter().find(|(list, _)| list.covers(status));
        named
            .or_else(covered)
            .map_or(Class::Reject, |&(_, class)| class)
    }

    /// The outcome of a failed `status`, with `message`.
    pub(crate) fn outcome(&self, status: u16, message: String) -> SinkError {
        match self.class(status) {
            Class::RateLimited => SinkError::RateLimited { retry_after: None },
            Class::Retry => SinkError::Transient(message),
            Class::Reject => SinkError::Rejected(message),
            Class::Fatal => SinkError::Misconfigured(message),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn classes(retry: &str, reject: &str, fatal: &str) -> StatusClasses {
        StatusClasses {
            retry_on: retry.parse().unwrap(),
            reject_on: reject.parse().unwrap(),
            fatal_on: fatal.parse().unwrap(),
        }
    }

    #[test]
    fn lists_parse_codes_and_classes_and_refuse_anything_else() {
        let list: StatusList = " 408 ,425,5XX,408".parse().unwrap();
        assert_eq!(list.to_string(), "408,425,5xx");
        assert!(list.contains(599) && list.contains(500) && !list.contains(600));
        assert!(!list.contains(409));
        assert_eq!("".parse::<StatusList>().unwrap(), StatusList::default());
        for bad in ["4x", "600", "99", "6xx", "0xx", "abc", "40 4", "-1"] {
            let error = bad.parse::<StatusList>().unwrap_err();
            assert!(
                matches!(&error, StatusClassError::Syntax { entry } if entry == bad.trim()),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_defaults_classify_as_documented() {
        let defaults = StatusClasses::default();
        defaults.validate().unwrap();
        for (status, class) in [
            (429, Class::RateLimited),
            (408, Class::Retry),
            (425, Class::Retry),
            (500, Class::Retry),
            (503, Class::Retry),
            (400, Class::Reject),
            (409, Class::Reject),
            (413, Class::Reject),
            (422, Class::Reject),
            (401, Class::Fatal),
            (403, Class::Fatal),
            (404, Class::Fatal),
            (405, Class::Fatal),
            (301, Class::Fatal),
            (302, Class::Fatal),
            (100, Class::Reject),
        ] {
            assert_eq!(defaults.class(status), class, "{status}");
        }
    }

    #[test]
    fn a_code_listed_wins_over_its_class() {
        let custom = classes("5xx,409", "4xx,501", "");
        custom.validate().unwrap();
        assert_eq!(custom.class(409), Class::Retry);
        assert_eq!(custom.class(501), Class::Reject);
        assert_eq!(custom.class(404), Class::Reject);
        assert_eq!(custom.class(301), Class::Reject, "in no list");
        assert_eq!(custom.class(429), Class::RateLimited, "whatever the lists");
    }

    #[test]
    fn an_entry_in_two_lists_is_named() {
        let error = classes("408,5xx", "4xx", "404,5xx").validate().unwrap_err();
        assert_eq!(
            error,
            StatusClassError::Conflict {
                entry: "5xx".into(),
                first: "retry_on",
                second: "fatal_on",
            }
        );
        assert_eq!(error.to_string(), "5xx is in both retry_on and fatal_on");
        assert_eq!(error.list(), Some("fatal_on"));
        let error = classes("", "404", "404").validate().unwrap_err();
        assert!(error.to_string().contains("404"), "{error}");
        let error = classes("2xx", "", "").validate().unwrap_err();
        assert!(matches!(error, StatusClassError::Success { .. }), "{error}");
        let error = classes("", "", "204").validate().unwrap_err();
        assert!(matches!(error, StatusClassError::Success { .. }), "{error}");
        let error = classes("", "429", "").validate().unwrap_err();
        assert_eq!(
            error,
            StatusClassError::TooManyRequests { list: "reject_on" }
        );
        classes("429,5xx", "", "").validate().unwrap();
    }

    #[test]
    fn lists_read_text_numbers_and_arrays() {
        #[derive(serde::Deserialize)]
        struct Holder {
            list: StatusList,
        }
        let read = |text: &str| toml::from_str::<Holder>(text).map(|holder| holder.list);
        assert_eq!(read("list = '408,5xx'").unwrap().to_string(), "408,5xx");
        assert_eq!(read("list = 503").unwrap().to_string(), "503");
        assert_eq!(read("list = [408, '5xx']").unwrap().to_string(), "408,5xx");
        assert!(read("list = '4x'").is_err());
    }
}
