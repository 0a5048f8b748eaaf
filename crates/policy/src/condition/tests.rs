//! The direct evaluator against the `cel` interpreter: the same answer (true,
//! false, or a deny for an error) for every expression of a grid, over tokens and
//! requests that make each part true, false, missing or of another type.

use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const EXPRESSIONS: &[&str] = &[
    r#"claims.sub == "alice""#,
    r#"claims.sub != "alice""#,
    r#"claims.groups.exists(g, g == "finance")"#,
    r#"claims.groups.all(g, g != "banned")"#,
    r#"claims.groups.exists(g, g.startsWith("fin"))"#,
    r#""finance" in claims.groups"#,
    r#""groups" in claims"#,
    r#"has(claims.groups)"#,
    r#"has(claims.realm.roles)"#,
    r#"claims.realm.roles.exists(r, r == "admin") || claims.level >= 3"#,
    r#"claims.missing == 1 || true"#,
    r#"true || claims.missing == 1"#,
    r#"claims.missing == 1 && false"#,
    r#"false && claims.missing == 1"#,
    r#"!(claims.missing == 1 && false)"#,
    r#"claims.level > 2 && claims.level < 10"#,
    r#"claims.level == 3u"#,
    r#"claims.level == 3.0"#,
    r#"claims.ratio > 0.5"#,
    r#"claims.big > 1u"#,
    r#"claims.exp - now > 300"#,
    r#"size(claims.groups) == 2"#,
    r#"claims.groups.size() > 0"#,
    r#"claims.sub.size() == 5"#,
    r#"claims.groups[0] == "dev""#,
    r#"claims.groups[9] == "dev""#,
    r#"claims["sub"] == "alice""#,
    r#"claims.sub.endsWith("ce") && claims.sub.contains("li")"#,
    r#"claims.level == "3""#,
    r#"claims.groups == ["dev", "finance"]"#,
    r#"claims.flag ? claims.sub == "alice" : false"#,
    r#"!claims.flag"#,
    r#"claims.sub"#,
    r#"claims.n == null"#,
    r#"header.kid == "k1" && header.alg == "ES256""#,
    r#"!has(header.typ) || header.typ == "JWT""#,
    r#"request.method == "GET" && request.path.startsWith("/reports")"#,
    r#"request.host == "api.example.com""#,
    r#"request.headers["x-env"] == "prod""#,
    r#"request.headers["x-multi"] == "a, b""#,
    r#"has(request.headers.x_env) || "x-env" in request.headers"#,
    r#"request.headers["X-Env"] == "prod""#,
    r#"claims.groups.exists(g, g == claims.sub)"#,
    r#"claims.groups.map(g, g + "!").size() == 2"#,
    r#"claims.groups.filter(g, g == "dev").size() == 1"#,
    r#"claims.groups.exists_one(g, g == "dev")"#,
    r#"claims.level + 9223372036854775807 > 0"#,
    r#"claims.sub.matches("^a")"#,
    r#"[1, 2].exists(x, x == 2)"#,
    r#"{"a": 1}.a == 1"#,
];

fn tokens() -> Vec<(Map<String, Value>, Map<String, Value>)> {
    let h = obj(json!({"alg": "ES256", "kid": "k1"}));
    let h_typ = obj(json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}));
    vec![
        (
            obj(
                json!({"sub": "alice", "groups": ["dev", "finance"], "realm": {"roles": ["admin"]},
                "level": 3, "ratio": 0.75, "big": 18446744073709551615u64, "exp": 1_700_000_600,
                "flag": true, "n": null}),
            ),
            h.clone(),
        ),
        (
            obj(
                json!({"sub": "bob", "groups": ["banned", 7], "realm": {"roles": "admin"},
                "level": "3", "ratio": 1, "exp": 1_700_000_100, "flag": "yes", "n": 0}),
            ),
            h_typ,
        ),
        (
            obj(json!({"sub": 5, "groups": "finance", "realm": [], "level": 12.5})),
            Map::new(),
        ),
        (Map::new(), h),
    ]
}

fn requests() -> Vec<(&'static str, &'static str, HeaderMap)> {
    let mut prod = HeaderMap::new();
    prod.insert("x-env", HeaderValue::from_static("prod"));
    let mut multi = HeaderMap::new();
    multi.append("x-multi", HeaderValue::from_static("a"));
    multi.append("x-multi", HeaderValue::from_static("b"));
    multi.insert("x-env", HeaderValue::from_bytes(b"pr\xffd").unwrap());
    vec![
        ("GET", "/reports/q1", prod),
        ("POST", "/other", multi),
        ("GET", "/", HeaderMap::new()),
    ]
}

#[derive(Debug, Eq, PartialEq)]
enum Answer {
    Allow,
    Deny,
}

fn answer(r: Result<bool, String>) -> Answer {
    if r == Ok(true) {
        Answer::Allow
    } else {
        Answer::Deny
    }
}

#[test]
fn direct_evaluation_agrees_with_the_interpreter() {
    let mut decided_directly = 0;
    let mut total = 0;
    for source in EXPRESSIONS {
        let c = Condition::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        for (claims, header) in tokens() {
            let vars = TokenVars::new(&claims, &header);
            for (method, path, headers) in requests() {
                let r = RequestVars {
                    method,
                    host: "api.example.com",
                    path,
                    headers: &headers,
                    now: 1_700_000_000,
                };
                let fast = c.evaluate_with(Some(&vars), &r, false);
                let cel = c.evaluate_with(Some(&vars), &r, true);
                assert_eq!(
                    answer(fast.clone()),
                    answer(cel.clone()),
                    "{source}\nclaims {claims:?}\nheader {header:?}\n{method} {path} {headers:?}\ndirect {fast:?}\ninterpreter {cel:?}"
                );
                // Where the direct evaluator answers, it answers as the interpreter does,
                // down to true versus false.
                if fast.is_ok() && cel.is_ok() {
                    assert_eq!(fast, cel, "{source} {claims:?} {method} {path}");
                }
                total += 1;
                let mut scope = fast::Scope {
                    claims: &vars.claims,
                    header: &vars.header,
                    request: &r,
                    bound: Vec::new(),
                };
                if !matches!(
                    fast::eval(c.inner.program.expression(), &mut scope),
                    Err(fast::Fail::Unsupported)
                ) {
                    decided_directly += 1;
                }
            }
        }
    }
    // Most of the grid is decided without the interpreter (the point of it).
    assert!(
        decided_directly * 2 > total,
        "{decided_directly} of {total}"
    );
}
