//! A bounded flood of garbage at a running `portcullis serve` (loopback only):
//! raw junk, oversized heads, random and huge tokens, half-sent requests. The
//! server must keep answering, never allow, and its memory must stay bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use portcullis_test_util::Portcullis;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

const CONFIG: &str = r#"
providers:
  - name: corp
    issuer: https://issuer.test
    jwks:
      inline: {"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h"}]}
rules:
  - name: default
    match: {}
"#;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A small xorshift generator: deterministic garbage without a dependency.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() & 0xff) as u8).collect()
    }

    fn token_chars(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        (0..n)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

fn send_raw(port: u16, bytes: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn status_of(response: &str) -> Option<u16> {
    response.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn garbage_flood_keeps_memory_bounded_and_never_allows() {
    let p = Portcullis::start(BIN, CONFIG);
    let pid = p.child.pid();
    let port = p.http;
    let before = rss_kib(pid);
    let started = Instant::now();

    // Half-sent requests (slowloris) held open while the flood runs.
    let mut slow: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    for s in &mut slow {
        let _ = s.write_all(b"GET /verify HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    }

    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut junk = Junk(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut allowed = 0;
                for i in 0..1_000 {
                    let request: Vec<u8> = match i % 5 {
                        0 => {
                            let n = 1 + (junk.next() % 4096) as usize;
                            junk.bytes(n)
                        }
                        1 => {
                            // An oversized head: refused, not buffered without bound.
                            let mut r = b"GET /verify HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
                            r.extend(std::iter::repeat_n(b'a', 200_000));
                            r.extend_from_slice(b"\r\n\r\n");
                            r
                        }
                        2 => {
                            let n = 1 + (junk.next() % 20_000) as usize;
                            format!(
                                "GET /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                                junk.token_chars(n)
                            )
                            .into_bytes()
                        }
                        3 => format!(
                            "GET /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                            ".".repeat(30_000)
                        )
                        .into_bytes(),
                        _ => format!(
                            "GET /verify/{} HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nConnection: close\r\n\r\n",
                            junk.token_chars(64).replace('.', "/"),
                            junk.token_chars(2_000)
                        )
                        .into_bytes(),
                    };
                    if let Some(response) = send_raw(port, &request)
                        && status_of(&response) == Some(200) {
                            allowed += 1;
                        }
                }
                allowed
            })
        })
        .collect();
    let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(allowed, 0, "garbage must never be allowed");

    // Still serving, slow connections or not.
    let r = p.verify(&[]);
    assert_eq!(r.status, 401, "{}", p.log());
    drop(slow);
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    println!(
        "garbage flood: 4000 requests + 200 half-open connections in {:?}; RSS {before} KiB -> {after} KiB",
        started.elapsed()
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
