//! `examples/k8s-*`: each recipe's manifests. Core kinds (Ingress, ConfigMap...) are
//! validated with `kubernetes-validate --strict`; the CRDs (Gateway API, Envoy Gateway,
//! Istio, Traefik, Emissary, Contour), whose schemas it does not ship, are checked by
//! shape here, and every reference to Portcullis must name the Service of
//! `deploy/kubernetes/service.yaml` on the right port (8080 for HTTP, 9001 for gRPC).
//! Each recipe's `portcullis.yaml` passes `portcullis check`, and the ingress-nginx
//! recipe's Ingress imports (`portcullis import --from ingress-nginx --gateway-api`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "deploy_common.rs"]
mod deploy_common;

use std::collections::BTreeMap;

use deploy_common::{
    BIN, assert_check_passes, assert_httproute, docs, is_crd, validate, workspace,
};
use portcullis_test_util::TempDir;
use serde_json::Value;

const RECIPES: [&str; 7] = [
    "k8s-ingress-nginx",
    "k8s-istio",
    "k8s-istio-session-token",
    "k8s-envoy-gateway",
    "k8s-traefik",
    "k8s-emissary",
    "k8s-contour",
];
const SERVICE_HOSTS: [&str; 3] = [
    "portcullis.portcullis.svc.cluster.local",
    "portcullis.portcullis.svc",
    "portcullis.portcullis",
];

/// The ports of deploy/kubernetes/service.yaml by name.
fn service_ports() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(workspace("deploy/kubernetes/service.yaml")).unwrap();
    docs(&text)[0]["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn recipe_files(recipe: &str) -> Vec<(String, String)> {
    let dir = workspace("examples").join(recipe);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                format!("{recipe}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// `host:port` of an `http://host:port/path` URL or a `host:port` string.
fn host_port(text: &str) -> (String, u64) {
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let authority = rest.split('/').next().unwrap();
    let (h, p) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{text}: no port"));
    (h.to_owned(), p.parse().unwrap())
}

fn assert_portcullis(what: &str, host: &str, port: u64, want: u64) {
    assert!(
        SERVICE_HOSTS.contains(&host),
        "{what}: {host} is not the Portcullis Service"
    );
    assert_eq!(port, want, "{what}: port");
}

fn assert_backend(what: &str, b: &Value, want: u64) {
    assert_eq!(b["name"], "portcullis", "{what}");
    assert_eq!(b["namespace"], "portcullis", "{what}");
    assert_eq!(b["port"].as_u64(), Some(want), "{what}: port");
}

/// The shape of one CRD document.
fn check_crd(doc: &Value, ports: &BTreeMap<String, u64>, mesh_providers: &[String]) {
    let (http, grpc) = (ports["http"], ports["grpc"]);
    let kind = doc["kind"].as_str().unwrap();
    let spec = &doc["spec"];
    assert!(
        doc["metadata"]["name"].is_string() && doc["metadata"]["namespace"].is_string(),
        "{kind}: metadata"
    );
    match (doc["apiVersion"].as_str().unwrap(), kind) {
        ("gateway.networking.k8s.io/v1", "Gateway") => {
            assert!(spec["gatewayClassName"].is_string());
            for l in spec["listeners"].as_array().unwrap() {
                assert!(
                    l["name"].is_string()
                        && ["HTTP", "HTTPS"].contains(&l["protocol"].as_str().unwrap())
                );
                assert!(l["port"].as_u64().is_some_and(|p| (1..=65535).contains(&p)));
            }
        }
        ("gateway.networking.k8s.io/v1", "HTTPRoute") => assert_httproute(doc),
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant") => {
            assert_eq!(doc["metadata"]["namespace"], "portcullis");
            assert_eq!(spec["from"][0]["kind"], "SecurityPolicy");
            assert!(spec["from"][0]["namespace"].is_string());
            assert_eq!(
                spec["to"][0],
                serde_json::json!({"group": "", "kind": "Service", "name": "portcullis"})
            );
        }
        ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy") => {
            assert_eq!(spec["targetRefs"][0]["kind"], "HTTPRoute");
            let ext = spec["extAuth"].as_object().unwrap();
            assert_eq!(ext["failOpen"], false);
            match (ext.get("grpc"), ext.get("http")) {
                (Some(g), None) => {
                    assert_backend("SecurityPolicy grpc", &g["backendRefs"][0], grpc)
                }
                (None, Some(h)) => {
                    assert_backend("SecurityPolicy http", &h["backendRefs"][0], http);
                    assert_eq!(h["path"], "/verify");
                }
                _ => panic!("extAuth needs exactly one of grpc, http"),
            }
        }
        ("security.istio.io/v1", "AuthorizationPolicy") => match spec["action"].as_str() {
            Some("CUSTOM") => {
                let provider = spec["provider"]["name"].as_str().unwrap();
                assert!(
                    mesh_providers.iter().any(|p| p == provider),
                    "provider {provider} not in the mesh config {mesh_providers:?}"
                );
                assert!(spec["rules"].is_array());
            }
            // The session-token recipe: the minted token is required in the mesh.
            Some("ALLOW") => {
                let principals = spec["rules"][0]["from"][0]["source"]["requestPrincipals"]
                    .as_array()
                    .unwrap();
                assert!(!principals.is_empty() && principals.iter().all(Value::is_string));
            }
            other => panic!("AuthorizationPolicy action {other:?}"),
        },
        ("security.istio.io/v1", "RequestAuthentication") => {
            // Istio checks Portcullis's minted session token against Portcullis's JWKS.
            for rule in spec["jwtRules"].as_array().unwrap() {
                let uri = rule["jwksUri"].as_str().unwrap();
                let (h, p) = host_port(uri);
                assert_portcullis("jwksUri", &h, p, http);
                assert!(uri.ends_with("/.well-known/jwks.json"), "{uri}");
                assert!(rule["issuer"].is_string() && rule["audiences"].is_array());
            }
        }
        ("networking.istio.io/v1", "VirtualService") => {
            // The login endpoints are routed to Portcullis's http port.
            let routes = spec["http"].as_array().unwrap();
            let login = routes
                .iter()
                .find(|r| r["match"][0]["uri"]["prefix"] == "/oauth2/")
                .expect("a route for /oauth2/");
            let dest = &login["route"][0]["destination"];
            assert_portcullis(
                "VirtualService /oauth2/",
                dest["host"].as_str().unwrap(),
                dest["port"]["number"].as_u64().unwrap(),
                http,
            );
        }
        ("traefik.io/v1alpha1", "Middleware") => {
            let fa = &spec["forwardAuth"];
            let address = fa["address"].as_str().unwrap();
            let (h, p) = host_port(address);
            assert_portcullis("forwardAuth.address", &h, p, http);
            assert!(address.ends_with("/verify"), "{address}");
            assert_eq!(fa["trustForwardHeader"], false);
        }
        ("getambassador.io/v3alpha1", "AuthService") => {
            let (h, p) = host_port(spec["auth_service"].as_str().unwrap());
            match spec["proto"].as_str().unwrap() {
                "grpc" => {
                    assert_portcullis("AuthService", &h, p, grpc);
                    assert_eq!(spec["protocol_version"], "v3");
                }
                "http" => assert_portcullis("AuthService", &h, p, http),
                other => panic!("proto {other}"),
            }
            assert_eq!(spec["failure_mode_allow"], false);
        }
        ("getambassador.io/v3alpha1", "Mapping") => {
            assert!(spec["prefix"].is_string() && spec["service"].is_string());
        }
        ("projectcontour.io/v1alpha1", "ExtensionService") => {
            assert_eq!(spec["protocol"], "h2c");
            assert_eq!(spec["services"][0]["name"], "portcullis");
            assert_eq!(spec["services"][0]["port"].as_u64(), Some(grpc));
            assert_eq!(doc["metadata"]["namespace"], "portcullis");
        }
        ("projectcontour.io/v1", "HTTPProxy") => {
            let vh = &spec["virtualhost"];
            assert!(vh["fqdn"].is_string());
            assert!(
                vh["tls"]["secretName"].is_string(),
                "Contour needs TLS for authorization"
            );
            assert_eq!(
                vh["authorization"]["extensionRef"],
                serde_json::json!({"name": "portcullis", "namespace": "portcullis"})
            );
            assert_eq!(vh["authorization"]["failOpen"], false);
            for r in spec["routes"].as_array().unwrap() {
                assert!(r["conditions"][0]["prefix"].is_string());
                assert!(r["services"][0]["port"].is_u64());
            }
        }
        (api, kind) => panic!("no shape check for {api} {kind}"),
    }
}

#[test]
fn every_recipe_validates_and_points_at_the_deployed_service() {
    let ports = service_ports();
    for recipe in RECIPES {
        let files = recipe_files(recipe);
        let manifests: Vec<(String, String)> = files
            .iter()
            .filter(|(n, _)| !n.rsplit('/').next().unwrap().starts_with("portcullis"))
            .cloned()
            .collect();
        assert!(!manifests.is_empty(), "{recipe}: no manifests");
        let all: Vec<Value> = manifests.iter().flat_map(|(_, t)| docs(t)).collect();
        if all.iter().any(|d| !is_crd(d)) {
            validate(&manifests);
        }
        let mesh_providers: Vec<String> = all
            .iter()
            .filter(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "istio")
            .flat_map(|d| {
                let mesh: Value =
                    serde_saphyr::from_str(d["data"]["mesh"].as_str().unwrap()).unwrap();
                let providers = mesh["extensionProviders"].as_array().unwrap().clone();
                for p in &providers {
                    if let Some(g) = p.get("envoyExtAuthzGrpc") {
                        assert_portcullis(
                            "envoyExtAuthzGrpc",
                            g["service"].as_str().unwrap(),
                            g["port"].as_u64().unwrap(),
                            ports["grpc"],
                        );
                    }
                    if let Some(h) = p.get("envoyExtAuthzHttp") {
                        assert_portcullis(
                            "envoyExtAuthzHttp",
                            h["service"].as_str().unwrap(),
                            h["port"].as_u64().unwrap(),
                            ports["http"],
                        );
                        assert_eq!(h["pathPrefix"], "/verify");
                    }
                }
                providers
                    .into_iter()
                    .map(|p| p["name"].as_str().unwrap().to_owned())
            })
            .collect();
        for doc in &all {
            if is_crd(doc) {
                check_crd(doc, &ports, &mesh_providers);
            }
            if doc["kind"] == "Ingress" {
                let url = doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
                    .as_str()
                    .unwrap();
                let (h, p) = host_port(url);
                assert_portcullis("auth-url", &h, p, ports["http"]);
                assert!(url.ends_with("/verify"));
            }
        }
        let (_, config) = files
            .iter()
            .find(|(n, _)| n.ends_with("/portcullis.yaml"))
            .unwrap_or_else(|| panic!("{recipe}/portcullis.yaml"));
        if recipe == "k8s-istio-session-token" {
            check_session_token_recipe(config, &all);
        } else {
            assert_check_passes(recipe, config);
        }
    }
}

/// The session-token recipe's config names mounted secrets and `${ENV}`: `check` runs
/// with them present, as in the pod (a generated signing key and session key in place
/// of /etc/portcullis/secrets, the client secret and Redis URL in the environment), and
/// the mesh's RequestAuthentication names the issuer and audience Portcullis mints.
fn check_session_token_recipe(config: &str, manifests: &[Value]) {
    let dir = TempDir::new("recipe-session-token");
    let key = dir.path().join("signing.pem");
    let out = std::process::Command::new(BIN)
        .args(["keygen", "--alg", "ES256", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.write(
        "session.key",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83v\n",
    );
    let local = config.replace(
        "/etc/portcullis/secrets/",
        &format!("{}/", dir.path().display()),
    );
    let path = dir.write("portcullis.yaml", &local);
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env("OIDC_CLIENT_SECRET", "a-client-secret")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "k8s-istio-session-token: portcullis check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_saphyr::from_str(config).unwrap();
    let token = &parsed["sessions"]["token"];
    let ra = manifests
        .iter()
        .find(|d| d["kind"] == "RequestAuthentication")
        .expect("a RequestAuthentication");
    let rule = &ra["spec"]["jwtRules"][0];
    assert_eq!(rule["issuer"], token["issuer"], "the minted token's issuer");
    assert_eq!(
        rule["audiences"], token["audiences"],
        "the minted token's audience"
    );
    assert_eq!(token["header"], "authorization");
    let allow = manifests
        .iter()
        .find(|d| d["kind"] == "AuthorizationPolicy" && d["spec"]["action"] == "ALLOW")
        .unwrap();
    let principal = allow["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        principal,
        format!("{}/*", token["issuer"].as_str().unwrap()),
        "requestPrincipals is <iss>/<sub>"
    );
}

#[test]
fn ingress_nginx_recipe_imports_to_gateway_api() {
    let dir = TempDir::new("recipe-import");
    let out = std::process::Command::new(BIN)
        .args(["import", "--from", "ingress-nginx", "--gateway-api"])
        .arg(dir.path())
        .arg(workspace("examples/k8s-ingress-nginx/ingress.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the `listen:` block the import asks for (check refuses a config with none).
    let imported = String::from_utf8(out.stdout).unwrap();
    assert_check_passes(
        "imported recipe",
        &format!("listen:\n  http: 127.0.0.1:8080\n{imported}"),
    );
    let ports = service_ports();
    for name in ["httproute-orders.yaml", "securitypolicy-orders.yaml"] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        check_crd(&docs(&text)[0], &ports, &[]);
    }
}
