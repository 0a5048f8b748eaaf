//! Host and path patterns, compiled once. They match the canonical host and path
//! (see [`crate::canonical`]), never the raw ones.

/// `api.example.com` (exact, case-insensitive) or `*.example.com` (any subdomain).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum HostPattern {
    /// Exactly this host (lower case, no port).
    Exact(String),
    /// Any host ending in `.suffix` (stored with the dot, lower case).
    Suffix(String),
}

impl HostPattern {
    /// Compiles a host pattern.
    ///
    /// # Errors
    /// Empty, or `*` anywhere but a leading `*.`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.trim().to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("{text:?}: only a leading `*.` is allowed"));
            }
            return Ok(HostPattern::Suffix(format!(".{suffix}")));
        }
        if lower.is_empty() || lower.contains('*') {
            return Err(format!("{text:?} is not a host or *.suffix"));
        }
        Ok(HostPattern::Exact(lower))
    }

    /// Whether `host` (any case, port ignored) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = strip_port(host);
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            // Bytes, not `str` slicing: a host with multi-byte characters must not
            // split one (found by fuzz_request).
            HostPattern::Suffix(s) => {
                let (host, suffix) = (host.as_bytes(), s.as_bytes());
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[derive(Clone, Debug, Eq, PartialEq)]
enum Segment {
    /// `**`: any number of segments, including none.
    Any,
    /// A segment with `*` wildcards (none: literal).
    Glob(String),
}

/// A path pattern: exact, `/prefix/**`, `*` within a segment.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Compiles a path pattern.
    ///
    /// # Errors
    /// Not starting with `/`, or `**` mixed with other characters in a segment.
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must start with /"));
        }
        let segments = text[1..]
            .split('/')
            .map(|s| {
                if s == "**" {
                    Ok(Segment::Any)
                } else if s.contains("**") {
                    Err(format!("{text:?}: `**` must be a whole segment"))
                } else {
                    Ok(Segment::Glob(s.to_owned()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(PathPattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first segment when it is literal (no `*`): every path this pattern
    /// matches begins with `/` and it (`/api/**` -> `api`, `/` -> ``). `None` when
    /// the pattern begins with `**` or a glob.
    pub fn literal_first_segment(&self) -> Option<&str> {
        match self.segments.first()? {
            Segment::Glob(g) if !g.contains('*') => Some(g),
            _ => None,
        }
    }

    /// Whether a normalized path (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match path.strip_prefix('/') {
            Some(rest) => match_segments(&self.segments, Some(rest)),
            None => false,
        }
    }
}

/// The first segment of `rest` and what follows its `/` (`None` when it was the last).
fn split_first(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('/') {
        Some((first, after)) => (first, Some(after)),
        None => (rest, None),
    }
}

/// Matches segments against `rest` (the path after a `/`; `None`: no segments left).
/// Works on the borrowed path: no allocation per request.
fn match_segments(pattern: &[Segment], rest: Option<&str>) -> bool {
    match pattern.split_first() {
        None => rest.is_none(),
        Some((Segment::Any, tail)) => {
            // `**` takes zero or more whole segments; `/a/**` also matches `/a` and `/a/`.
            let mut cursor = rest;
            loop {
                if match_segments(tail, cursor) {
                    return true;
                }
                match cursor {
                    None => return false,
                    Some(r) => {
                        let (first, after) = split_first(r);
                        if tail.is_empty() && first.is_empty() && after.is_none() {
                            return true;
                        }
                        cursor = after;
                    }
                }
            }
        }
        Some((Segment::Glob(g), tail)) => match rest {
            Some(r) => {
                let (first, after) = split_first(r);
                glob_segment(g.as_bytes(), first.as_bytes()) && match_segments(tail, after)
            }
            None => false,
        },
    }
}

/// `*` matches any run of characters within one segment.
fn glob_segment(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] != b'*' && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        assert!(exact.matches("api.example.com"));
        assert!(exact.matches("api.EXAMPLE.com:8443"));
        assert!(!exact.matches("xapi.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com:80"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("evilexample.com"));
        // Multi-byte characters where the suffix would start (fuzz_request crash).
        assert!(!wild.matches("ééééééééééé"));
        assert!(!wild.matches("aé.example.co"));
        assert!(HostPattern::parse("a.*.com").is_err());
    }

    #[test]
    fn paths() {
        let p = |pat: &str, path: &str| PathPattern::parse(pat).unwrap().matches(path);
        assert!(p("/healthz", "/healthz"));
        assert!(!p("/healthz", "/healthz/x"));
        assert!(p("/admin/**", "/admin"));
        assert!(p("/admin/**", "/admin/"));
        assert!(p("/admin/**", "/admin/a/b"));
        assert!(!p("/admin/**", "/administrator"));
        assert!(p("/api/*/items", "/api/v1/items"));
        assert!(!p("/api/*/items", "/api/v1/x/items"));
        assert!(p("/files/*.png", "/files/a.png"));
        assert!(!p("/files/*.png", "/files/a.jpg"));
        assert!(p("/**", "/"));
        assert!(p("/**", "/anything/at/all"));
        assert!(p("/a/**/z", "/a/z"));
        assert!(p("/a/**/z", "/a/b/c/z"));
        assert!(PathPattern::parse("admin").is_err());
        assert!(PathPattern::parse("/a**").is_err());
    }
}
