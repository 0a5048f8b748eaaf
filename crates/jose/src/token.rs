//! Compact JWS parsing (RFC 7515 §7.1): borrowed segments, strict header.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::b64;
use crate::error::{Segment, TokenError, printable};
use crate::json;

/// Default cap on a token's total length, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The protected header of a JWS, after the checks every token must pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    alg: Algorithm,
    members: Map<String, Value>,
}

impl Header {
    /// Parses and checks a header's JSON.
    ///
    /// # Errors
    /// Not strict JSON; `alg` missing, `none` or unknown; `crit`, `b64`, `zip`,
    /// `enc` present; `cty` naming a nested JWT; `kid`/`typ` not strings.
    pub fn from_json(bytes: &[u8]) -> Result<Header, TokenError> {
        let members = json::parse_object(bytes).map_err(|problem| TokenError::InvalidJson {
            segment: Segment::Header,
            problem,
        })?;
        // `enc` means JWE; `zip` is JWE-only; `b64` (RFC 7797) changes what is signed;
        // we implement no `crit` extension, so any `crit` is refused (RFC 7515 §4.1.11).
        for name in ["crit", "b64", "zip", "enc"] {
            if members.contains_key(name) {
                return Err(TokenError::UnsupportedHeader { name });
            }
        }
        let alg = match members.get("alg") {
            Some(Value::String(name)) => match Algorithm::try_from_name(name) {
                Ok(alg) => alg,
                Err(e) if e.is_registered() => {
                    return Err(TokenError::UnsupportedAlgorithm { alg: e.name });
                }
                Err(_) => {
                    return Err(TokenError::AlgorithmNotAllowed {
                        alg: printable(name),
                    });
                }
            },
            Some(_) => {
                return Err(TokenError::AlgorithmNotAllowed {
                    alg: "(not a string)".to_owned(),
                });
            }
            None => {
                return Err(TokenError::AlgorithmNotAllowed {
                    alg: "(missing)".to_owned(),
                });
            }
        };
        optional_string(&members, "kid")?;
        optional_string(&members, "typ")?;
        // RFC 7515 §4.1.10: `application/` may be omitted; compare without it.
        if let Some(cty) = optional_string(&members, "cty")?
            && strip_application(cty).eq_ignore_ascii_case("JWT")
        {
            return Err(TokenError::UnsupportedHeader { name: "cty" });
        }
        Ok(Header { alg, members })
    }

    /// The signature algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.members.get("kid").and_then(Value::as_str)
    }

    /// The media type of the token.
    pub fn typ(&self) -> Option<&str> {
        self.members.get("typ").and_then(Value::as_str)
    }

    /// Every member, as parsed.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }
}

fn optional_string<'m>(
    members: &'m Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'m str>, TokenError> {
    match members.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::InvalidJson {
            segment: Segment::Header,
            problem: format!("{name} is not a string"),
        }),
    }
}

/// A media type without its optional `application/` prefix (RFC 7515 §4.1.9, §4.1.10).
pub(crate) fn strip_application(media_type: &str) -> &str {
    match media_type.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &media_type[12..],
        _ => media_type,
    }
}

/// A compact JWS split into its segments, with its header parsed and checked.
/// The segments borrow from the token; nothing else is decoded yet.
#[derive(Clone, Debug)]
pub struct CompactJws<'a> {
    token: &'a str,
    header: Header,
    payload_b64: &'a str,
    signature_b64: &'a str,
    signing_input_len: usize,
}

impl<'a> CompactJws<'a> {
    /// Splits and checks a compact JWS of at most `max_bytes`.
    ///
    /// # Errors
    /// Too long, not three segments, header not canonical base64url or not a
    /// strict, acceptable header.
    pub fn parse(token: &'a str, max_bytes: usize) -> Result<CompactJws<'a>, TokenError> {
        if token.len() > max_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: max_bytes,
            });
        }
        let mut parts = token.splitn(4, '.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::SegmentCount);
        };
        let header_bytes = b64::decode(header_b64.as_bytes()).ok_or(TokenError::InvalidBase64 {
            segment: Segment::Header,
        })?;
        let header = Header::from_json(&header_bytes)?;
        Ok(CompactJws {
            token,
            header,
            payload_b64,
            signature_b64,
            signing_input_len: header_b64.len() + 1 + payload_b64.len(),
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The checked header, moved out.
    pub fn into_header(self) -> Header {
        self.header
    }

    /// Decodes the signature into `out` (a caller-owned buffer, e.g. on the stack) and
    /// returns its length.
    ///
    /// # Errors
    /// Not canonical base64url, or longer than `out`.
    pub fn signature_into(&self, out: &mut [u8]) -> Result<usize, TokenError> {
        b64::decode_to_slice(self.signature_b64.as_bytes(), out).ok_or(TokenError::InvalidBase64 {
            segment: Segment::Signature,
        })
    }

    /// The bytes the signature covers: `BASE64URL(header) || '.' || BASE64URL(payload)`.
    pub fn signing_input(&self) -> &'a [u8] {
        &self.token.as_bytes()[..self.signing_input_len]
    }

    /// The decoded signature.
    ///
    /// # Errors
    /// Not canonical base64url.
    pub fn signature(&self) -> Result<Vec<u8>, TokenError> {
        b64::decode(self.signature_b64.as_bytes()).ok_or(TokenError::InvalidBase64 {
            segment: Segment::Signature,
        })
    }

    /// The decoded payload.
    ///
    /// # Errors
    /// Not canonical base64url.
    pub fn payload(&self) -> Result<Cow<'a, [u8]>, TokenError> {
        b64::decode(self.payload_b64.as_bytes())
            .map(Cow::Owned)
            .ok_or(TokenError::InvalidBase64 {
                segment: Segment::Payload,
            })
    }

    /// The whole token.
    pub fn as_str(&self) -> &'a str {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            b64::encode(header.as_bytes()),
            b64::encode(payload.as_bytes())
        )
    }

    fn reason(t: &str) -> &'static str {
        CompactJws::parse(t, DEFAULT_MAX_TOKEN_BYTES)
            .map(|_| "ok")
            .unwrap_or_else(|e| e.reason().as_str())
    }

    #[test]
    fn refuses_none_in_every_spelling() {
        for alg in ["none", "None", "NONE", "nOnE", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), "{}");
            assert_eq!(reason(&t), "algorithm_not_allowed", "{alg}");
        }
        assert_eq!(
            reason(&token(r#"{"alg":null}"#, "{}")),
            "algorithm_not_allowed"
        );
        assert_eq!(reason(&token(r#"{}"#, "{}")), "algorithm_not_allowed");
    }

    #[test]
    fn refuses_unsupported_header_members() {
        for h in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#,
            r#"{"alg":"RS256","zip":"DEF"}"#,
            r#"{"alg":"RS256","enc":"A128GCM"}"#,
            r#"{"alg":"RS256","cty":"JWT"}"#,
            r#"{"alg":"RS256","cty":"application/jwt"}"#,
            r#"{"alg":"RS256","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":7}"#,
        ] {
            assert_eq!(reason(&token(h, "{}")), "token_malformed", "{h}");
        }
        assert_eq!(
            reason(&token(r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#, "{}")),
            "ok"
        );
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(reason("a.b"), "token_malformed");
        assert_eq!(reason("a.b.c.d"), "token_malformed");
        assert_eq!(reason("a.b.c.d.e"), "token_malformed");
        assert_eq!(reason(&".".repeat(1_000_000)), "token_malformed");
        let padded = format!("{}=.e30.c2ln", b64::encode(br#"{"alg":"RS256"}"#));
        assert_eq!(reason(&padded), "token_malformed");
        let big = token(r#"{"alg":"RS256"}"#, &"x".repeat(20_000));
        assert!(matches!(
            CompactJws::parse(&big, DEFAULT_MAX_TOKEN_BYTES),
            Err(TokenError::TooLarge { .. })
        ));
    }

    #[test]
    fn signing_input_is_the_first_two_segments() {
        let t = token(r#"{"alg":"ES256"}"#, "{}");
        let jws = CompactJws::parse(&t, DEFAULT_MAX_TOKEN_BYTES).unwrap();
        assert_eq!(
            jws.signing_input(),
            t.rsplit_once('.').unwrap().0.as_bytes()
        );
        assert_eq!(jws.signature().unwrap(), b"sig");
        assert_eq!(&*jws.payload().unwrap(), b"{}");
    }
}
