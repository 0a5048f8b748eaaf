//! The importers on small inputs: what each carries over, what it refuses, and the
//! one warning each loss gives. (End-to-end runs of the imported configs behind real
//! proxies are in `crates/cli/tests/import_*.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use portcullis_import::{ImportError, Imported, Product, Source, import};

fn run(product: Product, yaml: &str) -> Imported {
    import(product, &[Source::new("in.yaml", yaml)]).unwrap()
}

fn warned(out: &Imported, words: &[&str]) -> bool {
    out.warnings
        .iter()
        .any(|w| words.iter().all(|word| w.to_string().contains(word)))
}

const RA: &str = r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra, namespace: ns}
spec:
  jwtRules:
    - issuer: https://a.example.com
      jwksUri: https://a.example.com/jwks
    - issuer: https://b.example.com
      jwksUri: https://b.example.com/jwks
"#;

fn istio(policies: &str) -> Imported {
    run(Product::Istio, &format!("{RA}---\n{policies}"))
}

#[test]
fn istio_two_jwt_rules_are_two_providers() {
    let out = istio("");
    let names: Vec<&str> = out
        .model
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["ra-1", "ra-2"]);
    // No ALLOW policy: Istio lets everything through; said so.
    assert_eq!(out.model.rules.len(), 1);
    assert_eq!(out.model.rules[0].allow.as_deref(), Some("anonymous"));
    assert!(warned(&out, &["no ALLOW policy"]));
}

#[test]
fn istio_issuer_wildcard_principal_selects_the_provider_only() {
    let out = istio(
        r#"kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
    - from: [{source: {requestPrincipals: ["https://b.example.com/*"]}}]
"#,
    );
    let r = &out.model.rules[0];
    assert_eq!(r.providers, ["ra-2"]);
    assert!(r.claims.is_empty());
    assert_eq!(r.allow, None);
}

#[test]
fn istio_principals_of_two_issuers_are_two_rules() {
    let out = istio(
        r#"kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
    - from: [{source: {requestPrincipals: ["https://a.example.com/alice", "https://b.example.com/bob", "https://a.example.com/carol"]}}]
"#,
    );
    let rules = &out.model.rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].providers, ["ra-1"]);
    assert_eq!(rules[0].claims["sub"], ["alice", "carol"]);
    assert_eq!(rules[1].providers, ["ra-2"]);
    assert_eq!(rules[1].claims["sub"], ["bob"]);
    // Same match, different requirements: Portcullis applies the first.
    assert!(warned(&out, &["match the same requests"]));
}

#[test]
fn istio_nested_claims_and_audiences() {
    let out = istio(
        r#"kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
    - to: [{operation: {hosts: ["*.example.com"], paths: ["/admin/*"], methods: [GET]}}]
      when:
        - {key: "request.auth.claims[realm_access][roles]", values: [admin]}
        - {key: request.auth.audiences, values: [api]}
"#,
    );
    let r = &out.model.rules[0];
    assert_eq!(r.claims["realm_access.roles"], ["admin"]);
    assert_eq!(r.claims["aud"], ["api"]);
    assert_eq!(r.match_.host, ["*.example.com"]);
    assert_eq!(r.match_.path, ["/admin/**"]);
    assert_eq!(r.match_.methods, ["GET"]);
}

#[test]
fn istio_refuses_what_it_cannot_express() {
    let out = istio(
        r#"kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
    - from: [{source: {requestPrincipals: ["https://unknown.example.com/x"]}}]
    - to: [{operation: {paths: ["/api*"]}}]
    - when: [{key: "request.auth.claims[groups]", notValues: [guests]}]
    - when: [{key: "request.headers[x-env]", values: [prod]}]
    - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]
---
kind: AuthorizationPolicy
metadata: {name: ext}
spec:
  action: CUSTOM
  provider: {name: other}
  rules: [{}]
"#,
    );
    // Nothing carried over: one explicit deny-all rule, so the config is servable.
    assert_eq!(out.model.rules.len(), 1, "{:?}", out.model.rules);
    assert_eq!(out.model.rules[0].name, "nothing-carried-over");
    assert_eq!(out.model.rules[0].allow.as_deref(), Some("deny"));
    for words in [
        &["rules[0]", "no jwtRule has issuer"][..],
        &["rules[1]", "/api*"],
        &["rules[2]", "notValues"],
        &["rules[3]", "request.headers"],
        &["rules[4]", "ipBlocks"],
        &["action CUSTOM skipped"],
    ] {
        assert!(warned(&out, words), "{words:?} in {:#?}", out.warnings);
    }
}

#[test]
fn istio_deny_without_token_everywhere_requires_one() {
    let out = istio(
        r#"kind: AuthorizationPolicy
metadata: {name: require}
spec:
  action: DENY
  rules:
    - from: [{source: {notRequestPrincipals: ["*"]}}]
---
kind: AuthorizationPolicy
metadata: {name: open}
spec:
  rules:
    - to: [{operation: {paths: [/public]}}]
"#,
    );
    // The anonymous ALLOW rule needs a token now, as the DENY policy says.
    assert_eq!(out.model.rules.len(), 1);
    assert_eq!(out.model.rules[0].allow, None);
    assert_eq!(out.model.rules[0].match_.path, ["/public"]);
}

#[test]
fn istio_needs_a_request_authentication() {
    let err = import(
        Product::Istio,
        &[Source::new(
            "p.yaml",
            "kind: AuthorizationPolicy\nmetadata: {name: p}\n",
        )],
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::NothingToImport { .. }), "{err}");
    let err = import(Product::Istio, &[Source::new("bad.yaml", "a: [b\n")]).unwrap_err();
    assert!(matches!(err, ImportError::InvalidYaml { .. }), "{err}");
    assert!(err.to_string().starts_with("bad.yaml: "), "{err}");
}

const FILTER: &str = r#"apiVersion: getambassador.io/v3alpha1
kind: Filter
metadata: {name: jwt, namespace: ns}
spec:
  JWT:
    jwksURI: https://idp.example.com/jwks
    requireExpiresAt: true
---
apiVersion: getambassador.io/v3alpha1
kind: Filter
metadata: {name: login, namespace: ns}
spec:
  OAuth2:
    authorizationURL: https://idp.example.com
"#;

#[test]
fn ambassador_non_jwt_filter_denies_and_unmatched_requests_pass() {
    let out = run(
        Product::Ambassador,
        &format!(
            r#"{FILTER}---
kind: FilterPolicy
metadata: {{name: fp, namespace: ns}}
spec:
  rules:
    - {{host: "*", path: /ui/*, filters: [{{name: login}}]}}
    - {{host: api.example.com, path: /v1/*, filters: [{{name: jwt, ifRequestHeader: {{name: x-a}}}}]}}
    - {{host: "*", path: "/a*b", filters: [{{name: jwt}}]}}
"#
        ),
    );
    let rules = &out.model.rules;
    assert_eq!(rules[0].allow.as_deref(), Some("deny"));
    assert_eq!(rules[1].providers, ["jwt"]);
    assert_eq!(rules[1].match_.host, ["api.example.com"]);
    // No rule matched everything: Ambassador applies no filter to the rest.
    let last = rules.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.allow.as_deref()),
        ("unfiltered", Some("anonymous"))
    );
    assert!(warned(&out, &["login is not a JWT filter"]));
    assert!(warned(&out, &["ifRequestHeader"]));
    assert!(warned(&out, &["rules[2] not carried over", "/a*b"]));
}

#[test]
fn ambassador_without_filter_policy_asks_for_a_token() {
    let out = run(Product::Ambassador, FILTER);
    assert_eq!(out.model.rules.len(), 1);
    assert_eq!(out.model.rules[0].allow, None);
    assert!(warned(&out, &["no FilterPolicy"]));
}

const KEY: &str = "-----BEGIN PUBLIC KEY-----\n      MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERgoYcl0m4A7OoA9yqOT/4Y4F81oy\n      MX13ttOKa/r7qabyScdsgCP2B7f2pndZLMm7AF9R5x/zC9SwIutq2Bwjhw==\n      -----END PUBLIC KEY-----";

#[test]
fn subrequest_alternatives_on_one_claim_merge() {
    let out = run(
        Product::NginxSubrequestAuthJwt,
        &format!(
            "validationKeys:\n  - type: ecPublicKey\n    key: |\n      {KEY}\nclaimsSource: static\nclaims:\n  - group: [a]\n  - group: [b, c]\n"
        ),
    );
    assert_eq!(out.model.rules[0].claims["group"], ["a", "b", "c"]);
    assert!(!warned(&out, &["OR"]));
}

#[test]
fn subrequest_refuses_other_key_types_and_no_key() {
    let err = import(
        Product::NginxSubrequestAuthJwt,
        &[Source::new(
            "c.yaml",
            "validationKeys:\n  - type: rsaPublicKey\n    key: x\n",
        )],
    )
    .unwrap_err();
    assert!(err.to_string().contains("only ecPublicKey"), "{err}");
    let err = import(
        Product::NginxSubrequestAuthJwt,
        &[Source::new("c.yaml", "claimsSource: static\n")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("no validationKeys"), "{err}");
}

#[test]
fn ingress_regex_paths_are_not_guessed() {
    let out = run(
        Product::IngressNginx,
        r#"kind: Ingress
metadata:
  name: re
  annotations:
    nginx.ingress.kubernetes.io/auth-url: http://auth.example.com/verify?claims_team=a&claims_team=b
    nginx.ingress.kubernetes.io/use-regex: "true"
spec:
  rules:
    - host: a.example.com
      http:
        paths:
          - {path: "/v[0-9]+/.*", pathType: ImplementationSpecific}
    - host: b.example.com
      http:
        paths:
          - {path: /, pathType: Prefix}
---
kind: Service
metadata: {name: s}
"#,
    );
    assert_eq!(out.model.rules.len(), 1);
    let r = &out.model.rules[0];
    assert_eq!(r.match_.host, ["b.example.com"]);
    assert!(r.match_.path.is_empty());
    assert_eq!(r.claims["team"], ["a", "b"]);
    assert!(warned(
        &out,
        &["rules[0] not carried over", "regular expression"]
    ));
    assert!(warned(&out, &["kind \"Service\" skipped"]));
}

#[test]
fn gateway_api_is_for_ingress_nginx_only() {
    let err = portcullis_import::import_with(
        Product::Istio,
        &[Source::new("a.yaml", RA)],
        &portcullis_import::Options { gateway_api: true },
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::GatewayApiUnsupported { .. }));
}

#[test]
fn product_names_round_trip() {
    for p in Product::ALL {
        assert_eq!(Product::from_name(p.name()), Some(p));
    }
    assert_eq!(Product::from_name("kong"), None);
}

#[test]
fn every_fixture_with_every_product_answers_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // Every prefix of the file, cut at line ends: half-written inputs too.
        let cuts: Vec<usize> = text.match_indices('\n').map(|(i, _)| i + 1).collect();
        for cut in cuts.iter().step_by(3).copied().chain([text.len()]) {
            for product in Product::ALL {
                let source = Source::new(path.display().to_string(), &text[..cut]);
                if let Ok(out) = portcullis_import::import_with(
                    product,
                    &[source],
                    &portcullis_import::Options {
                        gateway_api: product == Product::IngressNginx,
                    },
                ) {
                    assert!(out.config.contains("providers:"), "{}", out.config);
                    for w in &out.warnings {
                        assert!(!w.to_string().contains('\n'), "one line: {w}");
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n > 50, "{n} imports");
}

#[test]
fn auth_url_outside_the_cluster_points_the_policy_at_the_default_service() {
    let out = portcullis_import::import_with(
        Product::IngressNginx,
        &[Source::new(
            "i.yaml",
            r#"kind: Ingress
metadata:
  name: ext
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/auth-url: "https://$host/oauth2/auth"
spec:
  rules:
    - host: web.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: web, port: {number: 80}}}
"#,
        )],
        &portcullis_import::Options { gateway_api: true },
    )
    .unwrap();
    let policy = out
        .gateway_api
        .iter()
        .find(|m| m.file_name == "securitypolicy-ext.yaml")
        .unwrap();
    assert!(policy.text.contains("name: portcullis"), "{}", policy.text);
    assert!(policy.text.contains("port: 443"), "{}", policy.text);
    assert!(warned(&out, &["not a Service of the cluster"]));
    assert!(warned(&out, &["https"]));
}

#[test]
fn istio_inline_jwks_text_and_default_locations() {
    let out = run(
        Product::Istio,
        r#"kind: RequestAuthentication
metadata: {name: inline}
spec:
  jwtRules:
    - issuer: https://i.example.com
      jwks: '{"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]}'
      outputClaimToHeaders: [{header: X-Email, claim: email}]
"#,
    );
    let p = &out.model.providers[0];
    match &p.jwks {
        portcullis_import::Jwks::Inline(v) => assert_eq!(v["keys"][0]["crv"], "P-256"),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.from.len(), 2, "Authorization: Bearer, then ?access_token");
    assert_eq!(p.claims_to_headers[0].header, "x-email");
    assert_eq!(p.forward_token, Some(false));
}
