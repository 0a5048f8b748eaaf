//! Certificate-bound tokens (RFC 8705 §3): a token whose `cnf` holds `x5t#S256` is
//! valid only when presented over a connection whose client certificate has that
//! SHA-256 thumbprint. The certificate is the one the frontend saw (Envoy's
//! `source.certificate`, the proxy listener's mTLS peer), else the one the proxy
//! names in `X-Forwarded-Client-Cert` (which the proxy must set, not pass through:
//! Envoy's default `SANITIZE`).

use aws_lc_rs::digest;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use portcullis_jose::{Claims, b64};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::request::Peer;

/// Longest `X-Forwarded-Client-Cert` read.
const MAX_XFCC_BYTES: usize = 64 * 1024;

/// The thumbprint a token is bound to (`cnf.x5t#S256`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct CertificateBinding {
    thumbprint: [u8; 32],
}

impl CertificateBinding {
    /// The binding `claims` ask for: `None` without `cnf.x5t#S256`.
    ///
    /// # Errors
    /// A `cnf` that is not an object, or an `x5t#S256` that is not the base64url of
    /// 32 bytes (the token is then malformed).
    pub fn from_claims(claims: &Claims) -> Result<Option<CertificateBinding>, &'static str> {
        let Some(cnf) = claims.get("cnf") else {
            return Ok(None);
        };
        let Value::Object(cnf) = cnf else {
            return Err("`cnf` is not an object");
        };
        let Some(x5t) = cnf.get("x5t#S256") else {
            return Ok(None);
        };
        let thumbprint = x5t
            .as_str()
            .and_then(|s| b64::decode(s.as_bytes()))
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .ok_or("`cnf.x5t#S256` is not the base64url of a SHA-256 digest")?;
        Ok(Some(CertificateBinding { thumbprint }))
    }

    /// Whether the presented certificate's thumbprint is the bound one.
    pub fn is_met_by(&self, presented: &[u8; 32]) -> bool {
        self.thumbprint.ct_eq(presented).into()
    }
}

/// The SHA-256 thumbprint of the first certificate of a PEM text.
pub fn thumbprint_of_pem(text: &str) -> Option<[u8; 32]> {
    let block = pem::parse_many(text.as_bytes())
        .ok()?
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")?;
    Some(sha256(block.contents()))
}

/// The thumbprint of the client certificate of the original request: the peer's
/// (when the frontend saw it), else the one `X-Forwarded-Client-Cert` names.
///
/// # Errors
/// A certificate or header that cannot be read one way only (several
/// `X-Forwarded-Client-Cert` headers or elements, a `Cert` that is no PEM, a `Hash`
/// that is no SHA-256, a `Cert` and a `Hash` that disagree).
pub fn client_certificate_thumbprint(
    peer: Option<&Peer>,
    headers: &HeaderMap,
) -> Result<Option<[u8; 32]>, &'static str> {
    if let Some(pem) = peer.and_then(|p| p.certificate.as_deref()) {
        return thumbprint_of_pem(pem)
            .map(Some)
            .ok_or("the peer certificate is not a PEM certificate");
    }
    let mut values = headers.get_all("x-forwarded-client-cert").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("several X-Forwarded-Client-Cert headers");
    }
    let text = value
        .to_str()
        .map_err(|_| "X-Forwarded-Client-Cert is not ASCII")?;
    if text.len() > MAX_XFCC_BYTES {
        return Err("X-Forwarded-Client-Cert is too long");
    }
    xfcc_thumbprint(text)
}

/// The thumbprint one XFCC element names (`Hash=` hex, `Cert=` URL-encoded PEM).
fn xfcc_thumbprint(text: &str) -> Result<Option<[u8; 32]>, &'static str> {
    let elements = split_unquoted(text, ',');
    if elements.len() != 1 {
        return Err("X-Forwarded-Client-Cert names several certificates");
    }
    let mut hash = None;
    let mut cert = None;
    for pair in split_unquoted(elements[0], ';') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err("X-Forwarded-Client-Cert holds a pair without '='");
        };
        let value = unquote(value.trim());
        match key.trim().to_ascii_lowercase().as_str() {
            "hash" => {
                if hash.is_some() {
                    return Err("X-Forwarded-Client-Cert repeats Hash");
                }
                hash = Some(hex32(&value).ok_or("X-Forwarded-Client-Cert Hash is no SHA-256")?);
            }
            "cert" => {
                if cert.is_some() {
                    return Err("X-Forwarded-Client-Cert repeats Cert");
                }
                let pem = percent_decode_str(&value)
                    .decode_utf8()
                    .map_err(|_| "X-Forwarded-Client-Cert Cert is not UTF-8")?;
                cert = Some(
                    thumbprint_of_pem(&pem)
                        .ok_or("X-Forwarded-Client-Cert Cert is not a PEM certificate")?,
                );
            }
            _ => {}
        }
    }
    match (cert, hash) {
        (Some(c), Some(h)) if c != h => Err("X-Forwarded-Client-Cert Cert and Hash disagree"),
        (Some(c), _) => Ok(Some(c)),
        (None, h) => Ok(h),
    }
}

/// Splits at `sep` outside double quotes (a `\` escapes the next character).
pub(crate) fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

pub(crate) fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
