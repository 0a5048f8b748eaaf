//! The strictest reading an upstream might give the request it received: every way a
//! real server has been seen to read a path or a host, at once. A request counts as
//! protected when ANY of those readings is protected, so a proxy or Portcullis that
//! let it through without the right token has been confused.

use super::{ANONYMOUS_HOST, RESTRICTED_HOST};

/// Every host the upstream might believe the request is for: the `Host` headers and
/// the authority of an absolute-form target, lower-cased, percent-decoded, without
/// port, userinfo or trailing dots.
pub(crate) fn host_readings(target: &[u8], hosts: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((authority, _)) = split_absolute(target) {
        out.push(normalize_host(authority));
    }
    for h in hosts {
        out.push(normalize_host(h));
    }
    out.sort();
    out.dedup();
    out
}

/// Every path the upstream might route on (see the module docs).
pub(crate) fn path_readings(target: &[u8]) -> Vec<String> {
    let path = match split_absolute(target) {
        Some((_, path)) => path,
        None => target,
    };
    // The query starts at the first raw `?` for every server.
    let path = match path.iter().position(|&b| b == b'?') {
        Some(i) => &path[..i],
        None => path,
    };
    let mut out = Vec::new();
    // A raw `#` (never valid in a request target) ends the path for some servers and
    // is an ordinary character for others (Envoy CVE-2021-32779).
    let cut = match path.iter().position(|&b| b == b'#') {
        Some(i) => &path[..i],
        None => path,
    };
    for raw in [path, cut] {
        for depth in [0usize, 1, 8] {
            let decoded = decode_times(raw, depth);
            for cut_nul in [false, true] {
                for strip_params in [false, true] {
                    for merge_first in [false, true] {
                        let mut p = decoded.clone();
                        if cut_nul && let Some(i) = p.iter().position(|&b| b == 0) {
                            p.truncate(i);
                        }
                        out.push(resolve(&p, strip_params, merge_first));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the policy under test protects this reading: the host-restricted route on
/// its host, or `/admin` on any host but the anonymous one.
pub(crate) fn is_protected(host: &str, path: &str) -> bool {
    let admin = path == "/admin" || path.starts_with("/admin/");
    host == RESTRICTED_HOST || (admin && host != ANONYMOUS_HOST)
}

/// The first protected (host, path) among the readings, if any.
pub(crate) fn protected_reading(target: &[u8], hosts: &[&[u8]]) -> Option<(String, String)> {
    let mut hosts = host_readings(target, hosts);
    if hosts.is_empty() {
        // No host at all (HTTP/1.0): the upstream's default host.
        hosts.push(String::new());
    }
    let paths = path_readings(target);
    for h in &hosts {
        for p in &paths {
            if is_protected(h, p) {
                return Some((h.clone(), p.clone()));
            }
        }
    }
    None
}

/// Whether a header name is a spelling of `name` for some upstream: any case, `_` for `-`
/// (CGI, WSGI, PHP), surrounding white space ignored.
pub(crate) fn is_spelling_of(header: &[u8], name: &str) -> bool {
    let h: Vec<u8> = trim(header)
        .iter()
        .map(|b| {
            if *b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect();
    h == name.as_bytes()
}

/// `scheme://authority` and the rest of an absolute-form target.
fn split_absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..i];
    let scheme_ok = !scheme.is_empty()
        && scheme[0].is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b));
    if !scheme_ok {
        return None;
    }
    let rest = &target[i + 3..];
    let end = rest
        .iter()
        .position(|b| b"/?#\\".contains(b))
        .unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

fn normalize_host(raw: &[u8]) -> String {
    let decoded = decode_times(trim(raw), 8);
    let mut h = decoded.as_slice();
    if let Some(i) = h.iter().rposition(|&b| b == b'@') {
        h = &h[i + 1..];
    }
    let h = if h.first() == Some(&b'[') {
        match h.iter().position(|&b| b == b']') {
            Some(i) => &h[..=i],
            None => h,
        }
    } else {
        match h.iter().position(|&b| b == b':') {
            Some(i) => &h[..i],
            None => h,
        }
    };
    let text = String::from_utf8_lossy(h).to_ascii_lowercase();
    text.trim().trim_end_matches('.').to_owned()
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Percent-decodes `depth` times (stopping when nothing changes), reading `%uXXXX`
/// (IIS) and the overlong UTF-8 forms of `.`, `/` and `\` as those characters.
fn decode_times(input: &[u8], depth: usize) -> Vec<u8> {
    let mut cur = input.to_vec();
    for _ in 0..depth {
        let next = overlong(&decode_once(&cur));
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode_once(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if let (Some(&a), Some(&b)) = (input.get(i + 1), input.get(i + 2))
                && let (Some(a), Some(b)) = (hex(a), hex(b))
            {
                out.push(a << 4 | b);
                i += 3;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U'))
                && let Some(digits) = input.get(i + 2..i + 6)
                && let Ok(text) = std::str::from_utf8(digits)
                && let Ok(cp) = u32::from_str_radix(text, 16)
            {
                match char::from_u32(cp) {
                    Some(c) => {
                        let mut tmp = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                    }
                    None => out.extend_from_slice(&input[i..i + 6]),
                }
                i += 6;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// `C0 AE` / `E0 80 AE` -> `.`, `C0 AF` / `E0 80 AF` -> `/`, `C1 9C` -> `\`, and the
/// full-width and division slashes some frameworks fold to `/`.
fn overlong(input: &[u8]) -> Vec<u8> {
    const MAP: [(&[u8], u8); 7] = [
        (&[0xC0, 0xAE], b'.'),
        (&[0xE0, 0x80, 0xAE], b'.'),
        (&[0xC0, 0xAF], b'/'),
        (&[0xE0, 0x80, 0xAF], b'/'),
        (&[0xC1, 0x9C], b'\\'),
        (&[0xE2, 0x88, 0x95], b'/'),
        (&[0xEF, 0xBC, 0x8F], b'/'),
    ];
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    'outer: while i < input.len() {
        for (from, to) in MAP {
            if input[i..].starts_with(from) {
                out.push(to);
                i += from.len();
                continue 'outer;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// `\` as `/`, optional `;params` stripping, dot segments resolved RFC 3986 style (empty
/// segments count) or after merging slashes, then slashes collapsed.
fn resolve(path: &[u8], strip_params: bool, merge_first: bool) -> String {
    let text: Vec<u8> = path
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let text = String::from_utf8_lossy(&text).into_owned();
    let mut segments: Vec<&str> = text.split('/').collect();
    if text.starts_with('/') {
        segments.remove(0);
    }
    let mut stack: Vec<&str> = Vec::new();
    for seg in segments {
        let seg = if strip_params {
            seg.split(';').next().unwrap_or("")
        } else {
            seg
        };
        match seg {
            "" if merge_first => {}
            "." => {}
            ".." => {
                stack.pop();
            }
            _ => stack.push(seg),
        }
    }
    let joined: Vec<&str> = stack.into_iter().filter(|s| !s.is_empty()).collect();
    format!("/{}", joined.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(target: &str) -> bool {
        protected_reading(target.as_bytes(), &[b"127.0.0.1:1"]).is_some()
    }

    #[test]
    fn reads_every_known_confusion_as_admin() {
        for t in [
            "/admin/x",
            "/public/../admin/x",
            "/public/..%2fadmin/x",
            "/public/%2e%2e%2fadmin/x",
            "/public/x%2f..%2f..%2fadmin%2fx",
            "/public/..%5cadmin/x",
            "/public/..\\admin/x",
            "/admin//../public/x",
            "/public/..;/admin/x",
            "/public/%252e%252e/admin/x",
            "/public/%c0%ae%c0%ae/admin/x",
            "/public/x#/../../admin/x",
            "/%61dmin/x",
            "/admin;x=1/y",
            "//admin/x",
            "http://other/admin/x",
            "/public/%u002e%u002e/admin/x",
        ] {
            assert!(protected(t), "{t} should read as protected");
        }
    }

    #[test]
    fn leaves_other_paths_alone() {
        for t in [
            "/public/x",
            "/api/x",
            "/administrator",
            "/public/admin/x",
            "/public/x?/../../admin/x",
        ] {
            assert!(!protected(t), "{t} should not read as protected");
        }
    }

    #[test]
    fn reads_hosts_strictly() {
        for h in [
            "ops.test.",
            "OPS.TEST",
            "ops.test:80",
            "Ops.Test.:8080",
            "ops%2etest",
        ] {
            assert!(
                protected_reading(b"/x", &[h.as_bytes()]).is_some(),
                "{h} is the restricted host"
            );
        }
        assert!(protected_reading(b"http://ops.test./x", &[b"127.0.0.1"]).is_some());
        assert!(protected_reading(b"/admin/x", &[b"anonymous.invalid"]).is_none());
        assert!(protected_reading(b"http://anonymous.invalid/admin/x", &[b"a"]).is_some());
    }

    #[test]
    fn spells_identity_headers_like_cgi() {
        for n in ["x-user", "X-User", "x_user", "X_USER", " x-user"] {
            assert!(is_spelling_of(n.as_bytes(), "x-user"), "{n}");
        }
        assert!(!is_spelling_of(b"x-users", "x-user"));
    }
}
