use http::{HeaderMap, HeaderValue};
use portcullis_jose::{Claims, Header};
use serde_json::json;

use super::*;
use crate::request::Peer;

fn header(json: serde_json::Value) -> Header {
    Header::from_json(json.to_string().as_bytes()).unwrap()
}

fn claims(json: serde_json::Value) -> Claims {
    Claims::from_json(json.to_string().as_bytes()).unwrap()
}

#[test]
fn allows_valid_spiffe_ids() {
    for ok in [
        "spiffe://example.org",
        "spiffe://example.org/ns/default/sa/frontend",
        "spiffe://a-b_c.9/x.y-z_0/A",
    ] {
        let id = SpiffeId::parse(ok).unwrap();
        assert_eq!(id.as_str(), ok);
    }
    let id = SpiffeId::parse("spiffe://example.org/ns/a").unwrap();
    assert_eq!(id.trust_domain(), "example.org");
    assert_eq!(id.path(), "/ns/a");
}

#[test]
fn denies_invalid_spiffe_ids() {
    for bad in [
        "",
        "spiffe:/example.org",
        "SPIFFE://example.org",
        "https://example.org/a",
        "spiffe://",
        "spiffe:///a",
        "spiffe://Example.org/a",
        "spiffe://example.org:443/a",
        "spiffe://user@example.org/a",
        "spiffe://example.org/",
        "spiffe://example.org//a",
        "spiffe://example.org/a/",
        "spiffe://example.org/./a",
        "spiffe://example.org/a/..",
        "spiffe://example.org/a?b",
        "spiffe://example.org/a#b",
        "spiffe://example.org/a%2Fb",
        "spiffe://example.org/*",
        "spiffe://example.org/a b",
    ] {
        assert!(SpiffeId::parse(bad).is_err(), "{bad:?} parsed");
    }
    assert!(SpiffeId::parse(&format!("spiffe://example.org/{}", "a".repeat(2100))).is_err());
}

#[test]
fn patterns_match_one_segment_per_star() {
    let p = SpiffeIdPattern::parse("spiffe://example.org/ns/*/sa/web").unwrap();
    let m = |s: &str| p.matches(&SpiffeId::parse(s).unwrap());
    assert!(m("spiffe://example.org/ns/default/sa/web"));
    assert!(m("spiffe://example.org/ns/prod/sa/web"));
    assert!(!m("spiffe://example.org/ns/a/b/sa/web"));
    assert!(!m("spiffe://example.org/ns/sa/web"));
    assert!(!m("spiffe://example.org/ns/default/sa/web/extra"));
    assert!(!m("spiffe://example.org/ns/default/sa/Web"));
    assert!(!m("spiffe://other.org/ns/default/sa/web"));
    let exact = SpiffeIdPattern::parse("spiffe://example.org/a").unwrap();
    assert!(exact.matches(&SpiffeId::parse("spiffe://example.org/a").unwrap()));
    assert!(!exact.matches(&SpiffeId::parse("spiffe://example.org").unwrap()));
    assert!(!exact.matches(&SpiffeId::parse("spiffe://example.org/a/b").unwrap()));
    let root = SpiffeIdPattern::parse("spiffe://example.org").unwrap();
    assert!(root.matches(&SpiffeId::parse("spiffe://example.org").unwrap()));
    assert!(!root.matches(&SpiffeId::parse("spiffe://example.org/a").unwrap()));
    for bad in [
        "spiffe://*/a",
        "spiffe://example.org/a*",
        "spiffe://example.org/**",
    ] {
        assert!(SpiffeIdPattern::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn svid_rules() {
    let h = header(json!({"alg": "ES256", "kid": "k"}));
    let good = claims(json!({"sub": "spiffe://example.org/a", "aud": ["x"], "exp": 1}));
    assert_eq!(
        check_svid(&h, &good, "example.org").unwrap().as_str(),
        "spiffe://example.org/a"
    );
    for typ in ["JWT", "JOSE"] {
        let h = header(json!({"alg": "ES256", "typ": typ}));
        assert!(check_svid(&h, &good, "example.org").is_ok());
    }
    let h_bad = header(json!({"alg": "ES256", "typ": "at+jwt"}));
    assert!(matches!(
        check_svid(&h_bad, &good, "example.org"),
        Err(InvalidSvid::Type { .. })
    ));
    assert!(matches!(
        check_svid(&h, &good, "other.org"),
        Err(InvalidSvid::TrustDomain { .. })
    ));
    for (c, want) in [
        (json!({"sub": "spiffe://example.org/a", "exp": 1}), "aud"),
        (
            json!({"sub": "spiffe://example.org/a", "aud": [], "exp": 1}),
            "aud",
        ),
        (
            json!({"sub": "spiffe://example.org/a", "aud": "", "exp": 1}),
            "aud",
        ),
        (json!({"aud": "x", "exp": 1}), "sub"),
        (json!({"sub": "alice", "aud": "x", "exp": 1}), "SPIFFE"),
        (
            json!({"sub": "spiffe://example.org/a/", "aud": "x"}),
            "SPIFFE",
        ),
    ] {
        let e = check_svid(&h, &claims(c), "example.org").unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}

const CERT_A: &str = "-----BEGIN CERTIFICATE-----\nMIIBXTCCAQOgAwIBAgIUB0W6fKQ3iYf6o2m2c1Ygq0E0n5gwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

fn thumb(pem: &str) -> [u8; 32] {
    thumbprint_of_pem(pem).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn binding_reads_the_token_cnf() {
    let t = thumb(CERT_A);
    let x5t = portcullis_jose::b64::encode(&t);
    let c = claims(json!({"cnf": {"x5t#S256": x5t}}));
    let b = CertificateBinding::from_claims(&c).unwrap().unwrap();
    assert!(b.is_met_by(&t));
    assert!(!b.is_met_by(&[0; 32]));
    assert!(
        CertificateBinding::from_claims(&claims(json!({})))
            .unwrap()
            .is_none()
    );
    assert!(
        CertificateBinding::from_claims(&claims(json!({"cnf": {"jkt": "x"}})))
            .unwrap()
            .is_none()
    );
    for bad in [
        json!({"cnf": "x"}),
        json!({"cnf": {"x5t#S256": 5}}),
        json!({"cnf": {"x5t#S256": "AAAA"}}),
        json!({"cnf": {"x5t#S256": format!("{x5t}=")}}),
    ] {
        assert!(CertificateBinding::from_claims(&claims(bad)).is_err());
    }
}

#[test]
fn client_certificate_from_peer_then_xfcc() {
    let t = thumb(CERT_A);
    let none = HeaderMap::new();
    assert_eq!(client_certificate_thumbprint(None, &none), Ok(None));
    let peer = Peer {
        address: None,
        certificate: Some(CERT_A.to_owned()),
        principal: None,
    };
    assert_eq!(
        client_certificate_thumbprint(Some(&peer), &none),
        Ok(Some(t))
    );
    let bad_peer = Peer {
        address: None,
        certificate: Some("not pem".to_owned()),
        principal: None,
    };
    assert!(client_certificate_thumbprint(Some(&bad_peer), &none).is_err());

    let xfcc = |v: &str| {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-client-cert", HeaderValue::from_str(v).unwrap());
        client_certificate_thumbprint(None, &h)
    };
    let encoded: String =
        percent_encoding::utf8_percent_encode(CERT_A, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    assert_eq!(xfcc(&format!("Hash={}", hex(&t))), Ok(Some(t)));
    assert_eq!(
        xfcc(&format!(
            "By=spiffe://example.org/b;Hash={};Cert=\"{encoded}\";URI=spiffe://example.org/a",
            hex(&t)
        )),
        Ok(Some(t))
    );
    assert_eq!(xfcc(&format!("Cert=\"{encoded}\"")), Ok(Some(t)));
    assert_eq!(xfcc("By=spiffe://example.org/b"), Ok(None));
    for bad in [
        format!("Hash={};Cert=\"{encoded}\"", hex(&[1; 32])),
        format!("Hash={},Hash={}", hex(&t), hex(&t)),
        format!("Hash={};Hash={}", hex(&t), hex(&t)),
        "Hash=abc".to_owned(),
        "Hash".to_owned(),
        "Cert=\"nope\"".to_owned(),
    ] {
        assert!(xfcc(&bad).is_err(), "{bad}");
    }
    let mut two = HeaderMap::new();
    two.append(
        "x-forwarded-client-cert",
        HeaderValue::from_str(&format!("Hash={}", hex(&t))).unwrap(),
    );
    two.append(
        "x-forwarded-client-cert",
        HeaderValue::from_str(&format!("Hash={}", hex(&t))).unwrap(),
    );
    assert!(client_certificate_thumbprint(None, &two).is_err());
}
