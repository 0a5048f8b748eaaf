//! The verified identity as `google.protobuf.Struct`, for Envoy's dynamic metadata
//! (namespace `envoy.filters.http.ext_authz`): RBAC, routing and access logs can read it.

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, NullValue, Struct, Value};
use portcullis_policy::Identity;
use serde_json::Map;

/// `{provider, iss, sub, claims}` of a verified identity (`iss`/`sub` when present).
pub(crate) fn identity_metadata(identity: &Identity) -> Struct {
    let claims = identity.claims();
    let mut fields = HashMap::with_capacity(4);
    fields.insert("provider".to_owned(), string(&identity.provider));
    if let Some(iss) = claims.issuer() {
        fields.insert("iss".to_owned(), string(iss));
    }
    if let Some(sub) = claims.subject() {
        fields.insert("sub".to_owned(), string(sub));
    }
    fields.insert(
        "claims".to_owned(),
        kind(Kind::StructValue(object(claims.members()))),
    );
    Struct { fields }
}

/// A JSON object as a `Struct`.
pub(crate) fn object(members: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: members
            .iter()
            .map(|(name, value)| (name.clone(), json_value(value)))
            .collect(),
    }
}

/// A JSON value as a protobuf `Value`. Recursion is bounded: claims passed the
/// JOSE layer's depth limit. Numbers become doubles, as in protobuf's JSON mapping.
pub(crate) fn json_value(value: &serde_json::Value) -> Value {
    kind(match value {
        serde_json::Value::Null => Kind::NullValue(NullValue::NullValue.into()),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) => Kind::NumberValue(f),
            None => Kind::StringValue(n.to_string()),
        },
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(members) => Kind::StructValue(object(members)),
    })
}

fn string(s: &str) -> Value {
    kind(Kind::StringValue(s.to_owned()))
}

fn kind(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {

    use std::sync::Arc;

    use portcullis_jose::Claims;
    use serde_json::json;

    use super::*;

    fn s(v: &str) -> Value {
        string(v)
    }

    #[test]
    fn converts_every_json_kind() {
        let v = json!({"n": null, "b": true, "i": 7, "f": 1.5, "s": "x", "a": [1, "y"], "o": {"k": [false]}});
        let serde_json::Value::Object(members) = v else {
            unreachable!()
        };
        let s = object(&members);
        assert_eq!(s.fields["n"].kind, Some(Kind::NullValue(0)));
        assert_eq!(s.fields["b"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(s.fields["i"].kind, Some(Kind::NumberValue(7.0)));
        assert_eq!(s.fields["f"].kind, Some(Kind::NumberValue(1.5)));
        assert_eq!(s.fields["s"], string("x"));
        assert_eq!(
            s.fields["a"].kind,
            Some(Kind::ListValue(ListValue {
                values: vec![kind(Kind::NumberValue(1.0)), string("y")]
            }))
        );
        let Some(Kind::StructValue(inner)) = &s.fields["o"].kind else {
            panic!("{:?}", s.fields["o"])
        };
        assert_eq!(
            inner.fields["k"].kind,
            Some(Kind::ListValue(ListValue {
                values: vec![kind(Kind::BoolValue(false))]
            }))
        );
    }

    #[test]
    fn identity_has_provider_iss_sub_and_claims() {
        let claims =
            Claims::from_json(br#"{"iss":"https://idp","sub":"alice","groups":["dev"]}"#).unwrap();
        let json = br#"{"iss":"https://idp","sub":"alice","groups":["dev"]}"#;
        let parsed = Identity::new(Arc::from("corp"), claims, None, Vec::new());
        // The same identity keeping only its payload's JSON gives the same metadata.
        let compact = Identity::from_payload(Arc::from("corp"), json[..].into(), None, Vec::new());
        for identity in [parsed, compact] {
            let m = identity_metadata(&identity);
            assert_eq!(m.fields["provider"], s("corp"));
            assert_eq!(m.fields["iss"], s("https://idp"));
            assert_eq!(m.fields["sub"], s("alice"));
            let Some(Kind::StructValue(claims)) = &m.fields["claims"].kind else {
                panic!("{m:?}")
            };
            assert_eq!(claims.fields.len(), 3);
            assert_eq!(claims.fields["sub"], s("alice"));
        }
    }

    #[test]
    fn identity_without_iss_or_sub_omits_them() {
        let identity = Identity::new(
            Arc::from("corp"),
            Claims::from_json(b"{}").unwrap(),
            None,
            Vec::new(),
        );
        let m = identity_metadata(&identity);
        assert!(!m.fields.contains_key("iss"));
        assert!(!m.fields.contains_key("sub"));
        assert_eq!(m.fields.len(), 2);
    }
}
