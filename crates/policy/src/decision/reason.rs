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
    /// The token is bound to a client certificate (`cnf.x5t#S256`) that the
    /// request was not made with.
    CertificateMismatch,
    /// A required claim does not hold one of the required values.
    ClaimMismatch,
    /// A `login` rule and no credential at all: browsers are sent to log in.
    LoginRequired,
    /// DPoP (RFC 9449): a missing, invalid or replayed proof, or a DPoP-bound token
    /// presented without one.
    DpopInvalid,
    /// The rule's `when:` condition is false, or failed to evaluate.
    ConditionFailed,
    /// An opaque token could not be introspected: the provider's introspection
    /// endpoint is unknown, unreachable or refused us (fail closed, 503).
    IntrospectionUnavailable,
    /// The token's `iss` differs from the configured issuer.
    IssuerMismatch,
    /// No key of the key set fits the token (`kid` unknown or no key of the family).
    KeyNotFound,
    /// No rule matched the request.
    NoRule,
    /// The matched rule says `allow: deny`.
    RuleDenied,
    /// The request cannot be read one way only: an ambiguous path or host,
    /// contradictory or unreadable proxy headers, an ext_authz request without its
    /// HTTP attributes.
    RequestInvalid,
    /// A required scope is missing.
    ScopeMissing,
    /// A session cookie that fails: tampered, expired, foreign or ended.
    SessionInvalid,
    /// The signature does not verify.
    SignatureInvalid,
    /// Step-up (RFC 9470): a valid token or session whose `acr`/`amr` is weaker than
    /// the rule's `acr_values`/`amr` (401 `insufficient_user_authentication`; a browser
    /// with a session on a `login` rule is sent to log in again).
    StepUpRequired,
    /// A valid JWT-SVID whose SPIFFE ID is not in the rule's `spiffe_ids`.
    SpiffeIdMismatch,
    /// The client certificate's SPIFFE ID (its URI SAN) is not in the rule's
    /// `peer_spiffe_ids`, or there is no such ID to read.
    PeerSpiffeIdMismatch,
    /// `exp` is in the past (beyond the clock skew).
    TokenExpired,
    /// Introspection (RFC 7662) says the opaque token is not active (unknown,
    /// expired or revoked).
    TokenInactive,
    /// The token is not well formed (encoding, JSON, header or claim types).
    TokenMalformed,
    /// No token where one is required.
    TokenMissing,
    /// `nbf` is in the future (beyond the clock skew).
    TokenNotYetValid,
    /// An outbound request on an `inject` rule already has `Authorization`.
    TokenPresent,
    /// An `inject` rule has no fresh token to send (its source has none yet).
    TokenUnavailable,
    /// Proxy mode: the rule that allowed the request names no upstream.
    NoUpstream,
    /// Proxy mode: the upstream could not be reached.
    UpstreamUnavailable,
    /// Proxy mode: the upstream did not answer in time.
    UpstreamTimeout,
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
    /// 404: proxy mode, nowhere to send the request.
    NotFound,
    /// 502: proxy mode, the upstream could not be reached.
    BadGateway,
    /// 504: proxy mode, the upstream did not answer in time.
    GatewayTimeout,
    /// 503: a service the decision needs (token introspection) is unavailable.
    ServiceUnavailable,
}

impl DenyStatus {
    /// The HTTP status code.
    pub const fn code(self) -> u16 {
        match self {
            DenyStatus::BadRequest => 400,
            DenyStatus::Forbidden => 403,
            DenyStatus::Unauthorized => 401,
            DenyStatus::NotFound => 404,
            DenyStatus::BadGateway => 502,
            DenyStatus::GatewayTimeout => 504,
            DenyStatus::ServiceUnavailable => 503,
        }
    }
}

impl DenyReason {
    /// Every reason code: the contract's, in its order, then our additions.
    pub const ALL: [DenyReason; 29] = [
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
        DenyReason::SpiffeIdMismatch,
        DenyReason::TokenPresent,
        DenyReason::CertificateMismatch,
        DenyReason::TokenUnavailable,
        DenyReason::NoUpstream,
        DenyReason::UpstreamUnavailable,
        DenyReason::UpstreamTimeout,
        DenyReason::LoginRequired,
        DenyReason::SessionInvalid,
        DenyReason::DpopInvalid,
        DenyReason::ConditionFailed,
        DenyReason::RuleDenied,
        DenyReason::TokenInactive,
        DenyReason::IntrospectionUnavailable,
        DenyReason::StepUpRequired,
        DenyReason::PeerSpiffeIdMismatch,
    ];

    /// The wire name of the reason code (`token_expired`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DenyReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            DenyReason::AudienceMismatch => "audience_mismatch",
            DenyReason::CertificateMismatch => "certificate_mismatch",
            DenyReason::ClaimMismatch => "claim_mismatch",
            DenyReason::DpopInvalid => "dpop_invalid",
            DenyReason::ConditionFailed => "condition_failed",
            DenyReason::IntrospectionUnavailable => "introspection_unavailable",
            DenyReason::IssuerMismatch => "issuer_mismatch",
            DenyReason::KeyNotFound => "key_not_found",
            DenyReason::LoginRequired => "login_required",
            DenyReason::NoRule => "no_rule",
            DenyReason::RuleDenied => "rule_denied",
            DenyReason::RequestInvalid => "request_invalid",
            DenyReason::ScopeMissing => "scope_missing",
            DenyReason::SessionInvalid => "session_invalid",
            DenyReason::SignatureInvalid => "signature_invalid",
            DenyReason::SpiffeIdMismatch => "spiffe_id_mismatch",
            DenyReason::PeerSpiffeIdMismatch => "peer_spiffe_id_mismatch",
            DenyReason::StepUpRequired => "step_up_required",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::TokenInactive => "token_inactive",
            DenyReason::TokenMalformed => "token_malformed",
            DenyReason::TokenMissing => "token_missing",
            DenyReason::TokenNotYetValid => "token_not_yet_valid",
            DenyReason::TokenPresent => "token_present",
            DenyReason::TokenUnavailable => "token_unavailable",
            DenyReason::NoUpstream => "no_upstream",
            DenyReason::UpstreamUnavailable => "upstream_unavailable",
            DenyReason::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// What the reason means at the HTTP level (the contract's table).
    pub const fn status(self) -> DenyStatus {
        match self {
            DenyReason::RequestInvalid => DenyStatus::BadRequest,
            DenyReason::ClaimMismatch
            | DenyReason::ConditionFailed
            | DenyReason::NoRule
            | DenyReason::RuleDenied
            | DenyReason::ScopeMissing
            | DenyReason::SpiffeIdMismatch
            | DenyReason::PeerSpiffeIdMismatch
            | DenyReason::TokenPresent
            | DenyReason::TokenUnavailable => DenyStatus::Forbidden,
            DenyReason::NoUpstream => DenyStatus::NotFound,
            DenyReason::UpstreamUnavailable => DenyStatus::BadGateway,
            DenyReason::UpstreamTimeout => DenyStatus::GatewayTimeout,
            DenyReason::IntrospectionUnavailable => DenyStatus::ServiceUnavailable,
            DenyReason::AlgorithmNotAllowed
            | DenyReason::AudienceMismatch
            | DenyReason::CertificateMismatch
            | DenyReason::DpopInvalid
            | DenyReason::IssuerMismatch
            | DenyReason::KeyNotFound
            | DenyReason::LoginRequired
            | DenyReason::SessionInvalid
            | DenyReason::SignatureInvalid
            | DenyReason::StepUpRequired
            | DenyReason::TokenExpired
            | DenyReason::TokenInactive
            | DenyReason::TokenMalformed
            | DenyReason::TokenMissing
            | DenyReason::TokenNotYetValid => DenyStatus::Unauthorized,
        }
    }

    /// OAuth-style error code (RFC 6750 §3.1).
    pub const fn error_code(self) -> &'static str {
        match self {
            DenyReason::TokenMissing | DenyReason::LoginRequired => "unauthorized",
            DenyReason::ScopeMissing => "insufficient_scope",
            DenyReason::StepUpRequired => "insufficient_user_authentication",
            DenyReason::ClaimMismatch
            | DenyReason::ConditionFailed
            | DenyReason::NoRule
            | DenyReason::RuleDenied
            | DenyReason::SpiffeIdMismatch
            | DenyReason::PeerSpiffeIdMismatch
            | DenyReason::TokenPresent
            | DenyReason::TokenUnavailable => "access_denied",
            DenyReason::RequestInvalid => "invalid_request",
            DenyReason::NoUpstream => "not_found",
            DenyReason::UpstreamUnavailable => "bad_gateway",
            DenyReason::UpstreamTimeout => "gateway_timeout",
            DenyReason::IntrospectionUnavailable => "temporarily_unavailable",
            _ => "invalid_token",
        }
    }

    /// A fixed, human description: never data from the token.
    pub const fn description(self) -> &'static str {
        match self {
            DenyReason::AlgorithmNotAllowed => "the token's algorithm is not allowed",
            DenyReason::AudienceMismatch => "the token is not meant for this audience",
            DenyReason::CertificateMismatch => "the token is bound to another client certificate",
            DenyReason::ClaimMismatch => "a required claim does not match",
            DenyReason::DpopInvalid => "the DPoP proof is missing or invalid",
            DenyReason::ConditionFailed => "the rule's condition does not hold",
            DenyReason::IntrospectionUnavailable => "the token cannot be checked right now",
            DenyReason::IssuerMismatch => "the token's issuer is not trusted",
            DenyReason::KeyNotFound => "no key is known for the token",
            DenyReason::LoginRequired => "a login is required",
            DenyReason::NoRule => "no rule allows this request",
            DenyReason::RuleDenied => "the rule denies this request",
            DenyReason::RequestInvalid => "the request cannot be read one way only",
            DenyReason::ScopeMissing => "a required scope is missing",
            DenyReason::SessionInvalid => "the session is invalid",
            DenyReason::SignatureInvalid => "the signature is invalid",
            DenyReason::SpiffeIdMismatch => "the workload's SPIFFE ID is not allowed here",
            DenyReason::PeerSpiffeIdMismatch => {
                "the client certificate's SPIFFE ID is not allowed here"
            }
            DenyReason::StepUpRequired => "a stronger authentication is required",
            DenyReason::TokenExpired => "the token has expired",
            DenyReason::TokenInactive => "the token is not active",
            DenyReason::TokenMalformed => "the token is malformed",
            DenyReason::TokenMissing => "a bearer token is required",
            DenyReason::TokenNotYetValid => "the token is not valid yet",
            DenyReason::TokenPresent => "the outbound request already carries a token",
            DenyReason::TokenUnavailable => "no outbound token is available yet",
            DenyReason::NoUpstream => "no upstream serves this request",
            DenyReason::UpstreamUnavailable => "the upstream is unavailable",
            DenyReason::UpstreamTimeout => "the upstream did not answer in time",
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
                "spiffe_id_mismatch",
                "token_present",
                "certificate_mismatch",
                "token_unavailable",
                "no_upstream",
                "upstream_unavailable",
                "upstream_timeout",
                "login_required",
                "session_invalid",
                "dpop_invalid",
                "condition_failed",
                "rule_denied",
                "token_inactive",
                "introspection_unavailable",
                "step_up_required",
                "peer_spiffe_id_mismatch",
            ]
        );
    }

    #[test]
    fn statuses_are_the_contracts() {
        for r in DenyReason::ALL {
            let want = match r.as_str() {
                "claim_mismatch"
                | "scope_missing"
                | "no_rule"
                | "condition_failed"
                | "rule_denied"
                | "spiffe_id_mismatch"
                | "peer_spiffe_id_mismatch"
                | "token_present"
                | "token_unavailable" => 403,
                "request_invalid" => 400,
                "no_upstream" => 404,
                "upstream_unavailable" => 502,
                "upstream_timeout" => 504,
                "introspection_unavailable" => 503,
                _ => 401,
            };
            assert_eq!(r.status().code(), want, "{r}");
        }
    }

    #[test]
    fn docs_reasons_lists_every_code_with_its_status() {
        let doc = include_str!("../../../../docs/reasons.md");
        let rows: Vec<(&str, &str)> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let (code, rest) = l.split_once("` | ")?;
                Some((code, rest.split(' ').next()?))
            })
            .collect();
        assert_eq!(rows.len(), DenyReason::ALL.len(), "{rows:?}");
        for r in DenyReason::ALL {
            let row = rows.iter().find(|(c, _)| *c == r.as_str());
            let status = row.map(|(_, s)| s.trim_end_matches(','));
            assert_eq!(
                status,
                Some(r.status().code().to_string().as_str()),
                "docs/reasons.md: {r}"
            );
        }
    }
}
