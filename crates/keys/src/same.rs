//! Whether a fetched key set is the one already published: a refresh that finds
//! the same keys publishes no new snapshot, so it bumps no generation and keeps
//! the token cache (issue 18).

use portcullis_jose::{KeyMaterial, KeySet, VerifyingKey};
use subtle::ConstantTimeEq as _;

/// The same keys, in the same order, with the same `kid`s, algorithms and material.
pub(crate) fn same_keys(a: &KeySet, b: &KeySet) -> bool {
    a.len() == b.len() && a.keys().iter().zip(b.keys()).all(|(x, y)| same_key(x, y))
}

fn same_key(a: &VerifyingKey, b: &VerifyingKey) -> bool {
    a.kid() == b.kid()
        && a.algorithms() == b.algorithms()
        && match (a.material(), b.material()) {
            // Secrets compared in constant time, as every secret is.
            (KeyMaterial::Hmac { secret: x }, KeyMaterial::Hmac { secret: y }) => {
                bool::from(x.as_slice().ct_eq(y.as_slice()))
            }
            (x, y) => x == y,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(doc: &str) -> KeySet {
        portcullis_jose::import_keys(
            doc.as_bytes(),
            portcullis_jose::KeyFormat::Detect,
            portcullis_jose::Secrets::Allow,
        )
        .unwrap()
        .keys
    }

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    /// RFC 8032 §7.1, test 2.
    const Y: &str = "PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw";

    fn ed(kid: &str, x: &str) -> String {
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{kid}"}}"#)
    }

    #[test]
    fn the_same_document_is_the_same_set_and_any_change_is_not() {
        let one = format!(r#"{{"keys":[{}]}}"#, ed("a", X));
        assert!(same_keys(&set(&one), &set(&one)));
        let other_kid = format!(r#"{{"keys":[{}]}}"#, ed("b", X));
        assert!(!same_keys(&set(&one), &set(&other_kid)));
        let other_key = format!(r#"{{"keys":[{}]}}"#, ed("a", Y));
        assert!(!same_keys(&set(&one), &set(&other_key)));
        let two = format!(r#"{{"keys":[{},{}]}}"#, ed("a", X), ed("b", X));
        assert!(!same_keys(&set(&one), &set(&two)));
        let pinned = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{X}","kid":"a","alg":"Ed25519"}}]}}"#
        );
        assert!(same_keys(&set(&pinned), &set(&pinned)));
        let s1 = r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        let s2 = r#"{"keys":[{"kty":"oct","kid":"h","k":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert!(same_keys(&set(s1), &set(s1)));
        assert!(!same_keys(&set(s1), &set(s2)));
    }
}
