//! Envoy ext_authz v3 gRPC frontend: `envoy.service.auth.v3.Authorization/Check`,
//! plus the standard `grpc.health.v1.Health` service, on one listener.
//!
//! Each `CheckRequest` is mapped to an [`AuthRequest`](portcullis_policy::AuthRequest)
//! (method, host, path with query, headers, and the rule named by the route's
//! `context_extensions: {rule: NAME}`), decided by the shared [`Decider`] under the
//! frontend name `ext_authz_grpc`, and answered:
//!
//! - allow: status OK, `OkHttpResponse` headers that overwrite (never append),
//!   `headers_to_remove` naming every identity header not set, and the identity
//!   (`provider`, `iss`, `sub`, `claims`) as dynamic metadata for RBAC and access logs;
//! - deny: UNAUTHENTICATED (401) or PERMISSION_DENIED (403), with a
//!   `DeniedHttpResponse` carrying the status, `WWW-Authenticate` and the JSON body.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use portcullis_decider::{Decider, Metrics};
//! use portcullis_policy::{Engine, config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let yaml = "rules:\n  - name: health\n    match: {path: /healthz}\n    allow: anonymous\n";
//! let config = config::parse(yaml, "portcullis.yaml", Path::new("."), &|_| None)?;
//! let decider = Arc::new(Decider::new(Engine::new(config, vec![]), Arc::new(Metrics::new())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // Serves until the shutdown future completes (here at once), then drains.
//! portcullis_frontend_envoy::serve(listener, decider, async {}).await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

// Fuzzing entry points with fixed secrets: never in a release build.
mod answer;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_logic;
mod io;
mod metadata;
mod request;
mod response;
mod service;
mod tls;

/// A decider for `yaml` (static keys only), for this crate's unit tests.
#[cfg(test)]
pub(crate) fn test_decider(yaml: &str) -> Arc<Decider> {
    let config =
        portcullis_policy::config::parse(yaml, "t.yaml", std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("test config: {e}"));
    let engine = portcullis_policy::Engine::with_static_keys(config);
    Arc::new(Decider::new(
        engine,
        Arc::new(portcullis_decider::Metrics::new()),
    ))
}

pub use tls::TlsConnectInfo;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use portcullis_decider::Decider;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use tokio_stream::StreamExt as _;

use crate::io::CopiedFrames;
use crate::service::{AuthorizationServer, AuthorizationService};

/// The gRPC service name Envoy calls (also reported SERVING by the health service).
pub const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// Serves `envoy.service.auth.v3.Authorization/Check` and `grpc.health.v1.Health`
/// on `listener` until `shutdown` completes; then stops accepting, lets in-flight
/// calls finish and returns.
///
/// # Errors
/// The server fails (an accept error alone does not stop it).
pub async fn serve(
    listener: tokio::net::TcpListener,
    decider: Arc<Decider>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_login(listener, decider, None, shutdown).await
}

/// As [`serve`], reading browser sessions with `login` (the session cookie of the
/// original request is a credential, as on every frontend).
///
/// # Errors
/// The server fails (an accept error alone does not stop it).
pub async fn serve_with_login(
    listener: tokio::net::TcpListener,
    decider: Arc<Decider>,
    login: Option<Arc<portcullis_login::Login>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    router(decider, login)
        .await
        .serve_with_incoming_shutdown(plain_incoming(listener), shutdown)
        .await
        .map_err(std::io::Error::other)
}

/// As [`serve_with_login`], over TLS (`listen.grpc_tls`: ALPN `h2`, client
/// certificates when its `client_ca` asks for them). Each handshake has
/// `handshake_timeout`; a refused one is logged and the connection dropped.
///
/// # Errors
/// The server fails (an accept or handshake error alone does not stop it).
pub async fn serve_tls_with_login(
    listener: tokio::net::TcpListener,
    tls: Arc<portcullis_conn::TlsServer>,
    handshake_timeout: Duration,
    decider: Arc<Decider>,
    login: Option<Arc<portcullis_login::Login>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let incoming = tokio_stream::wrappers::ReceiverStream::new(tls::incoming(
        listener,
        tls,
        handshake_timeout,
    ));
    router(decider, login)
        .await
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(std::io::Error::other)
}

/// The plain listener's connections as the gRPC server takes them. Small unary calls:
/// each answer is sent at once (no Nagle delay), in one write ([`CopiedFrames`]).
fn plain_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<CopiedFrames<tokio::net::TcpStream>>> {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(CopiedFrames::new))
}

/// The gRPC server with its limits, health and authorization services.
async fn router(
    decider: Arc<Decider>,
    login: Option<Arc<portcullis_login::Login>>,
) -> tonic::transport::server::Router {
    let (reporter, health) = tonic_health::server::health_reporter();
    // "" (the whole server) starts SERVING; so does the authorization service.
    reporter.set_serving::<AuthorizationServer>().await;
    // Limits: a Check is small and fast; anything slow or huge is an attack or a bug.
    Server::builder()
        .timeout(Duration::from_secs(10))
        .max_concurrent_streams(1024)
        .http2_max_header_list_size(64 * 1024)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .http2_max_pending_accept_reset_streams(Some(100))
        .add_service(health)
        .add_service(AuthorizationServer::new(
            AuthorizationService::new(decider).with_login(login),
        ))
}

#[cfg(test)]
mod tests {
    use tonic::server::NamedService;

    use super::*;

    #[test]
    fn service_name_is_the_one_envoy_calls() {
        assert_eq!(<AuthorizationServer as NamedService>::NAME, SERVICE_NAME);
        assert_eq!(crate::service::CHECK_PATH, format!("/{SERVICE_NAME}/Check"));
    }
}
