//! Starts the gRPC frontend in-process on 127.0.0.1 (no Envoy: a tonic client plays
//! Envoy's ext_authz filter) and checks the answers the contract promises.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap as EnvoyHeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use portcullis_decider::{Decider, Metrics};
use portcullis_jose::{Algorithm, SigningKey, b64};
use portcullis_policy::Engine;
use portcullis_policy::config;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

struct Server {
    channel: Channel,
    metrics: Arc<Metrics>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let k = b64::encode(SECRET);
    let yaml = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: healthz
    match: {{path: /healthz}}
    allow: anonymous
  - name: api
    match: {{path: "/api/**"}}
    claims: {{groups: [admins]}}
"#
    );
    let config = config::parse(&yaml, "grpc.yaml", Path::new("."), &|_| None).unwrap();
    let metrics = Arc::new(Metrics::new());
    let decider = Arc::new(Decider::new(
        Engine::with_static_keys(config),
        metrics.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(portcullis_frontend_envoy::serve(
        listener,
        decider,
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        channel,
        metrics,
        stop,
        task,
    }
}

impl Server {
    async fn check(&self, req: CheckRequest) -> CheckResponse {
        AuthorizationClient::new(self.channel.clone())
            .check(req)
            .await
            .unwrap()
            .into_inner()
    }

    /// Signals shutdown while the client's connection is still open: the server
    /// must drain it and return on its own.
    async fn shutdown(self) {
        let Server {
            channel,
            stop,
            task,
            ..
        } = self;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        drop(channel);
    }
}

fn token(claims: serde_json::Value) -> String {
    SigningKey::from_secret(SECRET, Algorithm::HS256)
        .unwrap()
        .encode(
            Some("h1"),
            &Default::default(),
            claims.to_string().as_bytes(),
        )
        .unwrap()
}

fn claims(groups: &[&str]) -> serde_json::Value {
    let now = portcullis_decider::now();
    json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": now + 600, "groups": groups})
}

fn check_request(path: &str, headers: &[(&str, &str)], rule: Option<&str>) -> CheckRequest {
    let mut context_extensions = HashMap::new();
    if let Some(rule) = rule {
        context_extensions.insert("rule".to_owned(), rule.to_owned());
    }
    let mut all: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.insert(":path".to_owned(), path.to_owned());
    all.insert(":method".to_owned(), "GET".to_owned());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(HttpRequest {
                    method: "GET".to_owned(),
                    host: "api.example.com".to_owned(),
                    path: path.to_owned(),
                    scheme: "https".to_owned(),
                    headers: all,
                    ..Default::default()
                }),
            }),
            context_extensions,
            ..Default::default()
        }),
    }
}

fn ok_part(r: &CheckResponse) -> &OkHttpResponse {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an OK response: {other:?}"),
    }
}

fn denied_part(r: &CheckResponse) -> &DeniedHttpResponse {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied,
        other => panic!("not a denied response: {other:?}"),
    }
}

fn code(r: &CheckResponse) -> i32 {
    r.status.as_ref().unwrap().code
}

fn header<'a>(d: &'a DeniedHttpResponse, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key == name)
        .map(|h| h.value.as_str())
}

#[tokio::test]
async fn allows_valid_token_with_identity_headers_and_metadata() {
    let server = start().await;
    let bearer = format!("Bearer {}", token(claims(&["dev", "admins"])));
    let r = server
        .check(check_request(
            "/api/orders?id=1",
            &[("authorization", &bearer), ("x-user", "mallory")],
            None,
        ))
        .await;
    assert_eq!(code(&r), OK, "{r:?}");
    let ok = ok_part(&r);
    let set: Vec<_> = ok
        .headers
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.as_str(), hv.value.as_str(), h.append_action)
        })
        .collect();
    // OVERWRITE_IF_EXISTS_OR_ADD (2): the client's x-user: mallory is replaced.
    assert_eq!(set, [("x-user", "alice", 2)]);
    // Only the other spelling of the header set is removed (issue 10).
    assert_eq!(ok.headers_to_remove, ["x_user"], "{ok:?}");
    let meta = r.dynamic_metadata.as_ref().unwrap();
    assert_eq!(
        meta.fields["sub"].kind,
        Some(Kind::StringValue("alice".to_owned()))
    );
    assert_eq!(
        meta.fields["iss"].kind,
        Some(Kind::StringValue("https://idp".to_owned()))
    );
    assert_eq!(
        meta.fields["provider"].kind,
        Some(Kind::StringValue("corp".to_owned()))
    );
    assert!(matches!(
        meta.fields["claims"].kind,
        Some(Kind::StructValue(_))
    ));
    let text = server.metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.contains(r#"frontend="ext_authz_grpc""#) && l.contains(r#"result="allow""#)),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn allows_valid_token_from_raw_header_map() {
    let server = start().await;
    let bearer = format!("Bearer {}", token(claims(&["admins"])));
    let mut req = check_request("/api/x", &[], None);
    let http = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .unwrap();
    http.headers.clear();
    http.header_map = Some(EnvoyHeaderMap {
        headers: vec![HeaderValue {
            key: "authorization".to_owned(),
            value: String::new(),
            raw_value: bearer.into_bytes(),
        }],
    });
    let r = server.check(req).await;
    assert_eq!(code(&r), OK, "{r:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn denies_missing_token_with_unauthenticated_401() {
    let server = start().await;
    let r = server.check(check_request("/api/x", &[], None)).await;
    assert_eq!(code(&r), UNAUTHENTICATED);
    let d = denied_part(&r);
    assert_eq!(d.status.as_ref().unwrap().code, 401);
    assert_eq!(
        header(d, "www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );
    assert_eq!(header(d, "content-type"), Some("application/json"));
    assert_eq!(
        d.body,
        r#"{"error":"unauthorized","reason":"token_missing"}"#
    );
    server.shutdown().await;
}

#[tokio::test]
async fn denies_bad_signature_with_invalid_token_challenge() {
    let server = start().await;
    let mut t = token(claims(&["admins"]));
    // Change the last signature character (whatever it was) to another one.
    let last = t.pop();
    t.push(if last == Some('A') { 'B' } else { 'A' });
    let bearer = format!("Bearer {t}");
    let r = server
        .check(check_request("/api/x", &[("authorization", &bearer)], None))
        .await;
    assert_eq!(code(&r), UNAUTHENTICATED);
    let d = denied_part(&r);
    assert_eq!(d.status.as_ref().unwrap().code, 401);
    assert!(
        header(d, "www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn denies_wrong_claim_with_permission_denied_403() {
    let server = start().await;
    let bearer = format!("Bearer {}", token(claims(&["dev"])));
    let r = server
        .check(check_request("/api/x", &[("authorization", &bearer)], None))
        .await;
    assert_eq!(code(&r), PERMISSION_DENIED);
    let d = denied_part(&r);
    assert_eq!(d.status.as_ref().unwrap().code, 403);
    assert_eq!(header(d, "www-authenticate"), None);
    assert_eq!(
        d.body,
        r#"{"error":"access_denied","reason":"claim_mismatch"}"#
    );
    assert_eq!(r.dynamic_metadata, None);
    server.shutdown().await;
}

#[tokio::test]
async fn denies_unmatched_path_with_no_rule() {
    let server = start().await;
    let r = server.check(check_request("/elsewhere", &[], None)).await;
    assert_eq!(code(&r), PERMISSION_DENIED);
    assert_eq!(
        denied_part(&r).body,
        r#"{"error":"access_denied","reason":"no_rule"}"#
    );
    server.shutdown().await;
}

#[tokio::test]
async fn allows_rule_selected_by_context_extensions() {
    let server = start().await;
    // The path alone would need a token; the route names the anonymous rule.
    let r = server
        .check(check_request(
            "/api/x",
            &[("x-user", "mallory")],
            Some("healthz"),
        ))
        .await;
    assert_eq!(code(&r), OK, "{r:?}");
    let ok = ok_part(&r);
    assert!(ok.headers.is_empty());
    assert_eq!(
        ok.headers_to_remove,
        ["x-user", "x_user"],
        "anonymous allows strip identity headers, in every spelling"
    );
    assert_eq!(r.dynamic_metadata, None);
    let r = server
        .check(check_request("/healthz", &[], Some("no-such-rule")))
        .await;
    assert_eq!(code(&r), PERMISSION_DENIED);
    server.shutdown().await;
}

#[tokio::test]
async fn denies_check_request_without_http_attributes() {
    let server = start().await;
    let r = server.check(CheckRequest { attributes: None }).await;
    assert_ne!(code(&r), OK);
    // Issue 10: 400 where the protocol allows it.
    assert_eq!(denied_part(&r).status.as_ref().unwrap().code, 400);
    server.shutdown().await;
}

/// Issue 10, class 6: a client's `x_user` reaches upstreams through Envoy (its
/// default `headers_with_underscores_action` is ALLOW), and CGI/WSGI upstreams
/// read it as `x-user`: every allow removes it, anonymous ones too.
#[tokio::test]
async fn regression_issue10_underscore_identity_header_is_removed() {
    let server = start().await;
    let t = token(claims(&["admins"]));
    let bearer = format!("Bearer {t}");
    for (path, headers) in [
        (
            "/healthz",
            vec![("x_user", "mallory"), ("X_USER", "mallory")],
        ),
        (
            "/api/x",
            vec![("authorization", bearer.as_str()), ("x_user", "mallory")],
        ),
    ] {
        let r = server.check(check_request(path, &headers, None)).await;
        assert_eq!(code(&r), OK, "{path}");
        let ok = ok_part(&r);
        assert!(
            ok.headers_to_remove.iter().any(|h| h == "x_user"),
            "{path}: {:?}",
            ok.headers_to_remove
        );
    }
    server.shutdown().await;
}

/// Issue 10, classes 1 and 3: what cannot be read one way only is refused with 400.
#[tokio::test]
async fn regression_issue10_ambiguous_paths_are_refused() {
    let server = start().await;
    for path in [
        "/healthz/..%2fapi/x",
        "/api//../healthz",
        "/healthz%00",
        "/api;x/y",
    ] {
        let r = server.check(check_request(path, &[], None)).await;
        assert_eq!(code(&r), 3, "{path}: INVALID_ARGUMENT");
        assert_eq!(denied_part(&r).status.as_ref().unwrap().code, 400, "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn health_reports_serving() {
    let server = start().await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", portcullis_frontend_envoy::SERVICE_NAME] {
        let r = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, i32::from(ServingStatus::Serving), "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.shutdown().await;
}
