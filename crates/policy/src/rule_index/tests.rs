//! The index leaves out only rules that cannot match, keeps config order, and the
//! engine decides with it exactly as by trying every rule.

use std::path::Path;

use http::{HeaderMap, Method};

use super::*;
use crate::config;
use crate::{AuthRequest, Decision, Engine};

/// Path patterns of every kind the index treats differently.
const PATTERNS: &[&str] = &[
    "/",
    "/t1/**",
    "/t2/**",
    "/t1/admin",
    "/t1/*/x",
    "/t*/admin",
    "/**",
    "/**/admin",
    "/t3",
    "/T1/**",
    "/t1x/**",
    "/*/t1",
    "/api/v1/**",
    "/api",
];

const PATHS: &[&str] = &[
    "/",
    "/t1",
    "/t1/",
    "/t1/admin",
    "/t1/a/x",
    "/t2/admin",
    "/t3",
    "/t3/x",
    "/T1/x",
    "/t1x",
    "/x/t1",
    "/api",
    "/api/v1/users",
    "/apix",
    "/admin",
    "/%2e%2e/t1",
    // Confusing forms an outsider sends: the engine reads each the one canonical
    // way (or refuses it) before any rule is looked up, index or not.
    "//t1/admin",
    "/t1/../t2/admin",
    "/t2/%2e%2e/t1/admin",
    "/t1%2fadmin",
    "/t1%2Fadmin",
    "/./t1/admin",
    "/t1//admin",
    "/t1/admin/",
    "/%74%31/admin",
    "/t1;x/admin",
    "/t1/admin?x=/t2",
    "/t1/admin#/t2",
    "/t1\\admin",
    "/ t1/admin",
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// `count` rules, each with zero to three patterns and sometimes a method or
/// host, as YAML; rule `i` is named `r{i}`.
fn rules_yaml(g: &mut Gen, count: usize) -> String {
    let mut out = String::from("rules:\n");
    for i in 0..count {
        let n = g.next(4);
        let paths: Vec<String> = (0..n)
            .map(|_| format!("{:?}", PATTERNS[g.next(PATTERNS.len())]))
            .collect();
        let mut matcher = Vec::new();
        if !paths.is_empty() {
            matcher.push(format!("path: [{}]", paths.join(", ")));
        }
        if g.next(5) == 0 {
            matcher.push("methods: [POST]".to_owned());
        }
        if g.next(6) == 0 {
            matcher.push("host: other.example.com".to_owned());
        }
        out.push_str(&format!(
            "  - {{name: r{i}, match: {{{}}}, allow: anonymous}}\n",
            matcher.join(", ")
        ));
    }
    out
}

fn engine(rules: &str) -> Engine {
    let config = config::parse(rules, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn rule_of(d: &Decision) -> Option<String> {
    match d {
        Decision::Allow(a) => Some(a.rule.to_string()),
        Decision::Deny(d) => d.rule.as_ref().map(|r| r.to_string()),
    }
}

#[test]
fn every_rule_that_can_match_a_path_is_a_candidate_in_order() {
    let mut g = Gen(0x5eed_1234_abcd_ef01);
    for round in 0..200 {
        let count = 8 + g.next(24);
        let text = rules_yaml(&mut g, count);
        let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
        let index = RuleIndex::new(config.rules.iter());
        assert!(index.enabled(), "round {round}");
        for path in PATHS {
            let got: Vec<usize> = index.candidates(path).collect();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{path}: {got:?}");
            for (i, rule) in config.rules.iter().enumerate() {
                let can = rule.paths.is_empty() || rule.paths.iter().any(|p| p.matches(path));
                assert!(
                    !can || got.contains(&i),
                    "round {round}: rule {i} ({:?}) matches {path} but is not a candidate\n{text}",
                    rule.paths.iter().map(|p| p.as_str()).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn the_engine_decides_with_the_index_as_by_trying_every_rule() {
    let mut g = Gen(0x0dd_ba11_cafe_f00d);
    let headers = HeaderMap::new();
    for round in 0..100 {
        let count = 8 + g.next(24);
        let text = rules_yaml(&mut g, count);
        let e = engine(&text);
        assert!(e.rule_index_enabled());
        for path in PATHS {
            for method in [Method::GET, Method::POST] {
                for host in ["api.example.com", "other.example.com"] {
                    let req = AuthRequest::new(&method, host, path, &headers);
                    // `explain` tries every rule in order (the index is skipped).
                    let indexed = rule_of(&e.decide(&req, 0));
                    let scanned = e.explain(&req, 0).rule;
                    assert_eq!(
                        indexed, scanned,
                        "round {round}: {method} {host}{path}\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn first_match_wins_across_filed_and_always_tried_rules() {
    let mut text = String::from("rules:\n");
    for i in 0..10 {
        text.push_str(&format!(
            "  - {{name: t{i}, match: {{path: \"/t{i}/**\"}}, allow: anonymous}}\n"
        ));
    }
    text.push_str("  - {name: glob, match: {path: \"/t*/admin\"}, allow: deny}\n");
    text.push_str("  - {name: late, match: {path: \"/t3/admin\"}, allow: anonymous}\n");
    text.push_str("  - {name: rest, match: {}, allow: deny}\n");
    let e = engine(&text);
    assert!(e.rule_index_enabled());
    let headers = HeaderMap::new();
    let rule = |path: &str| {
        let req = AuthRequest::new(&Method::GET, "h", path, &headers);
        rule_of(&e.decide(&req, 0))
    };
    assert_eq!(rule("/t3/admin").as_deref(), Some("t3"), "filed, earlier");
    assert_eq!(rule("/t42/admin").as_deref(), Some("glob"), "always-tried");
    assert_eq!(rule("/t9").as_deref(), Some("t9"));
    assert_eq!(rule("/x").as_deref(), Some("rest"));
    assert_eq!(rule("/").as_deref(), Some("rest"));
}

#[test]
fn few_rules_are_scanned() {
    let e = engine("rules:\n  - {name: a, match: {path: \"/a/**\"}, allow: anonymous}\n");
    assert!(!e.rule_index_enabled());
}
