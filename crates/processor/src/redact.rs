//! A URL as it may be shown: without its credentials.

use std::borrow::Cow;

/// `url` with its userinfo (`user:password@`) replaced by `<redacted>@`,
/// whatever characters the password holds: shown in messages, logs,
/// reports and `--print-config` for every connector's URL.
///
/// The userinfo ends at the last `@` of the authority. A password with a
/// raw `/`, `?` or `#` (which a URL parser would take for the end of the
/// authority) leaves an authority that is no `host:port`; everything up to
/// the URL's last `@` is then hidden: better too much than a password.
///
/// ```
/// use sluice_processor::redact_userinfo;
///
/// assert_eq!(redact_userinfo("https://u:p@ss@api.example.com/r"), "https://<redacted>@api.example.com/r");
/// assert_eq!(redact_userinfo("nats://u:pa/ss@127.0.0.1:4222"), "nats://<redacted>@127.0.0.1:4222");
/// assert_eq!(redact_userinfo("https://host/path?mail=a@b"), "https://host/path?mail=a@b");
/// ```
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let at = match authority.rfind('@') {
        Some(at) => Some(at),
        None if !host_and_port(authority) => rest.rfind('@'),
        None => None,
    };
    match at {
        Some(at) => Cow::Owned(format!("{}<redacted>{}", &url[..start], &rest[at..])),
        None => Cow::Borrowed(url),
    }
}

/// Whether `authority` reads as `host`, `host:port` or `[v6]:port`.
fn host_and_port(authority: &str) -> bool {
    if authority.starts_with('[') {
        return true;
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_password_is_shown_whatever_its_characters() {
        let cases = [
            ("https://u:p@host/a@b", "https://<redacted>@host/a@b"),
            ("http://token@host:8080", "http://<redacted>@host:8080"),
            ("http://a@b@host?x=@", "http://<redacted>@host?x=@"),
            ("https://host/path?mail=a@b", "https://host/path?mail=a@b"),
            ("http://[::1]:8080/a@b", "http://[::1]:8080/a@b"),
            (
                "redis://:p@ss:w0rd@127.0.0.1:6379/q",
                "redis://<redacted>@127.0.0.1:6379/q",
            ),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_userinfo(url), shown);
        }
        for password in [
            "12:34/5",
            "pa/ss",
            "pa?ss",
            "pa#ss",
            "p:a@s/s?x#y",
            "%2F:@/",
            "ünï©ødé/",
            "a b",
        ] {
            for scheme in ["http", "https", "nats", "redis"] {
                let url = format!("{scheme}://user:{password}@host.example:1234/path?q=1");
                let shown = redact_userinfo(&url);
                assert!(!shown.contains(password), "{url} → {shown}");
                assert!(shown.contains("host.example:1234"), "{url} → {shown}");
            }
        }
    }
}
