//! `deploy/kubernetes/`: every manifest validates against the Kubernetes schemas
//! (`kubernetes-validate --strict`, offline); the ServiceMonitor (a Prometheus Operator
//! CRD, whose schema kubernetes-validate does not ship) is checked by shape; the
//! Deployment is hardened; the ConfigMap's embedded config passes `portcullis check`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "deploy_common.rs"]
mod deploy_common;

use deploy_common::{
    assert_check_passes, assert_pod_hardened, assert_service_monitor, docs, validate, workspace,
};
use serde_json::Value;

fn manifests() -> Vec<(String, String)> {
    let dir = workspace("deploy/kubernetes");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn kind<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    all.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes"))
}

#[test]
fn every_manifest_validates() {
    let files = manifests();
    let n = validate(&files);
    // Namespace, ServiceAccount, ConfigMap, Deployment, Service, PDB, HPA.
    assert!(n >= 7, "validated {n} documents");
}

#[test]
fn deployment_service_and_friends_fit_together() {
    let all: Vec<Value> = manifests().iter().flat_map(|(_, t)| docs(t)).collect();
    for k in [
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    ] {
        kind(&all, k);
    }
    let deployment = kind(&all, "Deployment");
    assert_pod_hardened(deployment);
    assert_service_monitor(kind(&all, "ServiceMonitor"));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for k in ["Service", "PodDisruptionBudget", "ServiceMonitor"] {
        let doc = kind(&all, k);
        let selector = if k == "Service" {
            &doc["spec"]["selector"]
        } else {
            &doc["spec"]["selector"]["matchLabels"]
        };
        for (name, value) in selector.as_object().unwrap() {
            assert_eq!(&labels[name], value, "{k} selects label {name}");
        }
    }
    let ports: Vec<&str> = kind(&all, "Service")["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "grpc", "admin"]);
    assert_eq!(
        kind(&all, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );

    let config = kind(&all, "ConfigMap")["data"]["portcullis.yaml"]
        .as_str()
        .unwrap();
    assert_check_passes("deploy/kubernetes/configmap.yaml", config);
    // Its listen block binds every listener the Service exposes, on all interfaces.
    for want in [
        "http: 0.0.0.0:8080",
        "grpc: 0.0.0.0:9001",
        "admin: 0.0.0.0:9090",
    ] {
        assert!(config.contains(want), "{want} in the ConfigMap's config");
    }
}
