//! The config model and the pure decision engine of Portcullis.
//!
//! [`config::parse`] turns the YAML file into a validated [`Config`];
//! [`Engine::new`] compiles it; [`Engine::decide`] maps an [`AuthRequest`] to a
//! [`Decision`] without IO. Key sources (elsewhere) publish key sets into each
//! provider's [`KeySlot`].
#![warn(missing_docs)]

mod cache;
pub mod canonical;
mod clock;
pub mod condition;
pub mod config;
mod decision;
mod deny_template;
pub mod dpop;
mod engine;
pub mod explain;
mod extract;
mod inject;
mod introspected;
mod issuer_index;
// Fuzzing entry points with fixed secrets: never in a release build.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_logic;
mod keyslot;
mod keystatus;
pub mod matcher;
pub mod peer;
mod provider_metadata;
mod request;
mod rule_index;
pub mod schema;
pub mod spiffe;
pub mod template;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError, ConfigWarning, RequestReading, parse_duration};
pub use decision::{Allow, Decision, Deny, DenyReason, DenyStatus, Identity, TokenHints, Workload};
pub use deny_template::{DenyResponse, DenyTemplate, InvalidDenyTemplate, MAX_DENY_BODY};
pub use engine::{CacheStats, Engine, Provider};
pub use inject::{
    EXCHANGE_CACHE_ENTRIES, ExchangeError, ExchangeFuture, Exchanged, Exchanger, InjectedToken,
    MAX_SUBJECT_TOKEN_BYTES, PendingExchange, TokenSlot,
};
pub use introspected::{
    AnswerSource, Introspect, Introspected, IntrospectionAsk, IntrospectionOutcome,
};
pub use keyslot::{Changed, KeySlot, KeySnapshot, RefetchHook};
pub use keystatus::KeyStatus;
pub use provider_metadata::{
    IgnoredMember, InvalidEndpoint, InvalidProviderMetadata, ProviderMetadata,
};
pub use request::{AuthRequest, Peer, SessionCredential, VerifiedSession};
