//! Small std-only servers for tests: an upstream that echoes what it received,
//! and a JWKS server whose document can change or go down, counting its hits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// A request head: method, path, headers (names lower-cased).
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

fn read_head(stream: &mut TcpStream) -> Option<Head> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
        if buf.len() > 256 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let head = text.split("\r\n\r\n").next()?.to_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Head {
        method,
        path,
        headers,
    })
}

fn respond(stream: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
}

fn spawn_server(
    handler: impl Fn(&mut TcpStream, String, String, Vec<(String, String)>) + Send + Sync + 'static,
) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stop2.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                if let Some(head) = read_head(&mut stream) {
                    handler(&mut stream, head.method, head.path, head.headers);
                }
            });
        }
    });
    (port, stop)
}

fn stop_server(port: u16, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    // Wake the accept loop so it sees the flag.
    let _ = TcpStream::connect(("127.0.0.1", port));
}

/// An upstream that answers 200 with `{"method","path","headers":{name:value|[values]}}`.
#[derive(Debug)]
pub struct EchoUpstream {
    /// Its port.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl EchoUpstream {
    /// Starts it on a free loopback port.
    pub fn start() -> EchoUpstream {
        let (port, stop) = spawn_server(|stream, method, path, headers| {
            let mut map = Map::new();
            for (n, v) in headers {
                match map.get_mut(&n) {
                    Some(Value::Array(a)) => a.push(Value::from(v)),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, Value::from(v)]);
                    }
                    None => {
                        map.insert(n, Value::from(v));
                    }
                }
            }
            let body = json!({ "method": method, "path": path, "headers": map }).to_string();
            respond(stream, 200, "", &body);
        });
        EchoUpstream { port, stop }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        stop_server(self.port, &self.stop);
    }
}

/// Serves a JWKS at any path; the document can be replaced or the server made to fail.
#[derive(Debug)]
pub struct JwksServer {
    /// Its port.
    pub port: u16,
    doc: Arc<Mutex<String>>,
    down: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl JwksServer {
    /// Starts serving `jwks` (with `Cache-Control: max-age` = `max_age_secs` when given).
    pub fn start(jwks: &str, max_age_secs: Option<u64>) -> JwksServer {
        let doc = Arc::new(Mutex::new(jwks.to_owned()));
        let down = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, dn, h) = (doc.clone(), down.clone(), hits.clone());
        let (port, stop) = spawn_server(move |stream, _m, _p, _h| {
            h.fetch_add(1, Ordering::SeqCst);
            if dn.load(Ordering::SeqCst) {
                respond(stream, 503, "", "{}");
                return;
            }
            let extra = max_age_secs
                .map(|s| format!("Cache-Control: max-age={s}\r\n"))
                .unwrap_or_default();
            let body = d.lock().unwrap().clone();
            respond(stream, 200, &extra, &body);
        });
        JwksServer {
            port,
            doc,
            down,
            hits,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT/jwks.json`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/jwks.json", self.port)
    }

    /// Replaces the document.
    pub fn set(&self, jwks: &str) {
        *self.doc.lock().unwrap() = jwks.to_owned();
    }

    /// Makes every request fail with 503 (or serve again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        stop_server(self.port, &self.stop);
    }
}
