//! `portcullis demo`: an in-process issuer with a fresh key and its JWKS, a verify
//! endpoint and a small sample app protected by the proxy listener, all on
//! 127.0.0.1, wired through the same code as `serve` (the provider fetches the
//! issuer's JWKS over HTTP; the proxy forwards what it allows to the app).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use portcullis_decider::{Decider, Metrics};
use portcullis_jose::{Algorithm, SigningKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::AppError;
use crate::listener::{FnService, same_for_every_peer, serve_http};
use crate::runtime::Sources;
use portcullis_policy::config::ListenerKind;

use crate::serve::{not_found, spawn_listeners};

/// Options of `demo`.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Port of the verify endpoint (default 8080, or any free port).
    pub port: Option<u16>,
}

const AUDIENCE: &str = "demo-api";

/// Runs the demo until Ctrl-C.
///
/// # Errors
/// A listener cannot be bound or the runtime cannot start.
pub fn run_demo(options: &DemoOptions) -> Result<(), AppError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    runtime.block_on(demo(options.clone()))
}

async fn listener(preferred: u16) -> Result<TcpListener, AppError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], preferred));
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(_) => {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            TcpListener::bind(any)
                .await
                .map_err(|source| AppError::Bind { addr: any, source })
        }
    }
}

fn port_of(l: &TcpListener) -> Result<u16, AppError> {
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| AppError::Runtime(e.to_string()))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn mint(
    key: &SigningKey,
    kid: &str,
    issuer: &str,
    sub: &str,
    groups: &[&str],
) -> Result<String, AppError> {
    let now = portcullis_decider::now();
    let claims = json!({
        "iss": issuer, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 3600,
        "groups": groups, "scope": "orders:read",
    });
    key.encode(
        Some(kid),
        &Default::default(),
        claims.to_string().as_bytes(),
    )
    .map_err(|e| AppError::Runtime(e.to_string()))
}

async fn demo(options: DemoOptions) -> Result<(), AppError> {
    let (key, _) =
        SigningKey::generate(Algorithm::ES256).map_err(|e| AppError::Runtime(e.to_string()))?;
    let kid = key
        .public_material()
        .thumbprint()
        .unwrap_or_else(|| "demo".to_owned());
    let mut jwk = key
        .public_material()
        .public_jwk()
        .ok_or_else(|| AppError::Runtime("no public key".to_owned()))?;
    jwk.insert("kid".into(), Value::from(kid.clone()));
    jwk.insert("alg".into(), Value::from("ES256"));
    jwk.insert("use".into(), Value::from("sig"));
    let jwks = json!({ "keys": [jwk] });

    let issuer_listener = listener(8082).await?;
    let issuer = format!("http://127.0.0.1:{}", port_of(&issuer_listener)?);
    let verify_listener = listener(options.port.unwrap_or(8080)).await?;
    let upstream_listener = listener(8081).await?;
    let admin_listener = listener(9090).await?;
    // The sample app itself, behind the proxy listener (`upstream_listener`).
    let app_listener = listener(0).await?;
    let app_port = port_of(&app_listener)?;
    let (verify_port, upstream_port, admin_port) = (
        port_of(&verify_listener)?,
        port_of(&upstream_listener)?,
        port_of(&admin_listener)?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let key = Arc::new(key);

    // The issuer: its JWKS, and a fresh token on every GET /token.
    {
        let jwks = jwks.clone();
        let key = key.clone();
        let kid = kid.clone();
        let issuer = issuer.clone();
        tokio::spawn(serve_http(
            issuer_listener,
            same_for_every_peer(FnService::new(
                move |req: http::Request<hyper::body::Incoming>| {
                    let body = match req.uri().path() {
                        "/.well-known/jwks.json" => Some(json_response(StatusCode::OK, &jwks)),
                        "/token" => mint(&key, &kid, &issuer, "alice", &["users"])
                            .ok()
                            .map(|t| {
                                json_response(
                                    StatusCode::OK,
                                    &json!({ "access_token": t, "token_type": "Bearer" }),
                                )
                            }),
                        _ => None,
                    };
                    async move { body.unwrap_or_else(not_found) }
                },
            )),
            stop_rx.clone(),
            demo_limits(),
            None,
        ));
    }

    let config_text = demo_config(&issuer, app_port);
    let config =
        portcullis_policy::config::parse(&config_text, "<demo>", Path::new("."), &|_| None)?;
    let metrics = Arc::new(Metrics::new());
    let mut sources = Sources::new(metrics.clone())?;
    let decider = Arc::new(Decider::new(sources.engine(config), metrics));

    // The verify endpoint and admin, exactly as `serve` runs them.
    let mut tasks = Vec::new();
    tasks.extend(spawn_listeners(
        vec![
            (ListenerKind::Http, verify_listener),
            (ListenerKind::Admin, admin_listener),
            (ListenerKind::Proxy, upstream_listener),
        ],
        &decider,
        None,
        &stop_rx,
        &crate::tls::ListenerTls::default(),
        &demo_limits(),
    ));

    // The sample app: it trusts the proxy in front of it and shows the identity
    // headers it was given.
    tasks.push(tokio::spawn(serve_http(
        app_listener,
        same_for_every_peer(FnService::new(
            move |req: http::Request<hyper::body::Incoming>| {
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let headers: serde_json::Map<String, Value> = ["x-user"]
                    .iter()
                    .filter_map(|n| {
                        req.headers()
                            .get(*n)
                            .and_then(|v| v.to_str().ok())
                            .map(|v| ((*n).to_owned(), Value::from(v)))
                    })
                    .collect();
                let hello = headers
                    .get("x-user")
                    .cloned()
                    .unwrap_or(Value::from("anonymous"));
                let body = json!({ "hello": hello, "path": path, "identity_headers": headers });
                async move { json_response(StatusCode::OK, &body) }
            },
        )),
        stop_rx.clone(),
        demo_limits(),
        None,
    )));

    // Ready once the provider has fetched the issuer's JWKS.
    for _ in 0..250 {
        if decider.engine().is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = mint(&key, &kid, &issuer, "alice", &["users"])?;
    let admin_token = mint(&key, &kid, &issuer, "root", &["admins"])?;
    println!(
        "Portcullis demo: issuer {issuer}, verify http://127.0.0.1:{verify_port}/verify, protected app (proxy) http://127.0.0.1:{upstream_port}, admin http://127.0.0.1:{admin_port}"
    );
    println!();
    println!("# 401: no token");
    println!("curl -i http://127.0.0.1:{verify_port}/verify");
    println!();
    println!("# 200: a freshly minted token (valid 1h; GET {issuer}/token mints another)");
    println!("curl -i -H 'Authorization: Bearer {token}' http://127.0.0.1:{verify_port}/verify");
    println!();
    println!(
        "# the app through the proxy: 200 for alice, 403 for /admin unless the token has groups [admins]"
    );
    println!("curl -i -H 'Authorization: Bearer {token}' http://127.0.0.1:{upstream_port}/hello");
    println!(
        "curl -i -H 'Authorization: Bearer {token}' http://127.0.0.1:{upstream_port}/admin/panel"
    );
    println!(
        "curl -i -H 'Authorization: Bearer {admin_token}' http://127.0.0.1:{upstream_port}/admin/panel"
    );
    println!();
    println!("# health, readiness and metrics");
    println!("curl -s http://127.0.0.1:{admin_port}/metrics | grep portcullis_decisions");
    println!();
    println!("Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// The demo's config: its issuer (`uri` keys) and the sample app behind the proxy
/// listener on `app_port`. Public so that tests can check it like any shipped config.
pub fn demo_config(issuer: &str, app_port: u16) -> String {
    format!(
        r#"
providers:
  - name: demo
    issuer: {issuer}
    audiences: [{AUDIENCE}]
    jwks:
      uri: {issuer}/.well-known/jwks.json
    claims_to_headers:
      - {{header: x-user, claim: sub}}
upstreams:
  - name: app
    urls: [http://127.0.0.1:{app_port}]
rules:
  - name: health
    match: {{path: /healthz}}
    allow: anonymous
    upstream: app
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
    upstream: app
  - name: default
    match: {{}}
    upstream: app
"#
    )
}

/// The demo's listeners: the default timeouts and cap.
fn demo_limits() -> portcullis_conn::ConnLimits {
    portcullis_conn::ConnLimits::new(
        &portcullis_policy::config::lifecycle::Lifecycle::default(),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
}
