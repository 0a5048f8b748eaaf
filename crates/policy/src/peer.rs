//! The SPIFFE ID of the client certificate (X.509-SVID: exactly one URI SAN, a
//! SPIFFE ID), for a rule's `peer_spiffe_ids`. Where it is read, in order:
//!
//! 1. `X-Forwarded-Client-Cert` `URI=`, when the request's peer (the connection's
//!    for `/verify`, Envoy's `source.address` for ext_authz, the proxy listener's)
//!    is in `trusted_proxies`: that proxy speaks for its client. From any other
//!    peer the header is ignored.
//! 2. The peer certificate the frontend saw (our TLS listener's client certificate,
//!    Envoy's `source.certificate`, the proxy listener's mTLS peer): its URI SANs.
//! 3. Envoy's `source.principal`, when it is a `spiffe://` URI (Envoy sets it from
//!    the client certificate it verified: the URI SAN first).
//!
//! Anything that cannot be read one way only is no SPIFFE ID: several URI SANs
//! (an X.509-SVID has exactly one), a URI that is not a SPIFFE ID, several XFCC
//! headers or elements, XFCC `URI=` repeated. Pure: no IO.

use std::net::IpAddr;

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::request::AuthRequest;
use crate::spiffe::{SpiffeId, SpiffeIdPattern};

/// `id-ce-subjectAltName` (RFC 5280 §4.2.1.6).
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
/// Longest `X-Forwarded-Client-Cert` read.
const MAX_XFCC_BYTES: usize = 64 * 1024;

/// Where the peer's SPIFFE ID was read.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PeerIdSource {
    /// The client certificate the frontend saw (our TLS, Envoy, the proxy listener).
    Certificate,
    /// Envoy's `source.principal`.
    Principal,
    /// `X-Forwarded-Client-Cert` from a trusted proxy.
    ForwardedClientCert,
}

impl PeerIdSource {
    /// How explain and logs name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            PeerIdSource::Certificate => "client certificate",
            PeerIdSource::Principal => "Envoy source.principal",
            PeerIdSource::ForwardedClientCert => "X-Forwarded-Client-Cert",
        }
    }
}

/// Why the request has no peer SPIFFE ID (for logs and explain; never in a body).
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NoPeerId {
    /// No client certificate, principal or trusted XFCC.
    #[error("no client certificate (X-Forwarded-Client-Cert is read only from trusted_proxies)")]
    Absent,
    /// The certificate does not parse.
    #[error("the {from} is not an X.509 certificate")]
    Certificate {
        /// Where it came from.
        from: &'static str,
    },
    /// No URI SAN.
    #[error("the {from} has no URI SAN")]
    NoUri {
        /// Where it came from.
        from: &'static str,
    },
    /// More than one URI SAN (an X.509-SVID has exactly one).
    #[error("the {from} has {count} URI SANs (an X.509-SVID has exactly one)")]
    SeveralUris {
        /// Where it came from.
        from: &'static str,
        /// How many.
        count: usize,
    },
    /// The one URI is not a SPIFFE ID.
    #[error("the {from}'s URI SAN is not a SPIFFE ID ({why})")]
    NotSpiffe {
        /// Where it came from.
        from: &'static str,
        /// Why.
        why: String,
    },
    /// `X-Forwarded-Client-Cert` cannot be read one way only.
    #[error("X-Forwarded-Client-Cert: {0}")]
    Xfcc(&'static str),
}

/// The SPIFFE ID of the request's client certificate, and where it was read.
///
/// # Errors
/// Why there is none (see the module docs).
pub fn peer_spiffe_id(
    req: &AuthRequest<'_>,
    is_trusted_proxy: impl Fn(IpAddr) -> bool,
) -> Result<(SpiffeId, PeerIdSource), NoPeerId> {
    let trusted = req
        .peer
        .and_then(|p| p.address)
        .is_some_and(|a| is_trusted_proxy(a.ip()));
    if trusted && let Some(uris) = xfcc_uris(req.headers)? {
        let source = PeerIdSource::ForwardedClientCert;
        return one_spiffe_id(&uris, source.as_str()).map(|id| (id, source));
    }
    if let Some(pem) = req.peer.and_then(|p| p.certificate.as_deref()) {
        let source = PeerIdSource::Certificate;
        let uris = uri_sans_of_pem(pem).ok_or(NoPeerId::Certificate {
            from: source.as_str(),
        })?;
        return one_spiffe_id(&uris, source.as_str()).map(|id| (id, source));
    }
    if let Some(principal) = req.peer.and_then(|p| p.principal.as_deref())
        && principal.starts_with("spiffe://")
    {
        let source = PeerIdSource::Principal;
        return one_spiffe_id(&[principal.to_owned()], source.as_str()).map(|id| (id, source));
    }
    Err(NoPeerId::Absent)
}

/// Whether the request's peer SPIFFE ID matches one of `patterns`: `Ok` with the
/// ID and its source, else why not (for the deny's detail).
///
/// # Errors
/// No peer SPIFFE ID, or one no pattern matches.
pub fn check_peer_spiffe_ids(
    patterns: &[SpiffeIdPattern],
    req: &AuthRequest<'_>,
    is_trusted_proxy: impl Fn(IpAddr) -> bool,
) -> Result<(SpiffeId, PeerIdSource), String> {
    let (id, source) = peer_spiffe_id(req, is_trusted_proxy).map_err(|e| e.to_string())?;
    if patterns.iter().any(|p| p.matches(&id)) {
        Ok((id, source))
    } else {
        Err(format!(
            "peer SPIFFE ID {:?} (from the {}) is not among the rule's peer_spiffe_ids",
            clip(id.as_str()),
            source.as_str()
        ))
    }
}

fn one_spiffe_id(uris: &[String], from: &'static str) -> Result<SpiffeId, NoPeerId> {
    match uris {
        [] => Err(NoPeerId::NoUri { from }),
        [one] => SpiffeId::parse(one).map_err(|e| NoPeerId::NotSpiffe {
            from,
            why: e.to_string(),
        }),
        many => Err(NoPeerId::SeveralUris {
            from,
            count: many.len(),
        }),
    }
}

/// The URI SANs of the first certificate of a PEM text (`None`: not a certificate).
pub fn uri_sans_of_pem(text: &str) -> Option<Vec<String>> {
    let block = pem::parse_many(text.as_bytes())
        .ok()?
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")?;
    uri_sans_of_der(block.contents())
}

/// The URI SANs of a DER certificate (`None`: not a certificate, or a SAN
/// extension that does not parse).
pub fn uri_sans_of_der(der: &[u8]) -> Option<Vec<String>> {
    let cert = Certificate::from_der(der).ok()?;
    let mut uris = Vec::new();
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let mut sans = extensions.iter().filter(|e| e.extn_id == SUBJECT_ALT_NAME);
    let Some(san) = sans.next() else {
        return Some(uris);
    };
    // RFC 5280 §4.2: an extension appears at most once.
    if sans.next().is_some() {
        return None;
    }
    let names = SubjectAltName::from_der(san.extn_value.as_bytes()).ok()?;
    for name in names.0 {
        if let GeneralName::UniformResourceIdentifier(uri) = name {
            uris.push(uri.as_str().to_owned());
        }
    }
    Some(uris)
}

/// The `URI=` values of the one element of `X-Forwarded-Client-Cert` (`None`: no
/// header). Envoy writes one `URI=` per URI SAN; they are all returned, so that
/// several are refused like several SANs.
fn xfcc_uris(headers: &http::HeaderMap) -> Result<Option<Vec<String>>, NoPeerId> {
    let mut values = headers.get_all("x-forwarded-client-cert").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(NoPeerId::Xfcc("several headers"));
    }
    let text = value.to_str().map_err(|_| NoPeerId::Xfcc("not ASCII"))?;
    if text.len() > MAX_XFCC_BYTES {
        return Err(NoPeerId::Xfcc("too long"));
    }
    let elements = crate::spiffe::split_unquoted(text, ',');
    if elements.len() != 1 {
        return Err(NoPeerId::Xfcc(
            "several elements (a chain of proxies): which one is the client cannot be told",
        ));
    }
    let mut uris = Vec::new();
    let mut cert = None;
    for pair in crate::spiffe::split_unquoted(elements[0], ';') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(NoPeerId::Xfcc("a pair without '='"));
        };
        let key = key.trim();
        if key.eq_ignore_ascii_case("uri") {
            uris.push(crate::spiffe::unquote(value.trim()));
        } else if key.eq_ignore_ascii_case("cert") {
            if cert.is_some() {
                return Err(NoPeerId::Xfcc("Cert repeated"));
            }
            cert = Some(crate::spiffe::unquote(value.trim()));
        }
    }
    // No `URI=`: the URI SANs of the `Cert=` the proxy passed, if any.
    if uris.is_empty()
        && let Some(cert) = cert
    {
        let pem = percent_encoding::percent_decode_str(&cert)
            .decode_utf8()
            .map_err(|_| NoPeerId::Xfcc("Cert is not UTF-8"))?;
        return uri_sans_of_pem(&pem)
            .map(Some)
            .ok_or(NoPeerId::Xfcc("Cert is not a PEM certificate"));
    }
    Ok(Some(uris))
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
