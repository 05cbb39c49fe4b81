//! The shared limit's address, `redis://[USER:PASSWORD@]HOST[:PORT][/DB]/NAME`,
//! parsed into a Redis connection URL and the window's key.

use std::fmt;
use std::str::FromStr;

/// The port Redis listens on when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;

/// What every window's key starts with: the window named `NAME` lives in
/// the Redis key `sluice:limit:NAME`.
pub const KEY_PREFIX: &str = "sluice:limit:";

/// The longest window name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Where a shared window lives: a Redis server, a database in it, and the
/// window's name.
///
/// Written `redis://[USER:PASSWORD@]HOST[:PORT][/DB]/NAME`: the scheme is
/// `redis` (TLS is not supported), `PORT` defaults to 6379, `DB` (a
/// database number) to 0, and `NAME`, the last path segment, names the
/// window: processes that give the same server, database and name share
/// one quota. `NAME` is 1 to 200 characters of `A-Z a-z 0-9 . _ - :`; the
/// window is kept in the key `sluice:limit:NAME`.
///
/// The password is never shown: not by `Display`, not by `Debug`, not in
/// an error.
///
/// ```
/// use sluice_redis::LimitUrl;
///
/// let url: LimitUrl = "redis://127.0.0.1:6379/orders-api".parse().unwrap();
/// assert_eq!(url.name(), "orders-api");
/// assert_eq!(url.key(), "sluice:limit:orders-api");
/// assert_eq!(url.address(), "127.0.0.1:6379");
/// assert!("redis://127.0.0.1:6379/".parse::<LimitUrl>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LimitUrl {
    userinfo: Option<String>,
    host: String,
    port: u16,
    database: u32,
    name: String,
}

/// What is wrong with a shared limit's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` at all.
    #[error("the shared limit must be a URL like redis://HOST:PORT/NAME")]
    NoScheme,
    /// A scheme other than `redis`.
    #[error(
        "the shared limit's URL must start with redis://, not {0}:// (TLS, rediss://, is not supported)"
    )]
    BadScheme(String),
    /// A `?query` or `#fragment`.
    #[error("the shared limit's URL cannot have a query (?) or a fragment (#)")]
    QueryOrFragment,
    /// Nothing between `redis://` and the port or the path.
    #[error("the shared limit's URL names no host: expected redis://HOST:PORT/NAME")]
    NoHost,
    /// A host that cannot be one.
    #[error("the shared limit's URL has a bad host {0:?} (an IPv6 address goes in brackets)")]
    BadHost(String),
    /// A port that is not a number from 1 to 65535.
    #[error("the shared limit's URL has a bad port {0:?}: expected a number from 1 to 65535")]
    BadPort(String),
    /// No window name: the path is empty or ends with `/`.
    #[error(
        "the shared limit's URL names no window: expected redis://HOST:PORT/NAME, NAME being the last path segment"
    )]
    NoName,
    /// A window name with characters or a length that are not allowed.
    #[error("the shared limit's window name {name:?} {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A database segment that is not a number.
    #[error("the shared limit's URL has a bad database {0:?}: expected /DB/NAME with DB a number")]
    BadDatabase(String),
    /// More path segments than `/DB/NAME`.
    #[error("the shared limit's URL has too many path segments: expected /NAME or /DB/NAME")]
    TooManySegments,
}

impl LimitUrl {
    /// Parses `redis://[USER:PASSWORD@]HOST[:PORT][/DB]/NAME`.
    ///
    /// # Errors
    /// A [`UrlError`] naming the part that is wrong.
    pub fn parse(url: &str) -> Result<LimitUrl, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::NoScheme)?;
        if scheme.is_empty() {
            return Err(UrlError::NoScheme);
        }
        if !scheme.eq_ignore_ascii_case("redis") {
            return Err(UrlError::BadScheme(scheme.to_owned()));
        }
        if rest.contains(['?', '#']) {
            return Err(UrlError::QueryOrFragment);
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo.to_owned()), host_port),
            None => (None, authority),
        };
        let (host, port) = host_and_port(host_port)?;
        let (database, name) = database_and_name(path)?;
        Ok(LimitUrl {
            userinfo,
            host,
            port,
            database,
            name,
        })
    }

    /// The window's name, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis key that holds the window: `sluice:limit:NAME`.
    pub fn key(&self) -> String {
        format!("{KEY_PREFIX}{}", self.name)
    }

    /// `HOST:PORT`, for messages (never the password).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The Redis database number (0 unless the URL names one).
    pub fn database(&self) -> u32 {
        self.database
    }

    /// The URL the Redis client connects to, password included.
    pub(crate) fn connection_url(&self) -> String {
        let userinfo = self
            .userinfo
            .as_ref()
            .map(|userinfo| format!("{userinfo}@"))
            .unwrap_or_default();
        format!(
            "redis://{userinfo}{}:{}/{}",
            self.host, self.port, self.database
        )
    }
}

impl FromStr for LimitUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<LimitUrl, UrlError> {
        LimitUrl::parse(url)
    }
}

impl fmt::Display for LimitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let userinfo = if self.userinfo.is_some() { "***@" } else { "" };
        write!(f, "redis://{userinfo}{}:{}", self.host, self.port)?;
        if self.database != 0 {
            write!(f, "/{}", self.database)?;
        }
        write!(f, "/{}", self.name)
    }
}

impl fmt::Debug for LimitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LimitUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

fn host_and_port(host_port: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| UrlError::BadHost(host_port.to_owned()))?;
        let valid = !inside.is_empty()
            && inside.contains(':')
            && inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !valid {
            return Err(UrlError::BadHost(host_port.to_owned()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| UrlError::BadHost(host_port.to_owned()))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        let (host, port) = match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let valid = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(UrlError::BadHost(host.to_owned()));
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => Some(port)
            .filter(|port| port.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|&port| port != 0)
            .ok_or_else(|| UrlError::BadPort(port.to_owned()))?,
    };
    Ok((host, port))
}

fn database_and_name(path: &str) -> Result<(u32, String), UrlError> {
    let segments: Vec<&str> = path.split('/').collect();
    let (database, name) = match segments.as_slice() {
        [name] => (None, *name),
        [database, name] => (Some(*database), *name),
        _ => return Err(UrlError::TooManySegments),
    };
    if name.is_empty() {
        return Err(UrlError::NoName);
    }
    check_name(name)?;
    let database = match database {
        None => 0,
        Some(database) => Some(database)
            .filter(|database| database.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|database| database.parse::<u32>().ok())
            .ok_or_else(|| UrlError::BadDatabase(database.to_owned()))?,
    };
    Ok((database, name.to_owned()))
}

fn check_name(name: &str) -> Result<(), UrlError> {
    let reason = if name.len() > MAX_NAME_LEN {
        "is longer than 200 characters"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
    {
        "may hold only letters, digits and . _ - :"
    } else {
        return Ok(());
    };
    Err(UrlError::BadName {
        name: name.to_owned(),
        reason,
    })
}
