//! The proxy listener's accept loop: TCP or TLS, HTTP/1.1 (with upgrades) and
//! HTTP/2 (h2c prior knowledge, or ALPN `h2`), the peer (address, client
//! certificate) handed to the service of each connection, graceful drain; the
//! connection timeouts and cap every HTTP listener has ([`portcullis_conn`]: a
//! header read timeout from accept, an idle timeout, the oldest idle connection
//! shed at the cap). A request is in flight until its response body is done, so
//! streamed responses are never idle; an upgraded connection (WebSocket) leaves the
//! watch with its HTTP connection.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis_conn::{ConnLimits, ConnState, Registry, TlsServer, TrackedIo};
use portcullis_policy::Peer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::counted::Counted;
use crate::forward::NewProxy;

/// Largest request head buffered (HTTP/1).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long in-flight requests may take after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves proxy mode on `listener` (TLS when `tls` is given) until `shutdown`
/// flips to true, then drains. Connections are held within `limits`.
pub async fn serve(
    listener: TcpListener,
    proxy: NewProxy,
    tls: Option<Arc<TlsServer>>,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
) {
    if let Some(tls) = &tls {
        tokio::spawn(
            tls.clone()
                .watch(portcullis_conn::tls::RELOAD_EVERY, shutdown.clone()),
        );
    }
    proxy.warm();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The header timeout is ours, from accept (`portcullis_conn`).
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut registry = Registry::default();
    let limits = Arc::new(limits);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::new(ConnState::new());
        if !registry.admit(state.clone(), limits.max_connections) {
            // Every connection has a request in flight: refuse this one now rather
            // than let it wait unanswered.
            tracing::warn!(
                max = limits.max_connections,
                "proxy connection cap reached with every connection busy; connection refused"
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let stream = TrackedIo::new(stream, state.clone());
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let proxy = proxy.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let served = async {
                let mut peer = Peer {
                    address: Some(addr),
                    certificate: None,
                    principal: None,
                };
                match tls {
                    None => {
                        let service = TowerToHyperService::new(Counted::new(
                            proxy.new_service(peer, false),
                            state.clone(),
                            limits.draining.clone(),
                        ));
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Some(server) => {
                        // Refused handshakes are logged there, with their reason.
                        let Some((tls, tls_peer)) = server
                            .handshake(stream, addr, limits.header_read_timeout)
                            .await
                        else {
                            return;
                        };
                        peer.certificate = tls_peer.certificate;
                        let service = TowerToHyperService::new(Counted::new(
                            proxy.new_service(peer, true),
                            state.clone(),
                            limits.draining.clone(),
                        ));
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), service)
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                }
            };
            tokio::select! {
                () = served => {}
                why = state.watchdog(&limits) => tracing::debug!(why, peer = %addr, "proxy connection closed"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("proxy drain timed out; closing remaining connections");
    }
}
