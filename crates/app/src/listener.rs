//! The HTTP accept loop shared by the forward-auth, admin and demo listeners:
//! hyper with limits (header size, HTTP/2 streams), the connection timeouts and
//! cap of [`portcullis_conn`], TLS when the listener has some (`http_tls`,
//! `admin_tls`: the handshake within the header read timeout, the files watched),
//! and graceful drain on shutdown. Each request carries the connection's
//! [`Peer`] (address, verified client certificate) in its extensions.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

use portcullis_conn::{ConnLimits, ConnState, Registry, TlsServer, TrackedIo};
use portcullis_policy::Peer;

/// Largest request head we buffer (HTTP/1).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on `listener` until `shutdown` flips to true, then drains. Every
/// frontend is a `tower::Service` that answers every request (never an error).
/// Connections are held within `limits` ([`portcullis_conn`]).
pub(crate) async fn serve_http<S>(
    listener: TcpListener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
    tls: Option<Arc<TlsServer>>,
) where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    if let Some(tls) = &tls {
        tokio::spawn(
            tls.clone()
                .watch(portcullis_conn::tls::RELOAD_EVERY, shutdown.clone()),
        );
    }
    let mut builder = Builder::new(TokioExecutor::new());
    // The header timeout is ours (from accept, see `conn`): hyper's would also close
    // keep-alive connections between requests after it.
    builder
        .http1()
        .timer(TokioTimer::new())
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
                // EMFILE and friends: back off instead of spinning.
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
                "connection cap reached with every connection busy; connection refused"
            );
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let mut tracked = Tracked {
            inner: service.clone(),
            state: state.clone(),
            draining: limits.draining.clone(),
            peer: Peer {
                address: Some(addr),
                ..Peer::default()
            },
        };
        let stream = TrackedIo::new(stream, state.clone());
        let limits = limits.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => {
                        let conn = builder
                            .serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(tracked),
                            )
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Some(tls) => {
                        let Some((stream, peer)) = tls
                            .handshake(stream, addr, limits.header_read_timeout)
                            .await
                        else {
                            return;
                        };
                        tracked.peer.certificate = peer.certificate;
                        let conn = builder
                            .serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(tracked),
                            )
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                }
            };
            tokio::select! {
                () = served => {}
                why = state.watchdog(&limits) => tracing::debug!(why, "connection closed"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// A frontend, noting its connection's requests (for the idle timeout) and, while
/// shutting down, asking HTTP/1 clients to close after the response.
#[derive(Clone, Debug)]
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
    draining: Arc<AtomicBool>,
    /// The connection's peer, handed to each request (its extensions).
    peer: Peer,
}

impl<S> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer.clone());
        let http1 = req.version() < http::Version::HTTP_2;
        self.state.request_started();
        let done = InFlight(self.state.clone());
        let answer = self.inner.call(req);
        let draining = self.draining.clone();
        Box::pin(async move {
            let mut response = answer.await?;
            if http1 && draining.load(Ordering::Acquire) {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(done);
            Ok(response)
        })
    }
}

/// Ends the request in its connection's state when dropped (answered or not).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A closure as a service, for the demo's small servers.
#[derive(Debug)]
pub(crate) struct FnService<F>(Arc<F>);

impl<F> FnService<F> {
    pub(crate) fn new(f: F) -> FnService<F> {
        FnService(Arc::new(f))
    }
}

impl<F> Clone for FnService<F> {
    fn clone(&self) -> Self {
        FnService(self.0.clone())
    }
}

impl<F, Fut> Service<Request<Incoming>> for FnService<F>
where
    F: Fn(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let answer = (self.0)(req);
        Box::pin(async move { Ok(answer.await) })
    }
}
