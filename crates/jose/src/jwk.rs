//! JWK and JWKS import (RFC 7517, RFC 7518 §6, RFC 8037) with validation.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::alg::{Algorithm, Curve};
use crate::b64;
use crate::error::{KeyError, printable};
use crate::import::{ImportedKeys, KeyFormat, Secrets, import_keys};
use crate::key::{KeyMaterial, Kid, VerifyingKey};
use crate::keyset::KeySet;

/// The largest JWKS document we read (a JWKS with a few dozen 4096-bit keys fits easily).
pub const MAX_JWKS_BYTES: usize = 512 * 1024;
/// The most keys one JWKS may hold.
pub const MAX_JWKS_KEYS: usize = 100;

/// A key of a JWKS that could not be imported, with where it stood.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RejectedKey {
    /// Its index in `keys`.
    pub index: usize,
    /// Its `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it was rejected.
    pub error: KeyError,
}

/// Imports one JWK (a JSON object) as a verifying key.
///
/// # Errors
/// [`KeyError`] naming the member that is missing, malformed or inconsistent.
pub fn verifying_key_from_jwk(jwk: &Map<String, Value>) -> Result<VerifyingKey, KeyError> {
    let kty = str_member(jwk, "kty")?;
    if let Some(use_) = jwk.get("use") {
        // `jwt-svid` marks a JWT authority in a SPIFFE trust bundle (SPIFFE Trust
        // Domain and Bundle §4.2.2): a signature key too.
        if !matches!(use_.as_str(), Some("sig" | "jwt-svid")) {
            return Err(KeyError::NotForSignatures { member: "use" });
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or(KeyError::InvalidMember {
            name: "key_ops",
            problem: "not an array",
        })?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err(KeyError::NotForSignatures { member: "key_ops" });
        }
    }
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            Some(
                Algorithm::from_name(name).ok_or_else(|| KeyError::Unsupported {
                    what: "alg",
                    value: printable(name),
                })?,
            )
        }
        Some(_) => {
            return Err(KeyError::InvalidMember {
                name: "alg",
                problem: "not a string",
            });
        }
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(Kid::new(kid)),
        Some(_) => {
            return Err(KeyError::InvalidMember {
                name: "kid",
                problem: "not a string",
            });
        }
    };
    let material = match kty {
        "RSA" => KeyMaterial::Rsa {
            n: bytes_member(jwk, "n")?,
            e: bytes_member(jwk, "e")?,
        },
        "EC" => {
            let crv = str_member(jwk, "crv")?;
            let curve = Curve::from_name(crv).ok_or_else(|| KeyError::Unsupported {
                what: "curve",
                value: printable(crv),
            })?;
            KeyMaterial::Ec {
                curve,
                x: bytes_member(jwk, "x")?,
                y: bytes_member(jwk, "y")?,
            }
        }
        "OKP" => {
            let crv = str_member(jwk, "crv")?;
            if crv != "Ed25519" {
                return Err(KeyError::Unsupported {
                    what: "curve",
                    value: printable(crv),
                });
            }
            KeyMaterial::Ed25519 {
                x: bytes_member(jwk, "x")?,
            }
        }
        "oct" => KeyMaterial::Hmac {
            secret: Zeroizing::new(bytes_member(jwk, "k")?),
        },
        other => {
            return Err(KeyError::Unsupported {
                what: "kty",
                value: printable(other),
            });
        }
    };
    VerifyingKey::try_new(material, kid, alg)
}

/// Imports a JWKS document. Good keys load even when others are rejected;
/// the rejected ones are returned beside the set so the caller can report them.
/// [`crate::import_keys`] with [`KeyFormat::Jwks`], its skip reasons as [`KeyError`]s.
///
/// # Errors
/// [`KeyError::InvalidDocument`] when the document itself is unusable
/// (too large, not strict JSON, no `keys` array, too many keys).
pub fn key_set_from_jwks(bytes: &[u8]) -> Result<(KeySet, Vec<RejectedKey>), KeyError> {
    import_keys(bytes, KeyFormat::Jwks, Secrets::Allow).map(rejected_keys)
}

/// Imports either a JWKS (`{"keys": [...]}`) or a single JWK object
/// ([`crate::import_keys`] with [`KeyFormat::Json`]).
///
/// # Errors
/// As [`key_set_from_jwks`], or the single key's [`KeyError`].
pub fn key_set_from_json(bytes: &[u8]) -> Result<(KeySet, Vec<RejectedKey>), KeyError> {
    import_keys(bytes, KeyFormat::Json, Secrets::Allow).map(rejected_keys)
}

fn rejected_keys(imported: ImportedKeys) -> (KeySet, Vec<RejectedKey>) {
    let rejected = imported
        .skipped
        .into_iter()
        .map(|s| RejectedKey {
            index: s.index,
            kid: s.kid,
            error: s.reason.to_key_error(),
        })
        .collect();
    (imported.keys, rejected)
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, KeyError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or(KeyError::MissingMember { name })
}

fn bytes_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = str_member(jwk, name)?;
    let bytes = b64::decode(text.as_bytes()).ok_or(KeyError::InvalidMember {
        name,
        problem: "not canonical base64url",
    })?;
    if bytes.is_empty() {
        return Err(KeyError::InvalidMember {
            name,
            problem: "empty",
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    const ISTIO_JWKS: &str = include_str!("../tests/data/istio-jwks.json");

    #[test]
    fn imports_istio_jwks() {
        let (set, rejected) = key_set_from_jwks(ISTIO_JWKS.as_bytes()).unwrap();
        assert!(rejected.is_empty());
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn one_bad_key_does_not_spoil_the_set() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"tiny"}},{},{{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}]}}"#,
            &ISTIO_JWKS[ISTIO_JWKS.find("{\"e\"").unwrap()..ISTIO_JWKS.rfind(']').unwrap()]
        );
        let (set, rejected) = key_set_from_jwks(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(rejected.len(), 2);
        assert_eq!(rejected[0].kid.as_deref(), Some("tiny"));
        assert!(matches!(rejected[0].error, KeyError::Weak { .. }));
    }

    #[test]
    fn refuses_bad_documents() {
        assert!(key_set_from_jwks(b"[]").is_err());
        assert!(key_set_from_jwks(br#"{"keys":{}}"#).is_err());
        assert!(key_set_from_jwks(br#"{"keys":[],"keys":[]}"#).is_err());
    }

    #[test]
    fn spiffe_bundle_jwt_authorities_are_signature_keys() {
        let x509 =
            r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","use":"x509-svid"}"#;
        let jwt = x509.replace("x509-svid", "jwt-svid");
        assert!(verifying_key_from_jwk(&json::parse_object(jwt.as_bytes()).unwrap()).is_ok());
        assert!(verifying_key_from_jwk(&json::parse_object(x509.as_bytes()).unwrap()).is_err());
    }

    #[test]
    fn use_and_key_ops_must_allow_verification() {
        let enc = r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","use":"enc"}"#;
        let jwk = json::parse_object(enc.as_bytes()).unwrap();
        assert_eq!(
            verifying_key_from_jwk(&jwk).unwrap_err(),
            KeyError::NotForSignatures { member: "use" }
        );
        let ops =
            r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","key_ops":["sign"]}"#;
        let jwk = json::parse_object(ops.as_bytes()).unwrap();
        assert!(verifying_key_from_jwk(&jwk).is_err());
    }
}
