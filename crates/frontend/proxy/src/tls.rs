//! TLS with rustls (aws-lc-rs): the proxy listener's server side (certificate,
//! client certificates against a CA, revocation lists; all re-read when their
//! files change) and the client side towards an upstream (CA, client
//! certificate, SNI).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use portcullis_policy::config::{ClientAuth, ProxyTls, UpstreamTls};
use rustls::server::{
    ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS file or setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or holds nothing usable.
    #[error("{}: {what}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the combination.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: &'static str,
        /// Why.
        source: rustls::Error,
    },
    /// Client-certificate verification cannot be set up.
    #[error("client_ca: {0}")]
    Verifier(String),
    /// `server_name` is not a DNS name or IP address.
    #[error("upstream {upstream}: server_name {name:?} is not a DNS name or IP address")]
    ServerName {
        /// The upstream.
        upstream: String,
        /// The name.
        name: String,
    },
}

fn file_err(path: &Path, what: &'static str, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        what,
        problem: problem.to_string(),
    }
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, what, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, what, e))?;
    if certs.is_empty() {
        return Err(file_err(path, what, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, "private key", e))
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs(path, "CA certificates")? {
        store
            .add(c)
            .map_err(|e| file_err(path, "CA certificates", e))?;
    }
    Ok(store)
}

fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, "revocation list", e))?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, "revocation list", e))?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    // Not PEM: one DER list (the verifier checks it).
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(file_err(path, "revocation list", "neither PEM nor DER"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The client side towards an upstream: its CA (none: `http://` only), an
/// optional client certificate. ALPN is set by the connector.
pub(crate) fn client_config(tls: Option<&UpstreamTls>) -> Result<ClientConfig, TlsError> {
    let roots = match tls.and_then(|t| t.ca.as_deref()) {
        Some(ca) => roots(ca)?,
        None => RootCertStore::empty(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            context: "upstream TLS",
            source,
        })?
        .with_root_certificates(roots);
    match tls.and_then(|t| t.client.as_ref()) {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert, "client certificate")?, key(k)?)
            .map_err(|source| TlsError::Rustls {
                context: "upstream client certificate",
                source,
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn server_config(tls: &ProxyTls) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            context: "proxy_tls",
            source,
        })?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut revoked = Vec::new();
            for c in &tls.crls {
                revoked.extend(crls(c)?);
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .with_crls(revoked);
            let verifier = match tls.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?,
            )
        }
    };
    let rustls_err = |context| move |source| TlsError::Rustls { context, source };
    let provider = provider();
    let default =
        CertifiedKey::from_der(certs(&tls.cert, "certificate")?, key(&tls.key)?, &provider)
            .map_err(rustls_err("proxy_tls certificate"))?;
    let mut by_name = ResolvesServerCertUsingSni::new();
    for s in &tls.sni {
        let ck = CertifiedKey::from_der(certs(&s.cert, "certificate")?, key(&s.key)?, &provider)
            .map_err(rustls_err("proxy_tls.sni certificate"))?;
        // Refuses a certificate that is not valid for the name.
        by_name
            .add(&s.server_name, ck)
            .map_err(rustls_err("proxy_tls.sni certificate for its server_name"))?;
    }
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver {
        by_name,
        default: Arc::new(default),
    }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate for the client's SNI, else the default one.
#[derive(Debug)]
struct SniResolver {
    by_name: ResolvesServerCertUsingSni,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello.server_name().is_some();
        if by_name && let Some(ck) = self.by_name.resolve(hello) {
            return Some(ck);
        }
        Some(self.default.clone())
    }
}

/// TLS on the proxy listener: the server config in force, rebuilt when a file it
/// was built from changes (a bad file keeps the previous config, logged).
#[derive(Debug)]
pub struct TlsIn {
    settings: ProxyTls,
    current: ArcSwap<ServerConfig>,
}

type Stamps = Vec<Option<(SystemTime, u64)>>;

impl TlsIn {
    /// Loads `settings`.
    ///
    /// # Errors
    /// A file that cannot be read or used.
    pub fn load(settings: &ProxyTls) -> Result<TlsIn, TlsError> {
        let config = server_config(settings)?;
        Ok(TlsIn {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(config),
        })
    }

    /// An acceptor with the config in force.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
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
    /// config when one changed. New connections get it; open ones keep theirs.
    pub(crate) async fn watch(
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
            match server_config(&self.settings) {
                Ok(config) => {
                    self.current.store(Arc::new(config));
                    tracing::info!("proxy_tls reloaded (certificate, client CA, revocation lists)");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "proxy_tls reload refused; the previous TLS config keeps serving");
                }
            }
        }
    }
}
