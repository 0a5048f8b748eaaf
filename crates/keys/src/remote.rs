//! JWKS URIs and OIDC discovery: fetch, refresh (honouring `Cache-Control`
//! within bounds), back off on failure, keep the last good set, refetch early
//! (bounded, see [`crate::refetch`]) when a token names an unknown `kid`.

use std::sync::Arc;
use std::time::Duration;

use portcullis_policy::ProviderMetadata;
use portcullis_policy::config::FetchTuning;

use crate::error::SourceError;
use crate::fetch::Fetch;
use crate::publish::{FetchOutcome, Publisher};
use crate::refetch::Refetch;

/// The first wait after a failed fetch; it doubles on each failure in a row.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait after failed fetches (or the refresh interval, if shorter).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What to fetch.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum Target {
    /// A JWKS URI.
    Jwks(String),
    /// An OIDC issuer URL.
    Discovery(String),
}

/// A JWKS URI or an OIDC issuer, fetched with `F`.
#[derive(Clone, Debug)]
pub(crate) struct RemoteSource<F> {
    pub(crate) target: Target,
    pub(crate) tuning: FetchTuning,
    pub(crate) fetcher: F,
}

impl<F: Fetch> RemoteSource<F> {
    pub(crate) async fn feed(self, publisher: Publisher) {
        let RemoteSource {
            target,
            tuning,
            fetcher,
        } = self;
        let refetch = Arc::new(Refetch::new());
        let gate = refetch.clone();
        publisher.on_refetch(Arc::new(move |kid: &str| gate.request(kid)));
        let mut jwks_uri = match &target {
            Target::Jwks(u) => Some(u.clone()),
            Target::Discovery(_) => None,
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            let _by_kid = refetch.start();
            let outcome = {
                use tracing::Instrument as _;
                let span = fetch_span(&publisher, jwks_uri.as_deref().unwrap_or(target.url()));
                let started = std::time::Instant::now();
                let outcome = cycle(&target, &mut jwks_uri, tuning, &publisher, &fetcher)
                    .instrument(span.clone())
                    .await;
                end_fetch_span(&span, &outcome, started.elapsed());
                outcome
            };
            refetch.end();
            // After the keys: the requests waiting on this fetch wake to them.
            publisher.end_round();
            let next = match outcome {
                Ok((max_age, _)) => {
                    backoff = FIRST_BACKOFF;
                    next_refresh(max_age, tuning)
                }
                Err(e) => {
                    tracing::warn!(provider = %publisher.providers(), error = %e, kept_last_good = publisher.is_ready(), retry_in = ?backoff, "key fetch failed");
                    publisher.note_error(&e);
                    let wait = backoff;
                    backoff = (backoff * 2).min(tuning.refresh.min(MAX_BACKOFF));
                    wait
                }
            };
            publisher.note_next_refresh(next);
            // The next fetch: at the refresh, or earlier when a `kid` asks for one
            // (once the gate's interval and bucket allow it).
            let due = tokio::time::Instant::now() + next;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => break,
                    () = refetch.requested() => {
                        if refetch.is_wanted() {
                            let at = (tokio::time::Instant::now() + refetch.delay()).min(due);
                            tokio::time::sleep_until(at).await;
                            break;
                        }
                    }
                }
            }
        }
    }
}

impl Target {
    fn url(&self) -> &str {
        match self {
            Target::Jwks(u) | Target::Discovery(u) => u,
        }
    }
}

/// The `portcullis.jwks_fetch` span of one fetch (exported when traces are; the
/// URL without its query).
fn fetch_span(publisher: &Publisher, url: &str) -> tracing::Span {
    let url = url.split_once('?').map_or(url, |(u, _)| u);
    tracing::info_span!(
        target: "portcullis_telemetry",
        "portcullis.jwks_fetch",
        otel.kind = "client",
        portcullis.provider = %publisher.providers(),
        url.full = url,
        portcullis.outcome = tracing::field::Empty,
        portcullis.keys = tracing::field::Empty,
        portcullis.duration_ms = tracing::field::Empty,
    )
}

fn end_fetch_span(
    span: &tracing::Span,
    outcome: &Result<(Option<Duration>, bool), SourceError>,
    took: Duration,
) {
    let result = match outcome {
        Ok(_) => "success",
        Err(SourceError::Keys { .. }) => "invalid",
        Err(_) => "error",
    };
    span.record("portcullis.outcome", result);
    span.record(
        "portcullis.duration_ms",
        i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
    );
}

/// When to fetch again after a good fetch: the server's `max-age` within the
/// configured bounds, else the refresh interval.
pub(crate) fn next_refresh(max_age: Option<Duration>, tuning: FetchTuning) -> Duration {
    match max_age {
        // Config validation keeps min_refresh <= max_refresh; `max(min(..))` cannot
        // panic even if it did not, unlike `clamp`.
        Some(age) => age.min(tuning.max_refresh).max(tuning.min_refresh),
        None => tuning.refresh,
    }
}

async fn cycle<F: Fetch>(
    target: &Target,
    jwks_uri: &mut Option<String>,
    tuning: FetchTuning,
    publisher: &Publisher,
    fetcher: &F,
) -> Result<(Option<Duration>, bool), SourceError> {
    let uri = match (&*jwks_uri, target) {
        (Some(uri), _) => uri.clone(),
        (None, Target::Discovery(issuer)) => {
            let metadata = discover(issuer, tuning, fetcher)
                .await
                .inspect_err(|_| publisher.report(FetchOutcome::Error))?;
            publisher.publish_metadata(&metadata);
            let uri = metadata.jwks_uri().to_owned();
            *jwks_uri = Some(uri.clone());
            uri
        }
        // A JWKS target always has its URI.
        (None, Target::Jwks(uri)) => uri.clone(),
    };
    let fetched = match fetcher.get(&uri, tuning.timeout).await {
        Ok(f) => f,
        Err(e) => {
            publisher.report(FetchOutcome::Error);
            if matches!(target, Target::Discovery(_)) {
                // The jwks_uri may have moved: discover again next time.
                *jwks_uri = None;
            }
            return Err(e.into());
        }
    };
    match crate::publish::parse_keys(
        &publisher.providers(),
        &uri,
        &fetched.body,
        portcullis_jose::Secrets::Refuse,
    ) {
        Ok(keys) => {
            publisher.report(FetchOutcome::Success);
            tracing::Span::current().record(
                "portcullis.keys",
                i64::try_from(keys.len()).unwrap_or(i64::MAX),
            );
            let changed = publisher.publish(&keys);
            Ok((fetched.max_age, changed))
        }
        Err(source) => {
            publisher.report(FetchOutcome::Invalid);
            Err(SourceError::Keys {
                origin: uri,
                source,
            })
        }
    }
}

/// Reads the discovery document; its `issuer` must equal the configured one (OIDC Discovery §4.3).
async fn discover<F: Fetch>(
    issuer: &str,
    tuning: FetchTuning,
    fetcher: &F,
) -> Result<ProviderMetadata, SourceError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = fetcher.get(&url, tuning.timeout).await?;
    ProviderMetadata::try_from_document(&doc.body, issuer)
        .map_err(|source| SourceError::Discovery { url, source })
}

#[cfg(test)]
mod tests;
