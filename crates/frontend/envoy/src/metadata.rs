//! The verified identity as `google.protobuf.Struct`, for Envoy's dynamic metadata
//! (namespace `envoy.filters.http.ext_authz`): RBAC, routing and access logs can read it.

use std::collections::HashMap;
use std::fmt;

use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, NullValue, Struct, Value};
use portcullis_policy::Identity;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// `{provider, iss, sub, claims}` of a verified identity (`iss`/`sub` when strings);
/// `claims_json` is the allow's payload JSON (read from the request's token), else
/// the identity's own (sessions, introspection).
pub(crate) fn identity_metadata(identity: &Identity, claims_json: Option<&[u8]>) -> Struct {
    let claims = claims_struct(identity, claims_json);
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

/// The claims as a `Struct`, straight from the payload's JSON (one pass, no
/// intermediate map).
fn claims_struct(identity: &Identity, claims_json: Option<&[u8]>) -> Struct {
    let own;
    let json = match claims_json {
        Some(json) => Some(json),
        None => {
            own = identity.claims_json();
            own.as_deref()
        }
    };
    json.and_then(json_object)
        // The JSON verified and parsed as an object once; should it not now (it
        // cannot), the metadata names no claim rather than a wrong one.
        .unwrap_or_default()
}

/// A JSON object as a `Struct`; `None` for anything else.
fn json_object(json: &[u8]) -> Option<Struct> {
    match serde_json::from_slice::<ProtoValue>(json).ok()?.0.kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

/// A protobuf `Value` deserialized from JSON. Numbers become doubles, as in
/// protobuf's JSON mapping. Recursion is bounded: claims passed the JOSE layer's
/// depth limit (and serde_json has its own).
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

    use super::*;

    fn s(v: &str) -> Value {
        string(v)
    }

    /// An identity of provider `corp` for a compact JWS carrying `payload` (the
    /// identity does not verify it again).
    fn identity_of(payload: &[u8]) -> Identity {
        let token = format!("e30.{}.c2ln", portcullis_jose::b64::encode(payload));
        Identity::new(
            Arc::from("corp"),
            Arc::from(token),
            Claims::default(),
            None,
            Vec::new(),
        )
    }

    #[test]
    fn converts_every_json_kind() {
        let json = br#"{"n":null,"b":true,"i":7,"neg":-7,"u":18446744073709551615,"f":1.5,"s":"x\u00e9\"\n","a":[1,"y",[],{}],"o":{"k":[false]}}"#;
        let s = json_object(json).unwrap();
        assert_eq!(s.fields["n"].kind, Some(Kind::NullValue(0)));
        assert_eq!(s.fields["b"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(s.fields["i"].kind, Some(Kind::NumberValue(7.0)));
        assert_eq!(s.fields["neg"].kind, Some(Kind::NumberValue(-7.0)));
        assert_eq!(s.fields["u"].kind, Some(Kind::NumberValue(u64::MAX as f64)));
        assert_eq!(s.fields["f"].kind, Some(Kind::NumberValue(1.5)));
        assert_eq!(s.fields["s"], string("x\u{e9}\"\n"));
        assert_eq!(
            s.fields["a"].kind,
            Some(Kind::ListValue(ListValue {
                values: vec![
                    kind(Kind::NumberValue(1.0)),
                    string("y"),
                    kind(Kind::ListValue(ListValue { values: vec![] })),
                    kind(Kind::StructValue(Struct::default())),
                ]
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
        assert_eq!(json_object(b"[1]"), None);
        assert_eq!(json_object(b"{"), None);
    }

    #[test]
    fn identity_has_provider_iss_sub_and_claims() {
        let json = br#"{"iss":"https://idp","sub":"alice","groups":["dev"]}"#;
        let identity = identity_of(json);
        let m = identity_metadata(&identity, None);
        assert_eq!(m.fields["provider"], s("corp"));
        assert_eq!(m.fields["iss"], s("https://idp"));
        assert_eq!(m.fields["sub"], s("alice"));
        let Some(Kind::StructValue(claims)) = &m.fields["claims"].kind else {
            panic!("{m:?}")
        };
        assert_eq!(claims.fields.len(), 3);
        assert_eq!(claims.fields["sub"], s("alice"));
        // `iss` that is not a string is not promoted.
        let m = identity_metadata(&identity_of(br#"{"iss":42,"sub":"bob"}"#), None);
        assert!(!m.fields.contains_key("iss"));
        assert_eq!(m.fields["sub"], s("bob"));
    }

    #[test]
    fn identity_without_iss_or_sub_omits_them() {
        let m = identity_metadata(&identity_of(b"{}"), None);
        assert!(!m.fields.contains_key("iss"));
        assert!(!m.fields.contains_key("sub"));
        assert_eq!(m.fields.len(), 2);
    }
}
