//! The ext_authz listener over TLS (`listen.grpc_tls`): connections are accepted
//! and their handshakes (ALPN `h2`, client certificates when `client_ca` asks for
//! them) run off the accept loop, each within the header read timeout; a refused
//! handshake is logged by [`TlsServer::handshake`] and dropped. The client here is
//! Envoy itself: its certificate authenticates Envoy to us and is not the original
//! request's client certificate (that is `source.certificate` in the CheckRequest).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use portcullis_conn::TlsServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

/// Connections waiting for the gRPC server to pick them up.
const BACKLOG: usize = 128;

/// A TLS connection as the gRPC server takes it.
#[derive(Debug)]
pub(crate) struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

/// What the server knows of a TLS connection (request extensions).
#[derive(Clone, Debug)]
pub struct TlsConnectInfo {
    /// The caller's address.
    pub remote: SocketAddr,
    /// The caller's verified certificate (PEM), when it sent one.
    pub certificate: Option<String>,
}

/// Accepts on `listener` and hands each connection whose handshake succeeds to the
/// receiver; ends when the receiver is dropped (the server stopped).
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Arc<TlsServer>,
    handshake_timeout: Duration,
) -> mpsc::Receiver<io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "grpc accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some((inner, peer)) = tls.handshake(stream, remote, handshake_timeout).await
                else {
                    return;
                };
                let conn = TlsConn {
                    inner,
                    info: TlsConnectInfo {
                        remote,
                        certificate: peer.certificate,
                    },
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    rx
}

// === impl TlsConn ===

impl Connected for TlsConn {
    type ConnectInfo = TlsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
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

    // No vectored writes, as on the plain listener (`crate::io`): h2 then copies an
    // answer's frames into one buffer, and each answer is one TLS write.
    fn is_write_vectored(&self) -> bool {
        false
    }
}
