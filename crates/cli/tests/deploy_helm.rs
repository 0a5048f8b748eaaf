//! `deploy/helm/portcullis`: the chart rendered and validated.
//!
//! No Helm renderer installs from the registries this machine reaches (Helm is a Go
//! binary; PyPI's `helm-package` ships it for Windows and macOS only, the others wrap
//! a `helm` on PATH), so the chart's templates keep to a small subset of Go templates,
//! and this test renders exactly that subset: `{{ .Values.a.b }}`, `{{ .Release.Name }}`,
//! `{{ .Release.Namespace }}`, `{{ .Chart.Name }}`/`AppVersion`, `| quote`,
//! `toYaml X | nindent N`, `X | nindent N`, `{{- if X }}`/`{{- end }}` (truthiness as
//! Helm's: absent, false, 0, "" and empty collections are false), and the `{{-`/`-}}`
//! whitespace trimming. Anything else in a template fails the test, so the chart
//! cannot drift outside what is checked here. The output (with the default values,
//! and with every optional part switched on) is validated with `kubernetes-validate
//! --strict`, the ServiceMonitor by shape, and its ConfigMap's config with `portcullis check`.
//!
//! Helm's own engine checks the same chart: PyPI's `helm-sdkpy` ships the Helm v4 Go
//! library as a shared library (its Python wrapper needs Python 3.12 and a cluster for
//! `install`, so `scripts/install-peers` takes only the library and
//! `tests/peers/helm_lint.py` calls its `lint`, which renders every template with the
//! values and parses the result). Lint does not hand back the rendered manifests, so
//! the schema validation above stays on the subset renderer; lint proves Helm renders
//! the same templates, with the default values and with everything on, without error.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "deploy_common.rs"]
mod deploy_common;

use deploy_common::{
    assert_check_passes, assert_pod_hardened, assert_service_monitor, docs, validate, workspace,
};
use portcullis_test_util::{TempDir, peers_dir};
use serde_json::{Value, json};

const RELEASE: &str = "auth";
const NAMESPACE: &str = "portcullis";

fn lookup<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .filter(|p| !p.is_empty())
        .fold(root, |v, k| v.get(k).unwrap_or(&Value::Null))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let body: Vec<String> = text
        .trim_end_matches('\n')
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    format!("\n{}", body.join("\n"))
}

/// One action's value (`.Values.x`, `.Release.Name`...).
fn value(expr: &str, values: &Value, chart: &Value) -> Value {
    let expr = expr.trim();
    if let Some(path) = expr.strip_prefix(".Values") {
        return lookup(values, path).clone();
    }
    match expr {
        ".Release.Name" => json!(RELEASE),
        ".Release.Namespace" => json!(NAMESPACE),
        ".Chart.Name" => chart["name"].clone(),
        ".Chart.AppVersion" => chart["appVersion"].clone(),
        other => panic!("the test renderer does not know {other:?}"),
    }
}

/// Renders one template with the subset described above.
fn render(template: &str, values: &Value, chart: &Value) -> String {
    let mut out = String::new();
    // Stack of "is this branch emitted".
    let mut emit: Vec<bool> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let on = emit.iter().all(|e| *e);
        if on {
            out.push_str(&rest[..start]);
        }
        let end = rest[start..].find("}}").expect("unclosed {{") + start;
        let mut action = &rest[start + 2..end];
        rest = &rest[end + 2..];
        if let Some(a) = action.strip_prefix('-') {
            action = a;
            if on {
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
            }
        }
        if let Some(a) = action.strip_suffix('-') {
            action = a;
            rest = rest.trim_start();
        }
        let action = action.trim();
        if let Some(cond) = action.strip_prefix("if ") {
            emit.push(truthy(&value(cond, values, chart)));
        } else if action == "end" {
            emit.pop().expect("end without if");
        } else if !on {
        } else if let Some(expr) = action.strip_prefix("toYaml ") {
            let (expr, pipe) = expr.split_once('|').expect("toYaml X | nindent N");
            let n: usize = pipe
                .trim()
                .strip_prefix("nindent ")
                .expect("nindent")
                .trim()
                .parse()
                .unwrap();
            let yaml = serde_saphyr::to_string(&value(expr, values, chart)).unwrap();
            out.push_str(&indent(&yaml, n));
        } else if let Some((expr, pipe)) = action.split_once('|') {
            let v = value(expr, values, chart);
            let pipe = pipe.trim();
            if pipe == "quote" {
                out.push_str(&serde_json::to_string(&scalar(&v)).unwrap());
            } else if let Some(n) = pipe.strip_prefix("nindent ") {
                out.push_str(&indent(&scalar(&v), n.trim().parse().unwrap()));
            } else {
                panic!("the test renderer does not know the pipe {pipe:?}");
            }
        } else {
            out.push_str(&scalar(&value(action, values, chart)));
        }
    }
    assert!(emit.is_empty(), "if without end");
    out.push_str(rest);
    out
}

fn chart_files() -> (Value, Value, Vec<(String, String)>) {
    let dir = workspace("deploy/helm/portcullis");
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("Chart.yaml")).unwrap()).unwrap();
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
    let mut templates: Vec<(String, String)> = std::fs::read_dir(dir.join("templates"))
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
    templates.sort();
    (chart, values, templates)
}

fn rendered(values: &Value) -> Vec<(String, String)> {
    let (chart, _, templates) = chart_files();
    templates
        .iter()
        .map(|(name, t)| (name.clone(), render(t, values, &chart)))
        .collect()
}

fn check_rendering(values: &Value) -> Vec<Value> {
    let files = rendered(values);
    validate(&files);
    let all: Vec<Value> = files.iter().flat_map(|(_, t)| docs(t)).collect();
    let find = |k: &str| {
        all.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} rendered"))
    };
    let deployment = find("Deployment");
    assert_pod_hardened(deployment);
    assert_eq!(deployment["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"],
        values["resources"]
    );
    let config = find("ConfigMap")["data"]["portcullis.yaml"]
        .as_str()
        .unwrap();
    assert_eq!(
        config.trim_end(),
        values["config"].as_str().unwrap().trim_end(),
        "the config is carried whole"
    );
    assert_check_passes("chart ConfigMap", config);
    for k in [
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceAccount",
    ] {
        find(k);
    }
    all
}

#[test]
fn chart_renders_valid_manifests_with_default_values() {
    let (chart, values, _) = chart_files();
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "portcullis");
    let all = check_rendering(&values);
    assert!(
        !all.iter().any(|d| d["kind"] == "ServiceMonitor"),
        "serviceMonitor is off by default"
    );
    let env = &all.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["env"];
    assert!(
        !env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "REDIS_URL")
    );
    assert_eq!(env[1], json!({"name": "PORTCULLIS_WORKERS", "value": "2"}));
}

/// The chart's values with every optional part switched on.
fn everything_on(mut values: Value) -> Value {
    values["serviceMonitor"]["enabled"] = json!(true);
    values["redis"]["enabled"] = json!(true);
    values["replicas"] = json!(3);
    values["resources"]["limits"]["cpu"] = json!("4");
    values
}

/// `helm lint` by Helm's own library on `chart` (with `values` replacing values.yaml
/// when given): the messages as (severity, path), Helm's 1 info, 2 warning, 3 error.
fn helm_lint(chart: &std::path::Path, values: Option<&Value>) -> Vec<(u64, String)> {
    let lib = peers_dir().join("helm/libhelm_sdkpy.so");
    assert!(
        lib.exists(),
        "{} is missing: run scripts/install-peers",
        lib.display()
    );
    let scratch = TempDir::new("helm-lint");
    let mut cmd = std::process::Command::new(peers_dir().join("venv/bin/python"));
    cmd.arg(workspace("crates/cli/tests/peers/helm_lint.py"))
        .arg(&lib)
        .arg(chart);
    if let Some(v) = values {
        cmd.arg(scratch.write("values.json", &v.to_string()));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "helm lint did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["severity"].as_u64().unwrap(),
                m["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn helms_own_engine_lints_the_chart_clean_with_default_and_all_on_values() {
    let chart = workspace("deploy/helm/portcullis");
    let (_, values, _) = chart_files();
    for (label, v) in [
        ("default values", None),
        ("everything on", Some(everything_on(values))),
    ] {
        let messages = helm_lint(&chart, v.as_ref());
        let problems: Vec<_> = messages.iter().filter(|(s, _)| *s >= 2).collect();
        assert!(
            problems.is_empty(),
            "helm lint with {label}: warnings or errors at {problems:?}"
        );
    }
}

#[test]
fn helms_lint_fails_a_template_helm_cannot_render() {
    // The negative control: the same chart with one template Helm cannot execute (a
    // function that does not exist), so a clean lint above means something.
    let scratch = TempDir::new("helm-broken");
    let copy = scratch.path().join("portcullis");
    std::fs::create_dir_all(copy.join("templates")).unwrap();
    let src = workspace("deploy/helm/portcullis");
    for f in ["Chart.yaml", "values.yaml"] {
        std::fs::copy(src.join(f), copy.join(f)).unwrap();
    }
    std::fs::write(
        copy.join("templates/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ notAHelmFunction }}\n",
    )
    .unwrap();
    let messages = helm_lint(&copy, None);
    assert!(
        messages
            .iter()
            .any(|(s, p)| *s == 3 && p.starts_with("templates")),
        "helm lint must report the broken template: {messages:?}"
    );
}

#[test]
fn chart_renders_valid_manifests_with_everything_on() {
    let (_, values, _) = chart_files();
    let values = everything_on(values);
    let all = check_rendering(&values);
    assert_service_monitor(all.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap());
    let d = all.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    let redis = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "REDIS_URL")
        .cloned()
        .expect("REDIS_URL");
    assert_eq!(
        redis["valueFrom"]["secretKeyRef"],
        json!({"name": "portcullis-redis", "key": "url"})
    );
}

#[test]
fn the_test_renderer_follows_helm_on_the_subset() {
    let values = json!({"a": {"b": "x", "n": 2, "off": false, "m": {"k": "v"}}, "s": "l1\nl2\n"});
    let chart = json!({"name": "c", "appVersion": "1"});
    assert_eq!(render("v: {{ .Values.a.b }}", &values, &chart), "v: x");
    assert_eq!(
        render("v: {{ .Values.a.n | quote }}", &values, &chart),
        "v: \"2\""
    );
    assert_eq!(
        render(
            "a:\n  {{- if .Values.a.off }}\n  x: 1\n  {{- end }}\n  y: 2\n",
            &values,
            &chart
        ),
        "a:\n  y: 2\n"
    );
    assert_eq!(
        render(
            "m:\n  {{- toYaml .Values.a.m | nindent 2 }}\n",
            &values,
            &chart
        ),
        "m:\n  k: v\n"
    );
    assert_eq!(
        render("s: |\n  {{- .Values.s | nindent 2 }}\n", &values, &chart),
        "s: |\n  l1\n  l2\n"
    );
    assert_eq!(
        render(
            "{{ .Release.Name }}/{{ .Chart.AppVersion }}",
            &values,
            &chart
        ),
        "auth/1"
    );
    let unknown =
        std::panic::catch_unwind(|| render("{{ include \"x\" . }}", &json!({}), &json!({})));
    assert!(unknown.is_err(), "an action outside the subset fails");
}
