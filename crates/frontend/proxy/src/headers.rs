//! Header rewriting on the way through: hop-by-hop headers removed (with those
//! `Connection` names), forwarding headers set from what this proxy saw, the
//! request id propagated or generated.

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, HeaderValue, TE, TRANSFER_ENCODING, UPGRADE};

/// Headers that describe one connection, never passed on (RFC 9110 §7.6.1, and
/// the non-standard ones proxies still see).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
];

/// The request id header.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Removes the hop-by-hop headers and every header `Connection` names. `upgrade`
/// keeps `Upgrade` (and sets `Connection: upgrade`) for a protocol switch the
/// decision allowed; `te: trailers` is kept (gRPC needs it), any other `TE` goes.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    let trailers = headers
        .get_all(TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(TE);
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if let Some(v) = upgrade_value {
        headers.insert(UPGRADE, v);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Removes hop-by-hop headers from an upstream's response (keeping `Upgrade` and
/// `Connection: upgrade` on a 101).
pub(crate) fn strip_response(headers: &mut HeaderMap, switching: bool) {
    strip_hop_by_hop(headers, switching);
    headers.remove(TRANSFER_ENCODING);
}

/// What the proxy saw of the request it forwards.
pub(crate) struct Seen<'a> {
    /// The peer of the connection.
    pub peer: SocketAddr,
    /// Whether that peer is in `trusted_proxies`.
    pub trusted: bool,
    /// `https` on a TLS listener, else `http`.
    pub proto: &'static str,
    /// The host the request named.
    pub host: &'a str,
}

/// Whether `name`, read as CGI reads names (`_` as `-`), is a forwarding header.
fn is_forwarding(name: &str) -> bool {
    let n = name.as_bytes();
    let same = |want: &str| {
        n.len() == want.len()
            && n.iter()
                .zip(want.bytes())
                .all(|(&a, b)| a == b || (a == b'_' && b == b'-'))
    };
    let prefix = b"x-forwarded-";
    (n.len() > prefix.len()
        && n[..prefix.len()]
            .iter()
            .zip(prefix)
            .all(|(&a, &b)| a == b || (a == b'_' && b == b'-')))
        || same("forwarded")
        || same("x-real-ip")
}

/// Drops a client's forwarding headers (`X-Forwarded-*` in any spelling, among
/// them `X-Forwarded-Client-Cert`, `Forwarded`, `X-Real-IP`) before the decision
/// reads the request: from a peer that is not a trusted proxy they are claims, not
/// evidence (a forged `X-Forwarded-Client-Cert` must not meet a token's
/// certificate binding). [`set_forwarding`] sets this proxy's own afterwards.
pub(crate) fn drop_forwarding(headers: &mut HeaderMap) {
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_forwarding(n.as_str()))
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
}

/// Sets `X-Forwarded-For` (the peer appended), `X-Forwarded-Proto`,
/// `X-Forwarded-Host`, `X-Real-IP` and `Forwarded` from what this proxy saw. A
/// client's copies are dropped unless its peer is a trusted proxy (then its
/// `X-Forwarded-For` and `Forwarded` are appended to, and its `X-Forwarded-Proto`,
/// `-Host` kept). Other spellings (`x_forwarded_for`) are dropped always.
pub(crate) fn set_forwarding(headers: &mut HeaderMap, seen: &Seen<'_>) {
    let ip = seen.peer.ip();
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let joined = |headers: &HeaderMap, name: &HeaderName| -> Option<String> {
        let parts: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    };
    let (prior_for, prior_forwarded, prior_proto, prior_host) = if seen.trusted {
        (
            joined(headers, &X_FORWARDED_FOR),
            joined(headers, &FORWARDED),
            headers.get(X_FORWARDED_PROTO).cloned(),
            headers.get(X_FORWARDED_HOST).cloned(),
        )
    } else {
        (None, None, None, None)
    };
    let drop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_forwarding(n.as_str()))
        .filter(|n| !seen.trusted || n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
    let ip_text = ip.to_string();
    let xff = match prior_for {
        Some(p) => format!("{p}, {ip_text}"),
        None => ip_text.clone(),
    };
    let node = match ip {
        IpAddr::V4(_) => ip_text.clone(),
        IpAddr::V6(_) => format!("\"[{ip_text}]\""),
    };
    let host: String = seen
        .host
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    let element = format!("for={node};proto={};host=\"{host}\"", seen.proto);
    let forwarded = match prior_forwarded {
        Some(p) => format!("{p}, {element}"),
        None => element,
    };
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(headers, X_FORWARDED_FOR, &xff);
    set(headers, FORWARDED, &forwarded);
    if seen.trusted {
        // A trusted proxy's own `X-Real-IP` names the original client.
        if headers.get(X_REAL_IP).is_none() {
            set(headers, X_REAL_IP, &ip_text);
        }
    } else {
        set(headers, X_REAL_IP, &ip_text);
    }
    match prior_proto {
        Some(v) => {
            headers.insert(X_FORWARDED_PROTO, v);
        }
        None => set(headers, X_FORWARDED_PROTO, seen.proto),
    }
    match prior_host {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST, v);
        }
        None => set(headers, X_FORWARDED_HOST, &host),
    }
}

/// The client's `x-request-id` when it is one short visible-ASCII value, else a
/// new random one (32 hex digits).
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut given = headers.get_all(REQUEST_ID).iter();
    if let (Some(v), None) = (given.next(), given.next())
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes().iter().all(u8::is_ascii_graphic)
    {
        return v.clone();
    }
    let mut bytes = [0u8; 16];
    // The system RNG does not fail on Linux; a zero id is still an id.
    let _ = SystemRandom::new().fill(&mut bytes);
    let mut hex = Vec::with_capacity(32);
    for b in bytes {
        hex.push(HEX[usize::from(b >> 4)]);
        hex.push(HEX[usize::from(b & 15)]);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(hex))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("connection", "x-other"),
            ("keep-alive", "5"),
            ("x-secret", "a"),
            ("x-other", "b"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-kept", "c"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept", "te"]);
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("te").is_none());
    }

    fn seen(trusted: bool) -> Seen<'static> {
        Seen {
            peer: "192.0.2.7:5555".parse().unwrap(),
            trusted,
            proto: "http",
            host: "app.example",
        }
    }

    #[test]
    fn spoofed_forwarding_is_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x_forwarded_for", "3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-prefix", "/admin"),
            ("forwarded", "for=1.1.1.1;host=evil"),
            ("x-real-ip", "1.1.1.1"),
        ]);
        set_forwarding(&mut h, &seen(false));
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "app.example");
        assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.7");
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=192.0.2.7;proto=http;host=\"app.example\""
        );
        assert!(h.get("x_forwarded_for").is_none());
        assert!(h.get("x-forwarded-prefix").is_none());
    }

    #[test]
    fn trusted_forwarding_is_appended_to() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x_forwarded_for", "3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        set_forwarding(&mut h, &seen(true));
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "1.1.1.1, 2.2.2.2, 192.0.2.7"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=1.1.1.1, for=192.0.2.7;proto=http;host=\"app.example\""
        );
        assert!(h.get("x_forwarded_for").is_none());
    }

    #[test]
    fn untrusted_forwarding_is_dropped_before_deciding() {
        let mut h = map(&[
            ("x-forwarded-client-cert", "Hash=00"),
            ("x_forwarded_client_cert", "Hash=00"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.1.1.1"),
            ("x-real-ip", "1.1.1.1"),
            ("x-user", "kept"),
        ]);
        drop_forwarding(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h.get("x-user").unwrap(), "kept");
    }

    #[test]
    fn request_ids() {
        let h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(request_id(&h), "abc-123");
        for bad in [
            map(&[("x-request-id", "a"), ("x-request-id", "b")]),
            map(&[("x-request-id", "has space")]),
            HeaderMap::new(),
        ] {
            let id = request_id(&bad);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
    }
}
