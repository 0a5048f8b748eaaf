//! JWS algorithms (RFC 7518 §3, RFC 8037, RFC 9864) and small sets of them.

use std::fmt;

use aws_lc_rs::{hmac, signature};

/// A JWS signature algorithm we implement. `none` is deliberately absent.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Algorithm {
    /// EdDSA with the Ed25519 parameter set, by its fully specified name (RFC 9864 §2.2).
    /// The same verification as [`Algorithm::EdDSA`]: the two share one bit of an
    /// [`AlgorithmSet`], so allowing either name allows both.
    Ed25519,
    /// EdDSA (RFC 8037), the polymorphic name RFC 9864 deprecates; we implement it
    /// for Ed25519 keys only (Ed448 is not supported).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
}

/// The key family an algorithm needs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Family {
    /// `kty: EC` on the given curve.
    Ec(Curve),
    /// `kty: oct`.
    Hmac,
    /// `kty: OKP`, `crv: Ed25519`.
    Okp,
    /// `kty: RSA`.
    Rsa,
}

/// The named curves of `kty: EC` we accept.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
}

impl Curve {
    /// The JWK `crv` name.
    pub const fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Length in bytes of a coordinate (and of `r`, `s`).
    pub const fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Parses a JWK `crv`.
    pub fn from_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// The one JWS algorithm for this curve.
    pub const fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::ES256,
            Curve::P384 => Algorithm::ES384,
            Curve::P521 => Algorithm::ES512,
        }
    }
}

impl Algorithm {
    /// Every algorithm, in a fixed order (the bit order of [`AlgorithmSet`]).
    pub const ALL: [Algorithm; 14] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::Ed25519,
    ];

    /// Registered JWS algorithm names we know and deliberately do not implement:
    /// named as unsupported rather than unknown.
    pub const UNSUPPORTED: [&'static str; 2] = ["Ed448", "ES256K"];

    /// Parses the exact, case-sensitive JWA name. `none` and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Parses a JWA name, saying why one is refused.
    ///
    /// # Errors
    /// [`UnsupportedAlgorithm`] for `none`, a registered name we do not implement
    /// (`Ed448`, `ES256K`) or an unknown name.
    pub fn try_from_name(name: &str) -> Result<Algorithm, UnsupportedAlgorithm> {
        Algorithm::from_name(name).ok_or_else(|| UnsupportedAlgorithm {
            name: crate::error::printable(name),
        })
    }

    /// Whether `other` names the same verification (`EdDSA` and `Ed25519`), or is `self`.
    pub const fn same_verification(self, other: Algorithm) -> bool {
        self.canonical() as u16 == other.canonical() as u16
    }

    /// The one algorithm of a group of names for the same verification.
    pub(crate) const fn canonical(self) -> Algorithm {
        match self {
            Algorithm::Ed25519 => Algorithm::EdDSA,
            other => other,
        }
    }

    /// The JWA name.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
        }
    }

    /// The key family the algorithm needs.
    pub const fn family(self) -> Family {
        match self {
            Algorithm::Ed25519 | Algorithm::EdDSA => Family::Okp,
            Algorithm::ES256 => Family::Ec(Curve::P256),
            Algorithm::ES384 => Family::Ec(Curve::P384),
            Algorithm::ES512 => Family::Ec(Curve::P521),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
            Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512 => Family::Rsa,
        }
    }

    /// Names for the same verification share a bit.
    const fn bit(self) -> u16 {
        1 << (self.canonical() as u16)
    }

    /// The aws-lc-rs verification parameters of an asymmetric algorithm.
    pub(crate) fn verification(self) -> Option<&'static dyn signature::VerificationAlgorithm> {
        Some(match self {
            Algorithm::Ed25519 | Algorithm::EdDSA => &signature::ED25519,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
        })
    }

    /// The HMAC parameters and minimum secret length of an HS algorithm.
    pub(crate) fn hmac(self) -> Option<(hmac::Algorithm, usize)> {
        match self {
            Algorithm::HS256 => Some((hmac::HMAC_SHA256, 32)),
            Algorithm::HS384 => Some((hmac::HMAC_SHA384, 48)),
            Algorithm::HS512 => Some((hmac::HMAC_SHA512, 64)),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWA name that is not one of our algorithms.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UnsupportedAlgorithm {
    /// The name, cut to a printable length.
    pub name: String,
}

impl UnsupportedAlgorithm {
    /// Whether the name is a registered algorithm we deliberately do not implement.
    pub fn is_registered(&self) -> bool {
        Algorithm::UNSUPPORTED.contains(&self.name.as_str())
    }
}

impl fmt::Display for UnsupportedAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == "none" {
            f.write_str("`none` is never allowed")
        } else if self.is_registered() {
            write!(
                f,
                "algorithm {:?} is not supported (of EdDSA, only Ed25519 is, also named EdDSA)",
                self.name
            )
        } else {
            write!(f, "{:?} is not one of ", self.name)?;
            for (i, a) in Algorithm::ALL.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                f.write_str(a.name())?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for UnsupportedAlgorithm {}

/// A small set of algorithms (a bit set; copying it is free).
#[derive(Clone, Copy, Default, Eq, Hash, PartialEq)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// The set with `alg` added.
    #[must_use]
    pub const fn with(self, alg: Algorithm) -> AlgorithmSet {
        AlgorithmSet(self.0 | alg.bit())
    }

    /// Algorithms in both sets.
    #[must_use]
    pub const fn intersect(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    /// Algorithms in either set.
    #[must_use]
    pub const fn union(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms of a family (for HMAC: all three; the secret length is checked elsewhere).
    pub fn of_family(family: Family) -> AlgorithmSet {
        Algorithm::ALL
            .into_iter()
            .filter(|a| a.family() == family)
            .collect()
    }

    /// The algorithms in the set, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        iter.into_iter()
            .fold(AlgorithmSet::EMPTY, AlgorithmSet::with)
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Algorithm::name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_unknown() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        for bad in [
            "none", "None", "NONE", "", "rs256", "HS256 ", "ES521", "Ed448", "ed25519",
        ] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }

    /// Issue 10, bug 2: RFC 9864's fully specified `Ed25519` was an unknown algorithm.
    /// It names the same verification as `EdDSA`: one allows the other; `Ed448` is
    /// refused by name as unsupported.
    #[test]
    fn regression_issue10_ed25519_is_the_fully_specified_eddsa() {
        let ed = Algorithm::try_from_name("Ed25519").unwrap();
        assert_eq!(ed.family(), Family::Okp);
        assert!(ed.same_verification(Algorithm::EdDSA));
        assert!(!ed.same_verification(Algorithm::ES256));
        let eddsa = AlgorithmSet::EMPTY.with(Algorithm::EdDSA);
        assert!(eddsa.contains(Algorithm::Ed25519));
        assert_eq!(AlgorithmSet::EMPTY.with(Algorithm::Ed25519), eddsa);
        assert!(AlgorithmSet::of_family(Family::Okp).contains(Algorithm::Ed25519));
        let err = Algorithm::try_from_name("Ed448").unwrap_err();
        assert!(err.is_registered());
        assert!(
            err.to_string().contains("\"Ed448\" is not supported"),
            "{err}"
        );
        assert!(
            Algorithm::try_from_name("none")
                .unwrap_err()
                .to_string()
                .contains("never")
        );
        assert!(
            Algorithm::try_from_name("XS1")
                .unwrap_err()
                .to_string()
                .contains("Ed25519")
        );
    }

    #[test]
    fn sets() {
        let rsa = AlgorithmSet::of_family(Family::Rsa);
        assert!(rsa.contains(Algorithm::PS512));
        assert!(!rsa.contains(Algorithm::HS256));
        let one = AlgorithmSet::EMPTY.with(Algorithm::RS256);
        assert_eq!(rsa.intersect(one), one);
        assert_eq!(format!("{one:?}"), r#"{"RS256"}"#);
    }
}
