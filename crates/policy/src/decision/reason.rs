//! Why a request is denied: one reason code per variant, and the status it means.
//!
//! The status is derived from the reason, never stored beside it, so the two cannot
//! disagree. The token core reports [`TokenError`]s; they become reasons here by
//! [`From`].

use std::fmt;

use portcullis_jose::TokenError;

/// The stable reason codes of the contract: used in responses, logs and metrics.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DenyReason {
    /// The header's `alg` is not allowed for the provider or for the key.
    AlgorithmNotAllowed,
    /// The token's `aud` holds none of the configured audiences.
    AudienceMismatch,
    /// A required claim does not hold one of the required values.
    ClaimMismatch,
    /// The rule's `when:` condition is false, or failed to evaluate.
    ConditionFailed,
    /// The token's `iss` differs from the configured issuer.
    IssuerMismatch,
    /// No key of the key set fits the token (`kid` unknown or no key of the family).
    KeyNotFound,
    /// No rule matched the request (or the rule denies).
    NoRule,
    /// The request cannot be read one way only: an ambiguous path or host,
    /// contradictory or unreadable proxy headers, an ext_authz request without its
    /// HTTP attributes.
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

/// What a deny means at the HTTP level.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum DenyStatus {
    /// 400: the request cannot be read one way only.
    BadRequest,
    /// 403: the caller is known but not allowed.
    Forbidden,
    /// 401: no credential, or one that fails.
    Unauthorized,
}

impl DenyStatus {
    /// The HTTP status code.
    pub const fn code(self) -> u16 {
        match self {
            DenyStatus::BadRequest => 400,
            DenyStatus::Forbidden => 403,
            DenyStatus::Unauthorized => 401,
        }
    }
}

impl DenyReason {
    /// Every reason code: the contract's, in its order, then our additions.
    pub const ALL: [DenyReason; 14] = [
        DenyReason::TokenMissing,
        DenyReason::TokenMalformed,
        DenyReason::SignatureInvalid,
        DenyReason::AlgorithmNotAllowed,
        DenyReason::KeyNotFound,
        DenyReason::IssuerMismatch,
        DenyReason::AudienceMismatch,
        DenyReason::TokenExpired,
        DenyReason::TokenNotYetValid,
        DenyReason::ClaimMismatch,
        DenyReason::ScopeMissing,
        DenyReason::NoRule,
        DenyReason::RequestInvalid,
        DenyReason::ConditionFailed,
    ];

    /// The wire name of the reason code (`token_expired`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DenyReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            DenyReason::AudienceMismatch => "audience_mismatch",
            DenyReason::ClaimMismatch => "claim_mismatch",
            DenyReason::ConditionFailed => "condition_failed",
            DenyReason::IssuerMismatch => "issuer_mismatch",
            DenyReason::KeyNotFound => "key_not_found",
            DenyReason::NoRule => "no_rule",
            DenyReason::RequestInvalid => "request_invalid",
            DenyReason::ScopeMissing => "scope_missing",
            DenyReason::SignatureInvalid => "signature_invalid",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::TokenMalformed => "token_malformed",
            DenyReason::TokenMissing => "token_missing",
            DenyReason::TokenNotYetValid => "token_not_yet_valid",
        }
    }

    /// What the reason means at the HTTP level (the contract's table).
    pub const fn status(self) -> DenyStatus {
        match self {
            DenyReason::RequestInvalid => DenyStatus::BadRequest,
            DenyReason::ClaimMismatch
            | DenyReason::ConditionFailed
            | DenyReason::NoRule
            | DenyReason::ScopeMissing => DenyStatus::Forbidden,
            DenyReason::AlgorithmNotAllowed
            | DenyReason::AudienceMismatch
            | DenyReason::IssuerMismatch
            | DenyReason::KeyNotFound
            | DenyReason::SignatureInvalid
            | DenyReason::TokenExpired
            | DenyReason::TokenMalformed
            | DenyReason::TokenMissing
            | DenyReason::TokenNotYetValid => DenyStatus::Unauthorized,
        }
    }

    /// OAuth-style error code (RFC 6750 §3.1).
    pub const fn error_code(self) -> &'static str {
        match self {
            DenyReason::TokenMissing => "unauthorized",
            DenyReason::ScopeMissing => "insufficient_scope",
            DenyReason::ClaimMismatch | DenyReason::ConditionFailed | DenyReason::NoRule => {
                "access_denied"
            }
            DenyReason::RequestInvalid => "invalid_request",
            _ => "invalid_token",
        }
    }

    /// A fixed, human description: never data from the token.
    pub const fn description(self) -> &'static str {
        match self {
            DenyReason::AlgorithmNotAllowed => "the token's algorithm is not allowed",
            DenyReason::AudienceMismatch => "the token is not meant for this audience",
            DenyReason::ClaimMismatch => "a required claim does not match",
            DenyReason::ConditionFailed => "the rule's condition does not hold",
            DenyReason::IssuerMismatch => "the token's issuer is not trusted",
            DenyReason::KeyNotFound => "no key is known for the token",
            DenyReason::NoRule => "no rule allows this request",
            DenyReason::RequestInvalid => "the request cannot be read one way only",
            DenyReason::ScopeMissing => "a required scope is missing",
            DenyReason::SignatureInvalid => "the signature is invalid",
            DenyReason::TokenExpired => "the token has expired",
            DenyReason::TokenMalformed => "the token is malformed",
            DenyReason::TokenMissing => "a bearer token is required",
            DenyReason::TokenNotYetValid => "the token is not valid yet",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&TokenError> for DenyReason {
    fn from(e: &TokenError) -> Self {
        use portcullis_jose::TokenReason as T;
        match e.reason() {
            T::AlgorithmNotAllowed => DenyReason::AlgorithmNotAllowed,
            T::AudienceMismatch => DenyReason::AudienceMismatch,
            T::IssuerMismatch => DenyReason::IssuerMismatch,
            T::KeyNotFound => DenyReason::KeyNotFound,
            T::SignatureInvalid => DenyReason::SignatureInvalid,
            T::TokenExpired => DenyReason::TokenExpired,
            T::TokenNotYetValid => DenyReason::TokenNotYetValid,
            // A reason the token core adds later is a malformed token until mapped.
            _ => DenyReason::TokenMalformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_the_contracts() {
        let names: Vec<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
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
                "request_invalid",
                "condition_failed",
            ]
        );
    }

    #[test]
    fn statuses_are_the_contracts() {
        for r in DenyReason::ALL {
            let want = match r.as_str() {
                "claim_mismatch" | "scope_missing" | "no_rule" | "condition_failed" => 403,
                "request_invalid" => 400,
                _ => 401,
            };
            assert_eq!(r.status().code(), want, "{r}");
        }
    }
}
