//! Proxy mode: Portcullis as the reverse proxy itself. The request is read the one
//! canonical way and decided exactly as `/verify` decides it (same statuses,
//! `WWW-Authenticate` and JSON bodies: the forward-auth renderer); an allowed
//! request goes to its rule's upstream with the identity headers set, client
//! copies of them removed, forwarding headers set from what this proxy saw, and
//! its body streamed both ways.
#![warn(missing_docs)]

mod accept;
mod balance;
mod body;
mod counted;
mod forward;
mod headers;
mod health;
mod tls;
mod tunnel;
mod upstream;

pub use accept::serve;
pub use body::ProxyBody;
pub use forward::{NewProxy, Proxy};
pub use tls::TlsError;
