//! Typed errors of the token core, and the one reason code each maps to.

use std::fmt;

/// The stable reason codes of the contract: used in responses, logs and metrics.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// The header's `alg` is not allowed for the provider or for the key.
    AlgorithmNotAllowed,
    /// The token's `aud` holds none of the configured audiences.
    AudienceMismatch,
    /// A required claim does not hold one of the required values.
    ClaimMismatch,
    /// The token's `iss` differs from the configured issuer.
    IssuerMismatch,
    /// No key of the key set fits the token (`kid` unknown or no key of the family).
    KeyNotFound,
    /// No rule matched the request.
    NoRule,
    /// The request itself is unusable: the proxy's description of the original
    /// request is contradictory, or an ext_authz request lacks its HTTP attributes.
    RequestInvalid,
    /// A required scope is missing.
    ScopeMissing,
    /// The signature does not verify.
    SignatureInvalid,
    /// `exp` is in the past (beyond the clock skew).
    TokenExpired,
    /// The token is not well formed (encoding, JSON, header or claim types).
    TokenMalformed,
    /// No token where one is required.
    TokenMissing,
    /// `nbf` is in the future (beyond the clock skew).
    TokenNotYetValid,
}

impl Reason {
    /// Every reason code: the contract's, in its order, then our additions.
    pub const ALL: [Reason; 13] = [
        Reason::TokenMissing,
        Reason::TokenMalformed,
        Reason::SignatureInvalid,
        Reason::AlgorithmNotAllowed,
        Reason::KeyNotFound,
        Reason::IssuerMismatch,
        Reason::AudienceMismatch,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::ClaimMismatch,
        Reason::ScopeMissing,
        Reason::NoRule,
        Reason::RequestInvalid,
    ];

    /// The wire name of the reason code (`token_expired`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::KeyNotFound => "key_not_found",
            Reason::NoRule => "no_rule",
            Reason::RequestInvalid => "request_invalid",
            Reason::ScopeMissing => "scope_missing",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::TokenExpired => "token_expired",
            Reason::TokenMalformed => "token_malformed",
            Reason::TokenMissing => "token_missing",
            Reason::TokenNotYetValid => "token_not_yet_valid",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of a compact JWS a problem was found in.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Segment {
    /// The protected header.
    Header,
    /// The payload (claims).
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// Why a token was rejected. Each variant maps to exactly one [`Reason`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// `alg` is not allowed (never `none`; not in the allow-list; not the key's).
    #[error("algorithm {alg:?} is not allowed")]
    AlgorithmNotAllowed {
        /// The header's `alg`, cut to a printable length.
        alg: String,
    },
    /// `aud` holds none of the expected audiences.
    #[error("audience does not match")]
    AudienceMismatch,
    /// `alg` is a registered algorithm we do not implement (`Ed448`, `ES256K`).
    #[error("algorithm {alg:?} is not supported")]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// A claim has the wrong JSON type or an out-of-range value.
    #[error("claim {name:?} is invalid: {problem}")]
    InvalidClaim {
        /// The claim's name.
        name: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A segment is not canonical unpadded base64url.
    #[error("{segment} is not canonical base64url")]
    InvalidBase64 {
        /// Where.
        segment: Segment,
    },
    /// A header or payload is not strict JSON (syntax, duplicates, depth, not an object).
    #[error("{segment} is not a strict JSON object: {problem}")]
    InvalidJson {
        /// Where.
        segment: Segment,
        /// What is wrong.
        problem: String,
    },
    /// `iat` lies in the future beyond the clock skew.
    #[error("iat {iat} is in the future (now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: f64,
        /// The caller's clock.
        now: i64,
    },
    /// `iss` is missing or differs from the expected issuer.
    #[error("issuer does not match")]
    IssuerMismatch,
    /// No key fits the token.
    #[error("no key found for kid {kid:?}")]
    KeyNotFound {
        /// The header's `kid`, if any (cut to a printable length).
        kid: Option<String>,
    },
    /// `exp` is required and missing.
    #[error("exp is missing")]
    MissingExp,
    /// `exp` has passed.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: f64,
        /// The caller's clock.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: f64,
        /// The caller's clock.
        now: i64,
    },
    /// Not exactly three segments.
    #[error("a compact JWS has exactly three segments")]
    SegmentCount,
    /// The signature does not verify with the selected key.
    #[error("signature does not verify")]
    SignatureInvalid,
    /// The token is longer than the configured limit.
    #[error("token is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `typ` is not the expected one.
    #[error("typ does not match the expected {expected:?}")]
    TypeMismatch {
        /// What the validator expected.
        expected: String,
    },
    /// A header member we refuse (`crit`, `b64`, `zip`, `enc`, nested `cty`).
    #[error("header member {name:?} is not supported")]
    UnsupportedHeader {
        /// The member's name.
        name: &'static str,
    },
}

impl TokenError {
    /// The contract's reason code for this error.
    pub const fn reason(&self) -> Reason {
        match self {
            TokenError::AlgorithmNotAllowed { .. } | TokenError::UnsupportedAlgorithm { .. } => {
                Reason::AlgorithmNotAllowed
            }
            TokenError::AudienceMismatch => Reason::AudienceMismatch,
            TokenError::Expired { .. } => Reason::TokenExpired,
            TokenError::IssuerMismatch => Reason::IssuerMismatch,
            TokenError::KeyNotFound { .. } => Reason::KeyNotFound,
            TokenError::NotYetValid { .. } => Reason::TokenNotYetValid,
            TokenError::SignatureInvalid => Reason::SignatureInvalid,
            TokenError::InvalidBase64 { .. }
            | TokenError::InvalidClaim { .. }
            | TokenError::InvalidJson { .. }
            | TokenError::IssuedInFuture { .. }
            | TokenError::MissingExp
            | TokenError::SegmentCount
            | TokenError::TooLarge { .. }
            | TokenError::TypeMismatch { .. }
            | TokenError::UnsupportedHeader { .. } => Reason::TokenMalformed,
        }
    }
}

/// Keeps attacker-controlled strings short and printable before they reach an error or a log.
pub(crate) fn printable(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Why a key could not be imported.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The JWK's `alg` does not fit its key type or curve.
    #[error("alg {alg:?} does not fit a {kty} key")]
    AlgorithmMismatch {
        /// The `alg` member.
        alg: String,
        /// The key type.
        kty: &'static str,
    },
    /// A member is missing or not a string.
    #[error("member {name:?} is missing or not a string")]
    MissingMember {
        /// The member's name.
        name: &'static str,
    },
    /// A member is not canonical base64url or has the wrong length.
    #[error("member {name:?} is invalid: {problem}")]
    InvalidMember {
        /// The member's name.
        name: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// Not a JSON object, or a JWKS without a `keys` array.
    #[error("not a valid JWK/JWKS document: {problem}")]
    InvalidDocument {
        /// What is wrong.
        problem: String,
    },
    /// The key itself is rejected by the crypto library (off-curve point, bad modulus...).
    #[error("key rejected: {problem}")]
    Rejected {
        /// Why.
        problem: String,
    },
    /// A PEM or DER structure could not be read.
    #[error("invalid PEM/DER: {problem}")]
    InvalidPem {
        /// What is wrong.
        problem: String,
    },
    /// The key is too weak (RSA < 2048 bits, bad exponent, short HMAC secret).
    #[error("key too weak: {problem}")]
    Weak {
        /// Why.
        problem: String,
    },
    /// A key type, curve or algorithm we do not support.
    #[error("unsupported {what}: {value:?}")]
    Unsupported {
        /// What kind of thing.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// `use` or `key_ops` say the key is not for verifying signatures.
    #[error("key is not meant for signatures ({member})")]
    NotForSignatures {
        /// `use` or `key_ops`.
        member: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_the_contracts() {
        let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "token_missing",
                "token_malformed",
                "signature_invalid",
                "algorithm_not_allowed",
                "key_not_found",
                "issuer_mismatch",
                "audience_mismatch",
                "token_expired",
                "token_not_yet_valid",
                "claim_mismatch",
                "scope_missing",
                "no_rule",
                "request_invalid"
            ]
        );
    }

    #[test]
    fn printable_cuts_and_masks() {
        assert_eq!(printable("a\u{0}b"), "a?b");
        assert_eq!(printable(&"x".repeat(100)).chars().count(), 65);
    }
}
