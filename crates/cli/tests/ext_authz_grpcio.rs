//! Portcullis' ext_authz gRPC listener on the wire, checked with PyPI `grpcio` and the
//! official generated protos (`xds-protos`: `envoy.service.auth.v3`), independently of
//! Envoy and of the Rust protos Portcullis is built with (`tests/peers/ext_authz_check.py`).
//!
//! Allow: status OK, `OkHttpResponse.headers` with `append_action`
//! `OVERWRITE_IF_EXISTS_OR_ADD` (never the deprecated `append`), `headers_to_remove`
//! for every identity header not set (also on anonymous allows), the identity as
//! `dynamic_metadata`. Deny: UNAUTHENTICATED/PERMISSION_DENIED with a
//! `DeniedHttpResponse` (status, `WWW-Authenticate`, JSON body). Also `header_map`
//! (Envoy's `encode_raw_headers`), `context_extensions`, malformed requests, and
//! `grpc.health.v1` SERVING.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use envoy_common::{AUDIENCE, BIN, Failures, ISSUER, example_portcullis_config};
use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, JwksServer, Portcullis, python, run_json};
use serde_json::{Value, json};

const OVERWRITE: &str = "OVERWRITE_IF_EXISTS_OR_ADD";

fn run_script(job: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ext_authz_check.py");
    run_json(
        Command::new(python()).arg(&script),
        job,
        "tests/peers/ext_authz_check.py",
    )
}

/// `[{header: {key, value}, append_action}]` as `(key, value, append_action, has_append)`.
fn header_options(list: &Value) -> Vec<(String, String, String, bool)> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["header"]["key"].as_str().unwrap_or("").to_owned(),
                        h["header"]["value"].as_str().unwrap_or("").to_owned(),
                        h["append_action"].as_str().unwrap_or("").to_owned(),
                        h.get("append").is_some(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    s.sort();
    s
}

/// An allow: OK, exactly `set` as overwriting headers, exactly `remove` (and the other
/// spellings of the identity headers) as headers_to_remove.
fn allowed(
    f: &mut Failures,
    results: &Value,
    name: &str,
    set: &[(&str, &str)],
    remove: &[&str],
) -> Value {
    let r = &results["checks"][name];
    let resp = &r["response"];
    f.check(r["rpc"] == "OK" && resp["status"]["code"] == 0, || {
        format!("{name}: expected RPC OK and status.code 0, got {r}")
    });
    f.check(resp.get("denied_response").is_none(), || {
        format!("{name}: has a denied_response: {resp}")
    });
    let ok = &resp["ok_response"];
    let headers = header_options(&ok["headers"]);
    let mut want: Vec<(String, String, String, bool)> = set
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                (*v).to_owned(),
                OVERWRITE.to_owned(),
                false,
            )
        })
        .collect();
    let mut got = headers.clone();
    want.sort();
    got.sort();
    f.check(got == want, || {
        format!("{name}: ok_response.headers {got:?}, expected {want:?} (append_action {OVERWRITE}, no `append`)")
    });
    // Every allow also names the other spellings of the identity headers (x-user,
    // x-rule), which CGI/WSGI upstreams read as the same headers (issue 10).
    let mut want_remove: Vec<String> = remove
        .iter()
        .chain(&["x_rule", "x_user"])
        .map(|s| (*s).to_owned())
        .collect();
    want_remove.sort();
    let got_remove = strings(&ok["headers_to_remove"]);
    f.check(got_remove == want_remove, || {
        format!("{name}: headers_to_remove {got_remove:?}, expected {want_remove:?}")
    });
    resp.clone()
}

/// A deny: the RPC succeeds with `code`, a DeniedHttpResponse with `http` (enum name),
/// `WWW-Authenticate` containing `www` (or absent when `None`), and the JSON body's reason.
fn denied(
    f: &mut Failures,
    results: &Value,
    name: &str,
    code: i64,
    http: &str,
    www: Option<&str>,
    reason: &str,
) {
    let r = &results["checks"][name];
    let resp = &r["response"];
    f.check(r["rpc"] == "OK", || {
        format!("{name}: the RPC itself failed: {r}")
    });
    f.check(resp["status"]["code"] == code, || {
        format!(
            "{name}: status.code {}, expected {code}",
            resp["status"]["code"]
        )
    });
    f.check(resp.get("ok_response").is_none(), || {
        format!("{name}: has an ok_response: {resp}")
    });
    f.check(resp.get("dynamic_metadata").is_none(), || {
        format!("{name}: deny carries dynamic_metadata: {resp}")
    });
    let d = &resp["denied_response"];
    f.check(d["status"]["code"] == http, || {
        format!(
            "{name}: denied_response.status {}, expected {http}",
            d["status"]
        )
    });
    let headers = header_options(&d["headers"]);
    let find = |k: &str| headers.iter().find(|h| h.0 == k);
    match www {
        Some(fragment) => f.check(
            find("www-authenticate").is_some_and(|h| h.1.contains(fragment)),
            || {
                format!(
                    "{name}: www-authenticate {:?} does not contain {fragment:?}",
                    find("www-authenticate")
                )
            },
        ),
        None => f.check(find("www-authenticate").is_none(), || {
            format!(
                "{name}: unexpected www-authenticate {:?}",
                find("www-authenticate")
            )
        }),
    }
    f.check(
        find("content-type").is_some_and(|h| h.1 == "application/json"),
        || format!("{name}: content-type {:?}", find("content-type")),
    );
    f.check(headers.iter().all(|h| !h.3), || {
        format!("{name}: a deny header uses the deprecated `append`: {headers:?}")
    });
    let body: Value = serde_json::from_str(d["body"].as_str().unwrap_or("")).unwrap_or(Value::Null);
    f.check(
        body["reason"] == reason && body["error"].is_string(),
        || format!("{name}: body {}, expected reason {reason:?}", d["body"]),
    );
}

#[test]
fn check_requests_from_grpcio_with_the_official_protos() {
    let issuer = Issuer::new(Algorithm::ES256, "k1", ISSUER);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let config = example_portcullis_config(&jwks.url());
    let p = Portcullis::start(BIN, &config);
    p.wait_ready(Duration::from_secs(10));
    let mint = |sub: &str, extra: Value| {
        let mut claims = json!({"sub": sub, "aud": AUDIENCE});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        format!("Bearer {}", issuer.mint(claims))
    };
    let alice = mint("alice", json!({"groups": ["dev"], "tenant": "acme"}));
    let now = Issuer::now();
    let expired = mint("alice", json!({"iat": now - 7200, "exp": now - 3600}));
    let reader = mint("dave", json!({"scope": "orders:read"}));
    let reporter = mint("rita", json!({"groups": ["reporting"]}));
    // What Envoy sends: the pseudo-headers too, in the headers map.
    let envoy_headers = |extra: &[(&str, &str)], path: &str| {
        let mut h = json!({":authority": "api.example.com", ":method": "GET", ":path": path, ":scheme": "http"});
        for (k, v) in extra {
            h[*k] = json!(v);
        }
        h
    };
    let check = |name: &str, method: &str, path: &str, headers: Value| json!({"name": name, "method": method, "host": "api.example.com", "path": path, "headers": headers});
    let job = json!({
        "target": format!("127.0.0.1:{}", p.grpc),
        "checks": [
            check("allow", "GET", "/api/items?x=1", envoy_headers(&[("authorization", &alice), ("x-user", "mallory"), ("x-rule", "spoofed")], "/api/items?x=1")),
            check("anonymous", "GET", "/public/info", envoy_headers(&[("x-user", "mallory")], "/public/info")),
            {
                "name": "per-route rule", "method": "GET", "host": "api.example.com", "path": "/anything",
                "headers": envoy_headers(&[("authorization", &reporter)], "/anything"),
                "context_extensions": {"rule": "reports"},
            },
            {
                "name": "per-route rule, wrong group", "method": "GET", "host": "api.example.com", "path": "/anything",
                "headers": envoy_headers(&[("authorization", &alice)], "/anything"),
                "context_extensions": {"rule": "reports"},
            },
            {
                "name": "unknown rule", "method": "GET", "host": "api.example.com", "path": "/api/items",
                "headers": envoy_headers(&[("authorization", &alice)], "/api/items"),
                "context_extensions": {"rule": "no-such-rule"},
            },
            {
                "name": "header_map", "method": "GET", "host": "api.example.com", "path": "/api/items",
                "header_map": [[":path", "/api/items"], ["authorization", alice], ["x-user", "mallory"]],
            },
            check("missing", "GET", "/api/items", envoy_headers(&[], "/api/items")),
            check("expired", "GET", "/api/items", envoy_headers(&[("authorization", &expired)], "/api/items")),
            check("scope", "POST", "/orders/7", envoy_headers(&[("authorization", &reader)], "/orders/7")),
            check("claims", "GET", "/admin/x", envoy_headers(&[("authorization", &alice)], "/admin/x")),
            {"name": "no http attributes", "omit": "http"},
            {"name": "no attributes", "omit": "attributes"},
        ],
        "health": ["", "envoy.service.auth.v3.Authorization"],
    });
    let results = run_script(&job);
    let mut f = Failures::default();

    f.check(results["append_actions"][OVERWRITE] == 2, || {
        format!(
            "the official protos name append action 2 differently: {}",
            results["append_actions"]
        )
    });

    let resp = allowed(
        &mut f,
        &results,
        "allow",
        &[("x-user", "alice")],
        &["x-rule"],
    );
    let md = &resp["dynamic_metadata"];
    f.check(
        md["provider"] == "corp" && md["sub"] == "alice" && md["iss"] == ISSUER,
        || format!("allow: dynamic_metadata {md}"),
    );
    f.check(
        md["claims"]["groups"] == json!(["dev"])
            && md["claims"]["tenant"] == "acme"
            && md["claims"]["aud"] == AUDIENCE,
        || format!("allow: dynamic_metadata.claims {}", md["claims"]),
    );

    let resp = allowed(&mut f, &results, "anonymous", &[], &["x-rule", "x-user"]);
    f.check(resp.get("dynamic_metadata").is_none(), || {
        format!("anonymous: dynamic_metadata {}", resp["dynamic_metadata"])
    });

    allowed(
        &mut f,
        &results,
        "per-route rule",
        &[("x-user", "rita"), ("x-rule", "reports")],
        &[],
    );
    denied(
        &mut f,
        &results,
        "per-route rule, wrong group",
        7,
        "Forbidden",
        None,
        "claim_mismatch",
    );
    denied(
        &mut f,
        &results,
        "unknown rule",
        7,
        "Forbidden",
        None,
        "no_rule",
    );
    allowed(
        &mut f,
        &results,
        "header_map",
        &[("x-user", "alice")],
        &["x-rule"],
    );

    denied(
        &mut f,
        &results,
        "missing",
        16,
        "Unauthorized",
        Some(r#"Bearer realm="portcullis""#),
        "token_missing",
    );
    let missing_www =
        header_options(&results["checks"]["missing"]["response"]["denied_response"]["headers"]);
    f.check(
        missing_www.iter().any(|h| h.0 == "www-authenticate" && h.1 == r#"Bearer realm="portcullis""# && h.2 == OVERWRITE),
        || format!("missing: www-authenticate not exactly the realm challenge (overwrite): {missing_www:?}"),
    );
    denied(
        &mut f,
        &results,
        "expired",
        16,
        "Unauthorized",
        Some(r#"error="invalid_token""#),
        "token_expired",
    );
    denied(
        &mut f,
        &results,
        "scope",
        7,
        "Forbidden",
        Some(r#"error="insufficient_scope""#),
        "scope_missing",
    );
    denied(
        &mut f,
        &results,
        "claims",
        7,
        "Forbidden",
        None,
        "claim_mismatch",
    );

    // Not an HTTP check: denied with an answer (not an RPC error Envoy's
    // failure_mode_allow could turn into an allow): 400 `request_invalid` (issue 10:
    // a request that cannot be read is a 400 where the protocol allows it).
    for name in ["no http attributes", "no attributes"] {
        let r = &results["checks"][name];
        f.check(
            r["rpc"] == "OK"
                && r["response"]["status"]["code"] != 0
                && r["response"]["denied_response"]["status"]["code"] == "BadRequest",
            || format!("{name}: expected a 400 DeniedHttpResponse, got {r}"),
        );
    }

    for service in ["", "envoy.service.auth.v3.Authorization"] {
        f.check(results["health"][service] == "SERVING", || {
            format!("grpc.health.v1 {service:?}: {}", results["health"][service])
        });
    }
    f.assert_none(
        "ext_authz over grpcio",
        &format!("results: {results:#}\n--- portcullis log:\n{}", p.log()),
    );
}
