//! TLS on our own listeners (`listen.http_tls`, `grpc_tls`, `admin_tls`) with
//! rustls on aws-lc-rs: the server certificate (and more chosen by SNI), client
//! certificates verified against a CA (`client_auth: required|optional`) and
//! revocation lists — all re-read when their files change, a broken new file
//! keeping the config in force (logged with the file). ALPN `h2` + `http/1.1` on
//! HTTP listeners, `h2` alone on gRPC.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use portcullis_policy::config::{ClientAuth, ProxyTls};
use rustls::server::{
    ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The application protocols offered (ALPN).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Alpn {
    /// gRPC: `h2` only.
    Grpc,
    /// HTTP: `h2` and `http/1.1`.
    Http,
}

/// A TLS file or setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file that cannot be read or holds nothing usable.
    #[error("{field}: {}: {problem}", path.display())]
    File {
        /// The setting that names it (`cert`, `key`, `client_ca`, `crl`, `sni[0].cert`).
        field: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the combination (a key that is not the certificate's, say).
    #[error("{field}: {}: {source}", path.display())]
    Rustls {
        /// The setting it concerns.
        field: String,
        /// The file it concerns.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// Client-certificate verification cannot be set up.
    #[error("client_ca: {problem}")]
    Verifier {
        /// Why.
        problem: String,
    },
}

impl TlsError {
    /// The setting (under the listener's `*_tls`) the error is about.
    pub fn field(&self) -> &str {
        match self {
            TlsError::File { field, .. } | TlsError::Rustls { field, .. } => field,
            TlsError::Verifier { .. } => "client_ca",
        }
    }
}

/// TLS on one listener: the server config in force, rebuilt when a file it was
/// built from changes. New connections get the new one; open ones keep theirs.
#[derive(Debug)]
pub struct TlsServer {
    /// `listen.http_tls` and so on, for logs.
    name: String,
    settings: ProxyTls,
    alpn: Alpn,
    current: ArcSwap<ServerConfig>,
}

/// What the handshake told about the client.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct TlsPeer {
    /// Its certificate (PEM), verified against `client_ca`, when it sent one.
    pub certificate: Option<String>,
}

type Stamps = Vec<Option<(SystemTime, u64)>>;

impl TlsServer {
    /// Loads `settings` for the listener `name` (`listen.http_tls`).
    ///
    /// # Errors
    /// A file that cannot be read or used, naming the setting and the file.
    pub fn load(name: &str, settings: &ProxyTls, alpn: Alpn) -> Result<TlsServer, TlsError> {
        let config = server_config(settings, alpn)?;
        Ok(TlsServer {
            name: name.to_owned(),
            settings: settings.clone(),
            alpn,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// The listener's setting name (`listen.http_tls`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An acceptor with the config in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The handshake on `io` from `peer`, within `timeout`. A failure is logged with
    /// its reason and gives `None` (the connection is then dropped).
    pub async fn handshake<IO>(
        &self,
        io: IO,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Option<(TlsStream<IO>, TlsPeer)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(timeout, self.acceptor().accept(io)).await {
            Ok(Ok(tls)) => {
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|der| to_pem(der.as_ref()));
                Some((tls, TlsPeer { certificate }))
            }
            Ok(Err(e)) => {
                tracing::info!(listener = %self.name, peer = %peer, reason = %handshake_reason(&e), error = %e, "TLS handshake refused");
                None
            }
            Err(_) => {
                tracing::info!(listener = %self.name, peer = %peer, reason = "timeout", "TLS handshake timed out");
                None
            }
        }
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.settings.cert, &self.settings.key]
            .into_iter()
            .chain(self.settings.client_ca.iter())
            .chain(self.settings.crls.iter())
            .chain(self.settings.sni.iter().flat_map(|s| [&s.cert, &s.key]))
    }

    fn stamps(&self) -> Stamps {
        self.files()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
            })
            .collect()
    }

    /// Re-reads the files every `every` while `stop` is false, swapping in a new
    /// config when one changed; a file that does not load keeps the old config
    /// (logged with the file and why), and is tried again when it changes.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut seen = self.stamps();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let now = self.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            match server_config(&self.settings, self.alpn) {
                Ok(config) => {
                    self.current.store(Arc::new(config));
                    tracing::info!(listener = %self.name, "{} TLS reloaded (certificate, client CA, revocation lists)", self.name);
                }
                Err(e) => {
                    tracing::warn!(listener = %self.name, field = e.field(), error = %e, "TLS reload refused; the previous TLS config keeps serving");
                }
            }
        }
    }
}

/// A short, stable word for why a handshake failed (for logs and alerts).
fn handshake_reason(e: &io::Error) -> &'static str {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "closed_by_client",
            io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    match inner {
        rustls::Error::NoCertificatesPresented => "client_certificate_missing",
        rustls::Error::InvalidCertificate(_) => "client_certificate_invalid",
        rustls::Error::NoApplicationProtocol => "no_common_alpn",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::AlertReceived(_) => "alert_from_client",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => "not_tls",
        _ => "tls",
    }
}

/// A DER certificate as PEM (what `Peer::certificate` holds).
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn file_err(path: &Path, field: &str, problem: impl ToString) -> TlsError {
    TlsError::File {
        field: field.to_owned(),
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// The certificates in the PEM file `path` (at least one), named `field` in errors.
///
/// # Errors
/// A file that cannot be read or holds no certificate.
pub fn certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, field, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, field, e))?;
    if certs.is_empty() {
        return Err(file_err(path, field, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The private key in the PEM file `path`, named `field` in errors.
///
/// # Errors
/// A file that cannot be read or holds no key.
pub fn key(path: &Path, field: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, field, e))
}

/// The CA certificates in the PEM file `path` as a trust store, named `field`
/// in errors.
///
/// # Errors
/// A file that cannot be read, holds no certificate or one rustls refuses.
pub fn roots(path: &Path, field: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(path, field)? {
        store.add(c).map_err(|e| file_err(path, field, e))?;
    }
    Ok(store)
}

fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, "crl", e))?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, "crl", e))?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    // Not PEM: one DER list (the verifier checks it).
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(file_err(path, "crl", "neither PEM nor DER"))
}

/// rustls's aws-lc-rs provider (every TLS config here is built on it).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(tls: &ProxyTls, alpn: Alpn) -> Result<ServerConfig, TlsError> {
    let rustls_err = |field: &str, path: &Path| {
        let field = field.to_owned();
        let path = path.to_owned();
        move |source| TlsError::Rustls {
            field,
            path,
            source,
        }
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("cert", &tls.cert))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut revoked = Vec::new();
            for c in &tls.crls {
                revoked.extend(crls(c)?);
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, "client_ca")?),
                provider(),
            )
            .with_crls(revoked);
            let verifier = match tls.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Verifier {
                problem: e.to_string(),
            })?)
        }
    };
    let provider = provider();
    let default =
        CertifiedKey::from_der(certs(&tls.cert, "cert")?, key(&tls.key, "key")?, &provider)
            .map_err(rustls_err("key", &tls.key))?;
    let mut by_name = ResolvesServerCertUsingSni::new();
    for (i, s) in tls.sni.iter().enumerate() {
        let field = format!("sni[{i}]");
        let ck = CertifiedKey::from_der(
            certs(&s.cert, &format!("{field}.cert"))?,
            key(&s.key, &format!("{field}.key"))?,
            &provider,
        )
        .map_err(rustls_err(&format!("{field}.key"), &s.key))?;
        // Refuses a certificate that is not valid for the name.
        by_name
            .add(&s.server_name, ck)
            .map_err(rustls_err(&format!("{field}.server_name"), &s.cert))?;
    }
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver {
        by_name,
        default: Arc::new(default),
    }));
    config.alpn_protocols = match alpn {
        Alpn::Grpc => vec![b"h2".to_vec()],
        Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// The certificate for the client's SNI, else the default one.
#[derive(Debug)]
struct SniResolver {
    by_name: ResolvesServerCertUsingSni,
    default: Arc<CertifiedKey>,
}

// === impl SniResolver ===

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello.server_name().is_some();
        if by_name && let Some(ck) = self.by_name.resolve(hello) {
            return Some(ck);
        }
        Some(self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_columns() {
        let pem = to_pem(&[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    }

    #[test]
    fn a_missing_file_names_the_setting_and_the_file() {
        let settings = ProxyTls {
            cert: PathBuf::from("/nonexistent/s.pem"),
            key: PathBuf::from("/nonexistent/s.key"),
            client_ca: None,
            client_auth: ClientAuth::Required,
            crls: Vec::new(),
            sni: Vec::new(),
        };
        let err = TlsServer::load("listen.http_tls", &settings, Alpn::Http)
            .err()
            .map(|e| (e.field().to_owned(), e.to_string()));
        let (field, text) = err.unwrap_or_default();
        assert_eq!(field, "cert");
        assert!(text.contains("/nonexistent/s.pem"), "{text}");
    }
}
