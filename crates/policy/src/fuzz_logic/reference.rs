//! A differential check of the canonical reader against a small reference
//! normalizer: every path the reader accepts must read the same to each way an
//! upstream might read it (RFC 3986 §5.2.4's string algorithm, merging slashes
//! before or after it, taking `\` for `/`, stripping `;` parameters, decoding
//! twice). A path on which two of those readings disagree must have been refused.
//!
//! The reference is written for clarity, not speed, and shares no code with
//! `crate::canonical`.

use crate::canonical::{EscapedSlashes, canonical_path};

/// Checks one input in every escaped-slash mode but `keep` (which is documented
/// as unsafe: it keeps escapes an upstream may decode). Panics on a difference.
pub fn differential(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for mode in [EscapedSlashes::Reject, EscapedSlashes::Decode] {
        check(text, mode);
    }
    // `keep` still never panics and is still idempotent.
    if let Ok(kept) = canonical_path(text, EscapedSlashes::Keep) {
        let again = canonical_path(&kept, EscapedSlashes::Keep);
        assert_eq!(
            again.as_deref(),
            Ok(kept.as_ref()),
            "keep: not idempotent on {text:?}"
        );
    }
}

fn check(text: &str, mode: EscapedSlashes) {
    let Ok(ours) = canonical_path(text, mode) else {
        return;
    };
    let path = text.split('?').next().unwrap_or("");
    // The canonical form reads as itself.
    assert!(
        canonical_path(&ours, mode).is_ok_and(|again| again == ours),
        "{mode:?}: {text:?} reads as {ours:?}, which does not read as itself"
    );
    assert!(ours.starts_with('/') && !ours.contains("//"), "{ours:?}");
    let ours_decoded = decode_all(ours.as_bytes());
    for (name, reading) in upstream_readings(path) {
        assert_eq!(
            String::from_utf8_lossy(&reading),
            String::from_utf8_lossy(&ours_decoded),
            "{mode:?}: {text:?} was accepted as {ours:?}, but an upstream that {name} reads another path"
        );
    }
}

/// The readings an upstream might make of a raw path, each fully decoded.
fn upstream_readings(path: &str) -> Vec<(&'static str, Vec<u8>)> {
    let decoded = decode_all(path.as_bytes());
    let twice = decode_all(&decoded);
    let backslash: Vec<u8> = decoded
        .iter()
        .map(|&b| if b == b'\\' { b'/' } else { b })
        .collect();
    let no_params = strip_params(path.as_bytes());
    vec![
        (
            "decodes, then resolves dot segments, then merges slashes",
            merge(&rfc_remove_dot_segments(&decoded)),
        ),
        (
            "decodes, merges slashes, then resolves dot segments",
            merge(&rfc_remove_dot_segments(&merge(&decoded))),
        ),
        ("decodes twice", merge(&rfc_remove_dot_segments(&twice))),
        ("reads \\ as /", merge(&rfc_remove_dot_segments(&backslash))),
        (
            "strips ;parameters",
            merge(&rfc_remove_dot_segments(&decode_all(&no_params))),
        ),
    ]
}

/// Decodes every `%XX`; anything else is kept.
fn decode_all(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && let (Some(h), Some(l)) = (
                raw.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                raw.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4, step by step over an input buffer, as the RFC writes it.
fn rfc_remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut input = path.to_vec();
    let mut output: Vec<u8> = Vec::new();
    let pop_last = |output: &mut Vec<u8>| {
        let cut = output.iter().rposition(|&b| b == b'/').unwrap_or(0);
        output.truncate(cut);
    };
    while !input.is_empty() {
        if input.starts_with(b"../") {
            input.drain(..3);
        } else if input.starts_with(b"./") || input.starts_with(b"/./") {
            // A: "./" goes; B: "/./" becomes "/". Both drop two bytes.
            input.drain(..2);
        } else if input == b"/." {
            input = b"/".to_vec();
        } else if input.starts_with(b"/../") {
            input.drain(..3);
            pop_last(&mut output);
        } else if input == b"/.." {
            input = b"/".to_vec();
            pop_last(&mut output);
        } else if input == b"." || input == b".." {
            input.clear();
        } else {
            let start = usize::from(input.first() == Some(&b'/'));
            let end = input[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(input.len(), |p| p + start);
            output.extend(input.drain(..end));
        }
    }
    output
}

/// Runs of `/` become one.
fn merge(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Tomcat's reading: `;` to the end of each segment is dropped.
fn strip_params(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut skipping = false;
    for &b in path {
        match b {
            b'/' => {
                skipping = false;
                out.push(b);
            }
            b';' => skipping = true,
            _ if !skipping => out.push(b),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_follows_the_rfc_examples() {
        // RFC 3986 §5.2.4's own examples.
        assert_eq!(rfc_remove_dot_segments(b"/a/b/c/./../../g"), b"/a/g");
        assert_eq!(rfc_remove_dot_segments(b"mid/content=5/../6"), b"mid/6");
        assert_eq!(rfc_remove_dot_segments(b"/admin//../x"), b"/admin/x");
        assert_eq!(
            merge(&rfc_remove_dot_segments(&merge(b"/admin//../x"))),
            b"/x"
        );
    }

    /// The corpus of issue 10's classes and the peers' CVEs, run through the
    /// differential check in every mode (the fuzz target explores beyond it).
    #[test]
    fn canonical_reader_agrees_with_the_reference() {
        let prefixes = ["", "/", "/public", "/public/", "//", "/a/b"];
        let payloads = [
            "/admin/x",
            "/../admin",
            "/..%2fadmin",
            "/%2e%2e/admin",
            "/%2E%2E%2Fadmin",
            "/.%2e/admin",
            "//../admin",
            "/./admin",
            "/..\\admin",
            "/..%5cadmin",
            "/..;/admin",
            "/admin;x/y",
            "/%252e%252e/admin",
            "/%c0%ae%c0%ae/admin",
            "/%00/admin",
            "/admin%3bx",
            "/a%20b",
            "/caf%c3%a9",
            "/x/..",
            "/x/.",
            "/%61dmin",
            "/admin#x",
            "?q=/../admin",
            "/admin/",
            "/a//b//../c",
            "/.../admin",
            "/..../admin",
            "/%2e/admin",
            "/%2e%2e",
            "/%",
            "/%2",
        ];
        for prefix in prefixes {
            for payload in payloads {
                differential(format!("{prefix}{payload}").as_bytes());
            }
        }
    }
}
