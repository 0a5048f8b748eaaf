//! Upstream clients: one pool per configured upstream (hyper-util's legacy client,
//! HTTP/1.1 and HTTP/2, over TCP or rustls), round robin over its URLs, with the
//! connect and response-head timeouts of its config.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_policy::config::{UpstreamConfig, UpstreamProtocol};
use rustls_pki_types::ServerName;

use crate::tls::{TlsError, client_config};

type Connector = HttpsConnector<HttpConnector>;
type UpstreamClient = Client<Connector, Incoming>;

/// How one request goes to an upstream.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Route {
    /// HTTP/1.1 only (and protocol upgrades).
    Http1,
    /// HTTP/2 only (h2c on `http://`, ALPN `h2` on `https://`).
    H2,
    /// `https://` with ALPN choosing.
    Alpn,
}

/// Why an upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// It could not be reached (connect refused or timed out, TLS failed, the
    /// connection dropped before a response).
    #[error("upstream {upstream} unavailable: {source}")]
    Unavailable {
        /// Its name.
        upstream: String,
        /// What failed.
        source: hyper_util::client::legacy::Error,
    },
    /// No response head within its timeout.
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    Timeout {
        /// Its name.
        upstream: String,
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// Its URL and the request's path do not make a URI.
    #[error("upstream {upstream}: cannot build the request URI")]
    Uri {
        /// Its name.
        upstream: String,
    },
}

/// The clients of one upstream.
pub(crate) struct Pool {
    config: Arc<UpstreamConfig>,
    next: AtomicUsize,
    http1: UpstreamClient,
    h2: UpstreamClient,
    alpn: UpstreamClient,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("upstream", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl Pool {
    fn new(config: Arc<UpstreamConfig>) -> Result<Pool, TlsError> {
        let tls = client_config(config.tls.as_ref())?;
        let server_name = match config.tls.as_ref().and_then(|t| t.server_name.clone()) {
            Some(name) => {
                Some(
                    ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName {
                        upstream: config.name.clone(),
                        name,
                    })?,
                )
            }
            None => None,
        };
        let connector = |h1: bool, h2: bool| -> Connector {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(config.connect_timeout));
            let b = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http();
            let b = match server_name.clone() {
                Some(n) => b.with_server_name_resolver(FixedServerNameResolver::new(n)),
                None => b,
            };
            match (h1, h2) {
                (true, false) => b.enable_http1().wrap_connector(http),
                (false, _) => b.enable_http2().wrap_connector(http),
                (true, true) => b.enable_http1().enable_http2().wrap_connector(http),
            }
        };
        let builder = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(std::time::Duration::from_secs(60));
            b
        };
        Ok(Pool {
            http1: builder().build(connector(true, false)),
            h2: builder().http2_only(true).build(connector(false, true)),
            alpn: builder().build(connector(true, true)),
            next: AtomicUsize::new(0),
            config,
        })
    }

    /// The route `protocol` gives a request (`grpc`: its content type is gRPC;
    /// `upgrade`: it asks to switch protocols).
    pub(crate) fn route(&self, grpc: bool, upgrade: bool) -> Route {
        let https = self.config.urls.iter().any(|u| u.https);
        match (self.config.protocol, upgrade) {
            (_, true) => Route::Http1,
            (UpstreamProtocol::Http1, _) => Route::Http1,
            (UpstreamProtocol::H2c, _) => Route::H2,
            (UpstreamProtocol::Auto, _) if https => Route::Alpn,
            (UpstreamProtocol::Auto, _) if grpc => Route::H2,
            (UpstreamProtocol::Auto, _) => Route::Http1,
        }
    }

    /// The upstream's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// Sends `req` (whose URI holds only the path and query) to the next URL.
    pub(crate) async fn send(
        &self,
        mut req: Request<Incoming>,
        route: Route,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let url = &self.config.urls[n % self.config.urls.len()];
        let full = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
        let target = self.config.strip(full);
        let target = &*target;
        let uri_err = || UpstreamError::Uri {
            upstream: self.config.name.clone(),
        };
        let path = if url.base_path.is_empty() {
            PathAndQuery::try_from(target).map_err(|_| uri_err())?
        } else {
            PathAndQuery::try_from(format!("{}{target}", url.base_path)).map_err(|_| uri_err())?
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if url.https {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        parts.authority = Some(Authority::try_from(url.authority.as_str()).map_err(|_| uri_err())?);
        parts.path_and_query = Some(path);
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| uri_err())?;
        let client = match route {
            Route::Http1 => {
                *req.version_mut() = Version::HTTP_11;
                &self.http1
            }
            Route::H2 => {
                *req.version_mut() = Version::HTTP_2;
                &self.h2
            }
            Route::Alpn => {
                *req.version_mut() = Version::HTTP_11;
                &self.alpn
            }
        };
        match tokio::time::timeout(self.config.timeout, client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(source)) => Err(UpstreamError::Unavailable {
                upstream: self.config.name.clone(),
                source,
            }),
            Err(_) => Err(UpstreamError::Timeout {
                upstream: self.config.name.clone(),
                timeout: self.config.timeout,
            }),
        }
    }
}

/// The pools of the upstreams in force, built on first use and rebuilt when a
/// reload changes an upstream (its config is a new `Arc`).
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    pools: ArcSwap<Vec<(Arc<UpstreamConfig>, Arc<Pool>)>>,
}

impl Upstreams {
    /// The pool for `config`.
    pub(crate) fn pool(&self, config: &Arc<UpstreamConfig>) -> Result<Arc<Pool>, TlsError> {
        if let Some((_, p)) = self
            .pools
            .load()
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, config))
        {
            return Ok(p.clone());
        }
        let pool = Arc::new(Pool::new(config.clone())?);
        self.pools.rcu(|old| {
            let mut next: Vec<_> = old
                .iter()
                // An upstream of the same name from an older config is replaced.
                .filter(|(c, _)| c.name != config.name)
                .cloned()
                .collect();
            next.push((config.clone(), pool.clone()));
            next
        });
        Ok(pool)
    }
}
