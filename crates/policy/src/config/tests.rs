use std::path::Path;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, ConfigError> {
    parse(text, "test.yaml", Path::new("/etc/portcullis"), &no_env)
}

const SECRET_JWKS: &str = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","alg":"HS256","kid":"h"}]}"#;

#[test]
fn parses_the_contract_example() {
    let text = format!(
        r#"
listen:
  http: 127.0.0.1:8080
  grpc: 127.0.0.1:9001
  admin: 127.0.0.1:9090
providers:
  - name: corp
    issuer: https://login.example.com
    audiences: [orders-api]
    jwks:
      inline: {SECRET_JWKS}
    algorithms: [HS256]
    from:
      - header: Authorization
        prefix: "Bearer "
      - cookie: session
      - query: access_token
    clock_skew: 60s
    forward_token: true
    claims_to_headers:
      - {{header: x-user, claim: sub}}
  - name: remote
    jwks:
      uri: https://login.example.com/jwks.json
      refresh: 10m
rules:
  - name: health
    match: {{path: /healthz}}
    allow: anonymous
  - name: admin
    match: {{host: "api.example.com", path: "/admin/**", methods: [GET, POST]}}
    providers: [corp]
    claims: {{groups: [admins, ops]}}
    scopes: [orders:write]
    headers: {{x-tenant: "{{{{ claims.tenant }}}}"}}
  - name: default
    match: {{}}
"#
    );
    let c = load(&text).unwrap();
    assert_eq!(
        c.listen.addr(ListenerKind::Http),
        Some("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(c.providers.len(), 2);
    assert_eq!(c.providers[0].locations.len(), 3);
    assert_eq!(c.providers[1].jwks.tuning.refresh, Duration::from_secs(600));
    assert_eq!(c.rules[1].providers, vec![0]);
    assert_eq!(c.rules[2].providers, vec![0, 1]);
    assert_eq!(c.rules[1].methods, vec!["GET", "POST"]);
    assert_eq!(c.rules[0].access, Access::Anonymous);
}

#[test]
fn errors_name_file_line_and_field() {
    let text = "providers:\n  - name: a\n    jwks: {uri: https://x/jwks}\n    bogus: 1\n";
    let e = load(text).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.field.as_str()),
        ("test.yaml", 4, "providers[0].bogus")
    );
    assert!(
        e.to_string()
            .starts_with("test.yaml:4: providers[0].bogus: unknown key"),
        "{e}"
    );

    let text = "providers:\n  - name: a\n    jwks: {uri: https://x/jwks}\nrules:\n  - name: r\n    providers: [b]\n";
    let e = load(text).unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    assert_eq!(e.field, "rules[0].providers");

    let text = "providers:\n  - name: a\n    jwks: {uri: https://x/jwks, file: k.json}\n";
    let e = load(text).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "providers[0].jwks"), "{e}");

    let text = "providers:\n  - name: a\n    jwks: {uri: https://x/jwks}\n    algorithms: [none]\n";
    let e = load(text).unwrap_err();
    assert_eq!(
        (e.line, e.field.as_str()),
        (4, "providers[0].algorithms"),
        "{e}"
    );

    let text = "listen:\n  http: nowhere\n";
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "test.yaml:2: listen.http: \"nowhere\" is not an address like 127.0.0.1:8080"
    );

    let text = "providers:\n  - name: a\n    jwks:\n      inline: {\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}\n";
    let e = load(text).unwrap_err();
    assert_eq!(e.field, "providers[0].jwks.inline.keys[0]", "{e}");
}

#[test]
fn substitutes_environment_variables() {
    let env = |name: &str| (name == "ISSUER").then(|| "https://idp".to_owned());
    let text = "providers:\n  - name: a\n    issuer: ${ISSUER}\n    jwks: {uri: https://x/jwks}\n";
    let c = parse(text, "t.yaml", Path::new("."), &env).unwrap();
    assert_eq!(c.providers[0].issuer.as_deref(), Some("https://idp"));
    let text = "providers:\n  - name: a\n    issuer: ${MISSING}\n";
    let e = parse(text, "t.yaml", Path::new("."), &env).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (3, "${MISSING}"));
    assert_eq!(substitute_env("a $${X} b", &env).unwrap(), "a ${X} b");
}

#[test]
fn resolves_files_against_the_config_folder() {
    let c = load("providers:\n  - name: a\n    jwks: {file: keys.json}\n").unwrap();
    match &c.providers[0].jwks.source {
        JwksSource::File(p) => assert_eq!(p, Path::new("/etc/portcullis/keys.json")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_cache_limits() {
    let c = load("limits:\n  token_cache_entries: 10\n  token_cache_memory: 8MiB\n").unwrap();
    assert_eq!(
        (c.limits.token_cache_entries, c.limits.token_cache_bytes),
        (10, 8 << 20)
    );
    let e = load("limits:\n  token_cache_memory: lots\n").unwrap_err();
    assert_eq!(e.field, "limits.token_cache_memory");
    assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
    assert_eq!(parse_bytes("1000"), Some(1000));
    assert_eq!(parse_bytes("99999999999999999999GiB"), None);
}

#[test]
fn reads_a_rule_s_dynamic_metadata_switch() {
    let c = load(
        "rules:\n  - name: quiet\n    allow: anonymous\n    dynamic_metadata: false\n  - name: loud\n    allow: anonymous\n",
    )
    .unwrap();
    let by_name: Vec<(&str, bool)> = c
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.dynamic_metadata))
        .collect();
    assert_eq!(by_name, [("quiet", false), ("loud", true)]);
    let e = load("rules:\n  - name: r\n    allow: anonymous\n    dynamic_metadata: sometimes\n")
        .unwrap_err();
    assert_eq!(
        (e.line, e.field.as_str()),
        (4, "rules[0].dynamic_metadata"),
        "{e}"
    );
}

#[test]
fn rejects_bad_values() {
    for (text, field) in [
        (
            "rules:\n  - name: r\n    allow: anonymous\n    match: {path: admin}\n",
            "rules[0].match.path",
        ),
        (
            "rules:\n  - name: r\n    allow: sometimes\n",
            "rules[0].allow",
        ),
        ("rules:\n  - name: r\n", "rules[0].providers"),
        (
            "providers:\n  - name: a\n    jwks: {uri: ftp://x}\n",
            "providers[0].jwks.uri",
        ),
        (
            "providers:\n  - name: a\n    jwks: {uri: https://x/j}\n    from: [{cookie: s, prefix: x}]\n",
            "providers[0].from[0]",
        ),
        (
            "providers:\n  - name: a\n    jwks: {uri: https://x/j}\n  - name: a\n    jwks: {uri: https://x/j}\n",
            "providers[1].name",
        ),
        (
            "providers:\n  - name: a\n    jwks: {uri: https://x/j}\n    clock_skew: forever\n",
            "providers[0].clock_skew",
        ),
        (
            "providers:\n  - name: a\n    jwks: {uri: https://x/j}\nrules:\n  - name: r\n    headers: {x-a: \"{{ env.X }}\"}\n",
            "rules[0].headers.x-a",
        ),
    ] {
        let e = load(text).unwrap_err();
        assert_eq!(e.field, field, "{text}: {e}");
        assert!(e.line > 0, "{e}");
    }
}

#[test]
fn reads_tls_of_the_http_grpc_and_admin_listeners() {
    let c = load(
        "listen:\n  http: 127.0.0.1:0\n  http_tls: {cert: s.pem, key: s.key, client_ca: ca.pem, client_auth: optional}\n  grpc: 127.0.0.1:0\n  grpc_tls: {cert: s.pem, key: s.key}\n",
    )
    .unwrap();
    let http = c.listen.tls(ListenerKind::Http).unwrap();
    assert_eq!(http.client_auth, ClientAuth::Optional);
    assert!(http.client_ca.is_some());
    assert!(
        c.listen
            .tls(ListenerKind::Grpc)
            .unwrap()
            .client_ca
            .is_none()
    );
    assert!(c.listen.tls(ListenerKind::Admin).is_none());
    assert!(c.listen.tls(ListenerKind::Proxy).is_none());
    for (text, field) in [
        (
            "listen:\n  admin_tls: {cert: a, key: b}\n",
            "listen.admin_tls: needs listen.admin",
        ),
        (
            "listen:\n  http: 127.0.0.1:0\n  http_tls: {key: b}\n",
            "listen.http_tls.cert: is required",
        ),
        (
            "listen:\n  grpc: 127.0.0.1:0\n  grpc_tls: {cert: a, key: b, client_auth: sometimes}\n",
            "listen.grpc_tls.client_auth",
        ),
        (
            "listen:\n  http: 127.0.0.1:0\n  http_tls: {cert: a, key: b, client_auth: optional}\n",
            "listen.http_tls.client_ca",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(field), "{text}: {e}");
    }
}

#[test]
fn reads_peer_spiffe_ids_and_refuses_what_is_no_spiffe_id() {
    let c = load(
        "rules:\n  - name: mesh\n    match: {}\n    allow: anonymous\n    peer_spiffe_ids: [\"spiffe://example.org/ns/*/sa/web\"]\n",
    )
    .unwrap();
    assert_eq!(c.rules[0].peer_spiffe_ids.len(), 1);
    let e = load(
        "rules:\n  - name: mesh\n    match: {}\n    allow: anonymous\n    peer_spiffe_ids: [\"https://example.org/web\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rules[0].peer_spiffe_ids"), "{e}");
}
