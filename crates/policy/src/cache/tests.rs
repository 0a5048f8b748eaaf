//! The cache properties, on the caches themselves: found only by the exact token
//! bytes, stale under another key set generation, bounded, and no rejection cached
//! that time or a fetch may undo.

use std::sync::Arc;

use portcullis_jose::{Claims, TokenError};

use super::negative::is_final;
use super::*;
use crate::decision::TokenHints;

const NOW: i64 = 1_700_000_000;

fn identity() -> Arc<Identity> {
    Arc::new(Identity::verified(
        Arc::from("corp"),
        Claims::default(),
        Some((NOW + 600) as f64),
        Vec::new(),
    ))
}

fn hints() -> TokenHints {
    TokenHints {
        kid: Some("k1".to_owned()),
        iss: Some("https://idp".to_owned()),
        sub: Some("alice".to_owned()),
    }
}

fn keyer() -> TokenKeyer {
    TokenKeyer::with_key(*b"portcullis-tests")
}

fn digest(token: &str) -> TokenDigest {
    keyer().digest(token)
}

#[test]
fn the_digest_is_of_every_byte_and_whole() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let d = digest(token);
    assert_eq!(d, digest(token));
    assert_eq!(d.0.len(), 16, "all 128 output bits, never truncated");
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for bit in 0..7 {
            let mut other = bytes.to_vec();
            other[i] ^= 1 << bit;
            let Ok(other) = String::from_utf8(other) else {
                continue;
            };
            assert_ne!(digest(&other), d, "byte {i} bit {bit}");
        }
    }
    assert_ne!(digest(&token[1..]), d);
    assert_ne!(digest(&token[..token.len() - 1]), d);
    assert_ne!(digest(&format!("{token}.")), d);
    assert_ne!(digest(""), digest("\0"), "length is part of the input");
}

#[test]
fn the_digest_depends_on_the_secret_key() {
    let token = "header.payload.signature";
    let other = TokenKeyer::with_key(*b"portcullis-test2");
    assert_ne!(other.digest(token), digest(token));
    // Two engines never share a key (so never each other's digests).
    let (a, b) = (TokenKeyer::random().unwrap(), TokenKeyer::random().unwrap());
    assert_ne!(a.digest(token), b.digest(token));
    assert_eq!(format!("{a:?}"), "TokenKeyer", "the key is never printed");
}

#[test]
fn an_entry_is_found_only_by_the_exact_token() {
    let cache = TokenCache::new(16, 1 << 20, keyer());
    let token = "header.payload.signature";
    cache.insert(
        digest(token),
        CachedToken::new(0, 7, Some((NOW + 600) as f64), identity()),
    );
    assert!(cache.get(&digest(token), NOW, |_| 7).is_some());
    for other in [
        "header.payload.signaturE",
        "header.payload.signatur",
        "header.payload.signature ",
        "Header.payload.signature",
    ] {
        assert!(cache.get(&digest(other), NOW, |_| 7).is_none(), "{other}");
    }
}

#[test]
fn an_entry_is_stale_under_another_generation_and_after_exp() {
    let cache = TokenCache::new(16, 1 << 20, keyer());
    let d = digest("t");
    cache.insert(
        d,
        CachedToken::new(0, 7, Some((NOW + 10) as f64), identity()),
    );
    assert!(cache.get(&d, NOW + 10, |_| 7).is_none(), "exp passed");
    assert_eq!(cache.len(), 0, "a stale entry is dropped");
    cache.insert(
        d,
        CachedToken::new(0, 7, Some((NOW + 10) as f64), identity()),
    );
    assert!(cache.get(&d, NOW, |_| 8).is_none(), "keys rotated");
    assert_eq!(cache.len(), 0);
}

#[test]
fn the_token_cache_is_bounded_in_memory() {
    // About 100 entries' worth of bytes, 10,000 tokens offered.
    let one = u64::from(CachedToken::new(0, 1, None, identity()).identity_bytes) + 160;
    let cache = TokenCache::new(100_000, 100 * one, keyer());
    for i in 0..10_000 {
        cache.insert(
            digest(&format!("token-{i}")),
            CachedToken::new(0, 1, None, identity()),
        );
    }
    assert!(cache.len() <= 100, "{}", cache.len());
    assert!(cache.len() > 10, "{}", cache.len());
}

#[test]
fn the_negative_cache_is_bounded_in_entries() {
    let cache = NegativeCache::new(64);
    for i in 0..10_000 {
        cache.insert(
            digest(&format!("bad-{i}")),
            0,
            1,
            NOW,
            &TokenError::SignatureInvalid,
            &hints(),
        );
    }
    assert!(cache.len() <= 64, "{}", cache.len());
    let huge = NegativeCache::new(usize::MAX);
    assert!(huge.inner.capacity() <= negative::NEGATIVE_ENTRIES_MAX as u64);
}

#[test]
fn a_rejection_is_found_by_its_token_provider_and_generation_only() {
    let cache = NegativeCache::new(64);
    let d = digest("bad.token.here");
    cache.insert(d, 0, 5, NOW, &TokenError::SignatureInvalid, &hints());
    let hit = cache.get(&d, 0, 5, NOW).unwrap();
    assert_eq!(hit.error, TokenError::SignatureInvalid);
    assert_eq!(hit.hints.sub.as_deref(), Some("alice"));
    assert!(cache.get(&digest("bad.token.herE"), 0, 5, NOW).is_none());
    assert!(cache.get(&d, 1, 5, NOW).is_none(), "another provider");
    assert!(cache.get(&d, 0, 6, NOW).is_none(), "another key set");
    assert!(
        cache.get(&d, 0, 5, NOW).is_none(),
        "dropped once seen under another key set"
    );
}

#[test]
fn no_rejection_that_time_or_a_fetch_may_undo_is_cached() {
    let cache = NegativeCache::new(64);
    let undoable = [
        TokenError::KeyNotFound {
            kid: Some("new".to_owned()),
        },
        TokenError::KeyNotFound { kid: None },
        TokenError::NotYetValid {
            nbf: (NOW + 60) as f64,
            now: NOW,
        },
        TokenError::IssuedInFuture {
            iat: (NOW + 600) as f64,
            now: NOW,
        },
    ];
    for (i, e) in undoable.iter().enumerate() {
        assert!(!is_final(e), "{e}");
        let d = digest(&format!("t{i}"));
        cache.insert(d, 0, 1, NOW, e, &hints());
        assert!(cache.get(&d, 0, 1, NOW).is_none(), "{e}");
    }
    assert_eq!(cache.len(), 0);
    for e in [
        TokenError::SignatureInvalid,
        TokenError::SegmentCount,
        TokenError::IssuerMismatch,
        TokenError::AudienceMismatch,
        TokenError::MissingExp,
        TokenError::Expired {
            exp: (NOW - 1) as f64,
            now: NOW,
        },
    ] {
        assert!(is_final(&e), "{e}");
    }
}

#[test]
fn an_expired_rejection_names_the_time_it_is_asked_at() {
    let cache = NegativeCache::new(8);
    let d = digest("expired");
    let e = TokenError::Expired {
        exp: (NOW - 10) as f64,
        now: NOW,
    };
    cache.insert(d, 0, 1, NOW, &e, &hints());
    let hit = cache.get(&d, 0, 1, NOW + 50).unwrap();
    assert_eq!(
        hit.error,
        TokenError::Expired {
            exp: (NOW - 10) as f64,
            now: NOW + 50
        }
    );
    // A clock stepped back before the time it was decided at: asked again.
    assert!(cache.get(&d, 0, 1, NOW - 1).is_none());
    assert_eq!(cache.len(), 0);
}
