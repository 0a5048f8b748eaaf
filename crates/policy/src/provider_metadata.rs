//! What an OIDC provider says about itself (OpenID Connect Discovery 1.0 §3): its
//! issuer, where its keys are, and the endpoints browser login, logout and token
//! introspection need. Key sources read it from the discovery document and publish
//! it next to the keys, in the provider's [`KeySlot`](crate::KeySlot); anything that
//! needs an endpoint reads it from there, never from a document of its own.

use serde_json::{Map, Value};

/// A provider's discovery metadata, validated: the issuer is the configured one and
/// every endpoint is an absolute `http(s)` URL.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ProviderMetadata {
    issuer: String,
    jwks_uri: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    ignored: Vec<IgnoredMember>,
}

/// An optional member of a discovery document that was left out, and why.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IgnoredMember {
    /// The member (`end_session_endpoint`...).
    pub member: &'static str,
    /// What is wrong with it.
    pub problem: InvalidEndpoint,
}

/// Why an endpoint URL is not used.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEndpoint {
    /// Not a JSON string.
    #[error("not a string")]
    NotAString,
    /// Not an absolute `http://` or `https://` URL.
    #[error("not an http(s) URL")]
    NotHttp,
}

/// Why a discovery document cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProviderMetadata {
    /// `issuer` differs from the configured issuer (OIDC Discovery §4.3).
    #[error("issuer {found:?} differs from the configured {expected:?}")]
    IssuerMismatch {
        /// The document's `issuer` (empty when it has none).
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// The document is not a JSON object.
    #[error("{source}")]
    Json {
        /// The parse error.
        source: serde_json::Error,
    },
    /// No `jwks_uri`, or one that is not an `http(s)` URL.
    #[error("no http(s) jwks_uri")]
    JwksUri {
        /// What is wrong with it (`None`: missing).
        problem: Option<InvalidEndpoint>,
    },
    /// The document is JSON but not an object.
    #[error("not a JSON object")]
    NotAnObject,
}

impl ProviderMetadata {
    /// Reads a discovery document whose `issuer` must equal `expected_issuer`.
    /// Optional endpoints that are not `http(s)` URLs are left out (see
    /// [`ProviderMetadata::ignored`]): they do not stop the keys from loading.
    ///
    /// # Errors
    /// Not a JSON object, another issuer, or no usable `jwks_uri`.
    pub fn try_from_document(
        bytes: &[u8],
        expected_issuer: &str,
    ) -> Result<ProviderMetadata, InvalidProviderMetadata> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|source| InvalidProviderMetadata::Json { source })?;
        let Value::Object(doc) = value else {
            return Err(InvalidProviderMetadata::NotAnObject);
        };
        let found = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if found != expected_issuer {
            return Err(InvalidProviderMetadata::IssuerMismatch {
                found: found.to_owned(),
                expected: expected_issuer.to_owned(),
            });
        }
        let jwks_uri = match endpoint(&doc, "jwks_uri") {
            Some(Ok(uri)) => uri,
            Some(Err(problem)) => {
                return Err(InvalidProviderMetadata::JwksUri {
                    problem: Some(problem),
                });
            }
            None => return Err(InvalidProviderMetadata::JwksUri { problem: None }),
        };
        let mut ignored = Vec::new();
        let mut optional = |member: &'static str| match endpoint(&doc, member)? {
            Ok(url) => Some(url),
            Err(problem) => {
                ignored.push(IgnoredMember { member, problem });
                None
            }
        };
        Ok(ProviderMetadata {
            issuer: found.to_owned(),
            jwks_uri,
            authorization_endpoint: optional("authorization_endpoint"),
            token_endpoint: optional("token_endpoint"),
            userinfo_endpoint: optional("userinfo_endpoint"),
            end_session_endpoint: optional("end_session_endpoint"),
            introspection_endpoint: optional("introspection_endpoint"),
            ignored,
        })
    }

    /// The issuer (equal to the configured one).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the provider's keys are.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// Where browsers are sent to log in (authorization code flow).
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// Where codes are exchanged for tokens.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// Where claims are completed from an access token.
    pub fn userinfo_endpoint(&self) -> Option<&str> {
        self.userinfo_endpoint.as_deref()
    }

    /// RP-initiated logout (OIDC RP-Initiated Logout 1.0).
    pub fn end_session_endpoint(&self) -> Option<&str> {
        self.end_session_endpoint.as_deref()
    }

    /// Token introspection (RFC 7662).
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_deref()
    }

    /// The optional members that were present but left out, worth a warning.
    pub fn ignored(&self) -> &[IgnoredMember] {
        &self.ignored
    }
}

/// The URL in `member`: `None` when absent (or JSON `null`).
fn endpoint(doc: &Map<String, Value>, member: &str) -> Option<Result<String, InvalidEndpoint>> {
    match doc.get(member)? {
        Value::Null => None,
        Value::String(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Some(Ok(url.clone()))
        }
        Value::String(_) => Some(Err(InvalidEndpoint::NotHttp)),
        _ => Some(Err(InvalidEndpoint::NotAString)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://login.example.com";

    #[test]
    fn reads_the_endpoints_a_login_needs() {
        let doc = br#"{
            "issuer": "https://login.example.com",
            "jwks_uri": "https://login.example.com/keys",
            "authorization_endpoint": "https://login.example.com/authorize",
            "token_endpoint": "https://login.example.com/token",
            "userinfo_endpoint": "https://login.example.com/userinfo",
            "end_session_endpoint": "javascript:alert(1)",
            "introspection_endpoint": 7,
            "response_types_supported": ["code"]
        }"#;
        let m = ProviderMetadata::try_from_document(doc, ISS).unwrap();
        assert_eq!(m.issuer(), ISS);
        assert_eq!(m.jwks_uri(), "https://login.example.com/keys");
        assert_eq!(
            m.authorization_endpoint(),
            Some("https://login.example.com/authorize")
        );
        assert_eq!(m.token_endpoint(), Some("https://login.example.com/token"));
        assert_eq!(
            m.userinfo_endpoint(),
            Some("https://login.example.com/userinfo")
        );
        assert_eq!(m.end_session_endpoint(), None);
        assert_eq!(m.introspection_endpoint(), None);
        assert_eq!(
            m.ignored(),
            [
                IgnoredMember {
                    member: "end_session_endpoint",
                    problem: InvalidEndpoint::NotHttp
                },
                IgnoredMember {
                    member: "introspection_endpoint",
                    problem: InvalidEndpoint::NotAString
                },
            ]
        );
    }

    #[test]
    fn refuses_another_issuer_and_a_missing_jwks_uri() {
        let other = br#"{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/k"}"#;
        assert!(matches!(
            ProviderMetadata::try_from_document(other, ISS),
            Err(InvalidProviderMetadata::IssuerMismatch { .. })
        ));
        let none = br#"{"issuer": "https://login.example.com"}"#;
        assert!(matches!(
            ProviderMetadata::try_from_document(none, ISS),
            Err(InvalidProviderMetadata::JwksUri { problem: None })
        ));
        let file = br#"{"issuer": "https://login.example.com", "jwks_uri": "file:///etc/k"}"#;
        assert!(matches!(
            ProviderMetadata::try_from_document(file, ISS),
            Err(InvalidProviderMetadata::JwksUri {
                problem: Some(InvalidEndpoint::NotHttp)
            })
        ));
        assert!(matches!(
            ProviderMetadata::try_from_document(b"[]", ISS),
            Err(InvalidProviderMetadata::NotAnObject)
        ));
        let err = ProviderMetadata::try_from_document(b"{", ISS).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
    }
}
