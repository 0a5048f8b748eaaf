//! Shared by the `deploy_*.rs` tests (included with `#[path]`): Kubernetes manifests
//! validated offline with PyPI's `kubernetes-validate` (it ships the Kubernetes JSON
//! schemas; `scripts/install-peers` puts it in the peers' venv), YAML documents read
//! as JSON values, and the checks every Portcullis pod spec must pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "tests; each including test file uses part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_test_util::{TempDir, peers_dir};
use serde_json::Value;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `<workspace>/PATH`.
pub(crate) fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Kinds that are CRDs, not in Kubernetes' schemas: checked by hand where they appear.
pub(crate) const CRD_GROUPS: [&str; 9] = [
    "monitoring.coreos.com/",
    "gateway.networking.k8s.io/",
    "gateway.envoyproxy.io/",
    "security.istio.io/",
    "networking.istio.io/",
    "install.istio.io/",
    "traefik.io/",
    "getambassador.io/",
    "projectcontour.io/",
];

/// Whether `doc` is of a CRD group (its schema is not in kubernetes-validate).
pub(crate) fn is_crd(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or("");
    CRD_GROUPS.iter().any(|g| api.starts_with(g))
}

/// Every YAML document of `text` (empty ones skipped).
pub(crate) fn docs(text: &str) -> Vec<Value> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    values.into_iter().filter(|v| !v.is_null()).collect()
}

/// Runs `kubernetes-validate --strict` on the non-CRD documents of `files` (written one
/// per file into a scratch folder, so a file mixing CRDs and core kinds is covered), and
/// panics unless each one passed against a schema. Returns how many it validated.
pub(crate) fn validate(files: &[(String, String)]) -> usize {
    let tool = peers_dir().join("venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/install-peers",
        tool.display()
    );
    let dir = TempDir::new("k8s-validate");
    let mut paths = Vec::new();
    for (name, text) in files {
        for (i, doc) in docs(text).into_iter().enumerate() {
            if is_crd(&doc) {
                continue;
            }
            let file = format!("{}-{i}.json", name.replace('/', "_"));
            paths.push((format!("{name} #{i}"), dir.write(&file, &doc.to_string())));
        }
    }
    assert!(!paths.is_empty(), "nothing to validate in {files:?}");
    let out = Command::new(&tool)
        .arg("--strict")
        .args(paths.iter().map(|(_, p)| p))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut failures = Vec::new();
    for (name, path) in &paths {
        let shown = path.display().to_string();
        let passed = text
            .lines()
            .any(|l| l.contains(&shown) && l.contains("passed for resource"));
        if !passed {
            let why: Vec<&str> = text.lines().filter(|l| l.contains(&shown)).collect();
            failures.push(format!("{name}: {}", why.join(" | ")));
        }
    }
    assert!(
        out.status.success() && failures.is_empty(),
        "kubernetes-validate --strict: {}\n{}\n{text}",
        out.status,
        failures.join("\n")
    );
    paths.len()
}

/// `portcullis check` accepts `config` (a file's text).
pub(crate) fn assert_check_passes(what: &str, config: &str) {
    let dir = TempDir::new("deploy-check");
    let path = dir.write("portcullis.yaml", config);
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: portcullis check: {}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Portcullis container of a Deployment: non-root, read-only root filesystem, no
/// capabilities, probes on the admin port's /healthz and /readyz, resources, ports.
pub(crate) fn assert_pod_hardened(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "pod runAsNonRoot"
    );
    assert_ne!(pod["securityContext"]["runAsUser"], 0, "pod runAsUser");
    let c = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "portcullis")
        .expect("a container named portcullis");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    for k in ["requests", "limits"] {
        assert!(
            c["resources"][k]["cpu"].is_string() && c["resources"][k]["memory"].is_string(),
            "resources.{k}"
        );
    }
    let ports: Vec<&str> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "grpc", "admin"]);
    let env = c["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "PORTCULLIS_CONFIG"),
        "PORTCULLIS_CONFIG"
    );
    // No secret in plain env values.
    for e in env {
        let name = e["name"].as_str().unwrap().to_ascii_uppercase();
        if ["SECRET", "PASSWORD", "TOKEN", "REDIS_URL"]
            .iter()
            .any(|s| name.contains(s))
        {
            assert!(e.get("value").is_none(), "{name} must come from a Secret");
        }
    }
}

/// The shape of a Prometheus Operator ServiceMonitor scraping the admin port's /metrics.
pub(crate) fn assert_service_monitor(doc: &Value) {
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "ServiceMonitor");
    assert!(doc["metadata"]["name"].is_string());
    let spec = doc["spec"].as_object().unwrap();
    for k in spec.keys() {
        assert!(
            ["selector", "endpoints", "namespaceSelector", "jobLabel"].contains(&k.as_str()),
            "spec.{k}"
        );
    }
    assert!(doc["spec"]["selector"]["matchLabels"].is_object());
    let ep = &doc["spec"]["endpoints"][0];
    assert_eq!(ep["port"], "admin");
    assert_eq!(ep["path"], "/metrics");
    let interval = ep["interval"].as_str().unwrap();
    assert!(
        interval.ends_with('s') || interval.ends_with('m'),
        "interval {interval}"
    );
}

/// The structural rules of a Gateway API v1 HTTPRoute that matter here (the CRD's
/// schema is not in kubernetes-validate, which only ships Kubernetes' own types).
pub(crate) fn assert_httproute(route: &Value) {
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["kind"], "HTTPRoute");
    let name = route["metadata"]["name"].as_str().unwrap();
    assert!(
        !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
        "metadata.name {name:?}"
    );
    let spec = route["spec"].as_object().unwrap();
    for key in spec.keys() {
        assert!(
            ["parentRefs", "hostnames", "rules"].contains(&key.as_str()),
            "spec.{key}"
        );
    }
    let parents = spec["parentRefs"].as_array().unwrap();
    assert!(!parents.is_empty() && parents.len() <= 32);
    assert!(parents.iter().all(|p| p["name"].is_string()));
    for h in spec
        .get("hostnames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let h = h.as_str().unwrap();
        assert!(!h.contains(':') && !h.is_empty(), "hostname {h:?}");
    }
    let rules = spec["rules"].as_array().unwrap();
    assert!(!rules.is_empty() && rules.len() <= 16, "1..=16 rules");
    for rule in rules {
        for m in rule["matches"].as_array().unwrap() {
            let kind = m["path"]["type"].as_str().unwrap();
            assert!(
                ["Exact", "PathPrefix", "RegularExpression"].contains(&kind),
                "path.type {kind}"
            );
            assert!(m["path"]["value"].as_str().unwrap().starts_with('/'));
        }
        for f in rule
            .get("filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = f["type"].as_str().unwrap();
            assert!(
                [
                    "RequestHeaderModifier",
                    "ResponseHeaderModifier",
                    "RequestRedirect",
                    "URLRewrite",
                    "RequestMirror",
                    "ExtensionRef",
                    "CORS"
                ]
                .contains(&kind),
                "filter type {kind}"
            );
            if kind == "ExtensionRef" {
                for k in ["group", "kind", "name"] {
                    assert!(f["extensionRef"][k].is_string(), "extensionRef.{k}");
                }
            }
        }
        for b in rule["backendRefs"].as_array().unwrap() {
            assert!(b["name"].is_string());
            let port = b["port"].as_u64().unwrap();
            assert!(
                (1..=65535).contains(&port),
                "a Service backendRef needs a port"
            );
        }
    }
}
