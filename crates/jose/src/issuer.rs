//! Issuer templates: `https://login.microsoftonline.com/{tid}/v2.0`, where `{tid}`
//! binds to the token's own `tid` claim. A token matches when its `iss` reads as
//! the template with one path segment (no `/`, not empty) for each placeholder,
//! the claim of that name is a string equal to that segment, and, when the
//! template has an allow-list, the segment is on it.

use std::fmt;

use serde_json::Value;

use crate::claims::Claims;

#[derive(Clone, Debug, Eq, PartialEq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

/// A compiled issuer template.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IssuerTemplate {
    text: String,
    parts: Vec<Part>,
    tenants: Option<Vec<String>>,
}

/// Why a text is no issuer template.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIssuerTemplate {
    /// Two placeholders with nothing between them cannot be told apart.
    #[error("placeholders {first:?} and {second:?} need text between them")]
    AdjacentPlaceholders {
        /// The first one.
        first: String,
        /// The one right after it.
        second: String,
    },
    /// A placeholder name that is not a claim name (letters, digits, `_`, `-`).
    #[error("{name:?} is not a claim name (letters, digits, _ and -)")]
    BadName {
        /// What was between the braces.
        name: String,
    },
    /// No placeholder at all: a plain issuer.
    #[error("has no {{NAME}} placeholder")]
    NoPlaceholder,
    /// An allow-list with more than one placeholder (which would it list?).
    #[error("an allow-list (tenants) needs exactly one placeholder, not {count}")]
    TenantsNeedOnePlaceholder {
        /// Placeholders in the template.
        count: usize,
    },
    /// A `{` without its `}` (or a `}` alone).
    #[error("unbalanced braces")]
    Unbalanced,
}

impl IssuerTemplate {
    /// Whether `text` is meant as a template (it holds a `{`).
    pub fn is_template(text: &str) -> bool {
        text.contains(['{', '}'])
    }

    /// Compiles `text`, with an optional allow-list for its one placeholder.
    ///
    /// # Errors
    /// Unbalanced braces, a bad or repeated-without-separator placeholder, no
    /// placeholder, or `tenants` with more than one placeholder.
    pub fn try_new(
        text: &str,
        tenants: Option<Vec<String>>,
    ) -> Result<IssuerTemplate, InvalidIssuerTemplate> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if rest[..open].contains('}') {
                return Err(InvalidIssuerTemplate::Unbalanced);
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or(InvalidIssuerTemplate::Unbalanced)?;
            let name = &after[..close];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(InvalidIssuerTemplate::BadName {
                    name: name.to_owned(),
                });
            }
            if let Some(Part::Placeholder(first)) = parts.last() {
                return Err(InvalidIssuerTemplate::AdjacentPlaceholders {
                    first: first.clone(),
                    second: name.to_owned(),
                });
            }
            parts.push(Part::Placeholder(name.to_owned()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(InvalidIssuerTemplate::Unbalanced);
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let count = parts
            .iter()
            .filter(|p| matches!(p, Part::Placeholder(_)))
            .count();
        if count == 0 {
            return Err(InvalidIssuerTemplate::NoPlaceholder);
        }
        if tenants.is_some() && count != 1 {
            return Err(InvalidIssuerTemplate::TenantsNeedOnePlaceholder { count });
        }
        Ok(IssuerTemplate {
            text: text.to_owned(),
            parts,
            tenants,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal text before the first placeholder (a token's `iss` starts with
    /// it: providers are looked up by it).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }

    /// The placeholder names, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The allow-list of the one placeholder, if any.
    pub fn tenants(&self) -> Option<&[String]> {
        self.tenants.as_deref()
    }

    /// Reads `iss` as this template: the bound `(name, value)` pairs, or `None`
    /// when it does not match (a segment empty or holding a `/`).
    pub fn bind<'i>(&self, iss: &'i str) -> Option<Vec<(&str, &'i str)>> {
        let mut bound = Vec::new();
        let mut rest = iss;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
                Part::Placeholder(name) => {
                    let value = match self.parts.get(i + 1) {
                        // The last literal: the value runs up to it, at the very end.
                        Some(Part::Literal(lit)) if i + 2 == self.parts.len() => {
                            rest.strip_suffix(lit.as_str())?
                        }
                        // A literal follows: the value ends where it first appears.
                        Some(Part::Literal(lit)) => &rest[..rest.find(lit.as_str())?],
                        _ => rest,
                    };
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    bound.push((name.as_str(), value));
                    rest = &rest[value.len()..];
                }
            }
        }
        rest.is_empty().then_some(bound)
    }

    /// Whether `claims` satisfy the template: `iss` matches, each placeholder's
    /// claim is a string equal to its bound value, and the value is on the
    /// allow-list when there is one.
    pub fn matches(&self, claims: &Claims) -> bool {
        let Some(iss) = claims.get("iss").and_then(Value::as_str) else {
            return false;
        };
        let Some(bound) = self.bind(iss) else {
            return false;
        };
        bound.iter().all(|(name, value)| {
            claims.get(name).and_then(Value::as_str) == Some(*value)
                && self
                    .tenants
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|t| t == value))
        })
    }
}

impl fmt::Display for IssuerTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRA: &str = "https://login.microsoftonline.com/{tid}/v2.0";
    const T1: &str = "11111111-2222-3333-4444-555555555555";

    fn claims(json: &str) -> Claims {
        Claims::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn binds_one_segment() {
        let t = IssuerTemplate::try_new(ENTRA, None).unwrap();
        assert_eq!(t.literal_prefix(), "https://login.microsoftonline.com/");
        assert_eq!(
            t.bind(&format!("https://login.microsoftonline.com/{T1}/v2.0")),
            Some(vec![("tid", T1)])
        );
        for iss in [
            "https://login.microsoftonline.com//v2.0",
            "https://login.microsoftonline.com/a/b/v2.0",
            "https://login.microsoftonline.com/a/v2.0/",
            "https://login.microsoftonline.com/a/v2",
            "https://login.microsoftonline.com.evil/a/v2.0",
            "http://login.microsoftonline.com/a/v2.0",
        ] {
            assert_eq!(t.bind(iss), None, "{iss}");
        }
        let two = IssuerTemplate::try_new("https://{org}.idp.test/{realm}", None).unwrap();
        assert_eq!(
            two.bind("https://acme.idp.test/staff"),
            Some(vec![("org", "acme"), ("realm", "staff")])
        );
        assert_eq!(two.bind("https://acme.idp.test/"), None);
    }

    #[test]
    fn matches_only_when_the_claim_agrees() {
        let t = IssuerTemplate::try_new(ENTRA, Some(vec![T1.to_owned()])).unwrap();
        let iss = format!("https://login.microsoftonline.com/{T1}/v2.0");
        assert!(t.matches(&claims(&format!(r#"{{"iss":"{iss}","tid":"{T1}"}}"#))));
        // The claim is missing, differs, or is no string.
        assert!(!t.matches(&claims(&format!(r#"{{"iss":"{iss}"}}"#))));
        assert!(!t.matches(&claims(&format!(r#"{{"iss":"{iss}","tid":"other"}}"#))));
        assert!(!t.matches(&claims(&format!(r#"{{"iss":"{iss}","tid":["{T1}"]}}"#))));
        // Not on the allow-list, though iss and tid agree.
        let other = "99999999-2222-3333-4444-555555555555";
        let iss = format!("https://login.microsoftonline.com/{other}/v2.0");
        assert!(!t.matches(&claims(&format!(r#"{{"iss":"{iss}","tid":"{other}"}}"#))));
        let open = IssuerTemplate::try_new(ENTRA, None).unwrap();
        assert!(open.matches(&claims(&format!(r#"{{"iss":"{iss}","tid":"{other}"}}"#))));
        assert!(!open.matches(&claims(&format!(r#"{{"tid":"{other}"}}"#))));
    }

    #[test]
    fn rejects_bad_templates() {
        for (text, tenants) in [
            ("https://x/{tid", None),
            ("https://x/tid}", None),
            ("https://x/{}", None),
            ("https://x/{a b}", None),
            ("https://x/{a}{b}", None),
            ("https://x/", None),
            ("https://{a}.x/{b}", Some(vec!["t".to_owned()])),
        ] {
            assert!(IssuerTemplate::try_new(text, tenants).is_err(), "{text}");
        }
    }
}
