//! The Portcullis config the importers build: the subset of the config file they
//! write, serialized in the file's own field names.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::ImportError;

/// A Portcullis config: providers and rules (no `listen:`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Config {
    /// Who may issue the tokens.
    pub providers: Vec<Provider>,
    /// First match wins.
    pub rules: Vec<Rule>,
}

impl Config {
    /// The config as YAML, preceded by `comment` (each line prefixed with `# `).
    ///
    /// # Errors
    ///
    /// [`ImportError::Serialize`] when the serializer fails.
    pub fn to_yaml(&self, comment: &str) -> Result<String, ImportError> {
        let body = to_yaml(self)?;
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&body);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }

    /// A provider name derived from `base` that no provider has yet.
    pub(crate) fn unique_provider_name(&self, base: &str) -> String {
        unique(base, |n| self.providers.iter().any(|p| p.name == n))
    }

    /// A rule name derived from `base` that no rule has yet.
    pub(crate) fn unique_rule_name(&self, base: &str) -> String {
        unique(base, |n| self.rules.iter().any(|r| r.name == n))
    }
}

/// YAML with long lines kept whole (URLs stay greppable) and multi-line strings
/// (PEM keys) as literal blocks.
pub(crate) fn to_yaml<T: Serialize>(value: &T) -> Result<String, ImportError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = 100_000;
    options.compact_list_indent = false;
    serde_saphyr::to_string_with_options(value, options).map_err(|e| ImportError::Serialize {
        source: Box::new(e),
    })
}

fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let base = slug(base);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// Lower case letters, digits and `-` only (others become `-`, runs merged).
pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("imported");
    }
    out
}

/// One provider.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Provider {
    /// Unique name.
    pub name: String,
    /// Required `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `aud` must hold one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The key source.
    pub jwks: Jwks,
    /// Allowed algorithms (empty: the keys').
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Where the token is looked for (empty: `Authorization: Bearer`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Location>,
    /// Clock skew tolerance (`60s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<String>,
    /// Keep the token on the upstream request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_token: Option<bool>,
    /// Identity headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims_to_headers: Vec<ClaimHeader>,
    /// `false`: tokens without `exp` are accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_exp: Option<bool>,
}

/// Exactly one key source.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Jwks {
    /// OIDC discovery from this issuer URL.
    Discovery(String),
    /// A JWKS object.
    Inline(Value),
    /// One PEM public key.
    Pem(String),
    /// A JWKS URL.
    Uri(String),
}

impl Default for Jwks {
    fn default() -> Jwks {
        Jwks::Inline(serde_json::json!({"keys": []}))
    }
}

/// Where a token is looked for.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Location {
    /// A cookie.
    Cookie {
        /// Its name.
        cookie: String,
    },
    /// A header, with a prefix that is stripped.
    Header {
        /// Its name.
        header: String,
        /// The prefix (`Bearer `).
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// A query parameter.
    Query {
        /// Its name.
        query: String,
    },
}

/// `{header, claim}`.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
pub struct ClaimHeader {
    /// The header set on allow.
    pub header: String,
    /// The claim (a dotted path).
    pub claim: String,
}

/// One rule.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// What it applies to.
    #[serde(rename = "match")]
    pub match_: Match,
    /// `anonymous`, `deny` (`None`: authenticated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
    /// Any of these providers (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Per claim, one of the values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<Value>>,
    /// All of these scopes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Headers set on allow (templates).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Rule {
    /// Whether another rule with the same match would never be reached after it, while
    /// the two rules ask for different things.
    pub(crate) fn same_match_different_requirements(&self, other: &Rule) -> bool {
        self.match_ == other.match_
            && (self.allow != other.allow
                || self.providers != other.providers
                || self.claims != other.claims
                || self.scopes != other.scopes)
    }
}

/// Host, path and method matchers (each: any of the list; empty: any).
#[derive(Clone, Debug, Default, Eq, PartialEq, Serialize)]
pub struct Match {
    /// Hosts (exact or `*.suffix`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<String>,
    /// Paths (exact, `/prefix/**`, `*` within a segment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Methods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}
