//! Hosts: lower case, no port, no trailing dot, or refused.

use std::borrow::Cow;
use std::fmt;

/// Why a `Host` (or an authority) cannot be read one way only.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum InvalidHost {
    /// A byte that has no place in a host name (`%`, `@`, a space, non-ASCII...).
    Character {
        /// The byte.
        byte: u8,
    },
    /// An empty label (`a..b`, `.a`, `a..`).
    EmptyLabel,
    /// A port was given but no host (`:80`), or an authority with nothing in it.
    Empty,
    /// An IPv6 literal that is not `[hex:colons]` (zone identifiers are refused too).
    Ipv6Literal,
    /// The port is not 1 to 5 digits up to 65535 (`a:80:80`, `a:`, `a:x`).
    Port,
}

impl fmt::Display for InvalidHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidHost::Character { byte } => {
                write!(f, "byte 0x{byte:02X} is not allowed in a host")
            }
            InvalidHost::EmptyLabel => f.write_str("the host has an empty label"),
            InvalidHost::Empty => f.write_str("the host is empty"),
            InvalidHost::Ipv6Literal => f.write_str("the IPv6 literal is malformed"),
            InvalidHost::Port => f.write_str("the port is not a number up to 65535"),
        }
    }
}

impl std::error::Error for InvalidHost {}

/// Reads a `Host` value or URL authority: the lower-case host without its port
/// and without one trailing dot (`Ops.Test.:8443` is `ops.test`). An IPv6 literal
/// keeps its brackets. An empty input reads as empty (no host: only rules without
/// a host match).
///
/// # Errors
/// Anything but a DNS-style name (letters, digits, `-`, `_`, `.`), an IPv4
/// address or a bracketed IPv6 literal, with an optional numeric port.
pub fn canonical_host(raw: &str) -> Result<Cow<'_, str>, InvalidHost> {
    if raw.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    if let Some(host) = plain_host(raw.as_bytes()) {
        // Only ASCII was seen: the split is on a char boundary.
        return Ok(Cow::Borrowed(&raw[..host]));
    }
    read_host(raw)
}

/// The full reading, for what the one-pass check does not take.
fn read_host(raw: &str) -> Result<Cow<'_, str>, InvalidHost> {
    let (host, port) = if raw.starts_with('[') {
        let end = raw.find(']').ok_or(InvalidHost::Ipv6Literal)?;
        let (literal, rest) = raw.split_at(end + 1);
        let inner = &literal[1..literal.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(InvalidHost::Ipv6Literal);
        }
        let port = match rest {
            "" => None,
            r => Some(r.strip_prefix(':').ok_or(InvalidHost::Port)?),
        };
        (literal, port)
    } else {
        match raw.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    if let Some(port) = port
        && !is_port(port)
    {
        return Err(InvalidHost::Port);
    }
    if host.starts_with('[') {
        return Ok(lower(host));
    }
    if host.is_empty() {
        return Err(InvalidHost::Empty);
    }
    if let Some(&byte) = host
        .as_bytes()
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return Err(InvalidHost::Character { byte });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(InvalidHost::EmptyLabel);
    }
    Ok(lower(name))
}

/// The common case in one pass: lower-case letters, digits, `-`, `_` and `.` with no
/// empty label and no trailing dot, then optionally `:` and 1 to 5 digits up to 65535.
/// Returns the length of the host part; `None` sends the input to the full reading.
fn plain_host(raw: &[u8]) -> Option<usize> {
    let mut label_start = 0;
    let mut end = raw.len();
    for (i, &b) in raw.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            b'.' if i > label_start => label_start = i + 1,
            b':' => {
                end = i;
                break;
            }
            _ => return None,
        }
    }
    // No empty last label (`a.`, `a..`) and no empty host (`:80`).
    if end == 0 || label_start == end {
        return None;
    }
    match raw.get(end + 1..) {
        None => Some(end),
        Some(port) if (1..=5).contains(&port.len()) => {
            // At most five digits: no overflow.
            let value = port.iter().try_fold(0u32, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })?;
            (value <= 65535).then_some(end)
        }
        Some(_) => None,
    }
}

fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
}

fn lower(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass check takes only what the full reading reads the same way.
    #[test]
    fn the_fast_path_agrees_with_the_full_reading() {
        for raw in [
            "a",
            "api.example.com",
            "127.0.0.1:8080",
            "a-b_c.d:1",
            "a:65535",
            "a:65536",
            "a:0",
            "a:",
            ":1",
            "a.",
            "a..b",
            ".a",
            "a:123456",
            "a:99999999999999999999",
            "A",
            "a b",
            "a:8x",
            "[::1]:80",
            "a:80:80",
            "é",
            "x.y.z:00080",
        ] {
            if let Some(end) = plain_host(raw.as_bytes()) {
                assert_eq!(read_host(raw).as_deref(), Ok(&raw[..end]), "{raw}");
            }
        }
        assert_eq!(plain_host(b"127.0.0.1:8080"), Some(9));
        assert_eq!(plain_host(b"a:99999999999999999999"), None);
    }
}
