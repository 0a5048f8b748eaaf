//! Probes only a proxy meets (Portcullis's own `listen.proxy`, issue 19): request
//! smuggling (`Transfer-Encoding` against `Content-Length`, pipelining, bodies that
//! hold a request), hop-by-hop tricks through `Connection`, protocol switches on a
//! protected path, `CONNECT`, absolute-form targets naming other hosts, and over h2c
//! (prior knowledge) `:authority` against `Host`.
//!
//! Sources: RFC 9112 §6.1 and §11.2 (TE+CL), PortSwigger's CL.TE/TE.CL/TE.TE
//! variants, BishopFox's h2c smuggling (an `Upgrade: h2c` passed on lets a client talk
//! to the upstream past the proxy), RFC 9113 §8.3.1 (`:authority` vs `Host`), Fabio
//! CVE-2025-48865 (`Connection` naming a header the proxy set).

use super::corpus::{Builder, Check, Credential, H2cRequest, Probe, Raw, Tokens};
use super::{RESTRICTED_HOST, SPOOFED, USER_HEADER};

/// The proxy probes for a proxy at `authority`, numbered from `first`.
pub fn proxy_corpus(authority: &str, tokens: &Tokens, first: usize) -> Vec<Probe> {
    let mut b = Builder {
        authority,
        tokens,
        first,
        probes: Vec::new(),
    };
    smuggling(&mut b);
    hop_by_hop(&mut b);
    upgrades(&mut b);
    connect(&mut b);
    absolute(&mut b);
    h2c(&mut b);
    b.probes
}

/// A second request hidden after the first one's head: it names `/admin/x` without a
/// token and carries the probe's id, so if the upstream ever gets it, it is a protected
/// reading and a second request for one probe.
fn smuggled(authority: &str, id: usize) -> String {
    format!("GET /admin/x HTTP/1.1\r\nHost: {authority}\r\nX-Probe-Id: {id}\r\n\r\n")
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

fn smuggling(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    for cred in [Credential::Anonymous, Credential::Developer] {
        let path: &[u8] = match cred {
            Credential::Anonymous => b"POST /public/x HTTP/1.1",
            _ => b"POST /api/x HTTP/1.1",
        };
        // Each variant: the framing headers, and the body given the hidden request.
        type Body = fn(&str) -> String;
        let variants: [(&str, Body); 13] = [
            // CL.TE: the proxy reads Content-Length, the upstream chunked.
            ("Content-Length: 6\r\nTransfer-Encoding: chunked", |s| {
                format!("0\r\n\r\n{s}")
            }),
            // TE.CL: the proxy reads chunked, the upstream Content-Length.
            ("Transfer-Encoding: chunked\r\nContent-Length: 4", |s| {
                format!("{}0\r\n\r\n", chunk(s))
            }),
            // TE.TE: a Transfer-Encoding one side ignores.
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                |s| format!("0\r\n\r\n{s}"),
            ),
            ("Transfer-Encoding: xchunked\r\nContent-Length: 5", |s| {
                format!("0\r\n\r\n{s}")
            }),
            ("Transfer-Encoding : chunked\r\nContent-Length: 5", |s| {
                format!("0\r\n\r\n{s}")
            }),
            ("Transfer-Encoding:\tchunked\r\nContent-Length: 5", |s| {
                format!("0\r\n\r\n{s}")
            }),
            ("Transfer-Encoding: chunked, identity", |s| {
                format!("0\r\n\r\n{s}")
            }),
            (
                "Transfer-Encoding: identity, chunked\r\nContent-Length: 5",
                |s| format!("0\r\n\r\n{s}"),
            ),
            ("Transfer-Encoding:\r\n chunked\r\nContent-Length: 5", |s| {
                format!("0\r\n\r\n{s}")
            }),
            // Two lengths that disagree, and a list.
            ("Content-Length: 0\r\nContent-Length: 40", |s| s.to_owned()),
            ("Content-Length: 0, 40", |s| s.to_owned()),
            ("Content-Length: +0", |s| s.to_owned()),
            // A chunk extension some servers stop at.
            ("Transfer-Encoding: chunked", |s| {
                format!("0;ext=\"a\r\n\r\n{s}\"\r\n\r\n")
            }),
        ];
        for (framing, body) in variants {
            let id = b.next_id();
            let hidden = smuggled(&authority, id);
            // Both framings at once: hyper reads chunked, drops Content-Length and
            // closes the connection after answering (RFC 9112 §6.1), so the upstream
            // gets one chunked request and the hidden one is never read as a request.
            b.push(
                "smuggling",
                cred,
                Check::Single,
                Raw::line(path)
                    .header(framing)
                    .then(body(&hidden).as_bytes()),
            );
        }
        // A bare-LF chunk terminator: hyper refuses the body; the client's fault, 400
        // (it was 502 `upstream_unavailable`), and no request completes upstream.
        let id = b.next_id();
        let hidden = smuggled(&authority, id);
        b.push(
            "smuggling",
            cred,
            Check::Refused,
            Raw::line(path)
                .header("Transfer-Encoding: chunked")
                .then(format!("0\n\n{hidden}").as_bytes()),
        );
        // The hidden request as an honest body: forwarded as a body, never as a request.
        for framing in [
            "Content-Length",
            "Connection: content-length\r\nContent-Length",
        ] {
            let id = b.next_id();
            let hidden = smuggled(&authority, id);
            b.push(
                "smuggling",
                cred,
                Check::Single,
                Raw::line(path)
                    .header(&format!("{framing}: {}", hidden.len()))
                    .then(hidden.as_bytes()),
            );
        }
        let id = b.next_id();
        let hidden = smuggled(&authority, id);
        b.push(
            "smuggling",
            cred,
            Check::Single,
            Raw::line(path)
                .header("Connection: transfer-encoding\r\nTransfer-Encoding: chunked")
                .then(format!("{}0\r\n\r\n", chunk(&hidden)).as_bytes()),
        );
        // HTTP/1.0 with chunked framing (not defined for 1.0).
        let id = b.next_id();
        let hidden = smuggled(&authority, id);
        let line: &[u8] = match cred {
            Credential::Anonymous => b"POST /public/x HTTP/1.0",
            _ => b"POST /api/x HTTP/1.0",
        };
        b.push(
            "smuggling",
            cred,
            Check::Single,
            Raw::line(line)
                .header("Transfer-Encoding: chunked\r\nContent-Length: 5")
                .then(format!("0\r\n\r\n{hidden}").as_bytes()),
        );
        // Pipelined: the second request is the client's own, and is decided on its own.
        let id = b.next_id();
        let hidden = smuggled(&authority, id);
        b.push(
            "smuggling",
            cred,
            Check::Single,
            Raw::get(match cred {
                Credential::Anonymous => b"/public/x",
                _ => b"/api/x",
            })
            .then(hidden.as_bytes()),
        );
    }
}

/// `Connection` naming headers the proxy sets or decides on.
fn hop_by_hop(b: &mut Builder<'_>) {
    for named in [
        "x-request-id",
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "content-length",
        "te",
        "keep-alive, upgrade",
        "x-probe",
    ] {
        b.both("connection-hop", || {
            Raw::get(b"/admin/x").header(&format!("Connection: {named}"))
        });
    }
    // Other hop-by-hop carriers naming the identity header.
    for carrier in [
        format!("Proxy-Connection: {USER_HEADER}\r\n{USER_HEADER}: {SPOOFED}"),
        format!("Keep-Alive: {USER_HEADER}\r\n{USER_HEADER}: {SPOOFED}"),
        format!("Connection: keep-alive\r\nConnection: {USER_HEADER}\r\n{USER_HEADER}: {SPOOFED}"),
        format!("Connection: ,{USER_HEADER},\r\n{USER_HEADER}: {SPOOFED}"),
        format!("TE: trailers, {USER_HEADER}\r\n{USER_HEADER}: {SPOOFED}"),
        format!("Upgrade: {USER_HEADER}\r\nConnection: upgrade\r\n{USER_HEADER}: {SPOOFED}"),
    ] {
        b.push(
            "identity-spoof",
            Credential::Anonymous,
            Check::Single,
            Raw::get(b"/public/x").header(&carrier),
        );
        b.push(
            "identity-spoof",
            Credential::Developer,
            Check::Single,
            Raw::get(b"/api/x").header(&carrier),
        );
    }
    for connection in ["x-user", "close, X-User", "x_user"] {
        b.push(
            "identity-dropped",
            Credential::Admin,
            Check::IdentityKept,
            Raw::get(b"/admin/x").header(&format!("Connection: {connection}")),
        );
    }
}

/// Protocol switches: decided like any request; `h2c` never passed on.
fn upgrades(b: &mut Builder<'_>) {
    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    b.both("upgrade", || Raw::get(b"/admin/x").header(ws));
    b.both("upgrade", || Raw::get(b"/public/..%2fadmin/x").header(ws));
    b.both("upgrade", || {
        Raw::get(b"/ops/x")
            .host(RESTRICTED_HOST.as_bytes())
            .header(ws)
    });
    let h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA";
    b.both("upgrade", || Raw::get(b"/admin/x").header(h2c));
    for cred in [Credential::Anonymous, Credential::Developer] {
        b.push(
            "upgrade",
            cred,
            Check::Single,
            Raw::get(b"/public/x").header(h2c),
        );
        b.push(
            "upgrade",
            cred,
            Check::Single,
            Raw::get(b"/public/x").header("Connection: Upgrade\r\nUpgrade: H2C"),
        );
    }
    b.push(
        "upgrade",
        Credential::Admin,
        Check::Single,
        Raw::get(b"/admin/x").header(h2c),
    );
}

/// A reverse proxy is no forward proxy: `CONNECT` is refused, whatever it names.
fn connect(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    for target in [
        authority.clone(),
        format!("{RESTRICTED_HOST}:80"),
        "127.0.0.1:1".to_owned(),
    ] {
        for cred in [
            Credential::Anonymous,
            Credential::Developer,
            Credential::Admin,
        ] {
            b.push(
                "connect",
                cred,
                Check::Refused,
                Raw::line(format!("CONNECT {target} HTTP/1.1").as_bytes()).host(target.as_bytes()),
            );
        }
    }
    b.push(
        "connect",
        Credential::Developer,
        Check::Refused,
        Raw::line(b"CONNECT /admin/x HTTP/1.1"),
    );
}

/// Absolute-form targets naming another host than `Host`, or another scheme.
fn absolute(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    for line in [
        format!("GET https://{RESTRICTED_HOST}/ops/x HTTP/1.1"),
        format!("GET http://{RESTRICTED_HOST}:1/ops/x HTTP/1.1"),
        format!("GET ws://{RESTRICTED_HOST}/ops/x HTTP/1.1"),
        format!("GET http://{authority}@{RESTRICTED_HOST}/ops/x HTTP/1.1"),
        format!("GET http://{RESTRICTED_HOST}#@{authority}/ops/x HTTP/1.1"),
        format!("GET //{RESTRICTED_HOST}/ops/x HTTP/1.1"),
        format!("GET http://{authority}/admin/x HTTP/1.1"),
    ] {
        b.both("absolute-form", || Raw::line(line.as_bytes()));
    }
    b.both("absolute-form", || {
        Raw::line(format!("GET http://{RESTRICTED_HOST}/public/x HTTP/1.1").as_bytes())
    });
    b.both("duplicate-host", || {
        Raw::get(b"/ops/x").host(format!("{RESTRICTED_HOST}, {authority}").as_bytes())
    });
    b.both("duplicate-host", || {
        Raw::get(b"/public/x").host(format!("{authority}, {RESTRICTED_HOST}").as_bytes())
    });
    b.both("duplicate-host", || {
        Raw::get(b"/public/x")
            .no_host()
            .header(&format!("Host: {authority}\r\nhost: {RESTRICTED_HOST}"))
    });
}

/// `:authority`, `:path` and the regular headers of an h2c probe.
type H2Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

fn h2c(b: &mut Builder<'_>) {
    let authority = b.authority.to_owned();
    let restricted = RESTRICTED_HOST.to_owned();
    let push = |b: &mut Builder<'_>,
                class: &'static str,
                credential: Credential,
                check: Check,
                authority: &str,
                path: &str,
                headers: &[(&str, &str)]| {
        let id = b.next_id();
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(t) = b.token(credential) {
            headers.push(("authorization".to_owned(), format!("Bearer {t}")));
        }
        headers.push(("x-probe-id".to_owned(), id.to_string()));
        let mut text = format!("h2c: :method GET :authority {authority} :path {path}");
        for (n, v) in &headers {
            text.push_str(&format!(" | {n}: {v}"));
        }
        b.probes.push(Probe {
            id,
            class,
            credential,
            check,
            bytes: text.into_bytes(),
            h2c: Some(H2cRequest {
                method: "GET".to_owned(),
                authority: authority.to_owned(),
                path: path.to_owned(),
                headers,
            }),
        });
    };
    let reach = |target: &str, user| Check::Reaches {
        target: target.to_owned(),
        user,
    };
    push(
        b,
        "h2c",
        Credential::Admin,
        reach("/admin/x", Some("alice")),
        &authority,
        "/admin/x",
        &[(USER_HEADER, SPOOFED)],
    );
    push(
        b,
        "h2c",
        Credential::Anonymous,
        reach("/public/x", None),
        &authority,
        "/public/x",
        &[],
    );
    push(
        b,
        "h2c",
        Credential::Anonymous,
        Check::Denied,
        &authority,
        "/admin/x",
        &[],
    );
    for cred in [Credential::Anonymous, Credential::Developer] {
        let checks: [H2Case<'_>; 11] = [
            // :authority and Host disagreeing, both ways.
            (&authority, "/ops/x", vec![("host", &restricted)]),
            (&restricted, "/public/x", vec![("host", &authority)]),
            (&restricted, "/ops/x", vec![("host", &authority)]),
            (
                &authority,
                "/public/x",
                vec![("host", &restricted), ("host", &authority)],
            ),
            ("ops.test.", "/public/x", vec![]),
            ("OPS.TEST", "/public/x", vec![]),
            (&authority, "/public/../admin/x", vec![]),
            (&authority, "/public/..%2fadmin/x", vec![]),
            (&authority, "/admin%2fx", vec![]),
            (
                &authority,
                "/public/x",
                vec![("x-forwarded-host", &restricted)],
            ),
            (
                &authority,
                "/public/x",
                vec![("forwarded", "host=ops.test")],
            ),
        ];
        for (a, path, headers) in &checks {
            push(b, "h2c", cred, Check::Attack, a, path, headers);
        }
        for spoof in ["x_user", "X-User", "x-user"] {
            push(
                b,
                "h2c",
                cred,
                Check::Attack,
                &authority,
                if cred == Credential::Anonymous {
                    "/public/x"
                } else {
                    "/api/x"
                },
                &[(spoof, SPOOFED)],
            );
        }
    }
}
