//! The root `Dockerfile` (no Docker engine here, so its text is checked): multi-stage,
//! a distroless runtime with only the binary, a numeric non-root `USER`, no secrets in
//! `ARG`/`ENV`, the binary built with the `dist` profile (no debug info, stripped) and
//! found where ENTRYPOINT says; `.dockerignore` keeps build output and keys out.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

/// The Dockerfile's instructions (comments dropped, `\` continuations joined).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_holds_only_the_binary() {
    let text = read("Dockerfile");
    let ins = instructions(&text);
    let froms: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| op == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let (build_from, runtime_from) = (&ins[froms[0]].1, &ins[*froms.last().unwrap()].1);
    assert!(
        build_from.contains(" AS build"),
        "first stage named build: {build_from}"
    );
    assert!(
        runtime_from.starts_with("gcr.io/distroless/") || runtime_from == "scratch",
        "small runtime: {runtime_from}"
    );
    let runtime = &ins[*froms.last().unwrap()..];

    // Only the binary is copied into the runtime stage.
    let copies: Vec<&String> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY" || op == "ADD")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        copies[0],
        "--from=build /portcullis /usr/local/bin/portcullis"
    );
    assert!(
        !runtime.iter().any(|(op, _)| op == "RUN"),
        "no RUN in the runtime stage (distroless has no shell)"
    );

    // A numeric non-root user (Kubernetes' runAsNonRoot can only check a number).
    let user = runtime
        .iter()
        .filter(|(op, _)| op == "USER")
        .map(|(_, a)| a)
        .next_back()
        .expect("USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0), "USER {user}");

    let entry = runtime
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, a)| a)
        .unwrap();
    assert_eq!(entry, r#"["/usr/local/bin/portcullis"]"#);
    let cmd = runtime
        .iter()
        .find(|(op, _)| op == "CMD")
        .map(|(_, a)| a)
        .unwrap();
    assert_eq!(cmd, r#"["serve"]"#);
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "ENV" && a.starts_with("PORTCULLIS_CONFIG="))
    );

    // No secrets baked in.
    for (op, args) in &ins {
        if op == "ARG" || op == "ENV" || op == "LABEL" {
            let upper = args.to_ascii_uppercase();
            for word in [
                "SECRET",
                "PASSWORD",
                "TOKEN",
                "PRIVATE",
                "API_KEY",
                "CREDENTIAL",
            ] {
                assert!(!upper.contains(word), "{op} {args}: looks like a secret");
            }
        }
    }
    assert!(
        !text.contains("BEGIN PRIVATE KEY") && !text.contains(".pem"),
        "no keys in the image"
    );

    // Built with the dist profile, whose binary is where the COPY takes it from.
    let build = ins[froms[0]..*froms.last().unwrap()]
        .iter()
        .find(|(op, a)| op == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a)
        .unwrap();
    assert!(
        build.contains("--profile dist") && build.contains("--locked"),
        "{build}"
    );
    assert!(
        build.contains("target/dist/portcullis /portcullis"),
        "{build}"
    );
}

#[test]
fn dist_profile_strips_and_release_keeps_its_symbols() {
    let cargo = read("Cargo.toml");
    let dist = cargo
        .split("[profile.dist]")
        .nth(1)
        .expect("[profile.dist] in Cargo.toml");
    let dist = dist.split("\n[").next().unwrap();
    for want in ["inherits = \"release\"", "debug = 0", "strip = true"] {
        assert!(dist.contains(want), "[profile.dist] needs {want}:\n{dist}");
    }
    let release = cargo
        .split("[profile.release]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    assert!(
        release.contains("debug = 1"),
        "[profile.release] keeps debug = 1 for the benchmarks"
    );
}

#[test]
fn dockerignore_keeps_build_output_peers_and_keys_out() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    for want in ["target", ".peers", ".git", "**/*.pem", "**/*.key"] {
        assert!(lines.contains(&want), ".dockerignore lacks {want}");
    }
}
