//! Issue 14 (a newcomer run): `X-Forwarded-Host: api.example.com:443` with a
//! matching `X-Original-URL` is one host, not a contradiction (ports are ignored
//! in matching), and a different host still is. The real binary, no peer.

use std::time::Duration;

use portcullis_test_util::Portcullis;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

#[test]
fn a_port_on_the_forwarded_host_is_no_contradiction() {
    let p = Portcullis::start(
        BIN,
        "rules:\n  - name: open\n    match: {host: api.example.com}\n    allow: anonymous\n",
    );
    p.wait_ready(Duration::from_secs(10));
    for url in ["https://api.example.com/x", "https://api.example.com:443/x"] {
        let r = p.verify(&[
            ("x-forwarded-host", "api.example.com:443"),
            ("x-original-url", url),
        ]);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
    }
    let r = p.verify(&[
        ("x-forwarded-host", "other.example.com:443"),
        ("x-original-url", "https://api.example.com/x"),
    ]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["reason"], "request_invalid");
}
