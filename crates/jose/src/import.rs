//! The one way every key source imports a key document (JWKS, single JWK or PEM):
//! the usable keys, and each key left out with a typed reason.
//!
//! RFC 7517 §5: keys with an unknown or unsupported `kty`, `crv` or `alg`, or whose
//! `use`/`key_ops` is not signature verification, are to be ignored, not to spoil the
//! set. Keys that are malformed or weak in a way that matters for security (RSA under
//! 2048 bits, small-order Ed25519, an `alg` that does not fit the key...) are left out
//! too, but a [`SkipReason::is_unsupported`] of `false` lets a caller whose input is
//! the config itself refuse them instead of carrying on.

use serde_json::Value;

use crate::alg::Family;
use crate::error::{KeyError, printable};
use crate::json;
use crate::jwk::{MAX_JWKS_BYTES, MAX_JWKS_KEYS, verifying_key_from_jwk};
use crate::key::VerifyingKey;
use crate::keyset::KeySet;
use crate::pem::public_key_from_pem;

/// What a key document is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum KeyFormat {
    /// JSON when it starts with `{` (after whitespace), else PEM.
    Detect,
    /// A JWKS (`{"keys": [...]}`) or a single JWK object.
    Json,
    /// A JWKS only.
    Jwks,
    /// One PEM public key, certificate or private key (its public half is used).
    Pem,
}

/// Whether a key document may hold HMAC secrets.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Secrets {
    /// The config or a local file: as private as the config.
    Allow,
    /// A document served over HTTP is public: an `oct` key there is no secret, and
    /// accepting it would let anyone mint HS tokens.
    Refuse,
}

/// Why a key of a document was left out.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// `use` or `key_ops` say the key is not for verifying signatures (`use: enc`).
    #[error("key is not meant for signatures ({member})")]
    NotForSignatures {
        /// `use` or `key_ops`.
        member: &'static str,
    },
    /// An HMAC secret in a public (fetched) document.
    #[error("an HMAC (oct) key in a fetched JWKS: a served key is not a secret")]
    PublicSecret,
    /// Malformed, weak or inconsistent: never used, and worth an error where the
    /// document is part of the config.
    #[error(transparent)]
    Refused(KeyError),
    /// A key type, curve or algorithm we do not implement (`X448`, `secp256k1`,
    /// `Ed448`, `RSA-OAEP`...).
    #[error("unsupported {what}: {value:?}")]
    Unsupported {
        /// `kty`, `curve`, `alg`...
        what: &'static str,
        /// Its value.
        value: String,
    },
}

impl SkipReason {
    /// Whether RFC 7517 §5 says to ignore such a key: an unsupported `kty`, `crv` or
    /// `alg`, or a key not meant for signature verification. `false` for a refused
    /// key (malformed or weak) and for a secret in a public document.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            SkipReason::NotForSignatures { .. } | SkipReason::Unsupported { .. }
        )
    }

    /// The same reason as a [`KeyError`].
    pub fn to_key_error(&self) -> KeyError {
        match self {
            SkipReason::NotForSignatures { member } => KeyError::NotForSignatures { member },
            SkipReason::PublicSecret => KeyError::Rejected {
                problem: self.to_string(),
            },
            SkipReason::Refused(e) => e.clone(),
            SkipReason::Unsupported { what, value } => KeyError::Unsupported {
                what,
                value: value.clone(),
            },
        }
    }
}

impl From<KeyError> for SkipReason {
    fn from(e: KeyError) -> SkipReason {
        match e {
            KeyError::NotForSignatures { member } => SkipReason::NotForSignatures { member },
            KeyError::Unsupported { what, value } => SkipReason::Unsupported { what, value },
            other => SkipReason::Refused(other),
        }
    }
}

/// A key of a document that was left out, with where it stood.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SkippedKey {
    /// Its index in `keys` (0 for a single JWK).
    pub index: usize,
    /// Its `kid`, when it had a string one (cut to a printable length).
    pub kid: Option<String>,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// The usable keys of a document and the keys left out.
#[derive(Clone, Debug, Default)]
pub struct ImportedKeys {
    /// The usable keys (possibly none: the caller decides what an empty set means).
    pub keys: KeySet,
    /// The keys left out, in document order.
    pub skipped: Vec<SkippedKey>,
}

/// Imports a key document: every key source (inline, file, URI, discovery, PEM)
/// goes through here.
///
/// In a JWKS, each key that cannot be used is left out with a [`SkipReason`] and the
/// others load. A single JWK or a PEM key that cannot be used is an error.
///
/// # Errors
/// [`KeyError::InvalidDocument`] when the document itself is unusable (too large,
/// not strict JSON, no `keys` array, too many keys); the key's [`KeyError`] for a
/// single JWK or PEM key.
pub fn import_keys(
    bytes: &[u8],
    format: KeyFormat,
    secrets: Secrets,
) -> Result<ImportedKeys, KeyError> {
    let pem = match format {
        KeyFormat::Detect => !bytes.trim_ascii_start().starts_with(b"{"),
        KeyFormat::Json | KeyFormat::Jwks => false,
        KeyFormat::Pem => true,
    };
    if pem {
        let text = std::str::from_utf8(bytes).map_err(|_| KeyError::InvalidPem {
            problem: "not UTF-8".to_owned(),
        })?;
        let key = VerifyingKey::try_new(public_key_from_pem(text)?, None, None)?;
        return Ok(keep(vec![(0, None, Ok(key))], secrets));
    }
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(KeyError::InvalidDocument {
            problem: format!("{} bytes, over the limit of {MAX_JWKS_BYTES}", bytes.len()),
        });
    }
    let doc = json::parse_object(bytes).map_err(|problem| KeyError::InvalidDocument { problem })?;
    if format != KeyFormat::Jwks && !doc.contains_key("keys") {
        let kid = doc.get("kid").and_then(Value::as_str).map(printable);
        let key = verifying_key_from_jwk(&doc)?;
        return Ok(keep(vec![(0, kid, Ok(key))], secrets));
    }
    let keys =
        doc.get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::InvalidDocument {
                problem: "no \"keys\" array".to_owned(),
            })?;
    if keys.len() > MAX_JWKS_KEYS {
        return Err(KeyError::InvalidDocument {
            problem: format!("{} keys, over the limit of {MAX_JWKS_KEYS}", keys.len()),
        });
    }
    let results = keys
        .iter()
        .enumerate()
        .map(|(index, key)| {
            let kid = key.get("kid").and_then(Value::as_str).map(printable);
            let result = match key.as_object() {
                Some(jwk) => verifying_key_from_jwk(jwk),
                None => Err(KeyError::InvalidDocument {
                    problem: "a key is not a JSON object".to_owned(),
                }),
            };
            (index, kid, result)
        })
        .collect();
    Ok(keep(results, secrets))
}

/// Sorts imported keys into the usable and the skipped.
fn keep(
    results: Vec<(usize, Option<String>, Result<VerifyingKey, KeyError>)>,
    secrets: Secrets,
) -> ImportedKeys {
    let mut good = Vec::with_capacity(results.len());
    let mut skipped = Vec::new();
    for (index, kid, result) in results {
        let reason = match result {
            Ok(key) if secrets == Secrets::Refuse && key.material().family() == Family::Hmac => {
                SkipReason::PublicSecret
            }
            Ok(key) => {
                good.push(key);
                continue;
            }
            Err(e) => SkipReason::from(e),
        };
        skipped.push(SkippedKey { index, kid, reason });
    }
    ImportedKeys {
        keys: KeySet::new(good),
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn jwks(keys: &[&str]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    /// Issue 10, bug 1: keys RFC 7517 §5 says to ignore are skipped with a typed,
    /// "unsupported" reason; weak or malformed keys are skipped as refused, so a
    /// caller can still refuse them; the usable keys load.
    #[test]
    fn skips_unusable_keys_with_typed_reasons() {
        let good = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}","kid":"good"}}"#);
        let doc = jwks(&[
            &good,
            r#"{"kty":"OKP","crv":"Ed448","x":"AA","kid":"ed448"}"#,
            r#"{"kty":"OKP","crv":"X448","x":"AA","kid":"x448"}"#,
            r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA","kid":"k1"}"#,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","use":"enc","kid":"enc"}"#,
            r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","key_ops":["encrypt"]}"#,
            r#"{"kty":"OKP","crv":"Ed25519","x":"AA","alg":"Ed448","kid":"alg"}"#,
            r#"{"kty":"PQC","kid":"pqc"}"#,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny"}"#,
        ]);
        let imported = import_keys(&doc, KeyFormat::Json, Secrets::Allow).unwrap();
        assert_eq!(imported.keys.len(), 1);
        assert!(imported.keys.has_kid("good"));
        let reasons: Vec<(usize, Option<&str>, bool)> = imported
            .skipped
            .iter()
            .map(|s| (s.index, s.kid.as_deref(), s.reason.is_unsupported()))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, Some("ed448"), true),
                (2, Some("x448"), true),
                (3, Some("k1"), true),
                (4, Some("enc"), true),
                (5, None, true),
                (6, Some("alg"), true),
                (7, Some("pqc"), true),
                (8, Some("tiny"), false),
            ]
        );
        assert_eq!(
            imported.skipped[0].reason,
            SkipReason::Unsupported {
                what: "curve",
                value: "Ed448".to_owned()
            }
        );
        assert!(matches!(
            imported.skipped[7].reason,
            SkipReason::Refused(KeyError::Weak { .. })
        ));
    }

    #[test]
    fn secrets_in_public_documents_are_refused() {
        let oct = format!(r#"{{"kty":"oct","k":"{SECRET}","kid":"hs"}}"#);
        let doc = jwks(&[&oct]);
        let local = import_keys(&doc, KeyFormat::Json, Secrets::Allow).unwrap();
        assert_eq!(local.keys.len(), 1);
        let served = import_keys(&doc, KeyFormat::Detect, Secrets::Refuse).unwrap();
        assert!(served.keys.is_empty());
        assert_eq!(served.skipped[0].reason, SkipReason::PublicSecret);
        assert!(!served.skipped[0].reason.is_unsupported());
        let single = import_keys(oct.as_bytes(), KeyFormat::Json, Secrets::Refuse).unwrap();
        assert!(single.keys.is_empty());
    }

    #[test]
    fn single_keys_and_bad_documents_are_errors() {
        let ed448 = br#"{"kty":"OKP","crv":"Ed448","x":"AA"}"#;
        assert!(matches!(
            import_keys(ed448, KeyFormat::Json, Secrets::Allow),
            Err(KeyError::Unsupported { .. })
        ));
        for bad in [&b"[]"[..], br#"{"keys":{}}"#, br#"{"keys":[],"keys":[]}"#] {
            assert!(import_keys(bad, KeyFormat::Detect, Secrets::Allow).is_err());
            assert!(import_keys(bad, KeyFormat::Json, Secrets::Allow).is_err());
        }
        let pem = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(import_keys(pem, KeyFormat::Detect, Secrets::Allow).is_err());
        assert!(import_keys(b"{}", KeyFormat::Pem, Secrets::Allow).is_err());
    }
}
