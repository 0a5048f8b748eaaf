//! Upstream clients: one pool per configured upstream (hyper-util's legacy client,
//! HTTP/1.1 and HTTP/2, over TCP or rustls), its URLs balanced (round robin or
//! least requests) among those the health checks hold up, with the connect and
//! response-head timeouts of its config, and idempotent requests without a body
//! tried on another URL when a connect fails.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_policy::config::{UpstreamConfig, UpstreamProtocol, UpstreamUrl};
use rustls_pki_types::ServerName;

use crate::balance::{Endpoints, InFlight};
use crate::tls::{TlsError, client_config};

pub(crate) type Connector = HttpsConnector<HttpConnector>;
/// What is sent upstream: the client's body, or an empty one on a retry.
type OutBody = UnsyncBoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<Connector, OutBody>;

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
    /// Every URL is marked down by the health checks.
    #[error("upstream {upstream}: no URL passes its health checks")]
    NoHealthy {
        /// Its name.
        upstream: String,
    },
}

/// The clients of one upstream.
pub(crate) struct Pool {
    config: Arc<UpstreamConfig>,
    endpoints: Arc<Endpoints>,
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
        let endpoints = Arc::new(Endpoints::new(&config.urls, config.balance));
        if let Some(check) = &config.health_check {
            crate::health::spawn(
                &config.name,
                &endpoints,
                check,
                builder().build(connector(true, false)),
            );
        }
        Ok(Pool {
            http1: builder().build(connector(true, false)),
            h2: builder().http2_only(true).build(connector(false, true)),
            alpn: builder().build(connector(true, true)),
            endpoints,
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

    /// Sends `req` (whose URI holds only the path and query) to the URL the
    /// balancing picks among the healthy ones. An idempotent request without a body
    /// whose connect fails goes to another URL, up to `retries` times; anything
    /// else is sent once.
    pub(crate) async fn send(
        &self,
        req: Request<Incoming>,
        route: Route,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let retryable = is_idempotent(req.method()) && req.body().is_end_stream();
        let attempts = if retryable {
            1 + usize::try_from(self.config.retries).unwrap_or(usize::MAX)
        } else {
            1
        };
        let full = req
            .uri()
            .path_and_query()
            .map_or("/", PathAndQuery::as_str)
            .to_owned();
        let (mut parts, body) = req.into_parts();
        let mut body = Some(body.boxed_unsync());
        let mut extensions = Some(std::mem::take(&mut parts.extensions));
        let mut tried = Vec::new();
        let Some(mut i) = self.endpoints.pick(&tried) else {
            return Err(UpstreamError::NoHealthy {
                upstream: self.config.name.clone(),
            });
        };
        loop {
            tried.push(i);
            let Some((endpoint, in_flight)) = self.endpoints.start(i) else {
                return Err(self.uri_err());
            };
            let uri = self.uri(&endpoint.url, &full)?;
            let mut out = Request::new(body.take().unwrap_or_else(empty));
            *out.method_mut() = parts.method.clone();
            // The last try takes the headers; earlier ones copy them.
            *out.headers_mut() = if tried.len() >= attempts {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            if let Some(ext) = extensions.take() {
                *out.extensions_mut() = ext;
            }
            *out.uri_mut() = uri;
            let failed = match self.attempt(out, route, in_flight).await {
                Err(UpstreamError::Unavailable { source, upstream })
                    if source.is_connect() && tried.len() < attempts =>
                {
                    UpstreamError::Unavailable { source, upstream }
                }
                other => return other,
            };
            // Nothing reached the upstream: another URL may take it.
            let Some(next) = self.endpoints.pick(&tried) else {
                return Err(failed);
            };
            tracing::info!(
                upstream = %self.config.name,
                url = %endpoint.url.authority,
                error = %failed,
                "connect failed; trying another URL"
            );
            i = next;
        }
    }

    fn uri_err(&self) -> UpstreamError {
        UpstreamError::Uri {
            upstream: self.config.name.clone(),
        }
    }

    /// `full` (path and query) without the strip prefix, under `url`.
    fn uri(&self, url: &UpstreamUrl, full: &str) -> Result<Uri, UpstreamError> {
        let target = self.config.strip(full);
        let target = &*target;
        let path = if url.base_path.is_empty() {
            PathAndQuery::try_from(target).map_err(|_| self.uri_err())?
        } else {
            PathAndQuery::try_from(format!("{}{target}", url.base_path))
                .map_err(|_| self.uri_err())?
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if url.https {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        parts.authority =
            Some(Authority::try_from(url.authority.as_str()).map_err(|_| self.uri_err())?);
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).map_err(|_| self.uri_err())
    }

    /// One try on one URL, counted in flight until the response head.
    async fn attempt(
        &self,
        mut req: Request<OutBody>,
        route: Route,
        in_flight: InFlight<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
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
        let answer = tokio::time::timeout(self.config.timeout, client.request(req)).await;
        drop(in_flight);
        match answer {
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

/// Methods a retry cannot repeat the effect of (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn empty() -> OutBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
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
