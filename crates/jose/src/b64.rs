//! Strict base64url (RFC 7515 §2): no padding, no `+`/`/`, no whitespace, canonical trailing bits.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The one engine we decode and encode with. Its config rejects padding and
/// non-zero trailing bits, so only the canonical encoding of a byte string decodes.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes canonical unpadded base64url, or `None`.
pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    STRICT.decode(input).ok()
}

/// Decodes into a caller-owned buffer (cleared first), so hot paths can reuse it.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    STRICT.decode_vec(input, out).is_ok()
}

/// Decodes into a caller-owned slice; `None` when not canonical or longer than `out`.
pub fn decode_to_slice(input: &[u8], out: &mut [u8]) -> Option<usize> {
    STRICT.decode_slice(input, out).ok()
}

/// Encodes unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    STRICT.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_non_canonical_forms() {
        assert_eq!(decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert!(decode(b"Zm9=").is_none(), "padding");
        assert!(decode(b"Zm8=").is_none(), "padding");
        assert_eq!(decode(b"Zm8").as_deref(), Some(&b"fo"[..]));
        assert!(decode(b"Zm9").is_none(), "non-zero trailing bits");
        assert!(decode(b"Zm-").is_none(), "non-zero trailing bits");
        assert!(decode(b"a+b/").is_none(), "standard alphabet");
        assert!(decode(b"Zm 9v").is_none(), "whitespace");
        assert!(decode(b"Zm9v\n").is_none(), "newline");
        assert!(decode(b"Z").is_none(), "impossible length");
        assert_eq!(decode(b"").as_deref(), Some(&b""[..]));
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let enc = encode(&bytes);
            prop_assert!(!enc.contains(['=', '+', '/']));
            prop_assert_eq!(decode(enc.as_bytes()), Some(bytes));
        }

        #[test]
        fn decoding_is_canonical(s in "[A-Za-z0-9_=+/ -]{0,40}") {
            // Whatever decodes must re-encode to exactly the input.
            if let Some(bytes) = decode(s.as_bytes()) {
                prop_assert_eq!(encode(&bytes), s);
            }
        }
    }
}
