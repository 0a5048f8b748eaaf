//! What the accept loop knows of each connection (issue 18: idle connections were
//! never closed, and with thousands held open a new client waited in the accept
//! queue): when it was last active, whether a request is in flight, whether bytes
//! of a request head are pending; a watchdog that closes it when idle or slow; and
//! a registry that sheds the oldest idle connection when the cap is reached.
//!
//! Timeouts, from accept and from the end of the last request:
//! - before its first request, a connection has `header_read_timeout` to send a
//!   whole request head (a client that connects and sends nothing is closed then);
//! - bytes of a head pending: `header_read_timeout` from the first of them (slowloris);
//! - after a request, with nothing pending: `idle_timeout` (keep-alive);
//! - a request in flight: no limit here (the drain bounds it on shutdown).
//!
//! HTTP/2 connections carry PINGs and other frames between requests, so for them
//! only the requests count: idle is no stream in flight for `idle_timeout`.
//!
//! Every HTTP listener uses it: `http` and `admin` (the app's accept loop) and
//! `proxy` (its own accept loop, where a request stays in flight until its response
//! body is done, so long downloads and streams are not idle).
//!
//! [`tls`]: TLS on the `http`, `grpc` and `admin` listeners (rustls, client
//! certificates, reload when the files change).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

pub mod tls;
pub use tls::{Alpn, TlsError, TlsPeer, TlsServer};

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Timeouts and the cap of one listener.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Time to send a request head, from accept or from its first byte.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and nothing pending for this long closes.
    pub idle_timeout: Duration,
    /// Most connections held at once; at the cap the oldest idle one is shed.
    pub max_connections: usize,
    /// Set when shutting down: HTTP/1 responses then ask the client to close.
    pub draining: Arc<AtomicBool>,
}

impl ConnLimits {
    /// The limits `lifecycle` names, with `draining` shared by every listener.
    pub fn new(
        lifecycle: &portcullis_policy::config::lifecycle::Lifecycle,
        draining: Arc<AtomicBool>,
    ) -> ConnLimits {
        ConnLimits {
            header_read_timeout: lifecycle.header_read_timeout,
            idle_timeout: lifecycle.idle_timeout,
            max_connections: lifecycle.max_connections,
            draining,
        }
    }
}

/// One connection's state, shared by its IO, its service and the accept loop.
#[derive(Debug)]
pub struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last request's end (accept: 0).
    last_activity_ms: AtomicU64,
    /// Milliseconds since `epoch` (+1) of the first byte read since then (0: none).
    pending_since_ms: AtomicU64,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// The connection speaks HTTP/2 (read from its preface).
    h2: AtomicBool,
    /// Bytes of the HTTP/2 preface read so far (its length once they left it).
    seen: AtomicU64,
    shed: Notify,
    /// Asked to close by the registry (so that it is not picked twice).
    shedding: AtomicBool,
}

impl ConnState {
    /// A connection just accepted.
    pub fn new() -> ConnState {
        ConnState {
            epoch: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            pending_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            shed: Notify::new(),
            shedding: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request starts (its head was read). No clock is read: while a request is in
    /// flight nothing measures from its start (the connection is not idle, and
    /// [`Registry::admit`] sheds only idle ones), and its end notes the time.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.pending_since_ms.store(0, Ordering::Release);
    }

    /// A request's response is ready.
    pub fn request_ended(&self) {
        self.served.fetch_add(1, Ordering::AcqRel);
        self.last_activity_ms
            .store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn bytes_read(&self, bytes: &[u8]) {
        // HTTP/2 only once the whole preface has come, as hyper decides. A head that
        // merely starts like it (`PRI / HTTP/1.1`: hyper takes `PRI` as an HTTP/1
        // method), or a preface sent slowly, is an HTTP/1 head pending meanwhile, held
        // to the header read timeout rather than the idle one.
        let seen = self.seen.load(Ordering::Acquire);
        let whole = H2_PREFACE.len();
        if seen < whole as u64 {
            let at = usize::try_from(seen).unwrap_or(whole);
            let take = (whole - at).min(bytes.len());
            let matches = H2_PREFACE
                .get(at..at + take)
                .is_some_and(|p| bytes.get(..take) == Some(p));
            if matches && at + take == whole {
                self.h2.store(true, Ordering::Release);
                // The preface is no HTTP/1 head pending.
                self.pending_since_ms.store(0, Ordering::Release);
            }
            let next = if matches { at + take } else { whole };
            self.seen
                .store(u64::try_from(next).unwrap_or(u64::MAX), Ordering::Release);
        }
        if self.in_flight.load(Ordering::Acquire) == 0 && !self.h2.load(Ordering::Acquire) {
            let _ = self.pending_since_ms.compare_exchange(
                0,
                self.now_ms().saturating_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// Whether no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When it was last active (for shedding the oldest idle one first).
    pub fn last_activity(&self) -> (Instant, u64) {
        (self.epoch, self.last_activity_ms.load(Ordering::Acquire))
    }

    /// Asks the connection to close now (the registry sheds it).
    pub fn shed(&self) -> bool {
        if self.shedding.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.shed.notify_one();
        true
    }

    /// Resolves when the connection must close: idle or slow past its limits, or shed.
    pub async fn watchdog(&self, limits: &ConnLimits) -> &'static str {
        loop {
            let deadline = match self.deadline(limits) {
                Ok(d) => d,
                Err(why) => return why,
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.shed.notified() => return "shed",
            }
        }
    }

    /// The instant to check again, or why the connection must close now.
    fn deadline(&self, limits: &ConnLimits) -> Result<Instant, &'static str> {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // A request in flight: check again later (nothing to close for).
        let check_in = |after: u64| self.epoch + Duration::from_millis(after);
        if !self.is_idle() {
            return Ok(check_in(now.saturating_add(ms(limits.idle_timeout))));
        }
        let pending = self.pending_since_ms.load(Ordering::Acquire);
        let (since, limit, why) = if pending != 0 {
            (
                pending - 1,
                limits.header_read_timeout,
                "header read timeout",
            )
        } else if self.served.load(Ordering::Acquire) == 0 && !self.h2.load(Ordering::Acquire) {
            (0, limits.header_read_timeout, "no request")
        } else {
            (
                self.last_activity_ms.load(Ordering::Acquire),
                limits.idle_timeout,
                "idle",
            )
        };
        let end = since.saturating_add(ms(limit));
        if now >= end {
            Err(why)
        } else {
            Ok(check_in(end))
        }
    }
}

/// The accept loop's list of live connections.
#[derive(Debug, Default)]
pub struct Registry {
    live: Vec<Arc<ConnState>>,
}

impl Registry {
    /// Adds a connection; at `cap`, sheds the oldest idle one first. `false` when
    /// every connection is busy (the new one is then refused).
    pub fn admit(&mut self, conn: Arc<ConnState>, cap: usize) -> bool {
        if self.live.len() >= cap {
            // Connections that ended hold only our reference.
            self.live.retain(|c| Arc::strong_count(c) > 1);
        }
        if self.live.len() >= cap {
            let oldest = self
                .live
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_idle() && !c.shedding.load(Ordering::Acquire))
                .min_by_key(|(_, c)| {
                    let (epoch, ms) = c.last_activity();
                    epoch + Duration::from_millis(ms)
                })
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    let old = self.live.swap_remove(i);
                    old.shed();
                }
                None => return false,
            }
        }
        self.live.push(conn);
        true
    }
}

/// A request in flight on a connection until dropped (answered, or its response
/// body done or dropped).
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    /// A request starts on `state`'s connection.
    pub fn start(state: &Arc<ConnState>) -> InFlight {
        state.request_started();
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A connection's IO, noting the bytes it reads.
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`, noting what it reads in `state`.
    pub fn new(inner: T, state: Arc<ConnState>) -> TrackedIo<T> {
        TrackedIo { inner, state }
    }
}

// === impl ConnState ===

impl Default for ConnState {
    fn default() -> ConnState {
        ConnState::new()
    }
}

// === impl TrackedIo ===

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let Some(new) = buf.filled().get(before..)
            && !new.is_empty()
        {
            self.state.bytes_read(new);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_closes_after_the_header_timeout_an_idle_one_after_the_idle_timeout()
     {
        let c = ConnState::new();
        let l = limits();
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "no request");
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        let c = ConnState::new();
        c.bytes_read(b"GET / HTTP/1.1\r\n");
        c.request_started();
        c.request_ended();
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "idle");
        assert_eq!(started.elapsed(), Duration::from_secs(60));

        // Part of a second head: the header timeout, from its first byte.
        let c = ConnState::new();
        c.request_started();
        c.request_ended();
        tokio::time::advance(Duration::from_secs(5)).await;
        c.bytes_read(b"GET /");
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "header read timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        // HTTP/2: frames between requests do not count as a pending head.
        let c = ConnState::new();
        c.bytes_read(b"PR");
        c.bytes_read(b"I * HTTP/2.0\r\n");
        assert!(!c.h2.load(Ordering::Acquire), "not yet the whole preface");
        c.bytes_read(b"\r\nSM\r\n\r\n");
        assert!(c.h2.load(Ordering::Acquire));
        c.bytes_read(b"ping");
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "idle");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_only_starts_like_the_preface_has_the_header_timeout() {
        let l = limits();
        // An HTTP/1 request with the method `PRI`, never finished.
        let c = ConnState::new();
        c.bytes_read(b"PRI / HTTP/1.1\r\nhost: a\r\n");
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "header read timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // The preface sent slowly: held to the header timeout until it is whole.
        let c = ConnState::new();
        c.bytes_read(&H2_PREFACE[..16]);
        let started = Instant::now();
        assert_eq!(c.watchdog(&l).await, "header read timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let mut r = Registry::default();
        let old = Arc::new(ConnState::new());
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy_oldest = Arc::new(ConnState::new());
        assert!(r.admit(old.clone(), 2));
        assert!(r.admit(busy_oldest.clone(), 2));
        busy_oldest.request_started();
        old.request_started();
        old.request_ended();
        let new = Arc::new(ConnState::new());
        assert!(r.admit(new.clone(), 2));
        assert!(old.shedding.load(Ordering::Acquire), "the idle one goes");
        assert!(!busy_oldest.shedding.load(Ordering::Acquire));
        new.request_started();
        // Everything busy: the newcomer is refused.
        assert!(!r.admit(Arc::new(ConnState::new()), 2));
    }
}
