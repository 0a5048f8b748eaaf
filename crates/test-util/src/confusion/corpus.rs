//! The probes: confusing requests built from the classes of issue 10 and the peers'
//! advisories, combined systematically (prefix × traversal × target × credential), and
//! the positive controls that keep a deny-everything set-up from passing.
//!
//! Sources of the classes (each probe names its class):
//! - Istio CVE-2021-31920, Envoy CVE-2021-29492: `%2F`/`%5C` escaped slashes;
//! - Envoy CVE-2019-9901: no path normalization, `/public/../admin`;
//! - Envoy CVE-2021-32779: `#fragment` kept in the path;
//! - Authelia CVE-2021-32637: a malformed original URL (non-ASCII, unparseable) in the
//!   forwarded headers made the check answer for another request;
//! - Authelia CVE-2026-48794: a host not canonicalized (case) before rule matching;
//! - oauth2-proxy CVE-2025-64484: `X_Forwarded_User` (underscore) smuggled past the
//!   proxy, read as `X-Forwarded-User` by CGI/WSGI upstreams;
//! - oauth2-proxy CVE-2026-40575, Traefik CVE-2026-39858: client-sent `X-Forwarded-Uri`
//!   / forwarded aliases trusted for the decision;
//! - Fabio CVE-2025-48865: `Connection:` naming a header makes the proxy drop it;
//! - Caddy CVE-2026-27587/27588: matcher and handler disagreeing on case/escapes;
//! - Tomcat-style `..;/` path parameters, double encoding `%252e`, overlong UTF-8
//!   `%c0%ae`, IIS `%u002e`, NUL, HTTP/1.0 without Host, absolute-form targets, obs-fold.

use super::{ANONYMOUS_HOST, RESTRICTED_HOST, SPOOFED, USER_HEADER};

/// Which credential a probe carries.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Credential {
    /// No token.
    Anonymous,
    /// A valid token without `groups: [admins]` (sub alice): allowed by the default rule.
    Developer,
    /// A valid admin token (sub alice).
    Admin,
}

/// What a probe must show.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Check {
    /// Attack: whatever reaches the upstream must not read (strictly) as protected
    /// unless the credential is `Admin`, and no spoofed identity may reach it.
    Attack,
    /// Attack on the identity: if it reaches the upstream, the upstream sees exactly
    /// one identity header and it is Portcullis's (`alice`).
    IdentityKept,
    /// Control: 200 from the upstream, which saw this path and this identity.
    Reaches {
        /// The request target the upstream must see.
        target: String,
        /// The identity header's value (`None`: absent).
        user: Option<&'static str>,
    },
    /// Control: 401 or 403, the upstream not reached.
    Denied,
    /// Attack on the request's framing or hop: as [`Check::Attack`], and the upstream
    /// gets at most one request for it (never a smuggled second one), never one that
    /// offers `Upgrade: h2c` (h2c smuggling past the decision).
    Single,
    /// The proxy must refuse it outright: a 4xx and no upstream request.
    Refused,
}

/// One request, as bytes on the wire.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Its number (sent as `X-Probe-Id`).
    pub id: usize,
    /// Its class (table rows are grouped by it).
    pub class: &'static str,
    /// The credential it carries.
    pub credential: Credential,
    /// What it must show.
    pub check: Check,
    /// The exact bytes sent (for an HTTP/2 probe: a description of its frames).
    pub bytes: Vec<u8>,
    /// Sent over h2c (prior knowledge) instead of as raw HTTP/1 bytes.
    pub h2c: Option<H2cRequest>,
}

/// An HTTP/2 request, sent with hyper's client over cleartext prior knowledge.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct H2cRequest {
    /// `:method`.
    pub method: String,
    /// `:authority`.
    pub authority: String,
    /// `:path`.
    pub path: String,
    /// Regular headers, in order (a `host` among them disagrees with `:authority`).
    pub headers: Vec<(String, String)>,
}

/// The tokens probes carry.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// `groups: [admins]`.
    pub admin: String,
    /// `groups: [developers]`.
    pub developer: String,
}

/// A request under construction.
pub(super) struct Raw {
    line: Vec<u8>,
    host: Option<Vec<u8>>,
    headers: Vec<Vec<u8>>,
    /// Bytes after the head (a body, or a smuggled request).
    body: Vec<u8>,
}

impl Raw {
    pub(super) fn get(target: &[u8]) -> Raw {
        let mut line = b"GET ".to_vec();
        line.extend_from_slice(target);
        line.extend_from_slice(b" HTTP/1.1");
        Raw {
            line,
            host: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(super) fn line(line: &[u8]) -> Raw {
        Raw {
            line: line.to_vec(),
            host: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(super) fn host(mut self, host: &[u8]) -> Raw {
        self.host = Some(host.to_vec());
        self
    }

    pub(super) fn header(mut self, line: &str) -> Raw {
        self.headers.push(line.as_bytes().to_vec());
        self
    }

    pub(super) fn header_bytes(mut self, line: &[u8]) -> Raw {
        self.headers.push(line.to_vec());
        self
    }

    pub(super) fn no_host(mut self) -> Raw {
        self.host = Some(Vec::new());
        self
    }

    /// Bytes sent after the head, as they are.
    pub(super) fn then(mut self, bytes: &[u8]) -> Raw {
        self.body.extend_from_slice(bytes);
        self
    }
}

/// Builds the probes with sequential ids.
pub(super) struct Builder<'a> {
    pub(super) authority: &'a str,
    pub(super) tokens: &'a Tokens,
    /// The id of the first probe.
    pub(super) first: usize,
    pub(super) probes: Vec<Probe>,
}

impl Builder<'_> {
    pub(super) fn push(
        &mut self,
        class: &'static str,
        credential: Credential,
        check: Check,
        raw: Raw,
    ) {
        let id = self.first + self.probes.len();
        let mut bytes = raw.line;
        bytes.extend_from_slice(b"\r\n");
        match raw.host {
            // An empty host means: no Host header at all.
            Some(h) if h.is_empty() => {}
            Some(h) => {
                bytes.extend_from_slice(b"Host: ");
                bytes.extend_from_slice(&h);
                bytes.extend_from_slice(b"\r\n");
            }
            None => bytes.extend_from_slice(format!("Host: {}\r\n", self.authority).as_bytes()),
        }
        for h in raw.headers {
            bytes.extend_from_slice(&h);
            bytes.extend_from_slice(b"\r\n");
        }
        let token = match credential {
            Credential::Anonymous => None,
            Credential::Developer => Some(&self.tokens.developer),
            Credential::Admin => Some(&self.tokens.admin),
        };
        if let Some(t) = token {
            bytes.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
        }
        bytes.extend_from_slice(format!("X-Probe-Id: {id}\r\n\r\n").as_bytes());
        bytes.extend_from_slice(&raw.body);
        self.probes.push(Probe {
            id,
            class,
            credential,
            check,
            bytes,
            h2c: None,
        });
    }

    /// The id the next probe gets.
    pub(super) fn next_id(&self) -> usize {
        self.first + self.probes.len()
    }

    /// The token of `credential`, if any.
    pub(super) fn token(&self, credential: Credential) -> Option<&str> {
        match credential {
            Credential::Anonymous => None,
            Credential::Developer => Some(&self.tokens.developer),
            Credential::Admin => Some(&self.tokens.admin),
        }
    }

    /// An attack with no token and with a developer token.
    pub(super) fn both(&mut self, class: &'static str, raw: impl Fn() -> Raw) {
        self.push(class, Credential::Anonymous, Check::Attack, raw());
        self.push(class, Credential::Developer, Check::Attack, raw());
    }
}

/// Ways to climb out of a prefix: (class, payload).
const TRAVERSALS: &[(&str, &str)] = &[
    ("dot-segments", "../"),
    ("dot-segments", "./../"),
    ("dot-segments", "x/../../"),
    ("dot-segments", ".../../"),
    ("encoded-slash", "..%2f"),
    ("encoded-slash", "..%2F"),
    ("encoded-slash", "x%2f..%2f..%2f"),
    ("encoded-slash", "%2e%2e%2f"),
    ("encoded-slash", "%2E%2E%2F"),
    ("encoded-slash", "..%2f..%2f"),
    ("encoded-dots", "%2e%2e/"),
    ("encoded-dots", "%2E%2E/"),
    ("encoded-dots", ".%2e/"),
    ("encoded-dots", "%2e./"),
    ("backslash", "..%5c"),
    ("backslash", "..%5C"),
    ("backslash", "..\\"),
    ("backslash", "%2e%2e%5c"),
    ("backslash", "x\\..\\..\\"),
    ("double-encoding", "%252e%252e/"),
    ("double-encoding", "..%252f"),
    ("double-encoding", "%252e%252e%252f"),
    ("double-encoding", "%25252e%25252e/"),
    ("overlong-utf8", "%c0%ae%c0%ae/"),
    ("overlong-utf8", "..%c0%af"),
    ("overlong-utf8", "%e0%80%ae%e0%80%ae/"),
    ("overlong-utf8", "%u002e%u002e/"),
    ("path-params", "..;/"),
    ("path-params", "..;x=y/"),
    ("path-params", "..%3b/"),
    ("path-params", "x;/../../"),
    ("nul", "..%00/"),
    ("nul", "%00/../"),
    ("fragment", "x#/../../"),
    ("fragment", "x%23/../../"),
    ("whitespace", "..%20/"),
    ("whitespace", "..%09/"),
];

/// What to reach after the traversal: (class suffix, target).
const TARGETS: &[&str] = &["admin/x", "admin%2fx", "%61dmin/x"];

/// Prefixes: the anonymous rule's, the root, a doubled slash.
const PREFIXES: &[&str] = &["/public/", "/", "//"];

/// The corpus for a proxy reached at `authority` (`127.0.0.1:PORT`, also the default Host).
pub fn corpus(authority: &str, tokens: &Tokens) -> Vec<Probe> {
    let mut b = Builder {
        authority,
        tokens,
        first: 0,
        probes: Vec::new(),
    };
    controls(&mut b);
    paths(&mut b);
    unreadable(&mut b);
    hosts(&mut b);
    forwarded(&mut b);
    identity(&mut b);
    b.probes
}

fn controls(b: &mut Builder<'_>) {
    let reach = |target: &str, user| Check::Reaches {
        target: target.to_owned(),
        user,
    };
    b.push(
        "control",
        Credential::Admin,
        reach("/admin/x", Some("alice")),
        Raw::get(b"/admin/x").header(&format!("{USER_HEADER}: {SPOOFED}")),
    );
    b.push(
        "control",
        Credential::Anonymous,
        reach("/public/x", None),
        Raw::get(b"/public/x"),
    );
    b.push(
        "control",
        Credential::Developer,
        reach("/api/x", Some("alice")),
        Raw::get(b"/api/x"),
    );
    b.push(
        "control",
        Credential::Admin,
        reach("/ops/x", Some("alice")),
        Raw::get(b"/ops/x").host(RESTRICTED_HOST.as_bytes()),
    );
    b.push(
        "control",
        Credential::Developer,
        Check::Denied,
        Raw::get(b"/admin/x"),
    );
    b.push(
        "control",
        Credential::Anonymous,
        Check::Denied,
        Raw::get(b"/admin/x"),
    );
    b.push(
        "control",
        Credential::Developer,
        Check::Denied,
        Raw::get(b"/ops/x").host(RESTRICTED_HOST.as_bytes()),
    );
    b.push(
        "control",
        Credential::Anonymous,
        Check::Denied,
        Raw::get(b"/public/x").host(RESTRICTED_HOST.as_bytes()),
    );
}

fn paths(b: &mut Builder<'_>) {
    for prefix in PREFIXES {
        for (class, traversal) in TRAVERSALS {
            for target in TARGETS {
                let path = format!("{prefix}{traversal}{target}");
                // Without a token only the anonymous rule's prefix can be abused; with a
                // developer token any reading outside /admin is allowed by `default`.
                if *prefix == "/public/" {
                    b.push(
                        class,
                        Credential::Anonymous,
                        Check::Attack,
                        Raw::get(path.as_bytes()),
                    );
                }
                b.push(
                    class,
                    Credential::Developer,
                    Check::Attack,
                    Raw::get(path.as_bytes()),
                );
            }
        }
    }
    // Dot segments resolved after merging slashes (RFC 3986 keeps the empty segment:
    // `/admin//../public/x` is /admin/public/x, merged first it is /public/x).
    for path in [
        "/admin//../public/x",
        "/admin///../../public/x",
        "/admin/x//../../public/x",
        "/admin/.//../public/x",
        "//admin//../public/x",
        "/admin//..%2fpublic/x",
        "/admin//%2e%2e/public/x",
    ] {
        b.both("merge-then-dots", || Raw::get(path.as_bytes()));
    }
    // The protected path spelled another way, no traversal.
    for (class, path) in [
        ("encoded-unreserved", "/%61dmin/x"),
        ("encoded-unreserved", "/adm%69n/x"),
        ("encoded-unreserved", "/%61%64%6d%69%6e/x"),
        ("double-encoding", "/%2561dmin/x"),
        ("encoded-slash", "/admin%2fx"),
        ("encoded-slash", "/%2fadmin/x"),
        ("encoded-slash", "/%2Fadmin%2Fx"),
        ("backslash", "/admin%5cx"),
        ("backslash", "/admin\\x"),
        ("backslash", "/\\admin/x"),
        ("path-params", "/admin;x/x"),
        ("path-params", "/admin;/x"),
        ("path-params", "/admin%3b/x"),
        ("nul", "/admin%00/x"),
        ("nul", "/admin/x%00"),
        ("overlong-utf8", "/admin%c0%afx"),
        ("dot-segments", "/./admin/x"),
        ("dot-segments", "/%2e/admin/x"),
        ("fragment", "/admin#/x"),
        ("fragment", "/admin%23/x"),
    ] {
        b.both(class, || Raw::get(path.as_bytes()));
    }
    // Request lines a lax parser reads differently.
    for line in [
        &b"GET /public/x?/../../admin/x HTTP/1.1"[..],
        b"GET admin/x HTTP/1.1",
        b"GET /public/x /../../admin/x HTTP/1.1",
        b"GET  /admin/x HTTP/1.1",
        b"GET\t/public/..%2fadmin/x\tHTTP/1.1",
        b"get /admin/x HTTP/1.1",
        b"GET /public/..%2fadmin/x HTTP/1.0",
    ] {
        b.both("request-line", || Raw::line(line));
    }
}

/// Original-request headers Portcullis may fail to read (Authelia CVE-2021-32637).
fn unreadable(b: &mut Builder<'_>) {
    for path in [
        &b"/admin/\xc3\xa9"[..],
        b"/admin/\xff",
        b"/admin/x\x7f",
        b"/public/\xff/../../admin/x",
        b"/public/\xc3\xa9/..%2f..%2fadmin/x",
        b"/admin/x?q=\xff",
    ] {
        b.both("unreadable-original", || Raw::get(path));
    }
    // HTTP/1.0 without Host: `$scheme://$http_host$request_uri` is `http:///admin/x`.
    for line in [
        &b"GET /admin/x HTTP/1.0"[..],
        b"GET /public/..%2fadmin/x HTTP/1.0",
        b"GET //admin/x HTTP/1.0",
    ] {
        b.both("unreadable-original", || Raw::line(line).no_host());
    }
    for host in [
        &b"a:80:80"[..],
        b"127.0.0.1:80:80",
        b"",
        b"[::1",
        b"a b",
        b"a/b",
        b"a%00",
        b"\xc3\xa9.test",
    ] {
        if host.is_empty() {
            b.both("unreadable-original", || {
                Raw::get(b"/admin/x").no_host().header("Host:")
            });
        } else {
            b.both("unreadable-original", || Raw::get(b"/admin/x").host(host));
        }
    }
    b.both("unreadable-original", || {
        Raw::line(b"GET http://a:80:80/admin/x HTTP/1.1")
    });
    // Heads that start like the HTTP/2 preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
    // the method `PRI`, which a proxy may pass on as the first bytes of a new
    // connection to the auth server (whose listener reads the version from them), and
    // the preface's first line with headers after it.
    b.both("preface-like", || Raw::line(b"PRI /admin/x HTTP/1.1"));
    b.both("preface-like", || Raw::line(b"PRI * HTTP/1.1"));
    b.both("preface-like", || Raw::line(b"PRI * HTTP/2.0"));
}

/// The host-restricted route under another spelling of its host (Authelia
/// CVE-2026-48794), and absolute-form targets naming another host than `Host`.
fn hosts(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    for host in [
        "ops.test.",
        "OPS.TEST",
        "Ops.Test.",
        "ops.test:80",
        "ops.test.:80",
        "ops.test:80:80",
        "ops.test..",
        "ops%2etest",
        "ops.test:",
        "ops.test:0",
        " ops.test",
        "x@ops.test",
    ] {
        let h = host.as_bytes();
        b.push(
            "host-spelling",
            Credential::Developer,
            Check::Attack,
            Raw::get(b"/ops/x").host(h),
        );
        b.push(
            "host-spelling",
            Credential::Anonymous,
            Check::Attack,
            Raw::get(b"/public/x").host(h),
        );
    }
    b.both("duplicate-host", || {
        Raw::get(b"/ops/x").header(&format!("Host: {RESTRICTED_HOST}"))
    });
    b.both("duplicate-host", || {
        Raw::get(b"/public/x")
            .host(RESTRICTED_HOST.as_bytes())
            .header(&format!("Host: {authority}"))
    });
    b.both("duplicate-host", || {
        Raw::get(b"/admin/x").header(&format!("Host: {ANONYMOUS_HOST}"))
    });
    let absolute = [
        format!("GET http://{RESTRICTED_HOST}/ops/x HTTP/1.1"),
        format!("GET http://{RESTRICTED_HOST}./ops/x HTTP/1.1"),
        "GET http://OPS.TEST/public/x HTTP/1.1".to_owned(),
        format!("GET http://{RESTRICTED_HOST}:80/public/x HTTP/1.1"),
        format!("GET HTTP://{RESTRICTED_HOST}/public/x HTTP/1.1"),
        format!("GET http://x@{RESTRICTED_HOST}/public/x HTTP/1.1"),
        format!("GET http://{ANONYMOUS_HOST}/admin/x HTTP/1.1"),
        "GET http://other/admin/x HTTP/1.1".to_owned(),
        "GET http://other/public/..%2fadmin/x HTTP/1.1".to_owned(),
        format!("GET http://{authority}/public/..%2fadmin/x HTTP/1.1"),
    ];
    for line in &absolute {
        b.both("absolute-form", || Raw::line(line.as_bytes()));
    }
    b.both("absolute-form", || {
        Raw::line(format!("GET http://{authority}/public/x HTTP/1.1").as_bytes())
            .host(RESTRICTED_HOST.as_bytes())
    });
}

/// Client-sent headers that name the original request (oauth2-proxy CVE-2026-40575,
/// Traefik CVE-2026-39858), duplicated, underscored, or dropped through `Connection`.
fn forwarded(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    let fakes = [
        "X-Forwarded-Uri: /public/x".to_owned(),
        "X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /public/x".to_owned(),
        "X-Original-URI: /public/x".to_owned(),
        "X-Original-URI: /public/x\r\nX-Original-URI: /public/x".to_owned(),
        "X-Original-URL: http://127.0.0.1/public/x".to_owned(),
        format!("X-Original-URL: http://{ANONYMOUS_HOST}/admin/x"),
        format!("X-Forwarded-Host: {ANONYMOUS_HOST}"),
        format!("X-Forwarded-Host: {ANONYMOUS_HOST}\r\nX-Forwarded-Host: {ANONYMOUS_HOST}"),
        format!("Forwarded: host={ANONYMOUS_HOST}"),
        "X-Forwarded-Prefix: /public".to_owned(),
        "X-Forwarded-Path: /public/x".to_owned(),
        "X-Rewrite-URL: /public/x".to_owned(),
        "X-Envoy-Original-Path: /public/x".to_owned(),
        "X_Original_URI: /public/x".to_owned(),
        "X_Forwarded_Uri: /public/x".to_owned(),
        format!("X_Forwarded_Host: {ANONYMOUS_HOST}"),
        "x-original-uri: /public/x".to_owned(),
        "X-Original-URI: \t/public/x".to_owned(),
        "X-Original-URI:\r\n /public/x".to_owned(),
    ];
    for fake in &fakes {
        b.both("client-forwarded", || Raw::get(b"/admin/x").header(fake));
    }
    for named in [
        "X-Forwarded-Uri",
        "X-Forwarded-Host",
        "X-Forwarded-Method",
        "X-Original-URI",
        "X-Original-URL",
        "Host",
        "Authorization",
        "close, X-Forwarded-Uri, X-Original-URI",
    ] {
        b.both("connection-hop", || {
            Raw::get(b"/admin/x").header(&format!("Connection: {named}"))
        });
        b.push(
            "connection-hop",
            Credential::Developer,
            Check::Attack,
            Raw::get(b"/ops/x")
                .host(RESTRICTED_HOST.as_bytes())
                .header(&format!("Connection: {named}")),
        );
    }
    b.push(
        "client-forwarded",
        Credential::Developer,
        Check::Attack,
        Raw::get(b"/ops/x")
            .host(RESTRICTED_HOST.as_bytes())
            .header(&format!("X-Forwarded-Host: {authority}")),
    );
    // The other way round: the real host is an ordinary one, the client names the
    // restricted host where a framework behind a "trusted" proxy reads the host from.
    for fake in [
        format!("X-Forwarded-Host: {RESTRICTED_HOST}"),
        format!("X-Forwarded-Host: {RESTRICTED_HOST}, {authority}"),
        format!("X-Forwarded-Host: {authority}\r\nX-Forwarded-Host: {RESTRICTED_HOST}"),
        format!("Forwarded: host={RESTRICTED_HOST}"),
        format!("Forwarded: for=1.2.3.4;host=\"{RESTRICTED_HOST}\""),
        format!("X_Forwarded_Host: {RESTRICTED_HOST}"),
    ] {
        b.push(
            "client-forwarded",
            Credential::Developer,
            Check::Attack,
            Raw::get(b"/ops/x").header(&fake),
        );
        b.push(
            "client-forwarded",
            Credential::Anonymous,
            Check::Attack,
            Raw::get(b"/public/x").header(&fake),
        );
    }
}

/// Spellings of the identity header (oauth2-proxy CVE-2025-64484) and `Connection`
/// naming it (Fabio CVE-2025-48865).
fn identity(b: &mut Builder<'_>) {
    let spoofs: Vec<Vec<u8>> = [
        format!("{USER_HEADER}: {SPOOFED}"),
        format!("X-User: {SPOOFED}"),
        format!("X-USER: {SPOOFED}"),
        format!("x_user: {SPOOFED}"),
        format!("X_User: {SPOOFED}"),
        format!("X_USER: {SPOOFED}"),
        format!("x-user: {SPOOFED}\r\nx-user: {SPOOFED}"),
        format!("x-user:{SPOOFED}"),
        format!("x-user : {SPOOFED}"),
        format!("x-user\t: {SPOOFED}"),
        format!("x-user:\r\n {SPOOFED}"),
        format!("X-Foo: a\r\n x-user: {SPOOFED}"),
        format!("x_user: {SPOOFED}\r\nx-user: {SPOOFED}"),
        format!("Connection: close, x-user\r\nx_user: {SPOOFED}"),
        format!("Connection: x_user\r\nx_user: {SPOOFED}"),
        format!("Connection: x-user\r\nx-user: {SPOOFED}"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    for spoof in &spoofs {
        b.push(
            "identity-spoof",
            Credential::Anonymous,
            Check::Attack,
            Raw::get(b"/public/x").header_bytes(spoof),
        );
        b.push(
            "identity-spoof",
            Credential::Developer,
            Check::Attack,
            Raw::get(b"/api/x").header_bytes(spoof),
        );
        b.push(
            "identity-spoof",
            Credential::Admin,
            Check::Attack,
            Raw::get(b"/admin/x").header_bytes(spoof),
        );
    }
    for connection in [
        "close, x-user",
        "x-user",
        "X-USER",
        "keep-alive, X-User",
        "x_user",
    ] {
        b.push(
            "identity-dropped",
            Credential::Developer,
            Check::IdentityKept,
            Raw::get(b"/api/x").header(&format!("Connection: {connection}")),
        );
        b.push(
            "identity-dropped",
            Credential::Admin,
            Check::IdentityKept,
            Raw::get(b"/admin/x").header(&format!("Connection: {connection}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_is_one_complete_request_with_its_id() {
        let tokens = Tokens {
            admin: "a.b.c".to_owned(),
            developer: "d.e.f".to_owned(),
        };
        let probes = corpus("127.0.0.1:1", &tokens);
        assert!(probes.len() > 500, "{} probes", probes.len());
        for (i, p) in probes.iter().enumerate() {
            assert_eq!(p.id, i);
            let text = String::from_utf8_lossy(&p.bytes);
            assert!(
                text.ends_with(&format!("X-Probe-Id: {i}\r\n\r\n")),
                "{text}"
            );
            assert_eq!(text.matches("\r\n\r\n").count(), 1, "one request: {text}");
            let bearer = text.contains("Bearer ");
            assert_eq!(bearer, p.credential != Credential::Anonymous, "{text}");
        }
        for class in [
            "control",
            "encoded-slash",
            "merge-then-dots",
            "unreadable-original",
            "host-spelling",
            "absolute-form",
            "identity-spoof",
            "identity-dropped",
        ] {
            assert!(probes.iter().any(|p| p.class == class), "no {class} probe");
        }
    }
}
