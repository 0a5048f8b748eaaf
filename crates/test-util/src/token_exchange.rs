//! A small OAuth 2.0 Token Exchange server (RFC 8693) for tests. The npm
//! `oidc-provider` has no token exchange grant of its own (its maintainer calls
//! token exchange a framework to be profiled through its custom grant API), so this
//! speaks the RFC exactly, as a security token service would: `POST /token` with
//! `client_secret_basic` (RFC 6749 §2.3.1), `grant_type`
//! `urn:ietf:params:oauth:grant-type:token-exchange`, a `subject_token` that must be
//! a JWT signed by the subject issuer's key and not expired, a
//! `subject_token_type` of `access_token` or `jwt`, and an `audience`; it answers
//! `access_token` (a JWT it signs: `iss`, the subject's `sub`, `aud` = the audience,
//! `act` = the client, RFC 8693 §4.1), `issued_token_type`, `token_type` Bearer and
//! `expires_in`, or the RFC's errors (`invalid_client`, `unsupported_grant_type`,
//! `invalid_request`, `invalid_grant`, `invalid_target`) with status 400 / 401.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use portcullis_jose::{Algorithm, AlgorithmSet, KeySet, Kid, VerifyingKey, b64, verify_jws};
use serde_json::{Value, json};

use crate::Issuer;

/// RFC 8693 §2.1.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The token exchange server (stopped on drop: its port then refuses connections).
#[derive(Debug)]
pub struct TokenExchangeServer {
    /// Its port.
    pub port: u16,
    /// The key its issued tokens are signed with (`iss` = [`TokenExchangeServer::issuer`]).
    pub signer: Arc<Issuer>,
    exchanges: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

struct Sts {
    client_id: String,
    client_secret: String,
    subject_keys: KeySet,
    signer: Arc<Issuer>,
    ttl: i64,
    exchanges: Arc<AtomicUsize>,
}

impl TokenExchangeServer {
    /// Serves on a free loopback port: client `client_id`/`client_secret`, subject
    /// tokens signed by `subject`, issued tokens valid `ttl` seconds.
    pub fn start(client_id: &str, client_secret: &str, subject: &Issuer, ttl: i64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let subject_key = VerifyingKey::try_new(
            subject.key.public_material(),
            Some(Kid::new(&subject.kid)),
            Some(subject.key.alg()),
        )
        .unwrap();
        let signer = Arc::new(Issuer::new(
            Algorithm::ES256,
            "sts-1",
            &format!("http://127.0.0.1:{port}"),
        ));
        let exchanges = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sts = Arc::new(Sts {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            subject_keys: KeySet::new(vec![subject_key]),
            signer: signer.clone(),
            ttl,
            exchanges: exchanges.clone(),
        });
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let sts = sts.clone();
                std::thread::spawn(move || sts.serve(stream));
            }
        });
        TokenExchangeServer {
            port,
            signer,
            exchanges,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The `iss` of the tokens it issues.
    pub fn issuer(&self) -> String {
        self.signer.iss.clone()
    }

    /// Successful exchanges so far.
    pub fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::SeqCst)
    }
}

impl Drop for TokenExchangeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Sts {
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some((head, body)) = read_request(&mut stream) else {
            return;
        };
        let (status, extra, json) = self.answer(&head, &body);
        let body = json.to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            body.len()
        );
    }

    fn answer(&self, head: &Head, body: &str) -> (u16, &'static str, Value) {
        let err = |status: u16, code: &str| (status, "", json!({ "error": code }));
        if head.method != "POST" || head.path != "/token" {
            return err(404, "not_found");
        }
        if head
            .header("content-type")
            .is_none_or(|c| !c.starts_with("application/x-www-form-urlencoded"))
        {
            return err(400, "invalid_request");
        }
        // RFC 6749 §2.3.1: Basic over the form-encoded id and secret.
        let client = head
            .header("authorization")
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                Some((form_decode(id)?, form_decode(secret)?))
            });
        if client.as_ref() != Some(&(self.client_id.clone(), self.client_secret.clone())) {
            return (
                401,
                "WWW-Authenticate: Basic realm=\"sts\"\r\n",
                json!({"error": "invalid_client"}),
            );
        }
        let Some(params) = parse_form(body) else {
            return err(400, "invalid_request");
        };
        let one = |name: &str| {
            let mut it = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            match (it.next(), it.next()) {
                (Some(v), None) => Some(v.as_str()),
                _ => None,
            }
        };
        if one("grant_type") != Some(TOKEN_EXCHANGE_GRANT) {
            return err(400, "unsupported_grant_type");
        }
        let (Some(subject), Some(subject_type)) = (one("subject_token"), one("subject_token_type"))
        else {
            return err(400, "invalid_request");
        };
        if subject_type != ACCESS_TOKEN && subject_type != JWT {
            return err(400, "invalid_request");
        }
        if one("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN && t != JWT) {
            return err(400, "invalid_request");
        }
        let Some(audience) = one("audience").filter(|a| !a.is_empty()) else {
            return err(400, "invalid_target");
        };
        let now = Issuer::now();
        let asymmetric: AlgorithmSet = [Algorithm::ES256, Algorithm::RS256].into_iter().collect();
        let Some(claims) = verify_jws(subject, &self.subject_keys, asymmetric, 16 * 1024)
            .ok()
            .and_then(|v| serde_json::from_slice::<Value>(&v.payload).ok())
            .filter(|c| c["exp"].as_i64().is_some_and(|exp| exp > now))
        else {
            return err(400, "invalid_grant");
        };
        let mut issued = json!({
            "sub": claims["sub"],
            "aud": audience,
            "exp": now + self.ttl,
            "act": {"sub": self.client_id},
        });
        if let Some(scope) = one("scope") {
            issued["scope"] = Value::from(scope);
        }
        let token = self.signer.mint(issued);
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        (
            200,
            "",
            json!({
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN,
                "token_type": "Bearer",
                "expires_in": self.ttl,
            }),
        )
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request head and its `Content-Length` body.
fn read_request(stream: &mut TcpStream) -> Option<(Head, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8(buf[..end].to_vec()).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let head = Head {
        method,
        path,
        headers,
    };
    let length: usize = head.header("content-length")?.parse().ok()?;
    if length > 64 * 1024 {
        return None;
    }
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some((head, String::from_utf8(body).ok()?))
}

fn parse_form(body: &str) -> Option<Vec<(String, String)>> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The payload of a compact JWT, decoded (not verified).
pub fn jwt_payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64::decode(part.as_bytes()).unwrap()).unwrap()
}
