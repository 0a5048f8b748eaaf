//! Request targets: the path a rule matches, read once, strictly.

use std::borrow::Cow;
use std::fmt;

use super::host::{InvalidHost, canonical_host};

/// What to do with `%2F` and `%5C` (an encoded `/` or `\`) in a path, as Envoy's
/// `path_with_escaped_slashes_action`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum EscapedSlashes {
    /// `%2F` is a separator, as an upstream that decodes it reads it. `%5C` is still
    /// refused: some upstreams read `\` as `/`, others as a character.
    Decode,
    /// Keep both escapes as characters inside a segment. Unsafe: an upstream that
    /// decodes them serves another path than the one the rules matched.
    Keep,
    /// Refuse the request (`request_invalid`). The default.
    #[default]
    Reject,
}

impl EscapedSlashes {
    /// The config spelling (`decode`, `keep`, `reject`).
    pub fn as_str(self) -> &'static str {
        match self {
            EscapedSlashes::Decode => "decode",
            EscapedSlashes::Keep => "keep",
            EscapedSlashes::Reject => "reject",
        }
    }

    /// Reads the config spelling.
    pub fn from_name(name: &str) -> Option<EscapedSlashes> {
        match name {
            "decode" => Some(EscapedSlashes::Decode),
            "keep" => Some(EscapedSlashes::Keep),
            "reject" => Some(EscapedSlashes::Reject),
            _ => None,
        }
    }
}

/// Why a request target cannot be read one way only.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum InvalidTarget {
    /// `..` would remove an empty segment (`/admin//../x`): RFC 3986 order reads
    /// `/admin/x`, a proxy that merges slashes first reads `/x`.
    AmbiguousDotSegment,
    /// A raw `\`: some upstreams read it as `/`.
    Backslash,
    /// `%25` followed by two hex digits: an upstream that decodes twice reads
    /// another path.
    DoubleEncoded,
    /// An escaped control character (`%00`..`%1F`, `%7F`).
    EncodedControl {
        /// The decoded byte.
        byte: u8,
    },
    /// `%3B`: an upstream that decodes before it strips `;` parameters reads
    /// another path.
    EncodedParameter,
    /// `%2F` or `%5C` with `escaped_slashes: reject` (`%5C` also with `decode`).
    EscapedSlash {
        /// The escape as written.
        escape: [u8; 3],
    },
    /// A `#`: a fragment is never part of a request target.
    Fragment,
    /// The host of an absolute URL.
    Host(InvalidHost),
    /// A byte that is not allowed raw in a target (space, control, non-ASCII).
    InvalidCharacter {
        /// The byte.
        byte: u8,
        /// Where, counted from 0.
        at: usize,
    },
    /// `%` not followed by two hex digits.
    InvalidPercentEncoding {
        /// Where, counted from 0.
        at: usize,
    },
    /// Escaped bytes that are not UTF-8 (`%C0%AE`, an overlong `.`).
    InvalidUtf8,
    /// Not a path starting with `/` (nor, where one is allowed, an `http(s)://` URL).
    NotOriginForm,
    /// A `;`: Tomcat-style upstreams strip `;` parameters from segments (`/admin;x/`
    /// is `/admin/`, `..;` is `..`).
    Parameter,
    /// An absolute URL with user information (`http://a@b/`).
    UserInfo,
}

impl fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTarget::AmbiguousDotSegment => {
                f.write_str("`..` after an empty segment reads two ways")
            }
            InvalidTarget::Backslash => f.write_str("a backslash in the path"),
            InvalidTarget::DoubleEncoded => f.write_str("a double-encoded escape (`%25XX`)"),
            InvalidTarget::EncodedControl { byte } => {
                write!(f, "an escaped control character (%{byte:02X})")
            }
            InvalidTarget::EncodedParameter => f.write_str("an escaped `;` (`%3B`)"),
            InvalidTarget::EscapedSlash { escape } => write!(
                f,
                "an escaped slash ({}); see request.escaped_slashes",
                String::from_utf8_lossy(escape)
            ),
            InvalidTarget::Fragment => f.write_str("a `#` in the target"),
            InvalidTarget::Host(e) => write!(f, "the URL's host: {e}"),
            InvalidTarget::InvalidCharacter { byte, at } => {
                write!(f, "byte 0x{byte:02X} at {at} is not allowed in a target")
            }
            InvalidTarget::InvalidPercentEncoding { at } => {
                write!(f, "`%` at {at} is not followed by two hex digits")
            }
            InvalidTarget::InvalidUtf8 => f.write_str("escaped bytes that are not UTF-8"),
            InvalidTarget::NotOriginForm => f.write_str("the target does not start with `/`"),
            InvalidTarget::Parameter => f.write_str("a `;` parameter in the path"),
            InvalidTarget::UserInfo => f.write_str("user information in the URL"),
        }
    }
}

impl std::error::Error for InvalidTarget {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InvalidTarget::Host(e) => Some(e),
            _ => None,
        }
    }
}

impl From<InvalidHost> for InvalidTarget {
    fn from(e: InvalidHost) -> Self {
        InvalidTarget::Host(e)
    }
}

/// Characters that stand for themselves in a path and need no second look:
/// unreserved, sub-delims but `;`, `:`, `@`, and the printable characters RFC 3986
/// leaves out but proxies pass on literally (`"<>^`{|}`). Not `%`, `\`, `;`, `?`, `#`.
const fn plain_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0u8;
    while b < 128 {
        t[b as usize] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
                    | b':'
                    | b'@'
                    | b'"'
                    | b'<'
                    | b'>'
                    | b'^'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
            );
        b += 1;
    }
    t
}
static PLAIN: [bool; 256] = plain_table();

/// Reads the path of a target (`/path?query`, the query ignored here but checked
/// for stray bytes): the canonical path rules match on.
///
/// # Errors
/// Any spelling that upstreams may read in more than one way (see [`InvalidTarget`]).
pub fn canonical_path(
    target: &str,
    escaped: EscapedSlashes,
) -> Result<Cow<'_, str>, InvalidTarget> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if let Some(q) = query
        && let Some(at) = q
            .bytes()
            .position(|b| !(0x21..=0x7e).contains(&b) || b == b'#')
    {
        let byte = q.as_bytes()[at];
        return Err(if byte == b'#' {
            InvalidTarget::Fragment
        } else {
            InvalidTarget::InvalidCharacter {
                byte,
                at: path.len() + 1 + at,
            }
        });
    }
    if !path.starts_with('/') {
        return Err(InvalidTarget::NotOriginForm);
    }
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    normalize(path, escaped).map(Cow::Owned)
}

/// One pass: every byte plain, no empty segment, no `.` or `..` segment.
fn is_plain(path: &[u8]) -> bool {
    // `path` starts with '/': `seg_start` is the index after the last '/'.
    let mut seg_start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        if b == b'/' {
            if !plain_segment(&path[seg_start..i]) {
                return false;
            }
            seg_start = i + 1;
        } else if !PLAIN[b as usize] {
            return false;
        }
    }
    // The last segment may be empty (a trailing slash), never a dot segment.
    !matches!(&path[seg_start..], b"." | b"..")
}

fn plain_segment(seg: &[u8]) -> bool {
    !matches!(seg, b"" | b"." | b"..")
}

/// The slow path: decode, split, remove dot segments, merge slashes.
fn normalize(path: &str, escaped: EscapedSlashes) -> Result<String, InvalidTarget> {
    let bytes = path.as_bytes();
    // Segments after decoding; a decoded `%2F` (escaped: decode) starts a new one.
    let mut segments: Vec<String> = vec![String::new()];
    let mut i = 1; // after the leading '/'
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                segments.push(String::new());
                i += 1;
            }
            b'%' => {
                let value = hex_pair(bytes, i)?;
                i = decode_escape(bytes, i, value, escaped, &mut segments)?;
            }
            b'\\' => return Err(InvalidTarget::Backslash),
            b';' => return Err(InvalidTarget::Parameter),
            b'#' => return Err(InvalidTarget::Fragment),
            _ if PLAIN[b as usize] => {
                last(&mut segments).push(b as char);
                i += 1;
            }
            _ => return Err(InvalidTarget::InvalidCharacter { byte: b, at: i }),
        }
    }
    // `%25` then two hex digits, written so or made by decoding (`%25%32%65` is
    // `%252e`): an upstream that decodes twice reads another path, and other dot
    // segments. Checked before dot segments are removed: `..` may drop the segment.
    if segments.iter().any(|seg| {
        seg.as_bytes()
            .windows(5)
            .any(|w| w.starts_with(b"%25") && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit())
    }) {
        return Err(InvalidTarget::DoubleEncoded);
    }
    remove_dot_segments(segments)
}

fn last(segments: &mut Vec<String>) -> &mut String {
    if segments.is_empty() {
        segments.push(String::new());
    }
    let n = segments.len() - 1;
    &mut segments[n]
}

/// The byte `%XY` at `at` stands for.
fn hex_pair(bytes: &[u8], at: usize) -> Result<u8, InvalidTarget> {
    let digit = |k: usize| {
        bytes
            .get(at + k)
            .and_then(|&b| (b as char).to_digit(16))
            .ok_or(InvalidTarget::InvalidPercentEncoding { at })
    };
    let (h, l) = (digit(1)?, digit(2)?);
    // Two hex digits: at most 0xFF.
    Ok((h * 16 + l) as u8)
}

/// Handles the escape at `at` (its value `value`), returns where reading goes on.
fn decode_escape(
    bytes: &[u8],
    at: usize,
    value: u8,
    escaped: EscapedSlashes,
    segments: &mut Vec<String>,
) -> Result<usize, InvalidTarget> {
    let escape = [b'%', bytes[at + 1], bytes[at + 2]];
    match value {
        b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
            last(segments).push(b as char);
        }
        b'/' => match escaped {
            EscapedSlashes::Decode => segments.push(String::new()),
            EscapedSlashes::Keep => last(segments).push_str("%2F"),
            EscapedSlashes::Reject => return Err(InvalidTarget::EscapedSlash { escape }),
        },
        b'\\' => match escaped {
            EscapedSlashes::Keep => last(segments).push_str("%5C"),
            EscapedSlashes::Decode | EscapedSlashes::Reject => {
                return Err(InvalidTarget::EscapedSlash { escape });
            }
        },
        b if b < 0x20 || b == 0x7f => return Err(InvalidTarget::EncodedControl { byte: b }),
        b';' => return Err(InvalidTarget::EncodedParameter),
        b if b >= 0x80 => return utf8_run(bytes, at, segments),
        b => push_escape(last(segments), b),
    }
    Ok(at + 3)
}

/// A run of escaped bytes >= 0x80 starting at `at`: kept escaped when it is UTF-8.
fn utf8_run(bytes: &[u8], at: usize, segments: &mut Vec<String>) -> Result<usize, InvalidTarget> {
    let mut run = Vec::new();
    let mut i = at;
    while bytes.get(i) == Some(&b'%') {
        match hex_pair(bytes, i) {
            Ok(v) if v >= 0x80 => run.push(v),
            _ => break,
        }
        i += 3;
    }
    if std::str::from_utf8(&run).is_err() {
        return Err(InvalidTarget::InvalidUtf8);
    }
    let seg = last(segments);
    for b in run {
        push_escape(seg, b);
    }
    Ok(i)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// RFC 3986 §5.2.4 over decoded segments, then empty segments merged (but a
/// trailing slash kept). Refuses when `..` would remove an empty segment: merging
/// first (as NGINX does) would read another path.
fn remove_dot_segments(segments: Vec<String>) -> Result<String, InvalidTarget> {
    let count = segments.len();
    let mut out: Vec<String> = Vec::with_capacity(count);
    for (n, seg) in segments.into_iter().enumerate() {
        let is_last = n + 1 == count;
        match seg.as_str() {
            "." => {}
            ".." => {
                if out.last().is_some_and(String::is_empty) {
                    return Err(InvalidTarget::AmbiguousDotSegment);
                }
                out.pop();
            }
            _ => {
                out.push(seg);
                continue;
            }
        }
        if is_last {
            // `/a/.` and `/a/b/..` end in a slash.
            out.push(String::new());
        }
    }
    let mut joined = String::with_capacity(out.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
    let kept = out.len();
    for (n, seg) in out.iter().enumerate() {
        if seg.is_empty() && n + 1 != kept {
            continue; // merge repeated slashes
        }
        joined.push('/');
        joined.push_str(seg);
    }
    if joined.is_empty() {
        joined.push('/');
    }
    Ok(joined)
}

/// Splits an absolute `http(s)://authority/path?query` URL (as ingress-nginx's
/// `X-Original-URL`) into its canonical host and its target (`/path?query`).
///
/// # Errors
/// Not an `http`/`https` URL, user information, an empty or invalid host.
pub fn split_absolute_url(url: &str) -> Result<(Cow<'_, str>, &str), InvalidTarget> {
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| {
            url.get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| &url[scheme.len()..])
        })
        .ok_or(InvalidTarget::NotOriginForm)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    if authority.contains('@') {
        return Err(InvalidTarget::UserInfo);
    }
    if authority.is_empty() {
        return Err(InvalidTarget::Host(InvalidHost::Empty));
    }
    let host = canonical_host(authority)?;
    if target.starts_with('#') {
        return Err(InvalidTarget::Fragment);
    }
    // `http://host` has the path `/`; `http://host?q` has no path to read.
    let target = if target.is_empty() { "/" } else { target };
    if target.starts_with('?') {
        return Err(InvalidTarget::NotOriginForm);
    }
    Ok((host, target))
}
