//! Finding the token in a request: headers (with a prefix), cookies, query parameters.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::COOKIE;

use crate::config::TokenLocation;

/// What one location holds.
#[derive(Debug, Eq, PartialEq)]
pub(crate) enum Found<'a> {
    /// Nothing there.
    Absent,
    /// One token.
    Token(Cow<'a, str>),
    /// Something that is not a usable token (empty after the prefix, or two different values).
    Malformed(&'static str),
}

/// Looks for a token at `location`.
pub(crate) fn find<'a>(
    location: &TokenLocation,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Found<'a> {
    let mut found: Found<'a> = Found::Absent;
    let mut add = |candidate: Cow<'a, str>| -> bool {
        let candidate_trimmed = match &candidate {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        };
        if candidate_trimmed.is_empty() {
            found = Found::Malformed("empty token");
            return false;
        }
        match &found {
            Found::Token(existing) if *existing != candidate_trimmed => {
                found = Found::Malformed("two different tokens in one request");
                false
            }
            Found::Malformed(_) => false,
            _ => {
                found = Found::Token(candidate_trimmed);
                true
            }
        }
    };
    match location {
        TokenLocation::Header { name, prefix } => {
            for value in headers.get_all(name) {
                // A header value holds no control bytes (the HTTP parser refused them);
                // std's UTF-8 check reads ASCII a word at a time, `to_str` a byte at a
                // time (a 1 KB token: about 700 instructions less). What is not ASCII
                // fails as a token later, with the same reason.
                let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                    found = Found::Malformed("header is not visible ASCII");
                    break;
                };
                let text = text.trim_start();
                if prefix.is_empty() {
                    if !add(Cow::Borrowed(text)) {
                        break;
                    }
                    continue;
                }
                // The auth scheme is case-insensitive (RFC 9110 §11.1); other schemes are not ours.
                match text.get(..prefix.len()) {
                    Some(p)
                        if p.eq_ignore_ascii_case(prefix)
                            && !add(Cow::Borrowed(&text[prefix.len()..])) =>
                    {
                        break;
                    }
                    Some(p) if p.eq_ignore_ascii_case(prefix) => {}
                    _ if text.eq_ignore_ascii_case(prefix.trim_end()) => {
                        found = Found::Malformed("empty token");
                        break;
                    }
                    _ => {}
                }
            }
        }
        TokenLocation::Cookie(cookie) => {
            'outer: for value in headers.get_all(COOKIE) {
                let Ok(text) = value.to_str() else { continue };
                for pair in text.split(';') {
                    if let Some((n, v)) = pair.trim().split_once('=')
                        && n.trim() == cookie
                        && !add(Cow::Borrowed(v.trim().trim_matches('"')))
                    {
                        break 'outer;
                    }
                }
            }
        }
        TokenLocation::Query(param) => {
            if let Some(q) = query {
                for pair in q.split('&') {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if decode(n) == param.as_str() && !add(decode(v)) {
                        break;
                    }
                }
            }
        }
    }
    found
}

/// Decodes `application/x-www-form-urlencoded` text.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::AUTHORIZATION;

    fn bearer() -> TokenLocation {
        TokenLocation::Header {
            name: AUTHORIZATION,
            prefix: "Bearer ".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn header_with_prefix() {
        let h = headers(&[("authorization", "bearer abc")]);
        assert_eq!(find(&bearer(), &h, None), Found::Token("abc".into()));
        let h = headers(&[("authorization", "Basic dXNlcg==")]);
        assert_eq!(find(&bearer(), &h, None), Found::Absent);
        let h = headers(&[("authorization", "Bearer ")]);
        assert!(matches!(find(&bearer(), &h, None), Found::Malformed(_)));
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(find(&bearer(), &h, None), Found::Malformed(_)));
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer a")]);
        assert_eq!(find(&bearer(), &h, None), Found::Token("a".into()));
    }

    #[test]
    fn cookies_and_query() {
        let h = headers(&[("cookie", "a=1; session=tok; b=2")]);
        assert_eq!(
            find(&TokenLocation::Cookie("session".into()), &h, None),
            Found::Token("tok".into())
        );
        let h = headers(&[("cookie", "session=x"), ("cookie", "session=y")]);
        assert!(matches!(
            find(&TokenLocation::Cookie("session".into()), &h, None),
            Found::Malformed(_)
        ));
        let h = HeaderMap::new();
        let q = TokenLocation::Query("access_token".into());
        assert_eq!(
            find(&q, &h, Some("x=1&access_token=abc")),
            Found::Token("abc".into())
        );
        assert_eq!(find(&q, &h, Some("x=1")), Found::Absent);
    }
}
