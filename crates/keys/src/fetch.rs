//! Bounded HTTP fetches of key documents.

use std::time::Duration;

use tokio::time::timeout;

/// The largest key or discovery document we read.
pub(crate) const MAX_DOCUMENT_BYTES: usize = portcullis_jose::MAX_JWKS_BYTES;

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// Transport error or timeout.
    Transport(String),
    /// A status other than 200.
    Status(u16),
    /// The body is over the size limit.
    TooLarge,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transport(e) => write!(f, "transport: {e}"),
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
            FetchError::TooLarge => write!(f, "document over {MAX_DOCUMENT_BYTES} bytes"),
        }
    }
}

/// A fetched document and how long the server says it stays fresh.
#[derive(Debug)]
pub struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if given.
    pub max_age: Option<Duration>,
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
    /// The TLS stack cannot be set up.
    pub fn try_new() -> Result<Fetcher, String> {
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
            .map_err(|e| e.to_string())?;
        Ok(Fetcher { client })
    }

    /// GETs `url` within `limit` time, reading at most [`MAX_DOCUMENT_BYTES`].
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get(&self, url: &str, limit: Duration) -> Result<Fetched, FetchError> {
        let work = async {
            let mut response = self
                .client
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(FetchError::Status(status));
            }
            let max_age = response
                .headers()
                .get_all("cache-control")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .find_map(|d| {
                    d.trim()
                        .strip_prefix("max-age=")
                        .and_then(|s| s.trim().parse::<u64>().ok())
                })
                .map(Duration::from_secs);
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| FetchError::Transport(e.to_string()))?
            {
                if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(FetchError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched { body, max_age })
        };
        match timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Transport(format!("timed out after {limit:?}"))),
        }
    }
}

impl std::error::Error for FetchError {}
