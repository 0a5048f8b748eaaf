//! The verified identity as `google.protobuf.Struct`, for Envoy's dynamic metadata
//! (namespace `envoy.filters.http.ext_authz`): RBAC, routing and access logs can read it.

use std::collections::HashMap;
use std::fmt;

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, NullValue, Struct, Value};
use portcullis_policy::Identity;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Map;

/// `{provider, iss, sub, claims}` of a verified identity (`iss`/`sub` when strings).
pub(crate) fn identity_metadata(identity: &Identity) -> Struct {
    let claims = claims_struct(identity);
    let mut fields = HashMap::with_capacity(4);
    fields.insert("provider".to_owned(), string(&identity.provider));
    for name in ["iss", "sub"] {
        if let Some(
            v @ Value {
                kind: Some(Kind::StringValue(_)),
            },
        ) = claims.fields.get(name)
        {
            fields.insert(name.to_owned(), v.clone());
        }
    }
    fields.insert("claims".to_owned(), kind(Kind::StructValue(claims)));
    Struct { fields }
}

/// The claims as a `Struct`: straight from the payload's JSON when the identity
/// keeps its token (one pass, no intermediate map), else from the parsed claims.
fn claims_struct(identity: &Identity) -> Struct {
    match identity.claims_json() {
        // The JSON verified and parsed as an object once; should it not now (it
        // cannot), the metadata names no claim rather than a wrong one.
        Some(json) => serde_json::from_slice::<ProtoValue>(&json)
            .ok()
            .and_then(|v| match v.0.kind {
                Some(Kind::StructValue(s)) => Some(s),
                _ => None,
            })
            .unwrap_or_default(),
        None => object(identity.claims().members()),
    }
}

/// A protobuf `Value` deserialized from JSON, with the same mapping as
/// [`json_value`] (numbers become doubles).
struct ProtoValue(Value);

impl<'de> Deserialize<'de> for ProtoValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProtoValue, D::Error> {
        deserializer.deserialize_any(ProtoValueVisitor)
    }
}

struct ProtoValueVisitor;

impl<'de> Visitor<'de> for ProtoValueVisitor {
    type Value = ProtoValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::NullValue(
            NullValue::NullValue.into(),
        ))))
    }

    fn visit_bool<E>(self, b: bool) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::BoolValue(b))))
    }

    fn visit_i64<E>(self, n: i64) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::NumberValue(n as f64))))
    }

    fn visit_u64<E>(self, n: u64) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::NumberValue(n as f64))))
    }

    fn visit_f64<E>(self, n: f64) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::NumberValue(n))))
    }

    fn visit_str<E>(self, s: &str) -> Result<ProtoValue, E> {
        Ok(ProtoValue(string(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<ProtoValue, E> {
        Ok(ProtoValue(kind(Kind::StringValue(s))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ProtoValue, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(ProtoValue(v)) = seq.next_element()? {
            values.push(v);
        }
        Ok(ProtoValue(kind(Kind::ListValue(ListValue { values }))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProtoValue, A::Error> {
        let mut fields = HashMap::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((name, ProtoValue(v))) = map.next_entry::<String, ProtoValue>()? {
            fields.insert(name, v);
        }
        Ok(ProtoValue(kind(Kind::StructValue(Struct { fields }))))
    }
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

    /// A compact JWS carrying `payload` (the identity does not verify it again).
    fn token_of(payload: &[u8]) -> Arc<str> {
        Arc::from(format!(
            "e30.{}.c2ln",
            portcullis_jose::b64::encode(payload)
        ))
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
        let compact = Identity::from_token(
            Arc::from("corp"),
            token_of(json),
            Claims::default(),
            None,
            Vec::new(),
        );
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
    fn json_and_parsed_claims_give_the_same_struct() {
        let json = br#"{"n":null,"b":true,"i":-7,"u":18446744073709551615,"f":1.5e300,"s":"x\u00e9\"\n","a":[1,"y",[],{}],"o":{"k":[false,{"deep":[null]}]},"iss":42,"sub":"bob"}"#;
        let claims = Claims::from_json(json).unwrap();
        let parsed = Identity::new(Arc::from("p"), claims, None, Vec::new());
        let compact = Identity::from_token(
            Arc::from("p"),
            token_of(json),
            Claims::default(),
            None,
            Vec::new(),
        );
        let (a, b) = (identity_metadata(&parsed), identity_metadata(&compact));
        assert_eq!(a, b);
        // `iss` is not a string here: not promoted, as with parsed claims.
        assert!(!a.fields.contains_key("iss"));
        assert_eq!(a.fields["sub"], s("bob"));
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
