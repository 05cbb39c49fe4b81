//! A URL's userinfo (`user:password@`), turned once into an
//! `Authorization: Basic` header so that the URL the sink keeps carries no
//! credential.

use reqwest::Url;
use reqwest::header::HeaderValue;

/// Userinfo taken out of a URL.
pub(crate) struct Credentials {
    /// `Basic <base64(user:password)>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// Every form in which the credentials could be echoed back: the
    /// header's value, the base64 token, user and password (raw and
    /// percent-decoded).
    pub(crate) secrets: Vec<String>,
}

/// Removes the userinfo from `url` and returns it as a basic
/// authentication header, or `None` when the URL has none.
pub(crate) fn take_credentials(url: &mut Url) -> Option<Credentials> {
    let user = url.username().to_owned();
    let password = url.password().map(str::to_owned);
    if user.is_empty() && password.is_none() {
        return None;
    }
    // Cannot fail: a URL with userinfo has a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut pair = percent_decode(&user);
    pair.push(b':');
    pair.extend(percent_decode(password.as_deref().unwrap_or("")));
    let token = base64(&pair);
    let value = format!("Basic {token}");
    let mut header = HeaderValue::from_str(&value).ok()?;
    header.set_sensitive(true);
    let mut secrets = vec![value, token];
    for part in [Some(user), password].into_iter().flatten() {
        secrets.push(String::from_utf8_lossy(&percent_decode(&part)).into_owned());
        secrets.push(part);
    }
    Some(Credentials { header, secrets })
}

/// `%XX` escapes decoded; anything else, malformed escapes included, kept.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Standard base64 with padding (RFC 4648, section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 63;
                encoded.push(char::from(ALPHABET[index as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let mut url = Url::parse("https://us%40er:p%3Ass@host:8443/path?q=1").unwrap();
        let credentials = take_credentials(&mut url).unwrap();
        assert_eq!(url.as_str(), "https://host:8443/path?q=1");
        // base64("us@er:p:ss")
        assert_eq!(credentials.header, "Basic dXNAZXI6cDpzcw==");
        assert!(credentials.header.is_sensitive());
        for form in ["us@er", "us%40er", "p:ss", "p%3Ass", "dXNAZXI6cDpzcw=="] {
            assert!(credentials.secrets.iter().any(|s| s == form), "{form}");
        }
        let mut plain = Url::parse("http://host/").unwrap();
        assert!(take_credentials(&mut plain).is_none());
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    }
}
