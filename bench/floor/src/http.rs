//! `bench-floor http`: hyper 1's own HTTP/1 server connection answering 200 with an
//! empty body to everything; no routing, no headers read, no timers.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Accepts on `addr` until SIGTERM/SIGINT; one task per connection.
pub(crate) async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    serve_each(addr, || service_fn(ok)).await
}

/// The accept loop of `http` and `http-verify`: each connection served by
/// `new_service()` on hyper's HTTP/1 connection, in a task of its own.
pub(crate) async fn serve_each<S>(
    addr: SocketAddr,
    new_service: impl Fn() -> S,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<Empty<Bytes>>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let stop = crate::shutdown();
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: keep serving the others.
                Err(_) => continue,
            },
        };
        // Small answers: send each at once, as the servers it is compared with do.
        let _ = stream.set_nodelay(true);
        let service = new_service();
        tokio::spawn(async move {
            // A client that breaks the connection is no concern of the floor's.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn ok(_: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    Ok(Response::new(Empty::new()))
}
