//! The raw-socket client: the probe's bytes as they are, one response read back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::upstream::find;

/// What came back for a raw request.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status, if a status line came back.
    pub status: Option<u16>,
    /// Whether the read timed out before the response was complete.
    pub timed_out: bool,
}

/// Writes `bytes` to `127.0.0.1:port` as they are and reads one response (up to `timeout`).
pub fn send_raw(port: u16, bytes: &[u8], timeout: Duration) -> Answer {
    let deadline = Instant::now() + timeout;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Answer {
            status: None,
            timed_out: false,
        };
    };
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(bytes).is_err() {
        return Answer {
            status: None,
            timed_out: false,
        };
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut timed_out = false;
    loop {
        if response_complete(&buf) {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                timed_out = true;
                break;
            }
            Err(_) => break,
        }
    }
    let status = buf
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    Answer { status, timed_out }
}

fn response_complete(buf: &[u8]) -> bool {
    let Some(i) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
    let body = &buf[i + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return true;
    }
    for line in head.lines() {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return find(body, b"0\r\n\r\n").is_some();
        }
    }
    false
}

/// Sends `req` over h2c with prior knowledge (hyper's HTTP/2 client, which sends
/// `:authority` from the URI and any `host` header as given) and reads the status.
pub fn send_h2c(port: u16, req: &super::H2cRequest, timeout: Duration) -> Answer {
    let failed = |timed_out| Answer {
        status: None,
        timed_out,
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return failed(false);
    };
    rt.block_on(async {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()?;
            let (mut send, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tcp),
            )
            .await
            .ok()?;
            tokio::spawn(conn);
            let uri = format!("http://{}{}", req.authority, req.path);
            let mut builder = http::Request::builder()
                .method(req.method.as_str())
                .uri(uri)
                .version(http::Version::HTTP_2);
            for (n, v) in &req.headers {
                builder = builder.header(n.as_str(), v.as_str());
            }
            let request = builder
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .ok()?;
            let resp = send.send_request(request).await.ok()?;
            let status = resp.status().as_u16();
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            Some(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(status) => Answer {
                status,
                timed_out: false,
            },
            Err(_) => failed(true),
        }
    })
}
