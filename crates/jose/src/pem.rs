//! PEM and DER import: SPKI and PKCS#1 public keys, X.509 certificates, and
//! PKCS#8 / PKCS#1 / SEC1 private keys (whose public half we derive).

use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{rsa, signature};
use der::Decode as _;
use der::asn1::ObjectIdentifier;
use spki::SubjectPublicKeyInfoRef;

use crate::alg::Curve;
use crate::error::KeyError;
use crate::key::KeyMaterial;
use crate::sign::SigningKey;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

fn invalid(problem: impl ToString) -> KeyError {
    KeyError::InvalidPem {
        problem: problem.to_string(),
    }
}

/// Reads the public key of the first key or certificate block in `text`.
///
/// Accepts `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1), `CERTIFICATE`,
/// and private keys (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
///
/// # Errors
/// No PEM block we know, or a block that does not decode to a supported key.
pub fn public_key_from_pem(text: &str) -> Result<KeyMaterial, KeyError> {
    let blocks = pem::parse_many(text).map_err(invalid)?;
    for block in &blocks {
        match block.tag() {
            "PUBLIC KEY" => return public_key_from_spki(block.contents()),
            "RSA PUBLIC KEY" => return rsa_material(block.contents()),
            "CERTIFICATE" => {
                let cert = x509_cert::Certificate::from_der(block.contents()).map_err(invalid)?;
                let spki = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)
                    .map_err(invalid)?;
                return public_key_from_spki(&spki);
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                return SigningKey::from_pem(text, None).map(|k| k.public_material());
            }
            _ => {}
        }
    }
    Err(invalid("no PUBLIC KEY, CERTIFICATE or PRIVATE KEY block"))
}

/// Reads a DER SubjectPublicKeyInfo.
///
/// # Errors
/// Not a SPKI of an RSA, EC (P-256/384/521, uncompressed) or Ed25519 key.
pub fn public_key_from_spki(der: &[u8]) -> Result<KeyMaterial, KeyError> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(invalid)?;
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| invalid("public key bit string has unused bits"))?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        rsa_material(bits)
    } else if oid == EC_PUBLIC_KEY {
        let curve_oid: ObjectIdentifier = spki
            .algorithm
            .parameters
            .ok_or_else(|| invalid("EC key without a named curve"))?
            .decode_as()
            .map_err(invalid)?;
        ec_material(curve_from_oid(curve_oid)?, bits)
    } else if oid == ED25519 {
        Ok(KeyMaterial::Ed25519 { x: bits.to_vec() })
    } else {
        Err(KeyError::Unsupported {
            what: "key algorithm",
            value: oid.to_string(),
        })
    }
}

pub(crate) fn curve_from_oid(oid: ObjectIdentifier) -> Result<Curve, KeyError> {
    match oid {
        P256 => Ok(Curve::P256),
        P384 => Ok(Curve::P384),
        P521 => Ok(Curve::P521),
        other => Err(KeyError::Unsupported {
            what: "curve",
            value: other.to_string(),
        }),
    }
}

/// An RSA public key from PKCS#1 `RSAPublicKey` (or SPKI) DER.
pub(crate) fn rsa_material(der: &[u8]) -> Result<KeyMaterial, KeyError> {
    let key = rsa::PublicKey::from_der(der).map_err(|e| KeyError::Rejected {
        problem: e.to_string(),
    })?;
    Ok(KeyMaterial::Rsa {
        n: key.modulus().big_endian_without_leading_zero().to_vec(),
        e: key.exponent().big_endian_without_leading_zero().to_vec(),
    })
}

/// An EC public key from an uncompressed SEC1 point.
pub(crate) fn ec_material(curve: Curve, point: &[u8]) -> Result<KeyMaterial, KeyError> {
    let len = curve.coordinate_len();
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * len => Ok(KeyMaterial::Ec {
            curve,
            x: xy[..len].to_vec(),
            y: xy[len..].to_vec(),
        }),
        _ => Err(invalid(
            "EC point is not an uncompressed point of the curve",
        )),
    }
}

/// The public half of an RSA key pair.
pub(crate) fn rsa_pair_material(pair: &signature::RsaKeyPair) -> Result<KeyMaterial, KeyError> {
    let public = pair.public_key();
    Ok(KeyMaterial::Rsa {
        n: public.modulus().big_endian_without_leading_zero().to_vec(),
        e: public.exponent().big_endian_without_leading_zero().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISTIO_KEY: &str = include_str!("../tests/data/istio-key.pem");

    #[test]
    fn private_pkcs1_gives_the_istio_public_key() {
        let material = public_key_from_pem(ISTIO_KEY).unwrap();
        assert_eq!(
            material.thumbprint().as_deref(),
            Some("DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ")
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(public_key_from_pem("hello").is_err());
        assert!(
            public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }
}
