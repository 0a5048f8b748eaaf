//! A set of verifying keys and the choice of which to try for a token.

use std::sync::Arc;

use crate::alg::{Algorithm, AlgorithmSet};
use crate::error::{TokenError, printable};
use crate::key::{Kid, VerifyingKey};

/// Without a `kid`, at most this many keys of the right type are tried,
/// so a token cannot make us run an unbounded number of verifications.
pub const MAX_CANDIDATES: usize = 4;

/// An immutable set of keys, cheap to clone and share between threads.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Arc<[VerifyingKey]>,
    algorithms: AlgorithmSet,
}

impl KeySet {
    /// Builds a set from keys.
    pub fn new(keys: Vec<VerifyingKey>) -> KeySet {
        let algorithms = keys
            .iter()
            .fold(AlgorithmSet::EMPTY, |acc, k| acc.union(k.algorithms()));
        KeySet {
            keys: keys.into(),
            algorithms,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Every algorithm some key may verify: the default allow-list of a provider.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// Whether a key with exactly this `kid` is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys
            .iter()
            .any(|k| k.kid().is_some_and(|k| k.as_str() == kid))
    }

    /// Verifies a signature with the key the header designates.
    ///
    /// With a `kid`, only keys with exactly that `kid` are tried (or, when none
    /// has it, keys that have no `kid` at all, as a PEM key has none). Without
    /// one, the first [`MAX_CANDIDATES`] keys allowed for `alg` are tried.
    ///
    /// # Errors
    /// `KeyNotFound` when no key fits, `AlgorithmNotAllowed` when the key that
    /// fits is pinned to another algorithm, `SignatureInvalid` otherwise.
    pub fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<&VerifyingKey, TokenError> {
        // Which `kid` a key must carry to be a candidate: the token's when some key
        // has it, else none (kid-less keys, as from PEM); without a token kid, any.
        let wanted: Option<Option<&str>> = match kid {
            Some(kid) if self.has_kid(kid) => Some(Some(kid)),
            Some(_) => Some(None),
            None => None,
        };
        let mut found_any = false;
        let mut tried = 0;
        let candidates = self.keys.iter().filter(|k| match wanted {
            Some(want) => k.kid().map(Kid::as_str) == want,
            None => true,
        });
        for key in candidates {
            if key.material().family() != alg.family() {
                continue;
            }
            found_any = true;
            if !key.algorithms().contains(alg) {
                continue;
            }
            tried += 1;
            if key.verify(alg, message, signature) {
                return Ok(key);
            }
            if tried >= MAX_CANDIDATES {
                break;
            }
        }
        if tried > 0 {
            Err(TokenError::SignatureInvalid)
        } else if found_any {
            Err(TokenError::AlgorithmNotAllowed {
                alg: alg.name().to_owned(),
            })
        } else {
            Err(TokenError::KeyNotFound {
                kid: kid.map(printable),
            })
        }
    }
}
