//! Fuzzing entry points: config parsing and deciding on arbitrary requests.
//! Thin `fuzz/` targets call these; they must never panic, whatever the input.

use std::path::Path;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config;
use crate::engine::Engine;
use crate::request::AuthRequest;

mod reference;
mod workload;

pub use reference::differential;
pub use workload::workload;

const NOW: i64 = 1_700_000_000;

/// A config: parse it (every error path), and when it is valid, compile it and
/// decide a few requests against it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| {
        (name == "SECRET").then(|| "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA".to_owned())
    };
    let Ok(config) = config::parse(text, "fuzz.yaml", Path::new("/nonexistent"), &env) else {
        return;
    };
    let engine = Engine::with_static_keys(config);
    let headers = HeaderMap::new();
    for (method, host, path) in [
        (Method::GET, "api.example.com", "/"),
        (Method::POST, "a.b", "/admin/x/../y?q=1"),
        (Method::DELETE, "", ""),
    ] {
        let _ = engine.decide(&AuthRequest::new(&method, host, path, &headers), NOW);
    }
}

/// A request, as lines: method, host, path, then `name: value` headers; decided by a
/// fixed engine (HS256 provider reading headers, cookies and a query parameter).
pub fn request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("GET");
    let host = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("/");
    let mut headers = HeaderMap::new();
    for line in lines.take(64) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let engine = fixed_engine();
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut req = AuthRequest::new(&method, host, path, &headers);
    let _ = engine.decide(&req, NOW);
    let extra = [("groups".to_owned(), host.to_owned())];
    req.extra_claims = &extra;
    req.rule = Some("admin");
    if let crate::Decision::Deny(d) = engine.decide(&req, NOW) {
        let _ = (d.www_authenticate(), d.body());
    }
}

/// The engine `request` decides with, built once.
pub fn fixed_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let text = r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    jwks:
      inline: {"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h"}]}
    from:
      - {header: Authorization, prefix: "Bearer "}
      - {cookie: session}
      - {query: access_token}
    claims_to_headers:
      - {header: x-user, claim: sub}
rules:
  - name: public
    match: {path: ["/public/**", "/health*"], methods: [GET, HEAD]}
    allow: anonymous
  - name: admin
    match: {host: "*.example.com", path: "/admin/**"}
    claims: {groups: [admins], "realm.roles": [root]}
    scopes: [write]
    headers: {x-tenant: "t={{ claims.tenant }}"}
  - name: default
    match: {}
"#;
        match config::parse(text, "fixed.yaml", Path::new("."), &|_| None) {
            Ok(c) => Engine::with_static_keys(c),
            // The text above is fixed and valid (a unit test proves it); an empty
            // engine would still decide (no_rule) without panicking.
            Err(_) => Engine::new(config::Config {
                listen: config::Listen::default(),
                providers: Vec::new(),
                rules: Vec::new(),
                limits: config::Limits::default(),
                request: config::RequestReading::default(),
                proxy: config::ProxySettings::default(),
                sessions: None,
                lifecycle: config::lifecycle::Lifecycle::default(),
                dpop: config::dpop::DpopSettings::default(),
                telemetry: None,
            }, Vec::new()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_engine_has_its_rules() {
        assert_eq!(fixed_engine().rule_names().count(), 3);
    }

    /// fuzz_request found a host with a multi-byte character where the `*.suffix`
    /// comparison sliced the string: a panic on input (now bytes are compared).
    #[test]
    fn regression_host_suffix_multibyte() {
        let mut input = b"GET\napi.exampledmin/us".to_vec();
        input.extend_from_slice(&[0xd8, 0x72, 0x73, 0x66, 0xcf, 0xcf, 0xcf, 0xcf]);
        input.extend_from_slice(b"sessi\n");
        request(&input);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        config(b"providers: [");
        config(b"rules:\n  - name: r\n    allow: anonymous\n    match: {path: \"/**/**/**\"}\n");
        config("providers:\n  - name: a\n    jwks: {inline: ${SECRET}}\n".as_bytes());
        config(&b"[".repeat(10_000));
        request(b"GET\nx.example.com\n/admin/../admin/%2e%2e/%2fx?access_token=a.b.c\nauthorization: Bearer a.b.c\ncookie: session=x; session=y");
        request(&b"/".repeat(100_000));
        request(b"");
    }
}
