//! Verifying keys: public parameters checked once at import and kept parsed for verify.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{digest, hmac, signature};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::alg::{Algorithm, AlgorithmSet, Curve, Family};
use crate::b64;
use crate::error::KeyError;

/// The smallest RSA modulus we accept (RFC 7518 §3.3, RFC 8725).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus aws-lc-rs verifies with the JWS parameter sets.
pub const MAX_RSA_BITS: usize = 8192;

/// A key identifier (`kid`), compared byte for byte.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct Kid(Arc<str>);

impl Kid {
    /// Wraps a `kid`.
    pub fn new(kid: &str) -> Kid {
        Kid(Arc::from(kid))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The parameters that define a key, in JWK terms (big-endian, no leading zeros).
#[derive(Clone, Eq, PartialEq)]
#[non_exhaustive]
pub enum KeyMaterial {
    /// An EC public point.
    Ec {
        /// The curve.
        curve: Curve,
        /// The x coordinate, exactly the curve's coordinate length.
        x: Vec<u8>,
        /// The y coordinate, exactly the curve's coordinate length.
        y: Vec<u8>,
    },
    /// An HMAC secret.
    Hmac {
        /// The secret, wiped on drop.
        secret: Zeroizing<Vec<u8>>,
    },
    /// An Ed25519 public key.
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
    /// An RSA public key.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
}

impl KeyMaterial {
    /// The family of algorithms this key can serve.
    pub fn family(&self) -> Family {
        match self {
            KeyMaterial::Ec { curve, .. } => Family::Ec(*curve),
            KeyMaterial::Hmac { .. } => Family::Hmac,
            KeyMaterial::Ed25519 { .. } => Family::Okp,
            KeyMaterial::Rsa { .. } => Family::Rsa,
        }
    }

    /// The JWK `kty`.
    pub fn kty(&self) -> &'static str {
        match self {
            KeyMaterial::Ec { .. } => "EC",
            KeyMaterial::Hmac { .. } => "oct",
            KeyMaterial::Ed25519 { .. } => "OKP",
            KeyMaterial::Rsa { .. } => "RSA",
        }
    }

    /// The algorithms this key may serve when no `alg` pins one.
    fn default_algorithms(&self) -> AlgorithmSet {
        match self {
            KeyMaterial::Hmac { secret } => [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
                .into_iter()
                .filter(|a| a.hmac().is_some_and(|(_, min)| secret.len() >= min))
                .collect(),
            other => AlgorithmSet::of_family(other.family()),
        }
    }

    /// The public JWK members (no `kid`, `alg` or `use`); `None` for an HMAC secret.
    pub fn public_jwk(&self) -> Option<Map<String, Value>> {
        let value = match self {
            KeyMaterial::Ec { curve, x, y } => json!({
                "kty": "EC", "crv": curve.name(), "x": b64::encode(x), "y": b64::encode(y)
            }),
            KeyMaterial::Ed25519 { x } => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(x)})
            }
            KeyMaterial::Rsa { n, e } => {
                json!({"kty": "RSA", "n": b64::encode(n), "e": b64::encode(e)})
            }
            KeyMaterial::Hmac { .. } => return None,
        };
        match value {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url); `None` for an HMAC secret.
    pub fn thumbprint(&self) -> Option<String> {
        // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = match self {
            KeyMaterial::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.name(),
                b64::encode(x),
                b64::encode(y)
            ),
            KeyMaterial::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
            KeyMaterial::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(e),
                b64::encode(n)
            ),
            KeyMaterial::Hmac { .. } => return None,
        };
        Some(b64::encode(
            digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
        ))
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Hmac { secret } => write!(f, "Hmac({} bytes)", secret.len()),
            other => write!(f, "{}({:?})", other.kty(), other.thumbprint()),
        }
    }
}

/// One ready-to-use verifier for one algorithm.
#[derive(Clone)]
enum Verifier {
    Hmac(Box<hmac::Key>),
    Public(signature::ParsedPublicKey),
}

/// A key that verifies signatures, with the algorithms it may be used with.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<Kid>,
    algorithms: AlgorithmSet,
    material: KeyMaterial,
    verifiers: Box<[(Algorithm, Verifier)]>,
}

impl VerifyingKey {
    /// Checks the material and prepares one verifier per allowed algorithm.
    ///
    /// `alg` pins the key to one algorithm (a JWK's `alg`); without it the key
    /// serves every algorithm of its family (HMAC: those its length allows).
    ///
    /// # Errors
    /// [`KeyError`] when the key is weak, malformed or does not fit `alg`.
    pub fn try_new(
        material: KeyMaterial,
        kid: Option<Kid>,
        alg: Option<Algorithm>,
    ) -> Result<VerifyingKey, KeyError> {
        let material = normalize(material)?;
        check_strength(&material, alg)?;
        let family_algs = material.default_algorithms();
        let algorithms = match alg {
            Some(a) if a.family() == material.family() => AlgorithmSet::EMPTY.with(a),
            Some(a) => {
                return Err(KeyError::AlgorithmMismatch {
                    alg: a.name().to_owned(),
                    kty: material.kty(),
                });
            }
            None => family_algs,
        };
        if algorithms.is_empty() {
            return Err(KeyError::Weak {
                problem: "HMAC secret shorter than 32 bytes".to_owned(),
            });
        }
        // One verifier per verification: `EdDSA` and `Ed25519` share one.
        let verifiers = algorithms
            .iter()
            .filter(|a| a.canonical() == *a)
            .map(|a| Ok((a, make_verifier(&material, a)?)))
            .collect::<Result<Vec<_>, KeyError>>()?
            .into_boxed_slice();
        Ok(VerifyingKey {
            kid,
            algorithms,
            material,
            verifiers,
        })
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&Kid> {
        self.kid.as_ref()
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The key's parameters.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Verifies `signature` over `message` with `alg`.
    ///
    /// Returns `false` when the algorithm is not one of this key's, the
    /// signature has the wrong length for the algorithm, or it does not verify.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        let Some((_, verifier)) = self
            .verifiers
            .iter()
            .find(|(a, _)| a.same_verification(alg))
        else {
            return false;
        };
        match verifier {
            // Constant-time comparison inside aws-lc-rs.
            Verifier::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Verifier::Public(key) => {
                // JWS ECDSA signatures are exactly R || S (RFC 7518 §3.4); no DER, no short forms.
                if let Family::Ec(curve) = alg.family()
                    && sig.len() != 2 * curve.coordinate_len()
                {
                    return false;
                }
                key.verify_sig(message, sig).is_ok()
            }
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("material", &self.material)
            .finish()
    }
}

fn strip_leading_zeros(bytes: Vec<u8>) -> Vec<u8> {
    match bytes.iter().position(|b| *b != 0) {
        Some(0) => bytes,
        Some(i) => bytes[i..].to_vec(),
        None => Vec::new(),
    }
}

fn normalize(material: KeyMaterial) -> Result<KeyMaterial, KeyError> {
    Ok(match material {
        KeyMaterial::Rsa { n, e } => KeyMaterial::Rsa {
            n: strip_leading_zeros(n),
            e: strip_leading_zeros(e),
        },
        KeyMaterial::Ec { curve, x, y } => {
            let len = curve.coordinate_len();
            if x.len() != len || y.len() != len {
                return Err(KeyError::InvalidMember {
                    name: "x/y",
                    problem: "coordinate length does not fit the curve",
                });
            }
            KeyMaterial::Ec { curve, x, y }
        }
        KeyMaterial::Ed25519 { x } => {
            if x.len() != 32 {
                return Err(KeyError::InvalidMember {
                    name: "x",
                    problem: "an Ed25519 public key is 32 bytes",
                });
            }
            if is_weak_ed25519(&x) {
                // With a small-order key, (R = identity, S = 0) "verifies" any message:
                // anyone could forge tokens. aws-lc does not refuse such keys itself.
                return Err(KeyError::Weak {
                    problem: "Ed25519 public key of small order or not canonically encoded"
                        .to_owned(),
                });
            }
            KeyMaterial::Ed25519 { x }
        }
        other => other,
    })
}

/// The y coordinates (sign bit cleared) of the Ed25519 points of small order, including
/// their non-canonical encodings p and p + 1 (as libsodium's `has_small_order` lists them).
const ED25519_SMALL_ORDER: [[u8; 32]; 7] = [
    // 0 (order 4)
    [0; 32],
    // 1 (order 1: the identity)
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    // order 8
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    // order 8
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // p - 1 (order 2)
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p (= 0, non-canonical)
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p + 1 (= 1, non-canonical)
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Whether an encoded Ed25519 public key is of small order, or its y is not
/// canonical (y >= p = 2^255 - 19). Compared with the sign bit cleared.
fn is_weak_ed25519(x: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 32]>::try_from(x) else {
        return true;
    };
    let mut y = bytes;
    y[31] &= 0x7f;
    let non_canonical = y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed;
    non_canonical || ED25519_SMALL_ORDER.contains(&y)
}

fn bit_len(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(first) => bytes.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn check_strength(material: &KeyMaterial, alg: Option<Algorithm>) -> Result<(), KeyError> {
    match material {
        KeyMaterial::Rsa { n, e } => {
            let bits = bit_len(n);
            if bits < MIN_RSA_BITS {
                return Err(KeyError::Weak {
                    problem: format!("RSA modulus of {bits} bits (at least {MIN_RSA_BITS})"),
                });
            }
            if bits > MAX_RSA_BITS {
                return Err(KeyError::Unsupported {
                    what: "RSA modulus size",
                    value: format!("{bits} bits (at most {MAX_RSA_BITS})"),
                });
            }
            // An even exponent is no RSA key; e = 1 signs nothing; e over 2^32 is
            // refused by aws-lc and by most of the ecosystem.
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            if !odd || bit_len(e) < 2 || e.len() > 4 {
                return Err(KeyError::Weak {
                    problem: "RSA public exponent must be odd, at least 3 and at most 2^32"
                        .to_owned(),
                });
            }
            if n.last().is_some_and(|b| b & 1 == 0) {
                return Err(KeyError::Rejected {
                    problem: "RSA modulus is even".to_owned(),
                });
            }
        }
        KeyMaterial::Hmac { secret } => {
            let min = alg.and_then(Algorithm::hmac).map_or(32, |(_, min)| min);
            if secret.len() < min {
                return Err(KeyError::Weak {
                    problem: format!(
                        "HMAC secret of {} bytes (at least {min} for {})",
                        secret.len(),
                        alg.map_or("HS256", Algorithm::name)
                    ),
                });
            }
        }
        KeyMaterial::Ec { .. } | KeyMaterial::Ed25519 { .. } => {}
    }
    Ok(())
}

fn make_verifier(material: &KeyMaterial, alg: Algorithm) -> Result<Verifier, KeyError> {
    let mismatch = || KeyError::AlgorithmMismatch {
        alg: alg.name().to_owned(),
        kty: material.kty(),
    };
    let rejected = |e: aws_lc_rs::error::KeyRejected| KeyError::Rejected {
        problem: e.to_string(),
    };
    let parsed = match material {
        KeyMaterial::Hmac { secret } => {
            let (hmac_alg, _) = alg.hmac().ok_or_else(mismatch)?;
            return Ok(Verifier::Hmac(Box::new(hmac::Key::new(hmac_alg, secret))));
        }
        KeyMaterial::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_params(alg).ok_or_else(mismatch)?)
            .map_err(rejected)?,
        KeyMaterial::Ec { x, y, .. } => {
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            // aws-lc checks that the point lies on the curve.
            let params = alg.verification().ok_or_else(mismatch)?;
            signature::ParsedPublicKey::new(params, point).map_err(rejected)?
        }
        KeyMaterial::Ed25519 { x } => {
            let params = alg.verification().ok_or_else(mismatch)?;
            signature::ParsedPublicKey::new(params, x).map_err(rejected)?
        }
    };
    Ok(Verifier::Public(parsed))
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_weak_rsa_and_short_secrets() {
        let small = KeyMaterial::Rsa {
            n: vec![0xC1; 128],
            e: vec![1, 0, 1],
        };
        assert!(matches!(
            VerifyingKey::try_new(small, None, None),
            Err(KeyError::Weak { .. })
        ));
        let e_one = KeyMaterial::Rsa {
            n: vec![0xC1; 256],
            e: vec![1],
        };
        assert!(matches!(
            VerifyingKey::try_new(e_one, None, None),
            Err(KeyError::Weak { .. })
        ));
        let short = KeyMaterial::Hmac {
            secret: Zeroizing::new(vec![7; 31]),
        };
        assert!(VerifyingKey::try_new(short, None, None).is_err());
        let s48 = KeyMaterial::Hmac {
            secret: Zeroizing::new(vec![7; 48]),
        };
        let key = VerifyingKey::try_new(s48.clone(), None, None).unwrap();
        assert_eq!(format!("{:?}", key.algorithms()), r#"{"HS256", "HS384"}"#);
        assert!(VerifyingKey::try_new(s48, None, Some(Algorithm::HS512)).is_err());
    }

    #[test]
    fn rejects_off_curve_points_and_wrong_lengths() {
        let off = KeyMaterial::Ec {
            curve: Curve::P256,
            x: vec![1; 32],
            y: vec![2; 32],
        };
        assert!(matches!(
            VerifyingKey::try_new(off, None, None),
            Err(KeyError::Rejected { .. })
        ));
        let short = KeyMaterial::Ec {
            curve: Curve::P256,
            x: vec![1; 31],
            y: vec![2; 32],
        };
        assert!(VerifyingKey::try_new(short, None, None).is_err());
    }

    #[test]
    fn rejects_small_order_and_non_canonical_ed25519_keys() {
        for weak in ED25519_SMALL_ORDER {
            for sign in [0u8, 0x80] {
                let mut x = weak.to_vec();
                x[31] |= sign;
                let key = KeyMaterial::Ed25519 { x };
                assert!(matches!(
                    VerifyingKey::try_new(key, None, None),
                    Err(KeyError::Weak { .. })
                ));
            }
        }
        let mut big = vec![0xff; 32];
        big[31] = 0x7f;
        assert!(VerifyingKey::try_new(KeyMaterial::Ed25519 { x: big }, None, None).is_err());
        // RFC 8037 A.2's public key is fine.
        let good = b64::decode(b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert!(VerifyingKey::try_new(KeyMaterial::Ed25519 { x: good }, None, None).is_ok());
    }

    #[test]
    fn alg_must_fit_the_family() {
        let secret = KeyMaterial::Hmac {
            secret: Zeroizing::new(vec![7; 64]),
        };
        assert!(matches!(
            VerifyingKey::try_new(secret, None, Some(Algorithm::RS256)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let secret = KeyMaterial::Hmac {
            secret: Zeroizing::new(b"0123456789abcdef0123456789abcdef".to_vec()),
        };
        let shown = format!("{:?}", VerifyingKey::try_new(secret, None, None).unwrap());
        assert!(!shown.contains("0123"), "{shown}");
    }
}
