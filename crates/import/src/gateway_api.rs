//! `--gateway-api`: each auth-url Ingress as Gateway API `HTTPRoute`s (one per
//! Ingress rule, since hostnames are route-wide) and an Envoy Gateway
//! `SecurityPolicy` whose HTTP `extAuth` asks Portcullis's `/verify`.

use serde_json::{Value, json};

use crate::doc::{Doc, list, str_at};
use crate::ingress_nginx::{annotation, parse_auth_url};
use crate::model::slug;
use crate::{ImportError, Manifest, Warning};

/// The Gateway the routes attach to, when nothing says which (Envoy Gateway's quickstart name).
const GATEWAY: &str = "eg";

pub(crate) fn manifests(
    docs: &[Doc],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Manifest>, ImportError> {
    let mut out = Vec::new();
    let mut warned_gateway = false;
    for doc in docs {
        if doc.kind() != "Ingress" {
            continue;
        }
        let Some(url) = annotation(doc, "auth-url") else {
            continue;
        };
        let Some(auth) = parse_auth_url(url) else {
            return Err(doc.invalid(format!("auth-url {url:?} is not an http(s) URL")));
        };
        let namespace = doc.namespace().unwrap_or("default");
        let in_cluster = auth.host.ends_with(".svc.cluster.local")
            || auth.host.ends_with(".svc")
            || auth.host.split('.').count() <= 2;
        let (service, service_ns) = if in_cluster && !auth.host.contains('$') {
            let mut labels = auth.host.split('.');
            let service = labels.next().unwrap_or("portcullis").to_owned();
            (service, labels.next().unwrap_or(namespace).to_owned())
        } else {
            doc.warn(warnings, format!("auth-url host {} is not a Service of the cluster: the SecurityPolicy points at Service portcullis in namespace portcullis, change it if yours is elsewhere", auth.host));
            ("portcullis".to_owned(), "portcullis".to_owned())
        };
        if auth.https {
            doc.warn(warnings, "auth-url is https: the SecurityPolicy's backend is plain HTTP (add a BackendTLSPolicy for TLS to Portcullis)");
        }
        let port = auth.port.unwrap_or(if auth.https { 443 } else { 80 });
        let headers: Vec<Value> = annotation(doc, "auth-response-headers")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| Value::from(h.to_ascii_lowercase()))
            .collect();
        if !warned_gateway {
            doc.warn(warnings, format!("the HTTPRoutes attach to Gateway {GATEWAY:?} (parentRefs): set the name of yours"));
            warned_gateway = true;
        }
        if doc.spec().get("tls").is_some() {
            doc.warn(
                warnings,
                "spec.tls not carried over: TLS is configured on the Gateway's listener",
            );
        }
        let rules = list(doc.spec(), "rules");
        for (i, r) in rules.iter().enumerate() {
            let route = if rules.len() == 1 {
                slug(doc.name())
            } else {
                format!("{}-{}", slug(doc.name()), i + 1)
            };
            let mut route_rules = Vec::new();
            for p in list(r.get("http").unwrap_or(&Value::Null), "paths") {
                let path = str_at(p, &["path"]).unwrap_or("/");
                let kind = match str_at(p, &["pathType"]).unwrap_or("ImplementationSpecific") {
                    "Exact" => "Exact",
                    _ => "PathPrefix",
                };
                let backend = p.get("backend").and_then(|b| b.get("service"));
                let (Some(name), Some(number)) = (
                    backend.and_then(|s| str_at(s, &["name"])),
                    backend
                        .and_then(|s| s.get("port"))
                        .and_then(|p| p.get("number"))
                        .and_then(Value::as_u64),
                ) else {
                    doc.warn(warnings, format!("rules[{i}] path {path}: backend without service name and port number; left out of HTTPRoute {route}"));
                    continue;
                };
                route_rules.push(json!({
                    "matches": [{"path": {"type": kind, "value": path}}],
                    "backendRefs": [{"name": name, "port": number}],
                }));
            }
            let mut spec = json!({
                "parentRefs": [{"name": GATEWAY}],
                "rules": route_rules,
            });
            if let (Some(host), Some(obj)) = (str_at(r, &["host"]), spec.as_object_mut()) {
                obj.insert("hostnames".to_owned(), json!([host]));
            }
            let httproute = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": route, "namespace": namespace},
                "spec": spec,
            });
            let mut http = json!({
                "backendRefs": [{"name": service, "namespace": service_ns, "port": port}],
                "path": "/verify",
            });
            if let (false, Some(obj)) = (headers.is_empty(), http.as_object_mut()) {
                obj.insert("headersToBackend".to_owned(), Value::Array(headers.clone()));
            }
            let policy = json!({
                "apiVersion": "gateway.envoyproxy.io/v1alpha1",
                "kind": "SecurityPolicy",
                "metadata": {"name": format!("{route}-portcullis"), "namespace": namespace},
                "spec": {
                    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}],
                    "extAuth": {"failOpen": false, "http": http},
                },
            });
            out.push(manifest(format!("httproute-{route}.yaml"), &httproute)?);
            out.push(manifest(format!("securitypolicy-{route}.yaml"), &policy)?);
        }
        if service_ns != namespace {
            let grant = json!({
                "apiVersion": "gateway.networking.k8s.io/v1beta1",
                "kind": "ReferenceGrant",
                "metadata": {"name": format!("portcullis-from-{namespace}"), "namespace": service_ns},
                "spec": {
                    "from": [{"group": "gateway.envoyproxy.io", "kind": "SecurityPolicy", "namespace": namespace}],
                    "to": [{"group": "", "kind": "Service", "name": service}],
                },
            });
            let m = manifest(
                format!("referencegrant-{service_ns}-from-{namespace}.yaml"),
                &grant,
            )?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

fn manifest(file_name: String, value: &Value) -> Result<Manifest, ImportError> {
    let mut text = crate::model::to_yaml(value)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(Manifest { file_name, text })
}
