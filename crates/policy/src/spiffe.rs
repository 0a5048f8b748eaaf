//! Workload identity in the pure layer: SPIFFE IDs and the patterns rules match
//! them with, the JWT-SVID rules (SPIFFE JWT-SVID §3), and certificate binding
//! (RFC 8705 `cnf.x5t#S256`).
//!
//! No IO: bundles arrive through the providers' key slots, injected tokens through
//! [`crate::TokenSlot`]s.

mod binding;
mod id;

pub use binding::{CertificateBinding, client_certificate_thumbprint, thumbprint_of_pem};
pub(crate) use binding::{split_unquoted, unquote};
pub use id::{InvalidSpiffeId, SpiffeId, SpiffeIdPattern, check_trust_domain};

use portcullis_jose::{Claims, Header};
use serde_json::Value;

/// Why a verified JWT breaks the JWT-SVID rules.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSvid {
    /// `aud` is missing or empty (JWT-SVID §3.2: required).
    #[error("a JWT-SVID must have an `aud`")]
    AudienceMissing,
    /// `sub` is missing.
    #[error("a JWT-SVID must have a `sub`")]
    SubjectMissing,
    /// `sub` is not a SPIFFE ID.
    #[error("`sub` is not a SPIFFE ID: {source}")]
    SubjectInvalid {
        /// Why.
        source: InvalidSpiffeId,
    },
    /// `sub` is a SPIFFE ID of another trust domain than the provider's.
    #[error("`sub` is in trust domain {found:?}, not {expected:?}")]
    TrustDomain {
        /// The provider's trust domain.
        expected: String,
        /// The token's.
        found: String,
    },
    /// `typ` is present and neither `JWT` nor `JOSE` (JWT-SVID §2.2).
    #[error("a JWT-SVID's `typ` must be JWT or JOSE, not {typ:?}")]
    Type {
        /// The header's `typ`.
        typ: String,
    },
}

/// Checks the JWT-SVID rules the signature check does not cover (`exp` and the
/// asymmetric algorithms are required by the provider's validation): `typ`, `aud`
/// present, `sub` a SPIFFE ID in `trust_domain`. Returns the SPIFFE ID.
///
/// # Errors
/// The first rule broken.
pub fn check_svid(
    header: &Header,
    claims: &Claims,
    trust_domain: &str,
) -> Result<SpiffeId, InvalidSvid> {
    if let Some(typ) = header.typ()
        && typ != "JWT"
        && typ != "JOSE"
    {
        return Err(InvalidSvid::Type {
            typ: typ.chars().take(64).collect(),
        });
    }
    let has_audience = match claims.get("aud") {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        _ => false,
    };
    if !has_audience {
        return Err(InvalidSvid::AudienceMissing);
    }
    let sub = claims.subject().ok_or(InvalidSvid::SubjectMissing)?;
    let id = SpiffeId::parse(sub).map_err(|source| InvalidSvid::SubjectInvalid { source })?;
    if id.trust_domain() != trust_domain {
        return Err(InvalidSvid::TrustDomain {
            expected: trust_domain.to_owned(),
            found: id.trust_domain().to_owned(),
        });
    }
    Ok(id)
}

#[cfg(test)]
mod tests;
