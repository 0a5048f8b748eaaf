//! TLS of every listener, loaded before anything is served (a file that cannot be
//! used fails `serve` with exit 2, naming the config file, line and field), one
//! kind for all of them: `proxy_tls`, `http_tls`, `grpc_tls`, `admin_tls`
//! ([`portcullis_conn::tls`]).

use std::path::Path;
use std::sync::Arc;

use portcullis_conn::{Alpn, TlsServer};
use portcullis_policy::config::{Listen, ListenerKind};

use crate::error::AppError;

/// TLS per listener kind.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListenerTls {
    proxy: Option<Arc<TlsServer>>,
    others: Vec<(ListenerKind, Arc<TlsServer>)>,
}

impl ListenerTls {
    /// Loads the TLS `listen` names; errors name `config_path`'s line and field.
    pub(crate) fn load(listen: &Listen, config_path: &Path) -> Result<ListenerTls, AppError> {
        let load = |name: &str, settings, alpn| {
            TlsServer::load(name, settings, alpn)
                .map(Arc::new)
                .map_err(|e| {
                    let text = std::fs::read_to_string(config_path).unwrap_or_default();
                    let field = format!("{name}.{}", e.field());
                    AppError::Config(portcullis_policy::ConfigError {
                        file: config_path.display().to_string(),
                        line: tls_line(&text, name, &field),
                        field,
                        problem: e.to_string(),
                    })
                })
        };
        let proxy = listen
            .proxy_tls()
            .map(|t| load("listen.proxy_tls", t, Alpn::Http))
            .transpose()?;
        let mut others = Vec::new();
        for kind in [ListenerKind::Http, ListenerKind::Grpc, ListenerKind::Admin] {
            let Some(settings) = listen.tls(kind) else {
                continue;
            };
            let name = format!("listen.{}_tls", kind.as_str());
            let alpn = match kind {
                ListenerKind::Grpc => Alpn::Grpc,
                _ => Alpn::Http,
            };
            others.push((kind, load(&name, settings, alpn)?));
        }
        Ok(ListenerTls { proxy, others })
    }

    /// The proxy listener's.
    pub(crate) fn proxy(&self) -> Option<Arc<TlsServer>> {
        self.proxy.clone()
    }

    /// The `http`, `grpc` or `admin` listener's.
    pub(crate) fn server(&self, kind: ListenerKind) -> Option<Arc<TlsServer>> {
        self.others
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t.clone())
    }
}

/// The line of `field` (`listen.http_tls.cert`) in the config text: its own, else
/// the line of `name:` (`http_tls:`, whose flow mapping holds it).
fn tls_line(text: &str, name: &str, field: &str) -> u64 {
    let line = crate::serve::field_line(text, field);
    if line > 1 {
        return line;
    }
    let key = format!("{}:", name.rsplit('.').next().unwrap_or(name));
    text.lines()
        .position(|l| l.trim_start().starts_with(&key))
        .map_or(line, |i| i as u64 + 1)
}
