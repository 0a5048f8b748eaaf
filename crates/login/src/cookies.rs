//! Reading cookies from a request and writing `Set-Cookie` values: `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, `Secure` unless turned off, the configured `Domain`.
//! A value longer than one cookie holds is split into `NAME`, `NAME_1`, `NAME_2`...

use http::HeaderMap;
use portcullis_policy::config::CookieConfig;

/// The most bytes of one cookie value (browsers keep about 4096 per cookie, name
/// and attributes included).
pub(crate) const CHUNK: usize = 3800;
/// The most chunks a session cookie is split into.
pub(crate) const MAX_CHUNKS: usize = 8;

/// The value of cookie `name` in the request (the first one when repeated).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// Every cookie of the request, as `(name, value)`, in order.
pub(crate) fn all(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(n, v)| (n.trim(), v.trim()))
}

/// Removes the cookies `is_ours` names from every `Cookie` header, keeping the
/// others as sent; a header left empty is dropped.
pub(crate) fn remove(headers: &mut HeaderMap, is_ours: impl Fn(&str) -> bool) {
    let kept: Vec<http::HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| {
            let Ok(text) = v.to_str() else {
                // Not readable as text: not ours to rewrite; kept as sent.
                return Some(v.clone());
            };
            let pairs: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .filter(|pair| !is_ours(pair.split_once('=').map_or(*pair, |(n, _)| n).trim()))
                .collect();
            if pairs.is_empty() {
                return None;
            }
            http::HeaderValue::from_str(&pairs.join("; ")).ok()
        })
        .collect();
    headers.remove(http::header::COOKIE);
    for v in kept {
        headers.append(http::header::COOKIE, v);
    }
}

/// A (possibly split) cookie's value, its chunks joined.
pub(crate) fn chunked(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut value = cookie(headers, name)?.to_owned();
    for i in 1..MAX_CHUNKS {
        match cookie(headers, &format!("{name}_{i}")) {
            Some(part) => value.push_str(part),
            None => break,
        }
    }
    Some(value)
}

/// `Set-Cookie` values for `value` under `name`, split as needed, valid `max_age`
/// seconds; leftover chunks of an older, longer value are cleared.
pub(crate) fn set_chunked(
    config: &CookieConfig,
    name: &str,
    value: &str,
    max_age: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let n = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}_{i}")
        };
        out.push(set(config, &n, part, Some(max_age)));
    }
    for i in parts.len().max(1)..MAX_CHUNKS {
        out.push(set(config, &format!("{name}_{i}"), "", None));
    }
    out
}

/// `Set-Cookie` values clearing `name` and its chunks.
pub(crate) fn clear_chunked(config: &CookieConfig, name: &str) -> Vec<String> {
    (0..MAX_CHUNKS)
        .map(|i| {
            let n = if i == 0 {
                name.to_owned()
            } else {
                format!("{name}_{i}")
            };
            set(config, &n, "", None)
        })
        .collect()
}

/// One `Set-Cookie` value; `max_age: None` clears the cookie.
pub(crate) fn set(config: &CookieConfig, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    match max_age {
        Some(secs) => c.push_str(&format!("; Max-Age={secs}")),
        None => c.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
    }
    if config.secure {
        c.push_str("; Secure");
    }
    if let Some(domain) = &config.domain {
        c.push_str("; Domain=");
        c.push_str(domain);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_our_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "app=1; s=sealed; s_1=more; s_x=keep".parse().unwrap(),
        );
        headers.append(http::header::COOKIE, "s_state=st".parse().unwrap());
        headers.append(http::header::COOKIE, "other=2".parse().unwrap());
        remove(&mut headers, |n| n == "s" || n == "s_1" || n == "s_state");
        let left: Vec<&str> = headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["app=1; s_x=keep", "other=2"]);
    }

    #[test]
    fn splits_and_joins() {
        let config = CookieConfig {
            name: "s".to_owned(),
            secure: true,
            domain: Some("example.com".to_owned()),
        };
        let value = "a".repeat(CHUNK * 2 + 10);
        let set = set_chunked(&config, "s", &value, 60);
        assert!(set[0].starts_with("s=") && set[0].contains("HttpOnly; SameSite=Lax"));
        assert!(set[0].contains("; Secure") && set[0].contains("Domain=example.com"));
        let mut headers = HeaderMap::new();
        let pairs: Vec<String> = set
            .iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .collect();
        assert_eq!(pairs.len(), 3);
        headers.insert(http::header::COOKIE, pairs.join("; ").parse().unwrap());
        assert_eq!(chunked(&headers, "s").unwrap(), value);
    }
}
