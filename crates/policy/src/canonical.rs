//! The one canonical reading of a request's target and host, shared by every
//! frontend (forward auth, ext_authz, and the proxy mode to come).
//!
//! Rules match on what this module reads, so what it reads must be what the
//! upstream serves. Proxies and upstreams disagree about many spellings (an
//! encoded slash, a backslash, `..` after an empty segment, `;` parameters, a
//! trailing dot on a host); wherever two readings are possible the request is
//! refused ([`InvalidTarget`], reason `request_invalid`), never given a default.
//!
//! What is accepted is read one way:
//! - a path starts with `/`; a query follows the first `?`; a `#` is refused;
//! - percent-encoded unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded,
//!   every other escape is kept with upper-case hex;
//! - dot segments are removed in RFC 3986 §5.2.4 order, then repeated slashes
//!   are merged (Envoy's `normalize_path` then `merge_slashes`);
//! - a host is lower-cased, its port split off and one trailing dot dropped.

mod host;
mod path;

pub use host::{InvalidHost, canonical_host};
pub use path::{EscapedSlashes, InvalidTarget, canonical_path, split_absolute_url};

#[cfg(test)]
mod tests;
