//! `bench-floor http-verify`: hyper's floor (as `bench-floor http`) plus one raw aws-lc-rs
//! signature check per request, the denominator of issue 17's target 5 ("raw verify + a
//! do-nothing request") measured as one server under the same load as Portcullis.
//!
//! At start it reads every token of TOKENS (one compact JWS per line), finds each one's
//! key in JWKS by `kid`, parses the keys once (as Portcullis does when a key set loads)
//! and decodes each token's signing input and signature. Per request it checks the next
//! token's signature in rotation, so that the inputs change from request to request as
//! they do in the uncached scenarios, and answers 200 (500 if a signature fails, which
//! bench/run's check catches). Nothing is read from the request: no header, no base64,
//! no JSON, no claims; that is all Portcullis's own work and what the target measures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

/// One token, ready for the primitive: which key, what was signed, the signature.
struct Signed {
    key: usize,
    input: Vec<u8>,
    signature: Vec<u8>,
}

/// The parsed keys and the decoded tokens, shared by every connection.
pub(crate) struct Verifier {
    keys: Vec<ParsedPublicKey>,
    tokens: Vec<Signed>,
    next: AtomicUsize,
}

impl Verifier {
    /// Reads TOKENS and JWKS; any token whose key is missing or whose signature does not
    /// verify is an error here, not a 500 under load.
    pub(crate) fn load(tokens: &[u8], jwks: &[u8]) -> std::io::Result<Verifier> {
        let jwks: Value = serde_json::from_slice(jwks).map_err(invalid)?;
        let jwks = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("JWKS has no \"keys\" array"))?;
        let mut kids: Vec<String> = Vec::new();
        let mut keys = Vec::new();
        let mut signed = Vec::new();
        for line in tokens.split(|b| *b == b'\n') {
            // The token is a line's last word (a line may also be `Bearer <token>`).
            let line = line
                .trim_ascii()
                .rsplit(u8::is_ascii_whitespace)
                .next()
                .unwrap_or_default();
            if line.is_empty() {
                continue;
            }
            let (input, sig) = line
                .iter()
                .rposition(|b| *b == b'.')
                .map(|dot| line.split_at(dot))
                .ok_or_else(|| invalid("a token without '.'"))?;
            let header_b64 = input.split(|b| *b == b'.').next().unwrap_or_default();
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).map_err(invalid)?)
                    .map_err(invalid)?;
            let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
            let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
            let key = match kids.iter().position(|k| k == kid) {
                Some(i) => i,
                None => {
                    let jwk = jwks
                        .iter()
                        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
                        .ok_or_else(|| invalid(format!("no key {kid:?} in JWKS")))?;
                    keys.push(parse_key(alg, jwk)?);
                    kids.push(kid.to_owned());
                    keys.len() - 1
                }
            };
            let token = Signed {
                key,
                input: input.to_vec(),
                signature: URL_SAFE_NO_PAD.decode(&sig[1..]).map_err(invalid)?,
            };
            keys[key]
                .verify_sig(&token.input, &token.signature)
                .map_err(|_| invalid(format!("a token signed by {kid:?} does not verify")))?;
            signed.push(token);
        }
        if signed.is_empty() {
            return Err(invalid("no tokens"));
        }
        Ok(Verifier {
            keys,
            tokens: signed,
            next: AtomicUsize::new(0),
        })
    }

    /// The primitive alone, on the next token.
    fn verify_next(&self) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.tokens.len();
        let t = &self.tokens[i];
        self.keys[t.key].verify_sig(&t.input, &t.signature).is_ok()
    }
}

/// The key as Portcullis parses it: RSA from (n, e), EC from the uncompressed point.
fn parse_key(alg: &str, jwk: &Value) -> std::io::Result<ParsedPublicKey> {
    let field = |name: &str| -> std::io::Result<Vec<u8>> {
        let b64 = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("JWK without {name:?}")))?;
        URL_SAFE_NO_PAD.decode(b64).map_err(invalid)
    };
    match alg {
        "RS256" => signature::RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
        .map_err(|e| invalid(format!("RSA key: {e}"))),
        "ES256" => {
            let point = [vec![0x04], field("x")?, field("y")?].concat();
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .map_err(|e| invalid(format!("EC key: {e}")))
        }
        other => Err(invalid(format!("alg {other:?}: only RS256 and ES256"))),
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// Accepts on `addr` until SIGTERM/SIGINT, as `bench-floor http` does.
pub(crate) async fn serve(addr: SocketAddr, verifier: Verifier) -> std::io::Result<()> {
    let verifier = Arc::new(verifier);
    crate::http::serve_each(addr, move || {
        let verifier = Arc::clone(&verifier);
        service_fn(move |_: Request<Incoming>| {
            let ok = verifier.verify_next();
            async move {
                let mut answer = Response::new(Empty::<Bytes>::new());
                if !ok {
                    *answer.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok::<_, Infallible>(answer)
            }
        })
    })
    .await
}
