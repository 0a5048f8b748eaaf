//! The HTTP accept loop shared by the forward-auth, admin and demo listeners:
//! hyper with limits (header size, HTTP/2 streams), the connection timeouts and
//! cap of [`portcullis_conn`], TLS when the listener has some (`http_tls`,
//! `admin_tls`: the handshake within the header read timeout, the files watched),
//! and graceful drain on shutdown. Each connection gets its own frontend service,
//! made for its [`Peer`] (address, verified client certificate).

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

use portcullis_conn::{
    ConnLimits, ConnState, H2_PREFACE, InFlight, Registry, TlsServer, TrackedIo,
};
use portcullis_policy::Peer;

/// Largest request head we buffer (HTTP/1).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` flips to true, then drains. Each connection
/// is served by the service `new_service` makes for its peer (after the TLS handshake,
/// with the client certificate verified); every frontend is a `tower::Service` that
/// answers every request (never an error). Connections are held within `limits`
/// ([`portcullis_conn`]).
pub(crate) async fn serve_http<N, S>(
    listener: TcpListener,
    new_service: N,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
    tls: Option<Arc<TlsServer>>,
) where
    N: Fn(Peer) -> S + Send + Sync + 'static,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let new_service = Arc::new(new_service);
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
    let builders = Arc::new(Builders {
        http1: builder.clone().http1_only(),
        http2: builder.clone().http2_only(),
        any: builder,
    });
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
        let mut peer = Peer {
            address: Some(addr),
            ..Peer::default()
        };
        let tracked = {
            let state = state.clone();
            let draining = limits.draining.clone();
            let new_service = new_service.clone();
            move |peer| Tracked {
                inner: new_service(peer),
                state,
                draining,
            }
        };
        let limits = limits.clone();
        let builders = builders.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => {
                        // Not in the watcher yet: a shutdown ends the wait itself (the
                        // receiver is dropped once the version is known).
                        let version = {
                            let mut stop = stop;
                            tokio::select! {
                                v = first_bytes_say(&stream) => v,
                                _ = stop.wait_for(|s| *s) => return,
                            }
                        };
                        let stream = TrackedIo::new(stream, state.clone());
                        let conn = builders
                            .speaking(version)
                            .serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(tracked(peer)),
                            )
                            .into_owned();
                        let _ = watcher.watch(conn).await;
                    }
                    Some(tls) => {
                        let stream = TrackedIo::new(stream, state.clone());
                        let Some((stream, verified)) = tls
                            .handshake(stream, addr, limits.header_read_timeout)
                            .await
                        else {
                            return;
                        };
                        peer.certificate = verified.certificate;
                        let conn = builders
                            .any
                            .serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(tracked(peer)),
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

/// The HTTP server builders of a listener, with the same settings: one that reads
/// which version a connection speaks, and one for each version.
struct Builders {
    any: Builder<TokioExecutor>,
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

impl Builders {
    /// The builder for a connection whose first bytes said `version` (`None`: they did
    /// not say yet; that builder reads on until they do).
    fn speaking(&self, version: Option<Version>) -> &Builder<TokioExecutor> {
        match version {
            Some(Version::Http1) => &self.http1,
            Some(Version::Http2) => &self.http2,
            None => &self.any,
        }
    }
}

/// A version a cleartext connection's first bytes say it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Http1,
    Http2,
}

/// Which version a cleartext connection speaks, from the bytes it has sent so far,
/// peeked (not consumed): HTTP/2 when they are the whole preface, HTTP/1 as soon as
/// they stop being a prefix of it, `None` when the first segment is a strict prefix
/// (or the peer closed, or the read failed). The decision is the one hyper's
/// version-reading builder makes, so every connection is read as it would be; made
/// here, hyper does not hand its HTTP/1 parser the head in two parts (the part read
/// to decide, then the rest), which costs it a second scan of the head (about 11,000
/// instructions per connection for a 1 KB head, `bench/profile --scenarios 1c`).
/// `None` leaves the decision to that builder, which reads on: peeking again would
/// return at once with the same bytes.
async fn first_bytes_say(stream: &TcpStream) -> Option<Version> {
    let mut first = [0u8; H2_PREFACE.len()];
    let n = stream.peek(&mut first).await.ok()?;
    version_of(first.get(..n)?)
}

/// The version that a connection's first bytes `seen` (at most the preface's length)
/// say, if they say one yet (see [`first_bytes_say`]).
fn version_of(seen: &[u8]) -> Option<Version> {
    if seen.is_empty() {
        None
    } else if !H2_PREFACE.starts_with(seen) {
        Some(Version::Http1)
    } else if seen.len() == H2_PREFACE.len() {
        Some(Version::Http2)
    } else {
        None
    }
}

/// A frontend, noting its connection's requests (for the idle timeout) and, while
/// shutting down, asking HTTP/1 clients to close after the response.
#[derive(Clone, Debug)]
struct Tracked<S> {
    /// The frontend's service for this connection (it holds the connection's peer).
    inner: S,
    state: Arc<ConnState>,
    draining: Arc<AtomicBool>,
}

impl<S> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let http1 = req.version() < http::Version::HTTP_2;
        let done = InFlight::start(&self.state);
        Answer {
            answer: self.inner.call(req),
            close: http1.then(|| self.draining.clone()),
            _done: done,
        }
    }
}

/// The frontend's answer to one request, the request in flight until it is ready or
/// dropped. A named future rather than a boxed one: one allocation less per request.
struct Answer<F> {
    answer: F,
    /// HTTP/1: the flag that asks the client to close while shutting down.
    close: Option<Arc<AtomicBool>>,
    _done: InFlight,
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Unpin,
{
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = std::task::ready!(Pin::new(&mut self.answer).poll(cx));
        if self
            .close
            .as_ref()
            .is_some_and(|draining| draining.load(Ordering::Acquire))
        {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        Poll::Ready(Ok(response))
    }
}

/// For a frontend that does not read the peer (admin, the demo's servers): the same
/// service for every connection.
pub(crate) fn same_for_every_peer<S: Clone>(service: S) -> impl Fn(Peer) -> S {
    move |_| service.clone()
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;

    use super::*;

    #[test]
    fn the_first_bytes_say_a_version_as_hyper_would_read_them() {
        assert_eq!(version_of(b""), None);
        assert_eq!(version_of(b"GET / HTTP/1.1\r\n"), Some(Version::Http1));
        // A prefix of the preface says nothing yet; the first byte that leaves it, HTTP/1.
        assert_eq!(version_of(b"P"), None);
        assert_eq!(version_of(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(version_of(b"POST /verify HTTP/1.1"), Some(Version::Http1));
        assert_eq!(version_of(b"PRI / HTTP/1.1\r\n"), Some(Version::Http1));
        assert_eq!(
            version_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\x00"),
            Some(Version::Http1)
        );
        assert_eq!(version_of(H2_PREFACE), Some(Version::Http2));
    }

    #[tokio::test]
    async fn the_peek_leaves_a_prefix_of_the_preface_to_hyper_and_consumes_nothing() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"P").await.unwrap();
        assert_eq!(first_bytes_say(&server).await, None);
        client.write_all(b"OST / HTTP/1.1\r\n").await.unwrap();
        // Wait until the whole line is there (a peek sees what has arrived).
        let mut line = [0u8; 16];
        while server.peek(&mut line).await.unwrap() < line.len() {
            tokio::task::yield_now().await;
        }
        assert_eq!(first_bytes_say(&server).await, Some(Version::Http1));
        // Nothing was consumed: the reader gets every byte.
        let mut read = [0u8; 16];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"POST / HTTP/1.1\r");
    }

    /// A listener answering each request with its HTTP version, on a thread of its own.
    fn serve_versions() -> (u16, watch::Sender<bool>) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let (stop, shutdown) = watch::channel(false);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let service = FnService::new(|req: Request<Incoming>| {
                    let version = format!("{:?}", req.version());
                    async move { Response::new(Full::new(Bytes::from(version))) }
                });
                let limits = ConnLimits {
                    header_read_timeout: Duration::from_secs(5),
                    idle_timeout: Duration::from_secs(5),
                    max_connections: 16,
                    draining: Arc::new(AtomicBool::new(false)),
                };
                serve_http(
                    listener,
                    same_for_every_peer(service),
                    shutdown,
                    limits,
                    None,
                )
                .await;
            });
        });
        (port, stop)
    }

    /// Sends `parts` with a pause between them; what the server answered first.
    fn send_in_parts(port: u16, parts: &[&[u8]], until: &[u8]) -> Vec<u8> {
        let mut s = StdStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for part in parts {
            s.write_all(part).unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(until.len()).any(|w| w == until) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    }

    #[test]
    fn http1_and_h2c_are_served_whole_or_in_parts() {
        let (port, stop) = serve_versions();
        let get = b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
        // Whole: the first bytes say HTTP/1 at once.
        let whole = send_in_parts(port, &[get], b"HTTP/1.1");
        assert!(
            whole.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&whole)
        );
        // "P", a prefix of the preface, alone first: hyper's own reading decides.
        let post = b"OST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let split = send_in_parts(port, &[b"P", post], b"HTTP/1.1");
        assert!(
            split.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&split)
        );
        // HTTP/2 with prior knowledge, the preface whole and then in two parts: the
        // server's first frame is its SETTINGS (type 4), as HTTP/2 requires.
        let settings: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
        for parts in [
            vec![&H2_PREFACE[..], settings],
            vec![&H2_PREFACE[..10], &H2_PREFACE[10..], settings],
        ] {
            let mut s = StdStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            for part in parts {
                s.write_all(part).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut head = [0u8; 9];
            s.read_exact(&mut head).unwrap();
            assert_eq!(head[3], 4, "the server's first frame: {head:?}");
        }
        // Not quite the preface: HTTP/1, which refuses it (a 400, not a hang).
        let mut near = H2_PREFACE.to_vec();
        near[23] = b'X';
        let refused = send_in_parts(port, &[&near], b"\r\n\r\n");
        assert!(
            refused.starts_with(b"HTTP/1.1 4"),
            "{}",
            String::from_utf8_lossy(&refused)
        );
        let _ = stop.send(true);
    }
}
