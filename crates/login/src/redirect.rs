//! `rd`: where a browser goes after login or logout. Only absolute `http(s)` URLs
//! whose host is in `allowed_redirect_hosts` (exactly, or under a `*.` entry), or a
//! path on `public_url`. Refused: whitespace and control characters (raw or
//! percent-encoded), `\`, userinfo, scheme-relative `//`, anything not ASCII.

use portcullis_policy::config::RedirectHost;

/// Why an `rd` is refused.
#[derive(Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRedirect {
    /// Characters no safe redirect holds (whitespace, controls, `\`, non-ASCII).
    #[error("holds a character a redirect may not hold")]
    BadCharacter,
    /// Not an absolute http(s) URL nor a path.
    #[error("not an http(s) URL or a path")]
    NotUrl,
    /// The URL names a user (`user@host`).
    #[error("names a user")]
    Userinfo,
    /// The host is not allowed.
    #[error("host {host:?} is not in allowed_redirect_hosts")]
    HostNotAllowed {
        /// The host.
        host: String,
    },
}

/// Checks `rd` and returns the URL to redirect to (a path is joined to `public_url`).
///
/// # Errors
/// [`InvalidRedirect`].
pub fn check_redirect(
    rd: &str,
    public_url: &str,
    allowed: &[RedirectHost],
) -> Result<String, InvalidRedirect> {
    if rd.is_empty()
        || rd.len() > 4096
        || rd.bytes().any(|b| !(0x21..0x7f).contains(&b) || b == b'\\')
    {
        return Err(InvalidRedirect::BadCharacter);
    }
    // Encoded whitespace, controls and backslashes too: a later decode must not
    // turn a checked URL into another one.
    let lower = rd.to_ascii_lowercase();
    for (i, _) in lower.match_indices('%') {
        let decoded = lower
            .get(i + 1..i + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = decoded
            && (b < 0x21 || b == 0x7f || b == b'\\')
        {
            return Err(InvalidRedirect::BadCharacter);
        }
    }
    if lower.starts_with("/%2f") || lower.starts_with("/%5c") {
        return Err(InvalidRedirect::NotUrl);
    }
    if let Some(path) = rd.strip_prefix('/') {
        if path.starts_with('/') {
            return Err(InvalidRedirect::NotUrl);
        }
        return Ok(format!("{public_url}{rd}"));
    }
    let (scheme, rest) = rd.split_once("://").ok_or(InvalidRedirect::NotUrl)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(InvalidRedirect::NotUrl),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err(InvalidRedirect::Userinfo);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => {
            let port = if p.is_empty() {
                default_port
            } else {
                p.parse::<u16>().map_err(|_| InvalidRedirect::NotUrl)?
            };
            (h, port)
        }
        _ => (authority, default_port),
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'))
    {
        return Err(InvalidRedirect::NotUrl);
    }
    if !allowed.iter().any(|a| a.allows(&host, port)) {
        return Err(InvalidRedirect::HostNotAllowed { host });
    }
    Ok(rd.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<RedirectHost> {
        ["app.example.com", "*.example.com", "localhost:8080"]
            .iter()
            .map(|h| RedirectHost::parse(h).unwrap())
            .collect()
    }

    #[test]
    fn allows_listed_hosts_and_paths() {
        let pu = "https://auth.example.com";
        for ok in [
            "https://app.example.com/x?y=1",
            "https://a.b.example.com/",
            "http://localhost:8080/app",
            "https://APP.example.com:8443/",
        ] {
            assert_eq!(check_redirect(ok, pu, &allowed()).unwrap(), ok, "{ok}");
        }
        assert_eq!(
            check_redirect("/after", pu, &allowed()).unwrap(),
            "https://auth.example.com/after"
        );
    }

    #[test]
    fn denies_the_oauth2_proxy_redirect_tricks() {
        let pu = "https://auth.example.com";
        for bad in [
            "https://badexample.com/",
            "https://example.com.evil.com/",
            "https://evil.com/.example.com",
            "https://app.example.com@evil.com/",
            "https://evil.com\\@app.example.com/",
            "//evil.com/",
            "/\\evil.com",
            "/%2F/evil.com",
            "https://app.example.com%09.evil.com/",
            "https://evil.com%2F@app.example.com",
            " https://app.example.com/",
            "https://app.example.com/\t",
            "javascript:alert(1)",
            "https:/evil.com",
            "http://localhost:8081/",
            "https://evil.com#.example.com",
            "",
        ] {
            assert!(check_redirect(bad, pu, &allowed()).is_err(), "{bad:?}");
        }
    }
}
