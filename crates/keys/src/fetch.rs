//! Bounded HTTP fetches of key documents, behind the [`Fetch`] trait so that the
//! timing of a source (refresh, backoff, refetch limits) can be tested without a
//! server.

use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;

use crate::error::FetchError;

/// The largest key or discovery document we read.
pub const MAX_DOCUMENT_BYTES: usize = portcullis_jose::MAX_JWKS_BYTES;

/// A fetched document and how long the server says it stays fresh.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if given.
    pub max_age: Option<Duration>,
}

/// Gets documents by URL: [`Fetcher`] over HTTP, or a fake in tests.
pub trait Fetch: Clone + Send + Sync + 'static {
    /// GETs `url` within `limit` time, reading at most [`MAX_DOCUMENT_BYTES`].
    fn get(
        &self,
        url: &str,
        limit: Duration,
    ) -> impl Future<Output = Result<Fetched, FetchError>> + Send;
}

/// An HTTP client for key documents: rustls, no redirects to other hosts, bounded bodies.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    /// A client with Portcullis's defaults.
    ///
    /// # Errors
    /// [`FetchError::Client`]: the TLS stack cannot be set up.
    pub fn try_new() -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Follow a few redirects within the same host; never to another host.
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                if same_host && attempt.previous().len() < 3 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| FetchError::Client { source })?;
        Ok(Fetcher { client })
    }

    async fn get_unbounded(&self, url: &str) -> Result<Fetched, FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport {
            url: url.to_owned(),
            source: Box::new(e),
        };
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let max_age = max_age(
            response
                .headers()
                .get_all("cache-control")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    limit: MAX_DOCUMENT_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }
}

/// The `max-age` of `Cache-Control` header values (directive names are
/// case-insensitive, RFC 9111 §5.2); `None` when no value has a readable one.
pub(crate) fn max_age<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Duration> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            value.trim().parse::<u64>().ok()
        })
        .map(Duration::from_secs)
}

// === impl Fetcher ===

impl Fetch for Fetcher {
    async fn get(&self, url: &str, limit: Duration) -> Result<Fetched, FetchError> {
        match timeout(limit, self.get_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::TimedOut {
                url: url.to_owned(),
                after: limit,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_any_cache_control_value() {
        let secs = |v: &[&str]| max_age(v.iter().copied()).map(|d| d.as_secs());
        assert_eq!(secs(&["public, max-age=600"]), Some(600));
        assert_eq!(secs(&["no-transform", "Max-Age = 60 "]), Some(60));
        assert_eq!(secs(&["s-maxage=10, max-age=20"]), Some(20));
        assert_eq!(secs(&["no-cache"]), None);
        assert_eq!(secs(&["max-age=-1"]), None);
        assert_eq!(secs(&["max-age=soon"]), None);
        assert_eq!(secs(&[]), None);
    }
}
