//! The whole check of a token: parse, pick the key, verify the signature, validate claims.

use crate::alg::AlgorithmSet;
use crate::claims::{Claims, Validation};
use crate::error::{TokenError, printable};
use crate::key::VerifyingKey;
use crate::keyset::KeySet;
use crate::token::{CompactJws, Header};

/// The longest signature of any algorithm we verify (RSA with an 8,192-bit modulus).
const MAX_SIGNATURE_BYTES: usize = crate::key::MAX_RSA_BITS / 8;

/// A JWS whose signature verified, with the key that verified it.
#[derive(Debug)]
pub struct VerifiedJws<'k> {
    /// The checked header.
    pub header: Header,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The key that verified the signature.
    pub key: &'k VerifyingKey,
}

/// A JWT that verified and validated.
#[derive(Debug)]
pub struct VerifiedJwt<'k> {
    /// The checked header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// The key that verified the signature.
    pub key: &'k VerifyingKey,
}

/// Verifies a compact JWS's signature; the payload may be anything.
///
/// `allowed` is the algorithm allow-list (the header's `alg` must be in it).
///
/// # Errors
/// The [`TokenError`] of the first check that fails.
pub fn verify_jws<'k>(
    token: &str,
    keys: &'k KeySet,
    allowed: AlgorithmSet,
    max_token_bytes: usize,
) -> Result<VerifiedJws<'k>, TokenError> {
    let jws = CompactJws::parse(token, max_token_bytes)?;
    let alg = jws.header().alg();
    if keys.is_empty() {
        // No usable key at all (a source not loaded yet): say so, rather than blame the algorithm.
        return Err(TokenError::KeyNotFound {
            kid: jws.header().kid().map(printable),
        });
    }
    if !allowed.contains(alg) {
        return Err(TokenError::AlgorithmNotAllowed {
            alg: printable(alg.name()),
        });
    }
    // The longest signature we verify is RSA-8192's 1,024 bytes: decode on the stack.
    let mut signature = [0u8; MAX_SIGNATURE_BYTES];
    let len = jws.signature_into(&mut signature)?;
    let key = keys.verify(
        jws.header().kid(),
        alg,
        jws.signing_input(),
        &signature[..len],
    )?;
    // Decoded only once the signature holds: unsigned bytes are never parsed.
    let payload = jws.payload()?.into_owned();
    Ok(VerifiedJws {
        header: jws.into_header(),
        payload,
        key,
    })
}

/// Verifies a JWT and validates its claims at `now` (seconds since the epoch).
///
/// # Errors
/// The [`TokenError`] of the first check that fails.
pub fn verify_jwt<'k>(
    token: &str,
    keys: &'k KeySet,
    validation: &Validation,
    now: i64,
) -> Result<VerifiedJwt<'k>, TokenError> {
    verify_jwt_explained(token, keys, validation, now).map_err(|r| r.error)
}

/// Why [`verify_jwt_explained`] refused a token.
#[derive(Debug)]
pub struct Rejected {
    /// The check that failed.
    pub error: TokenError,
    /// The header and claims when the signature held and only the claims failed
    /// (an expired token, a wrong audience): what a deny log may name, without
    /// parsing the token a second time. `None` when the signature did not hold.
    pub signed: Option<Box<(Header, Claims)>>,
}

impl From<TokenError> for Rejected {
    fn from(error: TokenError) -> Rejected {
        Rejected {
            error,
            signed: None,
        }
    }
}

/// [`verify_jwt`], keeping the signed header and claims of a token whose claims
/// failed validation.
///
/// # Errors
/// The [`TokenError`] of the first check that fails, in a [`Rejected`].
pub fn verify_jwt_explained<'k>(
    token: &str,
    keys: &'k KeySet,
    validation: &Validation,
    now: i64,
) -> Result<VerifiedJwt<'k>, Rejected> {
    verify_jwt_keeping(token, keys, validation, now, &|_| true)
}

/// [`verify_jwt_explained`], with claims parsed as [`Claims::from_json_keeping`] parses
/// them: the whole payload is checked, but the claims hold only the registered ones,
/// those `validation`'s issuer template binds and those `keep` accepts.
///
/// # Errors
/// As [`verify_jwt_explained`].
pub fn verify_jwt_keeping<'k>(
    token: &str,
    keys: &'k KeySet,
    validation: &Validation,
    now: i64,
    keep: &dyn Fn(&str) -> bool,
) -> Result<VerifiedJwt<'k>, Rejected> {
    let allowed = validation.algorithms.unwrap_or_else(|| keys.algorithms());
    let jws = verify_jws(token, keys, allowed, validation.max_token_bytes).map_err(|e| {
        // With the default allow-list (the keys' algorithms), a token for a key we do
        // not have yet may use an algorithm none of our keys has: that is an unknown
        // key (worth a refetch), not a forbidden algorithm. Still never an allow.
        match (&e, validation.algorithms) {
            (TokenError::AlgorithmNotAllowed { .. }, None) => match unknown_kid(token, keys) {
                Some(kid) => TokenError::KeyNotFound { kid: Some(kid) },
                None => e,
            },
            _ => e,
        }
    })?;
    let template = validation.issuer_template.as_ref();
    let claims = Claims::from_json_keeping(&jws.payload, &|name| {
        keep(name) || template.is_some_and(|t| t.placeholders().any(|p| p == name))
    })?;
    if let Err(error) = validation.validate(&jws.header, &claims, now) {
        return Err(Rejected {
            error,
            signed: Some(Box::new((jws.header, claims))),
        });
    }
    Ok(VerifiedJwt {
        header: jws.header,
        claims,
        key: jws.key,
    })
}

/// The header's `kid` when the key set does not hold it.
fn unknown_kid(token: &str, keys: &KeySet) -> Option<String> {
    let jws = CompactJws::parse(token, usize::MAX).ok()?;
    let kid = jws.header().kid()?;
    (!keys.has_kid(kid)).then(|| printable(kid))
}
