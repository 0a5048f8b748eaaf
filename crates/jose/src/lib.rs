//! The token core of Portcullis: strict compact JWS parsing, JWK/JWKS/PEM import,
//! signature verification on aws-lc-rs, and JWT claim validation.
//!
//! No IO, no clock (callers pass `now`), no global state. Keys are parsed once
//! and kept ready; a token is checked against an immutable [`KeySet`].
//!
//! ```
//! use portcullis_jose::{Algorithm, KeySet, SigningKey, Validation, VerifyingKey, verify_jwt};
//!
//! let (signer, _pkcs8) = SigningKey::generate(Algorithm::ES256)?;
//! let token = signer.encode(Some("k1"), &Default::default(), br#"{"sub":"alice","exp":4000000000}"#)?;
//! let key = VerifyingKey::try_new(signer.public_material(), None, None)?;
//! let keys = KeySet::new(vec![key]);
//! let jwt = verify_jwt(&token, &keys, &Validation::default(), 1_700_000_000)?;
//! assert_eq!(jwt.claims.subject(), Some("alice"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod alg;
pub mod b64;
mod claims;
mod error;
// Fuzzing entry points with fixed secrets: never in a release build.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_logic;
mod import;
mod issuer;
pub mod json;
mod jwk;
mod key;
mod keyset;
mod pem;
mod sign;
mod token;
mod verify;

pub use alg::{Algorithm, AlgorithmSet, Curve, Family, UnsupportedAlgorithm};
pub use claims::{Claims, DEFAULT_CLOCK_SKEW_SECS, MAX_NUMERIC_DATE, REGISTERED, Validation};
pub use error::{KeyError, Segment, TokenError, TokenReason};
pub use import::{ImportedKeys, KeyFormat, Secrets, SkipReason, SkippedKey, import_keys};
pub use issuer::{InvalidIssuerTemplate, IssuerTemplate};
pub use jwk::{
    MAX_JWKS_BYTES, MAX_JWKS_KEYS, RejectedKey, key_set_from_json, key_set_from_jwks,
    verifying_key_from_jwk,
};
pub use key::{KeyMaterial, Kid, MAX_RSA_BITS, MIN_RSA_BITS, VerifyingKey};
pub use keyset::{KeySet, MAX_CANDIDATES};
pub use pem::{public_key_from_pem, public_key_from_spki};
pub use sign::SigningKey;
pub use token::{CompactJws, DEFAULT_MAX_TOKEN_BYTES, Header};
pub use verify::{
    Rejected, VerifiedJws, VerifiedJwt, verify_jws, verify_jwt, verify_jwt_explained,
    verify_jwt_keeping,
};
