//! Fixtures for proxy mode's tests: a hyper upstream (HTTP/1.1, h2c, TLS with
//! client certificates) that reports what it received, and a test PKI made with
//! the `openssl` CLI (CA, leaf certificates, a revocation list that can grow).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value, json};

/// TLS for [`EchoServer`]: its certificate, and the CA client certificates must
/// chain to (required when given).
#[derive(Clone, Debug)]
pub struct EchoTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Key (PEM).
    pub key: PathBuf,
    /// CA of required client certificates.
    pub client_ca: Option<PathBuf>,
}

/// A hyper upstream on a free loopback port, HTTP/1.1 and h2c (or TLS with ALPN).
/// Answers `/slow...` after 5 s, `/upload...` with `{"bytes": N}` once it has
/// read the whole body, `.../download?N` with N zero bytes (streamed, 64 KiB frames),
/// anything else with
/// `{"method","path","version","tls_client_cert","headers":{name: value|[values]}}`.
#[derive(Debug)]
pub struct EchoServer {
    /// Its port.
    pub port: u16,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl EchoServer {
    /// Starts it (in its own thread and runtime).
    pub fn start(tls: Option<EchoTls>) -> EchoServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&t))));
        let h = hits.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, acceptor, h, stopped));
        });
        EchoServer {
            port,
            hits,
            stop: Some(stop),
        }
    }

    /// Requests it has received.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn server_config(tls: &EchoTls) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    hits: Arc<AtomicUsize>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = &mut stopped => return,
        };
        let hits = hits.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            match acceptor {
                None => {
                    let svc =
                        hyper::service::service_fn(move |req| answer(req, hits.clone(), false));
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let svc = hyper::service::service_fn(move |req| {
                        answer(req, hits.clone(), client_cert)
                    });
                    let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                }
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    hits: Arc<AtomicUsize>,
    client_cert: bool,
) -> Result<Response<EchoBody>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Some((_, n)) = path.split_once("/download?") {
        let n: u64 = n.parse().unwrap_or(0);
        return Ok(Response::new(EchoBody::Zeros(n)));
    }
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if path.starts_with("/upload") {
        let mut body = req.into_body();
        let mut n: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        n += d.len() as u64;
                    }
                }
                Err(_) => break,
            }
        }
        return Ok(json_response(&json!({ "bytes": n })));
    }
    let mut map = Map::new();
    for (name, value) in req.headers() {
        let v = Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match map.get_mut(name.as_str()) {
            Some(Value::Array(a)) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
            None => {
                map.insert(name.as_str().to_owned(), v);
            }
        }
    }
    let body = json!({
        "method": req.method().as_str(),
        "path": path,
        "version": format!("{:?}", req.version()),
        "tls_client_cert": client_cert,
        "headers": map,
    });
    Ok(json_response(&body))
}

/// The echo's bodies: JSON, or `N` zero bytes made as they are read.
#[derive(Debug)]
enum EchoBody {
    Full(Full<Bytes>),
    Zeros(u64),
}

impl hyper::body::Body for EchoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            EchoBody::Full(f) => f.size_hint(),
            EchoBody::Zeros(n) => hyper::body::SizeHint::with_exact(*n),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EchoBody::Full(f) => f.is_end_stream(),
            EchoBody::Zeros(n) => *n == 0,
        }
    }

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        static ZEROS: [u8; 65536] = [0; 65536];
        match self.get_mut() {
            EchoBody::Full(f) => std::pin::Pin::new(f).poll_frame(cx),
            EchoBody::Zeros(left) => {
                if *left == 0 {
                    return std::task::Poll::Ready(None);
                }
                let n = (*left).min(ZEROS.len() as u64);
                *left -= n;
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
                    &ZEROS[..n as usize],
                )))))
            }
        }
    }
}

fn json_response(v: &Value) -> Response<EchoBody> {
    let mut r = Response::new(EchoBody::Full(Full::new(Bytes::from(v.to_string()))));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A test certificate authority made with the `openssl` CLI in `dir`.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (install it with scripts/install-peers)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A CA named `name` under `dir/name`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 2\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let pki = Pki { dir };
        pki.write_crl();
        pki
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The revocation list (PEM), rewritten by [`Pki::revoke`].
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// A leaf certificate and key for `cn`, valid for `sans` (`DNS:x,IP:y`), for
    /// server and client use.
    pub fn issue(&self, cn: &str, sans: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr, ext) = (
            format!("{cn}.pem"),
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={sans}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n\
                 authorityKeyIdentifier=keyid\n"
            ),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        (self.dir.join(cert), self.dir.join(key))
    }

    fn write_crl(&self) {
        // Written beside, then renamed: a reader never sees half a file.
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-gencrl",
                "-crlexts",
                "crl_ext",
                "-out",
                "crl.pem.new",
            ],
        );
        std::fs::rename(self.dir.join("crl.pem.new"), self.crl()).unwrap();
    }

    /// Revokes `cert` and rewrites the revocation list.
    pub fn revoke(&self, cert: &Path) {
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-revoke",
                cert.to_str().unwrap(),
            ],
        );
        self.write_crl();
    }
}
