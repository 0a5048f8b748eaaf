//! Signing keys and compact JWS encoding, for `mint` and our own issuer.

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{hmac, rsa, signature};
use der::Decode as _;
use der::asn1::ObjectIdentifier;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::alg::{Algorithm, Curve, Family};
use crate::b64;
use crate::error::KeyError;
use crate::key::KeyMaterial;
use crate::pem::{curve_from_oid, ec_material, rsa_pair_material};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

enum Signer {
    Ec(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Hmac(Box<hmac::Key>),
    Rsa(signature::RsaKeyPair),
}

/// A private key bound to one algorithm.
pub struct SigningKey {
    alg: Algorithm,
    signer: Signer,
    public: KeyMaterial,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn rejected(e: impl ToString) -> KeyError {
    KeyError::Rejected {
        problem: e.to_string(),
    }
}

fn mismatch(alg: Algorithm, kty: &'static str) -> KeyError {
    KeyError::AlgorithmMismatch {
        alg: alg.name().to_owned(),
        kty,
    }
}

fn ecdsa_signing(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn rsa_padding(alg: Algorithm) -> Option<&'static dyn signature::RsaEncoding> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

impl SigningKey {
    /// Reads a private key from PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
    ///
    /// `alg` defaults to RS256 for RSA, the curve's ESxxx for EC and EdDSA for Ed25519.
    ///
    /// # Errors
    /// No private key block, an unsupported or weak key, or `alg` not fitting the key.
    pub fn from_pem(text: &str, alg: Option<Algorithm>) -> Result<SigningKey, KeyError> {
        let blocks = pem::parse_many(text).map_err(|e| KeyError::InvalidPem {
            problem: e.to_string(),
        })?;
        for block in &blocks {
            let der = Zeroizing::new(block.contents().to_vec());
            match block.tag() {
                "PRIVATE KEY" => return SigningKey::from_pkcs8(&der, alg),
                "RSA PRIVATE KEY" => {
                    let pair = signature::RsaKeyPair::from_der(&der).map_err(rejected)?;
                    return SigningKey::from_rsa(pair, alg);
                }
                "EC PRIVATE KEY" => {
                    let ec = sec1_curve(&der)?;
                    let pair =
                        signature::EcdsaKeyPair::from_private_key_der(ecdsa_signing(ec), &der)
                            .map_err(rejected)?;
                    return SigningKey::from_ec(pair, ec, alg);
                }
                _ => {}
            }
        }
        Err(KeyError::InvalidPem {
            problem: "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block".to_owned(),
        })
    }

    /// Reads a PKCS#8 DER private key.
    ///
    /// # Errors
    /// As [`SigningKey::from_pem`].
    pub fn from_pkcs8(der: &[u8], alg: Option<Algorithm>) -> Result<SigningKey, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(rejected)?;
        let oid = info.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            let pair = signature::RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
            SigningKey::from_rsa(pair, alg)
        } else if oid == EC_PUBLIC_KEY {
            let curve_oid: ObjectIdentifier = info
                .algorithm
                .parameters
                .ok_or_else(|| rejected("EC key without a named curve"))?
                .decode_as()
                .map_err(rejected)?;
            let curve = curve_from_oid(curve_oid)?;
            let pair =
                signature::EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), der).map_err(rejected)?;
            SigningKey::from_ec(pair, curve, alg)
        } else if oid == ED25519 {
            let pair =
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
            // `Ed25519` (RFC 9864) or `EdDSA`: the name the token's header will carry.
            let alg = alg.unwrap_or(Algorithm::EdDSA);
            if alg.family() != Family::Okp {
                return Err(mismatch(alg, "OKP"));
            }
            let public = KeyMaterial::Ed25519 {
                x: pair.public_key().as_ref().to_vec(),
            };
            Ok(SigningKey {
                alg,
                signer: Signer::Ed25519(pair),
                public,
            })
        } else {
            Err(KeyError::Unsupported {
                what: "key algorithm",
                value: oid.to_string(),
            })
        }
    }

    /// An HMAC signing key from a secret of at least the hash length.
    ///
    /// # Errors
    /// `alg` not HS*, or the secret too short.
    pub fn from_secret(secret: &[u8], alg: Algorithm) -> Result<SigningKey, KeyError> {
        let (hmac_alg, min) = alg.hmac().ok_or(mismatch(alg, "oct"))?;
        if secret.len() < min {
            return Err(KeyError::Weak {
                problem: format!(
                    "HMAC secret of {} bytes (at least {min} for {alg})",
                    secret.len()
                ),
            });
        }
        Ok(SigningKey {
            alg,
            signer: Signer::Hmac(Box::new(hmac::Key::new(hmac_alg, secret))),
            public: KeyMaterial::Hmac {
                secret: Zeroizing::new(secret.to_vec()),
            },
        })
    }

    fn from_rsa(
        pair: signature::RsaKeyPair,
        alg: Option<Algorithm>,
    ) -> Result<SigningKey, KeyError> {
        let alg = alg.unwrap_or(Algorithm::RS256);
        if alg.family() != Family::Rsa {
            return Err(mismatch(alg, "RSA"));
        }
        let bits = pair.public_modulus_len() * 8;
        if bits < crate::key::MIN_RSA_BITS {
            return Err(KeyError::Weak {
                problem: format!("RSA modulus of {bits} bits"),
            });
        }
        let public = rsa_pair_material(&pair)?;
        Ok(SigningKey {
            alg,
            signer: Signer::Rsa(pair),
            public,
        })
    }

    fn from_ec(
        pair: signature::EcdsaKeyPair,
        curve: Curve,
        alg: Option<Algorithm>,
    ) -> Result<SigningKey, KeyError> {
        let alg = alg.unwrap_or(curve.algorithm());
        if alg != curve.algorithm() {
            return Err(mismatch(alg, "EC"));
        }
        let public = ec_material(curve, pair.public_key().as_ref())?;
        Ok(SigningKey {
            alg,
            signer: Signer::Ec(pair),
            public,
        })
    }

    /// Generates a new key for `alg` and returns it with its PKCS#8 DER.
    ///
    /// # Errors
    /// HS algorithms (use a random secret instead) or a failure of the generator.
    pub fn generate(alg: Algorithm) -> Result<(SigningKey, Zeroizing<Vec<u8>>), KeyError> {
        SigningKey::generate_rsa_bits(alg, 2048)
    }

    /// As [`SigningKey::generate`], with an RSA modulus of `rsa_bits` (2048, 3072 or
    /// 4096) for RS*/PS*; ignored for the other families.
    ///
    /// # Errors
    /// Another RSA size, HS* (a secret is not generated here), or a crypto failure.
    pub fn generate_rsa_bits(
        alg: Algorithm,
        rsa_bits: u32,
    ) -> Result<(SigningKey, Zeroizing<Vec<u8>>), KeyError> {
        let der: Vec<u8> = match alg.family() {
            Family::Rsa => {
                let size = match rsa_bits {
                    2048 => rsa::KeySize::Rsa2048,
                    3072 => rsa::KeySize::Rsa3072,
                    4096 => rsa::KeySize::Rsa4096,
                    other => {
                        return Err(KeyError::Unsupported {
                            what: "RSA modulus size (2048, 3072 or 4096 bits)",
                            value: other.to_string(),
                        });
                    }
                };
                let pair = rsa::KeyPair::generate(size).map_err(rejected)?;
                pair.as_der().map_err(rejected)?.as_ref().to_vec()
            }
            Family::Ec(curve) => signature::EcdsaKeyPair::generate(ecdsa_signing(curve))
                .and_then(|p| p.to_pkcs8v1())
                .map_err(rejected)?
                .as_ref()
                .to_vec(),
            Family::Okp => signature::Ed25519KeyPair::generate()
                .and_then(|p| p.to_pkcs8v1())
                .map_err(rejected)?
                .as_ref()
                .to_vec(),
            Family::Hmac => {
                return Err(KeyError::Unsupported {
                    what: "key generation for",
                    value: alg.name().to_owned(),
                });
            }
        };
        let der = Zeroizing::new(der);
        Ok((SigningKey::from_pkcs8(&der, Some(alg))?, der))
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half (for HMAC: the secret itself, never printed).
    pub fn public_material(&self) -> KeyMaterial {
        self.public.clone()
    }

    /// Signs `message`.
    ///
    /// # Errors
    /// A failure inside the crypto library.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(pair) => Ok(pair
                .sign(&rng, message)
                .map_err(rejected)?
                .as_ref()
                .to_vec()),
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let padding = rsa_padding(self.alg).ok_or(mismatch(self.alg, "RSA"))?;
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .map_err(rejected)?;
                Ok(sig)
            }
        }
    }

    /// Builds a compact JWS: `alg` (and `kid`, when given) are set in the header.
    ///
    /// # Errors
    /// A failure inside the crypto library.
    pub fn encode(
        &self,
        kid: Option<&str>,
        extra_header: &Map<String, Value>,
        payload: &[u8],
    ) -> Result<String, KeyError> {
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(self.alg.name()));
        if let Some(kid) = kid {
            header.insert("kid".into(), Value::from(kid));
        }
        for (k, v) in extra_header {
            if k != "alg" {
                header.insert(k.clone(), v.clone());
            }
        }
        let header_json = serde_json::to_vec(&Value::Object(header)).map_err(rejected)?;
        let mut token = b64::encode(&header_json);
        token.push('.');
        token.push_str(&b64::encode(payload));
        let sig = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64::encode(&sig));
        Ok(token)
    }
}

/// The named curve of a SEC1 `ECPrivateKey`.
fn sec1_curve(der: &[u8]) -> Result<Curve, KeyError> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(rejected)?;
    let params = key
        .parameters
        .ok_or_else(|| rejected("EC private key without a named curve"))?;
    let oid = params
        .named_curve()
        .ok_or_else(|| rejected("EC private key without a named curve"))?;
    curve_from_oid(oid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::VerifyingKey;
    use crate::keyset::KeySet;
    use crate::{Validation, verify_jwt};

    #[test]
    fn every_algorithm_signs_what_we_verify() {
        for alg in Algorithm::ALL {
            let key = match alg.family() {
                Family::Hmac => SigningKey::from_secret(&[9; 64], alg).unwrap(),
                _ => SigningKey::generate(alg).unwrap().0,
            };
            let token = key
                .encode(Some("k1"), &Map::new(), br#"{"exp":4000000000,"sub":"a"}"#)
                .unwrap();
            let verifying = VerifyingKey::try_new(key.public_material(), None, Some(alg)).unwrap();
            let set = KeySet::new(vec![verifying]);
            let ok = verify_jwt(&token, &set, &Validation::default(), 1_700_000_000);
            assert!(ok.is_ok(), "{alg}: {ok:?}");
            let mut tampered = token.clone();
            tampered.insert_str(token.find('.').unwrap() + 1, "e30");
            assert!(verify_jwt(&tampered, &set, &Validation::default(), 1_700_000_000).is_err());
        }
    }

    #[test]
    fn short_secrets_do_not_sign() {
        assert!(SigningKey::from_secret(&[1; 31], Algorithm::HS256).is_err());
        assert!(SigningKey::from_secret(&[1; 63], Algorithm::HS512).is_err());
    }
}
