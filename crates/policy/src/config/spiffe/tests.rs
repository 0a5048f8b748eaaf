use std::path::Path;

use super::*;
use crate::config::{JwksSource, parse};

fn load(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<crate::Config, ConfigError> {
    parse(text, "c.yaml", Path::new("/etc/p"), env)
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn allows_the_contract_example() {
    let c = load(
        r#"
providers:
  - name: mesh
    spiffe:
      trust_domain: example.org
      bundle: {workload_api: unix:///run/spire/sockets/agent.sock}
    audiences: [spiffe://example.org/backend]
rules:
  - name: from-frontend
    match: {path: /api/**}
    providers: [mesh]
    spiffe_ids: ["spiffe://example.org/ns/default/sa/frontend", "spiffe://example.org/ns/*/sa/web"]
  - name: egress
    match: {host: backend.example.org}
    inject:
      audience: spiffe://example.org/backend
      source: workload_api
      replace: false
"#,
        &no_env,
    )
    .unwrap();
    let p = &c.providers[0];
    let s = p.spiffe.as_ref().unwrap();
    assert_eq!(s.trust_domain, "example.org");
    assert!(matches!(&p.jwks.source, JwksSource::Spiffe(_)));
    assert_eq!(
        s.bundle,
        BundleSource::WorkloadApi("unix:///run/spire/sockets/agent.sock".to_owned())
    );
    let algs = p.algorithms.unwrap();
    assert!(algs.contains(portcullis_jose::Algorithm::ES256));
    assert!(!algs.contains(portcullis_jose::Algorithm::HS256));
    assert_eq!(c.rules[0].spiffe_ids.len(), 2);
    let inject = c.rules[1].inject.as_ref().unwrap();
    assert!(!inject.replace);
    // The provider's socket is the one injection uses.
    assert!(
        matches!(&inject.source, InjectSource::WorkloadApi { socket } if socket == "unix:///run/spire/sockets/agent.sock")
    );
}

#[test]
fn allows_default_socket_from_the_environment() {
    let env = |n: &str| (n == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///tmp/a.sock".to_owned());
    let c = load(
        "providers:\n  - name: mesh\n    spiffe: {trust_domain: example.org}\nrules:\n  - name: e\n    inject: {audience: x}\n",
        &env,
    )
    .unwrap();
    assert_eq!(
        c.providers[0].spiffe.as_ref().unwrap().bundle,
        BundleSource::WorkloadApi("unix:///tmp/a.sock".to_owned())
    );
    let c = load(
        "providers:\n  - name: mesh\n    spiffe: {trust_domain: example.org, bundle: {file: b.json}}\nrules:\n  - name: e\n    inject: {audience: x, source: {mint: {key_file: k.pem, issuer: i, subject: s, ttl: 1m}}}\n  - name: c\n    inject: {audience: y, replace: true, source: {client_credentials: {token_url: 'http://127.0.0.1:1/token', client_id: a, client_secret: b, scopes: [s1]}}}\n",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        c.providers[0].spiffe.as_ref().unwrap().bundle,
        BundleSource::File("/etc/p/b.json".into())
    );
    assert!(
        matches!(&c.rules[0].inject.as_ref().unwrap().source, InjectSource::Mint { key_file, ttl, .. } if key_file == Path::new("/etc/p/k.pem") && ttl.as_secs() == 60)
    );
    let cc = c.rules[1].inject.as_ref().unwrap();
    assert!(cc.replace);
    assert!(!format!("{cc:?}").contains("client_secret: \"b\""));
}

#[test]
fn denies_bad_workload_config() {
    let p = "providers:\n  - name: mesh\n    spiffe: {trust_domain: example.org, bundle: {file: b.json}}\n";
    for (text, want) in [
        ("providers:\n  - name: m\n    spiffe: {trust_domain: Example.org, bundle: {file: b}}\n".to_owned(), "trust_domain"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org/a, bundle: {file: b}}\n".to_owned(), "trust_domain"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org}\n".to_owned(), "SPIFFE_ENDPOINT_SOCKET"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {workload_api: /tmp/x}}\n".to_owned(), "Workload API endpoint"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {workload_api: 'unix:///a', file: b}}\n".to_owned(), "exactly one"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {file: b}}\n    jwks: {file: k.json}\n".to_owned(), "exactly one of jwks or spiffe"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {file: b}}\n    require_exp: false\n".to_owned(), "exp"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {file: b}}\n    algorithms: [HS256]\n".to_owned(), "asymmetric"),
        ("providers:\n  - name: m\n    spiffe: {trust_domain: example.org, bundle: {file: b}, extra: 1}\n".to_owned(), "unknown key"),
        (format!("{p}rules:\n  - name: r\n    spiffe_ids: [\"spiffe://example.org/a/\"]\n"), "not a SPIFFE ID"),
        (format!("{p}rules:\n  - name: r\n    spiffe_ids: [\"https://example.org/a\"]\n"), "not a SPIFFE ID"),
        (format!("{p}rules:\n  - name: r\n    spiffe_ids: []\n"), "at least one"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x}}\n"), "SPIFFE_ENDPOINT_SOCKET"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: '', socket: 'unix:///a'}}\n"), "audience"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, socket: 'unix:///a', source: other}}\n"), "not workload_api"),
        (format!("{p}rules:\n  - name: r\n    providers: [mesh]\n    inject: {{audience: x, socket: 'unix:///a'}}\n"), "no inbound token"),
        (format!("{p}rules:\n  - name: r\n    dynamic_metadata: false\n    inject: {{audience: x, socket: 'unix:///a'}}\n"), "dynamic_metadata"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{mint: {{key_file: k, issuer: i, subject: s, ttl: 1s}}}}}}\n"), "ttl"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{client_credentials: {{token_url: ftp://x, client_id: a, client_secret: b}}}}}}\n"), "URL"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: ftp://x, client_id: a, client_secret: b}}}}}}\n"), "URL"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: ''}}}}}}\n"), "must not be empty"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, subject_token_type: id_token}}}}}}\n"), "access_token or jwt"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, resource: 'https://r#f'}}}}}}\n"), "absolute URI"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b}}, mint: {{key_file: k, issuer: i, subject: s}}}}}}\n"), "exactly one"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, verify_with: nobody}}}}}}\n"), "no provider is named \"nobody\""),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, verify_with: ''}}}}}}\n"), "verify_with: must not be empty"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, negative_ttl: 0s}}}}}}\n"), "negative_ttl"),
        (format!("{p}rules:\n  - name: r\n    inject: {{audience: x, source: {{token_exchange: {{token_url: 'http://a/t', client_id: a, client_secret: b, negative_ttl: 1h}}}}}}\n"), "between 1s and 10m"),
        (format!("{p}dpop: {{replay: 'http://127.0.0.1:6379'}}\nrules: []\n"), "redis://"),
        (format!("{p}dpop: {{replay: 'redis://127.0.0.1:6379', other: 1}}\nrules: []\n"), "unknown"),
    ] {
        let e = load(&text, &no_env).expect_err(&text).to_string();
        assert!(e.contains(want), "{text}\n=> {e}");
    }
}

#[test]
fn token_exchange_and_dpop_replay_parse() {
    let text = "rules:\n  - name: x\n    inject:\n      audience: https://backend.example.org\n      source:\n        token_exchange: {token_url: 'https://sts.example.org/token', client_id: egress, client_secret: s, scopes: [a, b], subject_token_type: jwt, resource: 'https://backend.example.org/api'}\ndpop: {replay: 'redis://127.0.0.1:6379/2'}\n";
    let c = load(text, &no_env).unwrap();
    let InjectSource::TokenExchange(x) = &c.rules[0].inject.as_ref().unwrap().source else {
        panic!()
    };
    assert_eq!(x.subject_token_type, crate::config::spiffe::TOKEN_TYPE_JWT);
    assert_eq!(x.scopes, ["a", "b"]);
    assert_eq!(
        x.resource.as_deref(),
        Some("https://backend.example.org/api")
    );
    // The secret stays out of Debug.
    assert!(!format!("{x:?}").contains("client_secret"));
    assert_eq!(x.verify_with, None);
    assert_eq!(x.negative_ttl, crate::config::spiffe::DEFAULT_NEGATIVE_TTL);
    let text = "providers:\n  - name: mesh\n    spiffe: {trust_domain: example.org, bundle: {file: b.json}}\nrules:\n  - name: x\n    inject:\n      audience: a\n      source:\n        token_exchange: {token_url: 'https://sts.example.org/token', client_id: egress, client_secret: s, verify_with: mesh, negative_ttl: 5s}\n";
    let checked = load(text, &no_env).unwrap();
    let InjectSource::TokenExchange(y) = &checked.rules[0].inject.as_ref().unwrap().source else {
        panic!()
    };
    assert_eq!(y.verify_with.as_deref(), Some("mesh"));
    assert_eq!(y.negative_ttl, std::time::Duration::from_secs(5));
    assert_eq!(c.dpop.replay.as_deref(), Some("redis://127.0.0.1:6379/2"));
    let c = load("rules: []\n", &no_env).unwrap();
    assert_eq!(c.dpop.replay, None);
}
