//! The request ID a deny is logged and answered with: the client's (or proxy's)
//! `x-request-id` when it is a plain token, else one made here.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

/// The longest `x-request-id` taken as it is.
pub const MAX_REQUEST_ID: usize = 128;

/// The request's ID: `x-request-id` when it is 1 to 128 characters of
/// `[A-Za-z0-9._:+/=-]` (so it can go into a log, a header or a JSON string as it
/// is), else a new one, unique in this process and unlikely to repeat across
/// replicas (a random 64-bit prefix drawn once, then a counter).
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers
        .get("x-request-id")
        .map(|v| v.as_bytes())
        .filter(|v| is_plain(v))
        .and_then(|v| std::str::from_utf8(v).ok())
    {
        return id.to_owned();
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // std's hasher keys are drawn from the OS's random source, once per process.
    let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(0x5eed_u64));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{n:08x}")
}

fn is_plain(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"._:+/=-".contains(&b))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn keeps_a_plain_client_id() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(request_id(&h), "abc-123_x.y:z");
    }

    #[test]
    fn replaces_an_id_that_could_inject() {
        for bad in [
            "a\"b",
            "a b",
            "<script>",
            "{{ status }}",
            "",
            &"x".repeat(MAX_REQUEST_ID + 1),
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", HeaderValue::from_str(bad).unwrap());
            let id = request_id(&h);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 24, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn made_ids_differ() {
        let h = HeaderMap::new();
        assert_ne!(request_id(&h), request_id(&h));
    }
}
