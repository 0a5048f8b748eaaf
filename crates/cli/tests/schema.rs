//! The JSON Schema of the config (`portcullis schema`, committed at
//! `docs/portcullis.schema.json`), checked by an independent validator: PyPI
//! `jsonschema` (draft-07) reading the YAML with PyPI `PyYAML`, in the peers' venv
//! (`crates/cli/tests/peers/schema_validate.py`, one Python process for all files).
//! Every shipped Portcullis config (`examples/**/portcullis*.yaml`, the demo's
//! embedded config) validates; wrong configs are refused by the validator and by
//! `portcullis check`, both naming the same field.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_test_util::TempDir;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn generated() -> String {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn committed_schema_is_the_generated_one() {
    let path = root().join("docs/portcullis.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated(),
        "{} differs from `portcullis schema`: regenerate it with\n  cargo run -p portcullis-cli -- schema > docs/portcullis.schema.json",
        path.display()
    );
}

#[test]
fn schema_command_is_in_the_completions_and_the_man_page() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("schema"));
    let out = Command::new(BIN).args(["man", "schema"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("JSON Schema"));
}

/// Every `portcullis*.yaml` under `examples/` (as `examples_check.rs` finds them).
fn example_configs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            example_configs(&path, out);
        } else if name.starts_with("portcullis")
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            out.push(path);
        }
    }
}

/// What the validator said of each file: its error paths, empty when valid.
fn validate(schema: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, Vec<(String, String)>> {
    let out = Command::new(portcullis_test_util::python())
        .arg(root().join("crates/cli/tests/peers/schema_validate.py"))
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut said = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let errors = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(v["valid"], errors.is_empty());
        said.insert(PathBuf::from(v["file"].as_str().unwrap()), errors);
    }
    assert_eq!(said.len(), files.len(), "one answer per file");
    said
}

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str = r#"listen:
  http: 127.0.0.1:8080
  admin: 127.0.0.1:9090
providers:
  - name: corp
    issuer: https://login.example.com
    audiences: [orders-api]
    jwks:
      uri: https://login.example.com/jwks.json
      refresh: 10m
    clock_skew: 30s
    claims_to_headers:
      - {header: x-user, claim: sub, format: first}
limits:
  token_cache_memory: 64MiB
connections:
  idle_timeout: 90
rules:
  - name: health
    match: {path: /healthz}
    allow: anonymous
  - name: admin
    match: {host: api.example.com, path: ["/admin/**"], methods: [GET, post]}
    claims: {groups: [admins, ops], level: 3}
    mode: dry_run
  - name: default
    match: {}
"#;

/// (name, the base with one edit, the field both must name)
fn wrong_configs() -> Vec<(&'static str, String, &'static str)> {
    let edit = |from: &str, to: &str| {
        assert_eq!(BASE.matches(from).count(), 1, "{from}");
        BASE.replace(from, to)
    };
    vec![
        (
            "an unknown top-level key",
            format!("{BASE}colour: blue\n"),
            "colour",
        ),
        (
            "a typo of audiences (did you mean)",
            edit("audiences: [orders-api]", "audience: [orders-api]"),
            "providers[0].audience",
        ),
        (
            "a typo of a key source's refresh (did you mean)",
            edit("refresh: 10m", "refreh: 10m"),
            "providers[0].jwks.refreh",
        ),
        (
            "audiences as a string",
            edit("audiences: [orders-api]", "audiences: orders-api"),
            "providers[0].audiences",
        ),
        (
            "a bad allow word",
            edit("allow: anonymous", "allow: anonymously"),
            "rules[0].allow",
        ),
        (
            "a bad mode word",
            edit("mode: dry_run", "mode: dry-run"),
            "rules[1].mode",
        ),
        (
            "a bad claim header format",
            edit("format: first", "format: xml"),
            "providers[0].claims_to_headers[0].format",
        ),
        (
            "a duration that is not one",
            edit("clock_skew: 30s", "clock_skew: soon"),
            "providers[0].clock_skew",
        ),
        (
            "a duration of the wrong type (a list)",
            edit("clock_skew: 30s", "clock_skew: [30s]"),
            "providers[0].clock_skew",
        ),
        (
            "a duration of the wrong type (a mapping)",
            edit("refresh: 10m", "refresh: {minutes: 10}"),
            "providers[0].jwks.refresh",
        ),
        (
            "a size that is not one",
            edit(
                "token_cache_memory: 64MiB",
                "token_cache_memory: 64 parsecs",
            ),
            "limits.token_cache_memory",
        ),
        (
            "a list where a mapping belongs",
            edit(
                "      uri: https://login.example.com/jwks.json\n      refresh: 10m",
                "      - uri: https://login.example.com/jwks.json\n        refresh: 10m",
            ),
            "providers[0].jwks",
        ),
        (
            "a rule without a name",
            edit("  - name: default\n", "  - mode: enforce\n"),
            "rules[2]",
        ),
    ]
}

#[test]
fn shipped_configs_validate_and_wrong_ones_are_refused_by_validator_and_check() {
    let dir = TempDir::new("schema");
    let schema = dir.write("portcullis.schema.json", &generated());

    let mut shipped = Vec::new();
    example_configs(&root().join("examples"), &mut shipped);
    shipped.sort();
    assert!(shipped.len() >= 10, "{shipped:#?}");
    shipped.push(dir.write(
        "demo.yaml",
        &portcullis_app::demo_config("http://127.0.0.1:8082", 8081),
    ));
    let base = dir.write("base.yaml", BASE);
    shipped.push(base.clone());
    let (ok, stderr) = check(&base);
    assert!(ok, "the base of the wrong configs passes check: {stderr}");

    let wrong = wrong_configs();
    let wrong_files: Vec<PathBuf> = wrong
        .iter()
        .enumerate()
        .map(|(i, (_, text, _))| dir.write(&format!("wrong{i}.yaml"), text))
        .collect();
    let all: Vec<PathBuf> = shipped.iter().chain(&wrong_files).cloned().collect();
    let said = validate(&schema, &all);

    let mut failures = Vec::new();
    for file in &shipped {
        let errors = &said[file];
        if !errors.is_empty() {
            failures.push(format!("{} does not validate: {errors:#?}", file.display()));
        }
    }
    for ((what, _, field), file) in wrong.iter().zip(&wrong_files) {
        let errors = &said[file];
        if !errors.iter().any(|(path, _)| path == field) {
            failures.push(format!(
                "{what}: the validator does not name {field}: {errors:#?}"
            ));
        }
        let (ok, stderr) = check(file);
        let name = file.file_name().unwrap().to_string_lossy();
        if ok || !stderr.contains(&format!("{name}:")) || !stderr.contains(field) {
            failures.push(format!(
                "{what}: portcullis check did not refuse it naming {field}: {stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
