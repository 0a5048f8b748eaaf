//! `portcullis serve`: every listener the config names, hot reload, graceful exit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use portcullis_decider::{Decider, Metrics};
use portcullis_policy::config::{Listen, ListenerKind};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::error::AppError;
use portcullis_frontend_admin::NewAdmin;
use portcullis_frontend_forward_auth::NewForwardAuth;
use portcullis_login::Login;
use portcullis_proxy::NewProxy;

use crate::listener::{same_for_every_peer, serve_http};
use crate::runtime::{Sources, load_config, log_warnings};
use crate::tls::ListenerTls;
use portcullis_conn::ConnLimits;

/// Options of `serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The config file.
    pub config_path: PathBuf,
    /// Worker threads (default: the number of cores).
    pub workers: Option<usize>,
    /// How log lines are written (the log subscriber is installed by `run_serve`,
    /// once it knows whether traces are exported).
    pub log_format: crate::LogFormat,
}

/// Runs until SIGTERM/SIGINT; then `/readyz` answers 503 while everything keeps
/// serving for `shutdown_grace`, and the listeners drain in-flight requests.
///
/// # Errors
/// Invalid config or a listener that cannot be bound (before anything is served).
pub fn run_serve(options: &ServeOptions) -> Result<(), AppError> {
    // Validate before anything starts: a bad config never binds a socket.
    let config = load_config(&options.config_path)?;
    crate::runtime::refuse_unservable(&options.config_path, &config)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = options.workers {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder
        .build()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    // Trace export, when configured: its batch task runs on the runtime.
    let telemetry = {
        let _in_runtime = runtime.enter();
        config
            .telemetry
            .as_ref()
            .map(|t| crate::telemetry::Telemetry::start(t, metrics.span_counts()))
            .transpose()
            .map_err(|e| AppError::Runtime(e.to_string()))?
    };
    crate::logging::init_with(
        options.log_format,
        crate::LogTarget::Stdout,
        telemetry.as_ref(),
    );
    if let Some(t) = &config.telemetry {
        tracing::info!(endpoint = %t.endpoint, service_name = %t.service_name, sample_ratio = t.sample_ratio, "exporting traces (OTLP/HTTP)");
    }
    log_warnings(&config);
    let login = load_login(&config, &options.config_path)?;
    // TLS files are read now: one that cannot be used fails before anything serves.
    let tls = ListenerTls::load(&config.listen, &options.config_path)?;
    let replay = crate::dpop_replay::shared_replay(&config).map_err(|e| {
        AppError::Config(portcullis_policy::ConfigError {
            file: options.config_path.display().to_string(),
            line: 0,
            field: "dpop.replay".to_owned(),
            problem: e.to_string(),
        })
    })?;
    runtime.block_on(async move {
        metrics.config_loaded();
        let mut sources = Sources::new(metrics.clone())?;
        let listen = config.listen.clone();
        let replay_url = config.dpop.replay.clone();
        let lifecycle = config.lifecycle;
        // Opaque tokens of providers with `introspection:` (RFC 7662); the
        // introspector outlives reloads (its cache is keyed by provider and client).
        let introspector = portcullis_keys::Introspector::try_new()
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        let traced = telemetry.is_some();
        let mut decider = Decider::new(sources.engine(config), metrics.clone())
            .with_introspector(Arc::new(introspector))
            .with_replay(replay);
        if traced {
            decider = decider.with_trace_context(crate::telemetry::W3cTraceContext::shared());
        }
        let decider = Arc::new(decider);
        if let Some(wait) = lifecycle.wait_for_keys {
            crate::lifecycle::wait_for_keys(&decider, wait).await;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let draining = Arc::new(AtomicBool::new(false));
        let limits = ConnLimits::new(&lifecycle, draining.clone());
        let tasks =
            start_listeners(&listen, &decider, login.as_ref(), &stop_rx, &limits, &tls).await?;
        tokio::spawn(crate::reload::watch_config(
            options.config_path.clone(),
            sources,
            decider.clone(),
            listen,
            replay_url,
        ));
        tokio::spawn(crate::lifecycle::flush_deny_log(decider.clone()));
        wait_for_stop().await;
        crate::lifecycle::grace(
            &decider,
            &draining,
            lifecycle.shutdown_grace,
            wait_for_stop(),
        )
        .await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        // Each listener drains within its own limit; this bounds the whole (a gRPC
        // client holding a stream open must not keep us from exiting).
        let drained = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(
            crate::listener::DRAIN_TIMEOUT + Duration::from_secs(2),
            drained,
        )
        .await
        .is_err()
        {
            tracing::warn!("drain timed out; exiting with connections still open");
        }
        if let Some(t) = telemetry {
            t.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// Listeners bound (and so validated) before anything is served, with what each serves.
pub(crate) type Bound = Vec<(ListenerKind, TcpListener)>;

/// Browser login, when the config has `sessions:` (its key files read now, so a
/// bad one fails before anything is served).
pub fn load_login(
    config: &portcullis_policy::Config,
    path: &Path,
) -> Result<Option<Arc<Login>>, AppError> {
    Login::try_new(config).map_err(|e| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        AppError::Config(portcullis_policy::ConfigError {
            file: path.display().to_string(),
            line: field_line(&text, e.field()),
            field: e.field().to_owned(),
            problem: e.to_string(),
        })
    })
}

/// The line of `field` in the config text, else of the nearest enclosing key
/// that has a line of its own (a field in a flow mapping, `token: {key_file: k}`,
/// sits on its parent's line); never 0.
pub(crate) fn field_line(text: &str, field: &str) -> u64 {
    let mut path = field;
    loop {
        let line = portcullis_policy::config::line_of(text, path);
        let starts_there = text.lines().next().is_some_and(|first| {
            first
                .trim_start()
                .starts_with(path.split('.').next().unwrap_or(path))
        });
        if line != 1 || starts_there {
            return line;
        }
        match path.rsplit_once('.') {
            Some((parent, _)) => path = parent,
            None => return line,
        }
    }
}

pub(crate) async fn start_listeners(
    listen: &Listen,
    decider: &Arc<Decider>,
    login: Option<&Arc<Login>>,
    stop: &watch::Receiver<bool>,
    limits: &ConnLimits,
    tls: &ListenerTls,
) -> Result<Vec<tokio::task::JoinHandle<()>>, AppError> {
    if listen.is_empty() {
        return Err(AppError::Config(portcullis_policy::ConfigError {
            file: "config".to_owned(),
            line: 0,
            field: "listen".to_owned(),
            problem: "names no listener (http, grpc, admin or proxy)".to_owned(),
        }));
    }
    // Bind everything first, so a bad address fails before anything serves.
    let mut bound = Bound::new();
    for listener in listen.listeners() {
        bound.push((listener.kind, bind(listener.addr).await?));
    }
    Ok(spawn_listeners(bound, decider, login, stop, tls, limits))
}

/// Serves each bound listener with its frontend.
pub(crate) fn spawn_listeners(
    bound: Bound,
    decider: &Arc<Decider>,
    login: Option<&Arc<Login>>,
    stop: &watch::Receiver<bool>,
    tls: &ListenerTls,
    limits: &ConnLimits,
) -> Vec<tokio::task::JoinHandle<()>> {
    bound
        .into_iter()
        .map(|(kind, listener)| {
            // A plain address, not `Some(...)` (an address that cannot be read is left out).
            let addr = listener.local_addr().ok().map(tracing::field::display);
            let tls_on = tls.server(kind).is_some()
                || (kind == ListenerKind::Proxy && tls.proxy().is_some());
            tracing::info!(addr, listener = kind.as_str(), tls = tls_on, "listening");
            serve_frontend(
                kind,
                listener,
                decider.clone(),
                login.cloned(),
                stop.clone(),
                tls,
                limits.clone(),
            )
        })
        .collect()
}

/// The one place that knows which frontend serves which kind of listener.
fn serve_frontend(
    kind: ListenerKind,
    listener: TcpListener,
    decider: Arc<Decider>,
    login: Option<Arc<Login>>,
    stop: watch::Receiver<bool>,
    tls: &ListenerTls,
    limits: ConnLimits,
) -> tokio::task::JoinHandle<()> {
    match kind {
        ListenerKind::Http => tokio::spawn(serve_http(
            listener,
            {
                let frontend = NewForwardAuth::new(decider).with_login(login);
                move |peer| frontend.new_service(peer)
            },
            stop,
            limits,
            tls.server(kind),
        )),
        ListenerKind::Grpc => {
            let grpc_tls = tls.server(kind);
            let s2 = stop.clone();
            let mut s = stop;
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = s.wait_for(|v| *v).await;
                };
                let served = match grpc_tls {
                    None => {
                        portcullis_frontend_envoy::serve_with_login(
                            listener, decider, login, shutdown,
                        )
                        .await
                    }
                    Some(tls) => {
                        tokio::spawn(tls.clone().watch(portcullis_conn::tls::RELOAD_EVERY, s2));
                        portcullis_frontend_envoy::serve_tls_with_login(
                            listener,
                            tls,
                            limits.header_read_timeout,
                            decider,
                            login,
                            shutdown,
                        )
                        .await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "ext_authz gRPC listener failed");
                }
            })
        }
        ListenerKind::Admin => tokio::spawn(serve_http(
            listener,
            same_for_every_peer(NewAdmin::new(decider).new_service()),
            stop,
            limits,
            tls.server(kind),
        )),
        ListenerKind::Proxy => tokio::spawn(portcullis_proxy::serve(
            listener,
            NewProxy::new(decider).with_login(login),
            tls.proxy(),
            stop,
            limits,
        )),
        // A kind this build has no frontend for: nothing listens (never reached: the
        // config only names kinds that exist).
        _ => tokio::spawn(async {}),
    }
}

pub(crate) fn not_found() -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"not found\n",
    )));
    *r.status_mut() = http::StatusCode::NOT_FOUND;
    r
}

async fn wait_for_stop() {
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
