//! SPIFFE IDs (SPIFFE ID standard §2) and the patterns of a rule's `spiffe_ids`.

use std::fmt;

/// Longest SPIFFE ID accepted (the standard's limit for URIs).
const MAX_ID_BYTES: usize = 2048;
/// Longest trust domain name.
const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// Why a text is not a SPIFFE ID (or pattern).
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSpiffeId {
    /// Longer than 2048 bytes.
    #[error("longer than 2048 bytes")]
    TooLong,
    /// Does not start with `spiffe://` (lower case).
    #[error("does not start with spiffe://")]
    Scheme,
    /// An empty trust domain.
    #[error("the trust domain is empty")]
    TrustDomainEmpty,
    /// A trust domain character outside `[a-z0-9.-_]` (a port, user info, upper case).
    #[error("the trust domain holds {found:?} (only a-z, 0-9, '.', '-', '_')")]
    TrustDomainChar {
        /// The character.
        found: char,
    },
    /// A trust domain longer than 255 bytes.
    #[error("the trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    /// An empty path segment (`//`, a trailing `/`).
    #[error("an empty path segment")]
    SegmentEmpty,
    /// A `.` or `..` path segment.
    #[error("a '.' or '..' path segment")]
    SegmentDots,
    /// A path character outside `[A-Za-z0-9.-_]` (a query, a fragment, `%`).
    #[error("the path holds {found:?} (only A-Z, a-z, 0-9, '.', '-', '_')")]
    PathChar {
        /// The character.
        found: char,
    },
}

/// A valid SPIFFE ID: `spiffe://<trust domain>[/<segment>...]`.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct SpiffeId {
    text: String,
    /// Where the path starts in `text` (its length when there is none).
    path_at: usize,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    ///
    /// # Errors
    /// What breaks the SPIFFE ID standard.
    pub fn parse(text: &str) -> Result<SpiffeId, InvalidSpiffeId> {
        let path_at = split(text, false)?;
        Ok(SpiffeId {
            text: text.to_owned(),
            path_at,
        })
    }

    /// Its trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.text["spiffe://".len()..self.path_at]
    }

    /// Its path (empty, or starting with `/`).
    pub fn path(&self) -> &str {
        &self.text[self.path_at..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One entry of a rule's `spiffe_ids`: a SPIFFE ID, where a path segment `*`
/// stands for exactly one segment.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SpiffeIdPattern {
    trust_domain: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, Eq, PartialEq)]
enum Segment {
    Any,
    Exact(String),
}

impl SpiffeIdPattern {
    /// Parses a pattern: a SPIFFE ID whose path segments may be `*`.
    ///
    /// # Errors
    /// What breaks the SPIFFE ID standard (with `*` allowed as a whole segment).
    pub fn parse(text: &str) -> Result<SpiffeIdPattern, InvalidSpiffeId> {
        let path_at = split(text, true)?;
        let segments = text[path_at..]
            .split('/')
            .skip(1)
            .map(|s| match s {
                "*" => Segment::Any,
                other => Segment::Exact(other.to_owned()),
            })
            .collect();
        Ok(SpiffeIdPattern {
            trust_domain: text["spiffe://".len()..path_at].to_owned(),
            segments,
        })
    }

    /// Whether `id` matches: the same trust domain, as many segments, each equal
    /// (case-sensitive) or matched by `*`.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        if id.trust_domain() != self.trust_domain {
            return false;
        }
        let path = id.path();
        let mut segments = path.split('/').skip(1);
        if path.is_empty() {
            return self.segments.is_empty();
        }
        let mut count = 0;
        for want in &self.segments {
            let Some(got) = segments.next() else {
                return false;
            };
            count += 1;
            if let Segment::Exact(text) = want
                && text != got
            {
                return false;
            }
        }
        count == self.segments.len() && segments.next().is_none()
    }
}

/// Validates `text` and returns where its path starts.
fn split(text: &str, wildcards: bool) -> Result<usize, InvalidSpiffeId> {
    if text.len() > MAX_ID_BYTES {
        return Err(InvalidSpiffeId::TooLong);
    }
    let rest = text
        .strip_prefix("spiffe://")
        .ok_or(InvalidSpiffeId::Scheme)?;
    let td_len = rest.find('/').unwrap_or(rest.len());
    let (td, path) = rest.split_at(td_len);
    if td.is_empty() {
        return Err(InvalidSpiffeId::TrustDomainEmpty);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(InvalidSpiffeId::TrustDomainTooLong);
    }
    if let Some(found) = td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(InvalidSpiffeId::TrustDomainChar { found });
    }
    if !path.is_empty() {
        for segment in path.split('/').skip(1) {
            match segment {
                "" => return Err(InvalidSpiffeId::SegmentEmpty),
                "." | ".." => return Err(InvalidSpiffeId::SegmentDots),
                "*" if wildcards => {}
                s => {
                    if let Some(found) = s
                        .chars()
                        .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
                    {
                        return Err(InvalidSpiffeId::PathChar { found });
                    }
                }
            }
        }
    }
    Ok("spiffe://".len() + td_len)
}

// === impl SpiffeId ===

/// The pattern as written (`spiffe://td/ns/*/sa/web`), for explanations.
impl fmt::Display for SpiffeIdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.trust_domain)?;
        for s in &self.segments {
            match s {
                Segment::Any => f.write_str("/*")?,
                Segment::Exact(s) => write!(f, "/{s}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks a trust domain name (`[a-z0-9.-_]`, 1 to 255 bytes).
///
/// # Errors
/// What breaks the SPIFFE ID standard.
pub fn check_trust_domain(name: &str) -> Result<(), InvalidSpiffeId> {
    if name.contains('/') {
        return Err(InvalidSpiffeId::TrustDomainChar { found: '/' });
    }
    split(&format!("spiffe://{name}"), false).map(|_| ())
}
