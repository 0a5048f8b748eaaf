//! The peer SPIFFE ID: where it is read, and what is refused. Certificates made
//! with the openssl CLI (`testdata/`).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::request::Peer;

const ONE: &str = include_str!("testdata/one.pem");
const TWO: &str = include_str!("testdata/two.pem");
const HTTP: &str = include_str!("testdata/http.pem");
const NONE: &str = include_str!("testdata/none.pem");
const DNS: &str = include_str!("testdata/dns.pem");

fn id_of(peer: Option<&Peer>, headers: &HeaderMap, trusted: bool) -> Result<String, NoPeerId> {
    let method = Method::GET;
    let mut req = AuthRequest::new(&method, "api.test", "/", headers);
    req.peer = peer;
    peer_spiffe_id(&req, |_: IpAddr| trusted).map(|(id, _)| id.as_str().to_owned())
}

fn cert_peer(pem: &str) -> Peer {
    Peer {
        address: Some(SocketAddr::from(([127, 0, 0, 1], 5000))),
        certificate: Some(pem.to_owned()),
        principal: None,
    }
}

fn xfcc(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append(
        "x-forwarded-client-cert",
        HeaderValue::from_str(value).unwrap(),
    );
    h
}

fn encoded(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn reads_the_one_uri_san_of_the_peer_certificate() {
    let none = HeaderMap::new();
    assert_eq!(
        id_of(Some(&cert_peer(ONE)), &none, false),
        Ok("spiffe://example.org/ns/default/sa/web".to_owned())
    );
    assert_eq!(
        uri_sans_of_pem(TWO),
        Some(vec![
            "spiffe://example.org/a".to_owned(),
            "spiffe://example.org/b".to_owned()
        ])
    );
}

#[test]
fn refuses_two_uri_sans_a_non_spiffe_uri_and_none() {
    let none = HeaderMap::new();
    assert!(matches!(
        id_of(Some(&cert_peer(TWO)), &none, false),
        Err(NoPeerId::SeveralUris { count: 2, .. })
    ));
    assert!(matches!(
        id_of(Some(&cert_peer(HTTP)), &none, false),
        Err(NoPeerId::NotSpiffe { .. })
    ));
    assert!(matches!(
        id_of(Some(&cert_peer(NONE)), &none, false),
        Err(NoPeerId::NoUri { .. })
    ));
    assert!(matches!(
        id_of(Some(&cert_peer(DNS)), &none, false),
        Err(NoPeerId::NoUri { .. })
    ));
    assert!(matches!(
        id_of(Some(&cert_peer("not a certificate")), &none, false),
        Err(NoPeerId::Certificate { .. })
    ));
    assert_eq!(id_of(None, &none, false), Err(NoPeerId::Absent));
}

#[test]
fn reads_xfcc_only_from_a_trusted_proxy() {
    let h = xfcc("By=spiffe://example.org/envoy;Hash=00;URI=spiffe://example.org/ns/a/sa/b");
    let proxy = Peer {
        address: Some(SocketAddr::from(([10, 0, 0, 1], 5000))),
        certificate: None,
        principal: None,
    };
    assert_eq!(
        id_of(Some(&proxy), &h, true),
        Ok("spiffe://example.org/ns/a/sa/b".to_owned())
    );
    // Untrusted: ignored (not read), so there is no ID.
    assert_eq!(id_of(Some(&proxy), &h, false), Err(NoPeerId::Absent));
    // No peer address: never trusted.
    assert_eq!(id_of(None, &h, true), Err(NoPeerId::Absent));
    // Untrusted XFCC never overrides the peer's own certificate.
    assert_eq!(
        id_of(Some(&cert_peer(ONE)), &h, false),
        Ok("spiffe://example.org/ns/default/sa/web".to_owned())
    );
}

#[test]
fn refuses_xfcc_that_cannot_be_read_one_way() {
    let proxy = cert_peer(ONE);
    for (value, want) in [
        (
            "URI=spiffe://example.org/a,URI=spiffe://example.org/b",
            "several elements",
        ),
        (
            "URI=spiffe://example.org/a;URI=spiffe://example.org/b",
            "2 URI",
        ),
        ("URI=https://example.org/a", "not a SPIFFE ID"),
        ("Hash=00;Subject=\"CN=x\"", "no URI SAN"),
        ("URI", "without '='"),
    ] {
        let got = id_of(Some(&proxy), &xfcc(value), true);
        let text = got
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(text.contains(want), "{value}: {got:?}");
    }
    let mut two = xfcc("URI=spiffe://example.org/a");
    two.append(
        "x-forwarded-client-cert",
        HeaderValue::from_static("URI=spiffe://example.org/a"),
    );
    assert!(matches!(
        id_of(Some(&proxy), &two, true),
        Err(NoPeerId::Xfcc("several headers"))
    ));
}

#[test]
fn reads_xfcc_cert_when_it_names_no_uri() {
    let h = xfcc(&format!("Hash=00;Cert=\"{}\"", encoded(ONE)));
    let proxy = Peer {
        address: Some(SocketAddr::from(([10, 0, 0, 1], 5000))),
        ..Peer::default()
    };
    assert_eq!(
        id_of(Some(&proxy), &h, true),
        Ok("spiffe://example.org/ns/default/sa/web".to_owned())
    );
}

#[test]
fn reads_envoys_principal_when_it_is_a_spiffe_id() {
    let none = HeaderMap::new();
    let with = |p: &str| Peer {
        address: None,
        certificate: None,
        principal: Some(p.to_owned()),
    };
    assert_eq!(
        id_of(Some(&with("spiffe://example.org/web")), &none, false),
        Ok("spiffe://example.org/web".to_owned())
    );
    // A DNS SAN or a subject is no SPIFFE ID.
    assert_eq!(
        id_of(Some(&with("web.example.org")), &none, false),
        Err(NoPeerId::Absent)
    );
}

#[test]
fn matches_patterns_with_one_segment_wildcards() {
    let none = HeaderMap::new();
    let method = Method::GET;
    let peer = cert_peer(ONE);
    let mut req = AuthRequest::new(&method, "api.test", "/", &none);
    req.peer = Some(&peer);
    let pats = |list: &[&str]| -> Vec<SpiffeIdPattern> {
        list.iter()
            .map(|p| SpiffeIdPattern::parse(p).unwrap())
            .collect()
    };
    assert!(
        check_peer_spiffe_ids(&pats(&["spiffe://example.org/ns/*/sa/web"]), &req, |_| {
            false
        })
        .is_ok()
    );
    assert!(check_peer_spiffe_ids(&pats(&["spiffe://example.org/ns/*"]), &req, |_| false).is_err());
    assert!(
        check_peer_spiffe_ids(
            &pats(&["spiffe://other.org/ns/default/sa/web"]),
            &req,
            |_| { false }
        )
        .is_err()
    );
}
