//! What the provider said about an opaque token (OAuth 2.0 Token Introspection,
//! RFC 7662), asked off the pure core and handed to the engine with the request,
//! as a browser session is.

use std::sync::Arc;

/// The outcome of introspecting one token at one provider.
#[derive(Clone, Debug)]
pub struct Introspected {
    /// The provider that was asked.
    pub provider: Arc<str>,
    /// The token that was asked about (to match it with the request's).
    pub token: Arc<str>,
    /// What the provider answered.
    pub outcome: IntrospectionOutcome,
}

/// What the provider answered.
#[derive(Clone, Debug)]
pub enum IntrospectionOutcome {
    /// `"active": true`: the response's members, as strict JSON (an object).
    Active {
        /// The response body, which holds at least `"active": true`.
        claims_json: Arc<[u8]>,
    },
    /// `"active": false` (unknown, expired or revoked).
    Inactive,
    /// No usable answer: the endpoint is unknown, unreachable, slow, refused our
    /// client credentials, or answered something that is not a strict RFC 7662
    /// response. `detail` is for logs (no token, no secret).
    Unavailable {
        /// Why, for logs only.
        detail: String,
    },
}

/// Where an introspection answer came from (shown by `explain`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum AnswerSource {
    /// A cached answer (or one another request was asking for at the same time).
    Cache,
    /// The provider, asked just now.
    Provider,
    /// The introspector does not say.
    Unknown,
}

/// The provider to ask about a token, as the engine found it (see
/// [`crate::Deny::introspect`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IntrospectionAsk {
    /// The provider's index in [`crate::Engine::providers`].
    pub provider: usize,
    /// The token.
    pub token: Arc<str>,
}

/// Asks a provider about an opaque token (the IO lives in the implementation, in
/// `portcullis-keys`; the engine only reads the answer).
pub trait Introspect: Send + Sync + std::fmt::Debug {
    /// Introspects `token` at `provider` at `now` (seconds since the epoch). Never
    /// fails: an unusable answer is [`IntrospectionOutcome::Unavailable`].
    fn introspect<'a>(
        &'a self,
        provider: &'a crate::Provider,
        token: &'a str,
        now: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Introspected> + Send + 'a>>;

    /// [`Introspect::introspect`], saying where the answer came from (`explain`).
    fn introspect_sourced<'a>(
        &'a self,
        provider: &'a crate::Provider,
        token: &'a str,
        now: i64,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = (Introspected, AnswerSource)> + Send + 'a>,
    > {
        Box::pin(async move {
            (
                self.introspect(provider, token, now).await,
                AnswerSource::Unknown,
            )
        })
    }
}
