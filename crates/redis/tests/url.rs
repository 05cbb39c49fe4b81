//! The shared limit's URL: what is accepted, and for bad input an error
//! naming what is wrong, never the password.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sluice_redis::{LimitUrl, UrlError};

fn parse(url: &str) -> Result<LimitUrl, UrlError> {
    url.parse()
}

#[test]
fn the_command_line_form_names_the_server_and_the_window() {
    let url = parse("redis://127.0.0.1:6379/orders-api").unwrap();
    assert_eq!(url.name(), "orders-api");
    assert_eq!(url.key(), "sluice:limit:orders-api");
    assert_eq!(url.address(), "127.0.0.1:6379");
    assert_eq!(url.database(), 0);
    assert_eq!(url.to_string(), "redis://127.0.0.1:6379/orders-api");
}

#[test]
fn port_database_user_and_ipv6_are_optional() {
    let url = parse("redis://localhost/limit").unwrap();
    assert_eq!(url.address(), "localhost:6379");
    let url = parse("REDIS://cache.internal:7000/3/api.v2:eu_west").unwrap();
    assert_eq!(url.address(), "cache.internal:7000");
    assert_eq!(url.database(), 3);
    assert_eq!(url.name(), "api.v2:eu_west");
    assert_eq!(
        url.to_string(),
        "redis://cache.internal:7000/3/api.v2:eu_west"
    );
    let url = parse("redis://[::1]:6380/w").unwrap();
    assert_eq!(url.address(), "[::1]:6380");
    let url = parse("redis://[::1]/w").unwrap();
    assert_eq!(url.address(), "[::1]:6379");
}

#[test]
fn a_password_is_never_shown() {
    let url = parse("redis://sluice:s3cret@10.0.0.5:6379/w").unwrap();
    assert_eq!(url.address(), "10.0.0.5:6379");
    assert_eq!(url.to_string(), "redis://***@10.0.0.5:6379/w");
    assert!(!format!("{url:?}").contains("s3cret"));
    let error = parse("redis://sluice:s3cret@10.0.0.5:99999/w").unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn bad_urls_say_what_is_wrong() {
    let cases: &[(&str, UrlError)] = &[
        ("127.0.0.1:6379/w", UrlError::NoScheme),
        ("://127.0.0.1/w", UrlError::NoScheme),
        (
            "http://127.0.0.1:6379/w",
            UrlError::BadScheme("http".into()),
        ),
        (
            "rediss://127.0.0.1:6379/w",
            UrlError::BadScheme("rediss".into()),
        ),
        ("redis://127.0.0.1:6379/w?db=1", UrlError::QueryOrFragment),
        ("redis://127.0.0.1:6379/w#x", UrlError::QueryOrFragment),
        ("redis://:6379/w", UrlError::NoHost),
        ("redis:///w", UrlError::NoHost),
        ("redis://ho st:6379/w", UrlError::BadHost("ho st".into())),
        ("redis://::1:6379/w", UrlError::NoHost),
        ("redis://[::1/w", UrlError::BadHost("[::1".into())),
        ("redis://[zz]:1/w", UrlError::BadHost("[zz]:1".into())),
        ("redis://[::1]x/w", UrlError::BadHost("[::1]x".into())),
        ("redis://127.0.0.1:/w", UrlError::BadPort(String::new())),
        ("redis://127.0.0.1:0/w", UrlError::BadPort("0".into())),
        (
            "redis://127.0.0.1:65536/w",
            UrlError::BadPort("65536".into()),
        ),
        ("redis://127.0.0.1:+80/w", UrlError::BadPort("+80".into())),
        ("redis://127.0.0.1:http/w", UrlError::BadPort("http".into())),
        ("redis://127.0.0.1:6379", UrlError::NoName),
        ("redis://127.0.0.1:6379/", UrlError::NoName),
        ("redis://127.0.0.1:6379/0/", UrlError::NoName),
        (
            "redis://127.0.0.1:6379/x/w",
            UrlError::BadDatabase("x".into()),
        ),
        (
            "redis://127.0.0.1:6379//w",
            UrlError::BadDatabase(String::new()),
        ),
        (
            "redis://127.0.0.1:6379/-1/w",
            UrlError::BadDatabase("-1".into()),
        ),
        ("redis://127.0.0.1:6379/0/a/w", UrlError::TooManySegments),
    ];
    for (url, expected) in cases {
        assert_eq!(parse(url).as_ref(), Err(expected), "{url}");
    }
}

#[test]
fn bad_names_say_why() {
    for name in ["a b", "naïve", "x%20y", "a*b"] {
        match parse(&format!("redis://127.0.0.1/{name}")) {
            Err(UrlError::BadName { name: got, reason }) => {
                assert_eq!(got, name);
                assert!(reason.contains("letters"), "{reason}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let long = "n".repeat(201);
    assert!(matches!(
        parse(&format!("redis://127.0.0.1/{long}")),
        Err(UrlError::BadName { .. })
    ));
    assert!(parse(&format!("redis://127.0.0.1/{}", "n".repeat(200))).is_ok());
}

#[test]
fn errors_read_as_sentences_naming_the_part() {
    let error = parse("redis://127.0.0.1:70000/w").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the shared limit's URL has a bad port \"70000\": expected a number from 1 to 65535"
    );
    let error = parse("redis://127.0.0.1:6379/").unwrap_err();
    assert!(error.to_string().contains("names no window"), "{error}");
}
