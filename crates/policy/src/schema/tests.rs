use serde_json::Value;

use super::config_schema;

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

#[test]
fn unknown_keys_are_refused_and_docs_become_descriptions() {
    let s = config_schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(s["additionalProperties"], false);
    let defs = &s["definitions"];
    assert_eq!(defs["RawProvider"]["additionalProperties"], false);
    assert_eq!(defs["RawRule"]["required"], serde_json::json!(["name"]));
    assert_eq!(
        at(
            defs,
            &["RawProvider", "properties", "audiences", "description"]
        ),
        "The token's `aud` must hold at least one of these."
    );
    assert_eq!(
        at(defs, &["RawProvider", "properties", "audiences", "type"]),
        "array"
    );
}

#[test]
fn words_come_from_the_loader() {
    let s = config_schema();
    let allow = at(&s, &["definitions", "RawRule", "properties", "allow"]);
    let text = allow.to_string();
    for word in crate::config::raw::RawAllow::NAMES {
        assert!(text.contains(&format!("\"{word}\"")), "{text}");
    }
    let algs = s["definitions"]["AlgorithmWord"]["enum"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|a| a == "ES256"));
    assert!(!algs.iter().any(|a| a == "none"));
}
