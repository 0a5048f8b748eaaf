//! TLS towards an upstream with rustls (aws-lc-rs): its CA, an optional client
//! certificate, SNI. The proxy listener's own side is every listener's
//! ([`portcullis_conn::TlsServer`]).

use portcullis_conn::tls::{certs, key, provider, roots};
use portcullis_policy::config::UpstreamTls;
use rustls::{ClientConfig, RootCertStore};

/// An upstream TLS file or setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or holds nothing usable.
    #[error("upstream TLS {0}")]
    File(#[from] portcullis_conn::TlsError),
    /// rustls refused the combination.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: &'static str,
        /// Why.
        source: rustls::Error,
    },
    /// `server_name` is not a DNS name or IP address.
    #[error("upstream {upstream}: server_name {name:?} is not a DNS name or IP address")]
    ServerName {
        /// The upstream.
        upstream: String,
        /// The name.
        name: String,
    },
}

/// The client side towards an upstream: its CA (none: `http://` only), an
/// optional client certificate. ALPN is set by the connector.
pub(crate) fn client_config(tls: Option<&UpstreamTls>) -> Result<ClientConfig, TlsError> {
    let roots = match tls.and_then(|t| t.ca.as_deref()) {
        Some(ca) => roots(ca, "ca")?,
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
            .with_client_auth_cert(certs(cert, "client.cert")?, key(k, "client.key")?)
            .map_err(|source| TlsError::Rustls {
                context: "upstream client certificate",
                source,
            }),
        None => Ok(builder.with_no_client_auth()),
    }
}
