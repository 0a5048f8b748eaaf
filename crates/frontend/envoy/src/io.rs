//! The connection as the gRPC server writes to it: one that says it has no vectored
//! writes, so that h2 copies an answer's frames into one buffer and sends them with
//! one write.
//!
//! h2 sends a DATA frame whose payload is at least its "chain threshold" by chaining
//! the payload behind its write buffer instead of copying it; until that payload is
//! written, no other frame is queued. The threshold is 256 bytes on a connection with
//! vectored writes and 1 KiB without. An allow's answer carries the identity's
//! metadata, 300 to 600 bytes for a typical token: with the 256-byte threshold every
//! `Check` answer went out in two writes (headers and data, then the trailers, each
//! waking Envoy), measured with `strace -c` as 2.00 `writev` per `Check`. With this
//! wrapper it is one write for answers under 1 KiB (BENCHMARKS.md, "Target 4, the
//! answer's writes and Envoy's side of a `Check`").

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
#[cfg(test)]
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

/// `inner`, reporting `is_write_vectored() == false`; everything else is `inner`'s.
#[derive(Debug)]
pub(crate) struct CopiedFrames<T> {
    inner: T,
}

impl<T> CopiedFrames<T> {
    pub(crate) fn new(inner: T) -> Self {
        CopiedFrames { inner }
    }
}

impl<T: Connected> Connected for CopiedFrames<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CopiedFrames<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CopiedFrames<T> {
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

    // `poll_write_vectored` is left to its default (the first non-empty slice), which
    // h2 does not call on a connection that reports no vectored writes.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    use portcullis_decider::Decider;
    use portcullis_jose::{Algorithm, SigningKey, b64};
    use prost::Message as _;
    use tokio_stream::StreamExt as _;

    use super::*;

    const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
    const CHECKS: usize = 20;

    /// Counts the writes that moved bytes; vectored or not as `inner` says.
    struct Counted<T> {
        inner: T,
        writes: Arc<AtomicUsize>,
    }

    impl<T: Connected> Connected for Counted<T> {
        type ConnectInfo = T::ConnectInfo;

        fn connect_info(&self) -> Self::ConnectInfo {
            self.inner.connect_info()
        }
    }

    impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<T: AsyncWrite + Unpin> Counted<T> {
        fn count(&self, written: &Poll<io::Result<usize>>) {
            if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
                self.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.inner).poll_write(cx, buf);
            self.count(&written);
            written
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            self.count(&written);
            written
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
    }

    fn decider() -> Arc<Decider> {
        let k = b64::encode(SECRET);
        let yaml = format!(
            r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
rules:
  - name: any
    match: {{}}
"#
        );
        crate::test_decider(&yaml)
    }

    /// A token whose claims make an allow's metadata a few hundred bytes, as a typical
    /// access token's do.
    fn check_request() -> CheckRequest {
        let now = portcullis_decider::now();
        let claims = serde_json::json!({
            "iss": "https://idp", "aud": "api", "sub": "alice", "exp": now + 600,
            "email": "alice@example.com", "name": "Alice Example",
            "groups": ["admins", "developers", "on-call", "platform", "reviewers"],
            "scope": "openid profile email orders:read orders:write",
        });
        let token = SigningKey::from_secret(SECRET, Algorithm::HS256)
            .unwrap()
            .encode(
                Some("h1"),
                &Default::default(),
                claims.to_string().as_bytes(),
            )
            .unwrap();
        let headers = [
            (":authority", "api.example"),
            (":path", "/orders"),
            (":method", "GET"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("authorization".to_owned(), format!("Bearer {token}"))]);
        let header_map = HeaderMap {
            headers: headers
                .map(|(key, value)| HeaderValue {
                    key,
                    value,
                    ..Default::default()
                })
                .collect(),
        };
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "GET".to_owned(),
                        host: "api.example".to_owned(),
                        path: "/orders".to_owned(),
                        header_map: Some(header_map),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    /// Serves on 127.0.0.1 with each connection wrapped by `wrap`, makes one `Check`
    /// (the connection's own frames), then `CHECKS` more one after the other; the
    /// writes those took and the size of one answer.
    async fn writes_per_checks<IO>(
        wrap: impl Fn(CopiedFrames<TcpStream>) -> IO + Send + 'static,
    ) -> (usize, usize)
    where
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = crate::plain_incoming(listener).map(move |c| c.map(&wrap));
        let server = tokio::spawn(
            crate::router(decider(), None)
                .await
                .serve_with_incoming(incoming),
        );
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = AuthorizationClient::new(channel);
        let first = client.check(check_request()).await.unwrap().into_inner();
        assert_eq!(
            first.status.as_ref().unwrap().code,
            0,
            "the token is allowed"
        );
        assert!(
            first.dynamic_metadata.is_some(),
            "an allow carries the identity"
        );
        let answer_len = first.encoded_len();
        let before = WRITES.with(|w| w.load(Ordering::Relaxed));
        for _ in 0..CHECKS {
            client.check(check_request()).await.unwrap();
        }
        let after = WRITES.with(|w| w.load(Ordering::Relaxed));
        server.abort();
        (after - before, answer_len)
    }

    thread_local! {
        // The current-thread test runtime: server and client share the thread.
        static WRITES: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
    }

    fn counted<T>(inner: T) -> Counted<T> {
        Counted {
            inner,
            writes: WRITES.with(Arc::clone),
        }
    }

    /// An allow's answer (headers, a DATA frame with the metadata, trailers) goes out
    /// in one write. The same server on the bare connection, which says it has
    /// vectored writes, takes two per answer: that is what this wrapper is for.
    #[tokio::test]
    async fn an_allow_s_answer_is_one_write() {
        let (writes, answer_len) = writes_per_checks(counted).await;
        assert!(
            (256..1024).contains(&answer_len),
            "the answer ({answer_len} bytes) is between h2's two chain thresholds"
        );
        assert!(
            writes <= CHECKS + 2,
            "{writes} writes for {CHECKS} answers of {answer_len} bytes"
        );

        let (bare, _) = writes_per_checks(|c: CopiedFrames<TcpStream>| counted(c.inner)).await;
        assert!(
            bare >= 2 * CHECKS,
            "{bare} writes for {CHECKS} answers on a vectored connection: the test no longer tells the two apart"
        );
    }
}
