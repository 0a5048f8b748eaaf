//! The recording upstream: a raw HTTP/1.1 server that keeps every request exactly as it
//! arrived (request line, header names in their case, duplicates), matched to probes by
//! their `X-Probe-Id`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::{escape, strict};

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request line, without CRLF.
    pub request_line: Vec<u8>,
    /// Every header line split at the first `:` (name as sent, value trimmed), in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Received {
    /// The raw request target (the request line's second field).
    pub fn target(&self) -> &[u8] {
        let line = &self.request_line;
        let start = line.iter().position(|&b| b == b' ').map_or(0, |i| i + 1);
        let end = line
            .iter()
            .rposition(|&b| b == b' ')
            .filter(|&e| e > start)
            .unwrap_or(line.len());
        &line[start..end]
    }

    /// Values of the headers named exactly `name` (any case).
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Values of every header that some upstream reads as `name` (`_` for `-`, any case).
    pub fn spellings(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| strict::is_spelling_of(n, name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Every host an upstream may take this request to be for: each `Host`, each element
    /// of `X-Forwarded-Host`, each `host=` of `Forwarded` (frameworks behind a "trusted"
    /// proxy read the last two).
    pub fn host_claims(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self.values("host").iter().map(|v| v.to_vec()).collect();
        for v in self.values("x-forwarded-host") {
            out.extend(v.split(|&b| b == b',').map(<[u8]>::to_vec));
        }
        for v in self.values("forwarded") {
            for pair in v.split(|&b| b == b';' || b == b',') {
                let pair = pair.trim_ascii();
                if pair.len() > 5 && pair[..5].eq_ignore_ascii_case(b"host=") {
                    let value = &pair[5..];
                    let value = value
                        .strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(value);
                    out.push(value.to_vec());
                }
            }
        }
        out
    }

    /// The `X-Probe-Id` values.
    pub fn probe_ids(&self) -> Vec<usize> {
        self.values("x-probe-id")
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .collect()
    }

    /// One line: request line and headers, escaped.
    pub fn describe(&self) -> String {
        let mut out = escape(&self.request_line);
        for (n, v) in &self.headers {
            let _ = write!(out, " | {}: {}", escape(n), escape(v));
        }
        out
    }
}

/// A raw HTTP/1.1 upstream on 127.0.0.1 recording every request (keep-alive, bodies by
/// `Content-Length` or chunked), answering 200 with `{"path": target, "headers": {}}`
/// (the shape [`crate::ProxyUnderTest::wait_routed`] looks for).
#[derive(Debug)]
pub struct RecordingUpstream {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl RecordingUpstream {
    /// Starts it on a free loopback port.
    pub fn start() -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let seen = seen2.clone();
                std::thread::spawn(move || serve(stream, &seen));
            }
        });
        RecordingUpstream { port, seen, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until `buf` holds at least `n` bytes; false on EOF or error.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    let mut chunk = [0u8; 8192];
    while buf.len() < n {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    true
}

/// Reads once more into `buf`; false on EOF or error.
fn more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let n = buf.len() + 1;
    fill(stream, buf, n)
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 1 << 20 || !more(&mut stream, &mut buf) {
                return;
            }
        };
        let head: Vec<u8> = buf.drain(..head_end).collect();
        let mut lines = head[..head.len() - 4]
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines.next().unwrap_or_default().to_vec();
        let headers: Vec<(Vec<u8>, Vec<u8>)> = lines
            .map(|l| match l.iter().position(|&b| b == b':') {
                Some(i) => (l[..i].to_vec(), trim_ows(&l[i + 1..]).to_vec()),
                None => (l.to_vec(), Vec::new()),
            })
            .collect();
        let r = Received {
            request_line,
            headers,
        };
        // Skip the body, if any.
        let length = r
            .values("content-length")
            .first()
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        let chunked = r
            .values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().ends_with(b"chunked"));
        if chunked {
            loop {
                let Some(i) = find(&buf, b"\r\n") else {
                    if !more(&mut stream, &mut buf) {
                        return;
                    }
                    continue;
                };
                let size_text = String::from_utf8_lossy(&buf[..i]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or(0);
                if !fill(&mut stream, &mut buf, i + 2 + size + 2) {
                    return;
                }
                buf.drain(..i + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            if !fill(&mut stream, &mut buf, n) {
                return;
            }
            buf.drain(..n);
        }
        let close = r
            .values("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"close"))
            || r.request_line.ends_with(b"HTTP/1.0");
        let body = json!({
            "path": String::from_utf8_lossy(r.target()),
            "headers": {},
        })
        .to_string();
        // Recorded before answering: once the client has its answer, the record is there.
        seen.lock().unwrap().push(r);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}
