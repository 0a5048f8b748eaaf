//! The verified identity as `google.protobuf.Struct`, for Envoy's dynamic metadata
//! (namespace `envoy.filters.http.ext_authz`): RBAC, routing and access logs can read it.
//!
//! The `Struct` is written as protobuf bytes straight from the payload's JSON, in one
//! pass: no tree of `Value`s, maps and strings is built, hashed, measured, encoded and
//! freed for every `Check`. That tree and its encoding were 39 k of a cached `Check`'s
//! 137,718 instructions; the whole `Check` was 115,002 after, 112,933 on 2026-12-04
//! (`bench/profile --scenarios 5`).

use std::fmt;

use portcullis_policy::Identity;
use prost::encoding::{WireType, encode_key, encode_varint};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// `{provider, iss, sub, claims}` of a verified identity (`iss`/`sub` when strings),
/// as the bytes of a `google.protobuf.Struct`; `claims_json` is the allow's payload
/// JSON (read from the request's token), else the identity's own (sessions,
/// introspection).
pub(crate) fn identity_metadata(identity: &Identity, claims_json: Option<&[u8]>) -> Vec<u8> {
    let own;
    let json = match claims_json {
        Some(json) => Some(json),
        None => {
            own = identity.claims_json();
            own.as_deref()
        }
    };
    let mut claims = Vec::with_capacity(json.map_or(0, |j| j.len() + j.len() / 2));
    let promoted = json
        .and_then(|json| claims_struct(json, &mut claims))
        // The JSON verified and parsed as an object once; should it not now (it
        // cannot), the metadata names no claim rather than a wrong one.
        .unwrap_or_else(|| {
            claims.clear();
            Promoted::default()
        });
    let mut out = Vec::with_capacity(claims.len() + identity.provider.len() + 64);
    struct_entry(&mut out, "provider", |out| {
        string_value(out, identity.provider.as_bytes());
    });
    for (name, value) in [("iss", promoted.iss), ("sub", promoted.sub)] {
        if let Some(range) = value {
            struct_entry(&mut out, name, |out| out.extend_from_slice(&claims[range]));
        }
    }
    struct_entry(&mut out, "claims", |out| {
        bytes_field(out, VALUE_STRUCT, &claims)
    });
    out
}

/// Where, in the claims' encoded `Struct`, the `Value`s of top-level `iss` and `sub`
/// are, when they are strings.
#[derive(Default)]
struct Promoted {
    iss: Option<std::ops::Range<usize>>,
    sub: Option<std::ops::Range<usize>>,
}

/// Writes the JSON object `json` as the fields of a `Struct` into `out`; `None` for
/// anything that is not a JSON object.
fn claims_struct(json: &[u8], out: &mut Vec<u8>) -> Option<Promoted> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let promoted = de
        .deserialize_map(FieldsVisitor { out, promote: true })
        .ok()?;
    de.end().ok()?;
    Some(promoted)
}

// Field numbers of `google.protobuf.Struct`, `.Value` and `.ListValue`.
const STRUCT_FIELDS: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_NULL: u32 = 1;
const VALUE_NUMBER: u32 = 2;
const VALUE_STRING: u32 = 3;
const VALUE_BOOL: u32 = 4;
const VALUE_STRUCT: u32 = 5;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;

/// Begins a length-delimited field `tag` (every tag here is under 16: a one-byte
/// key) whose length is not known yet, reserving one byte for it: most fields are
/// under 128 bytes, so [`end_field`] usually writes the length in place. Returns where
/// the content starts.
fn begin_field(out: &mut Vec<u8>, tag: u32) -> usize {
    debug_assert!(
        tag < 16,
        "a key of more than one byte: cancel_field would cut it"
    );
    encode_key(tag, WireType::LengthDelimited, out);
    out.push(0);
    out.len()
}

/// Ends the field whose content began at `start`: its length goes in the reserved
/// byte, or, at 128 bytes and more, in the wider varint it needs, the content moved up.
fn end_field(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
        return;
    }
    let mut varint = [0u8; 10];
    let mut free = &mut varint[..];
    encode_varint(len as u64, &mut free);
    let width = 10 - free.len();
    out.resize(out.len() + width - 1, 0);
    out.copy_within(start..start + len, start + width - 1);
    out[start - 1..start - 1 + width].copy_from_slice(&varint[..width]);
}

/// Takes back a field begun with [`begin_field`] that turned out not to be there.
fn cancel_field(out: &mut Vec<u8>, start: usize) {
    out.truncate(start - 2);
}

/// One `fields` entry of a `Struct`: `name` and the `Value` that `value` writes.
fn struct_entry(out: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    let entry = begin_field(out, STRUCT_FIELDS);
    bytes_field(out, ENTRY_KEY, name.as_bytes());
    let start = begin_field(out, ENTRY_VALUE);
    value(out);
    end_field(out, start);
    end_field(out, entry);
}

fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn string_value(out: &mut Vec<u8>, s: &[u8]) {
    bytes_field(out, VALUE_STRING, s);
}

fn number_value(out: &mut Vec<u8>, n: f64) {
    encode_key(VALUE_NUMBER, WireType::SixtyFourBit, out);
    out.extend_from_slice(&n.to_le_bytes());
}

/// The fields of one JSON object, written as `Struct` entries. `promote` (the top
/// level only) notes where string `iss` and `sub` went.
struct FieldsVisitor<'a> {
    out: &'a mut Vec<u8>,
    promote: bool,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Promoted;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Promoted, A::Error> {
        let mut promoted = Promoted::default();
        loop {
            let entry = begin_field(self.out, STRUCT_FIELDS);
            let Some(key) = map.next_key_seed(KeySeed(self.out))? else {
                cancel_field(self.out, entry);
                return Ok(promoted);
            };
            let start = begin_field(self.out, ENTRY_VALUE);
            map.next_value_seed(ValueSeed(self.out))?;
            let value_len = self.out.len() - start;
            end_field(self.out, start);
            end_field(self.out, entry);
            // The value is the entry's last field, so its bytes end the output.
            let value = self.out.len() - value_len..self.out.len();
            if self.promote {
                // A key seen twice (the JOSE layer refuses that; an identity's own JSON
                // never has it) counts as its last value, as protobuf reads map entries.
                let string = (self.out.get(value.start) == Some(&string_tag())).then_some(value);
                match key {
                    TopKey::Iss => promoted.iss = string,
                    TopKey::Sub => promoted.sub = string,
                    TopKey::Other => {}
                }
            }
        }
    }
}

/// The first byte of a `Value` holding `string_value`.
const fn string_tag() -> u8 {
    ((VALUE_STRING << 3) | WireType::LengthDelimited as u32) as u8
}

/// A key, worth noting at the top level.
enum TopKey {
    Iss,
    Sub,
    Other,
}

/// Writes an object's key as the entry's `key` field.
struct KeySeed<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = TopKey;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<TopKey, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = TopKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, s: &str) -> Result<TopKey, E> {
        bytes_field(self.0, ENTRY_KEY, s.as_bytes());
        Ok(match s {
            "iss" => TopKey::Iss,
            "sub" => TopKey::Sub,
            _ => TopKey::Other,
        })
    }
}

/// Writes one JSON value as the fields of a `google.protobuf.Value` (inside a field
/// the caller began). Numbers become doubles, as in protobuf's JSON mapping.
/// Recursion is bounded: claims passed the JOSE layer's depth limit (and serde_json
/// has its own).
struct ValueSeed<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        encode_key(VALUE_NULL, WireType::Varint, self.0);
        encode_varint(0, self.0);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        encode_key(VALUE_BOOL, WireType::Varint, self.0);
        encode_varint(u64::from(b), self.0);
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        number_value(self.0, n as f64);
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        number_value(self.0, n as f64);
        Ok(())
    }

    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        number_value(self.0, n);
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        string_value(self.0, s.as_bytes());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let list = begin_field(self.0, VALUE_LIST);
        loop {
            let item = begin_field(self.0, LIST_VALUES);
            if seq.next_element_seed(ValueSeed(self.0))?.is_none() {
                cancel_field(self.0, item);
                break;
            }
            end_field(self.0, item);
        }
        end_field(self.0, list);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let start = begin_field(self.0, VALUE_STRUCT);
        FieldsVisitor {
            out: self.0,
            promote: false,
        }
        .visit_map(map)?;
        end_field(self.0, start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use envoy_types::pb::google::protobuf::value::Kind;
    use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};
    use portcullis_jose::Claims;
    use prost::Message as _;

    use super::*;

    fn s(v: &str) -> Value {
        kind(Kind::StringValue(v.to_owned()))
    }

    fn kind(kind: Kind) -> Value {
        Value { kind: Some(kind) }
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

    /// The metadata of `payload`, decoded as Envoy decodes it.
    fn decoded(payload: &[u8]) -> Struct {
        let bytes = identity_metadata(&identity_of(payload), Some(payload));
        Struct::decode(&bytes[..]).unwrap()
    }

    fn claims_of(m: &Struct) -> &Struct {
        let Some(Kind::StructValue(claims)) = &m.fields["claims"].kind else {
            panic!("{m:?}")
        };
        claims
    }

    /// The same conversion through serde_json's tree and prost's types: the
    /// reference the one-pass writer must agree with.
    fn reference(json: &serde_json::Value) -> Value {
        kind(match json {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(*b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(v) => Kind::StringValue(v.clone()),
            serde_json::Value::Array(a) => Kind::ListValue(ListValue {
                values: a.iter().map(reference).collect(),
            }),
            serde_json::Value::Object(o) => Kind::StructValue(Struct {
                fields: o.iter().map(|(k, v)| (k.clone(), reference(v))).collect(),
            }),
        })
    }

    #[test]
    fn converts_every_json_kind() {
        let json = br#"{"n":null,"b":true,"i":7,"neg":-7,"u":18446744073709551615,"f":1.5,"s":"x\u00e9\"\n","a":[1,"y",[],{}],"o":{"k":[false]}}"#;
        let m = decoded(json);
        let c = claims_of(&m);
        assert_eq!(c.fields["n"].kind, Some(Kind::NullValue(0)));
        assert_eq!(c.fields["b"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(c.fields["i"].kind, Some(Kind::NumberValue(7.0)));
        assert_eq!(c.fields["neg"].kind, Some(Kind::NumberValue(-7.0)));
        assert_eq!(c.fields["u"].kind, Some(Kind::NumberValue(u64::MAX as f64)));
        assert_eq!(c.fields["f"].kind, Some(Kind::NumberValue(1.5)));
        assert_eq!(c.fields["s"], s("x\u{e9}\"\n"));
        assert_eq!(
            c.fields["a"].kind,
            Some(Kind::ListValue(ListValue {
                values: vec![
                    kind(Kind::NumberValue(1.0)),
                    s("y"),
                    kind(Kind::ListValue(ListValue { values: vec![] })),
                    kind(Kind::StructValue(Struct::default())),
                ]
            }))
        );
        let Some(Kind::StructValue(inner)) = &c.fields["o"].kind else {
            panic!("{:?}", c.fields["o"])
        };
        assert_eq!(
            inner.fields["k"].kind,
            Some(Kind::ListValue(ListValue {
                values: vec![kind(Kind::BoolValue(false))]
            }))
        );
    }

    #[test]
    fn agrees_with_the_tree_conversion() {
        let long = "x".repeat(300);
        let many: String = (0..200).map(|i| format!("\"k{i}\":{i},")).collect();
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        // Lengths of one, two and three varint bytes, at every level.
        let huge = "y".repeat(20_000);
        let payloads = [
            "{}".to_owned(),
            r#"{"iss":"https://idp","sub":"alice","aud":["a","b"],"exp":1700000000,"iat":1.5e9}"#
                .to_owned(),
            format!(
                r#"{{"long":"{long}","nested":{{"long":"{long}","l":[{{"long":"{long}"}}]}}}}"#
            ),
            format!("{{{many}\"last\":true}}"),
            format!(r#"{{"huge":"{huge}","l":["{huge}",{{"h":"{huge}"}}],"x":"{long}"}}"#),
            format!(r#"{{"a":"{}","b":"{}"}}"#, "z".repeat(127), "z".repeat(128)),
            format!(r#"{{"deep":{deep},"o":{{"a":{{"b":{{"c":{{}}}}}}}}}}"#),
            r#"{"":"empty key","\u0000":"nul","é😀":"ü\ud83d\ude00","neg0":-0.0,"big":1e308}"#
                .to_owned(),
        ];
        for payload in &payloads {
            let json: serde_json::Value = serde_json::from_str(payload).unwrap();
            let m = decoded(payload.as_bytes());
            assert_eq!(
                m.fields["claims"],
                reference(&json),
                "{}",
                &payload[..payload.len().min(80)]
            );
        }
    }

    #[test]
    fn identity_has_provider_iss_sub_and_claims() {
        let json = br#"{"iss":"https://idp","sub":"alice","groups":["dev"]}"#;
        // From the identity's own claims (no payload from the request) and from the
        // request's payload: the same.
        let own = Struct::decode(&identity_metadata(&identity_of(json), None)[..]).unwrap();
        let m = decoded(json);
        assert_eq!(own, m);
        assert_eq!(m.fields["provider"], s("corp"));
        assert_eq!(m.fields["iss"], s("https://idp"));
        assert_eq!(m.fields["sub"], s("alice"));
        let claims = claims_of(&m);
        assert_eq!(claims.fields.len(), 3);
        assert_eq!(claims.fields["sub"], s("alice"));
        // `iss` that is not a string is not promoted; nor are nested ones.
        let m = decoded(br#"{"iss":42,"sub":"bob","o":{"iss":"inner","sub":"inner"}}"#);
        assert!(!m.fields.contains_key("iss"));
        assert_eq!(m.fields["sub"], s("bob"));
        let m = decoded(br#"{"o":{"iss":"inner","sub":"inner"},"sub":["x"]}"#);
        assert_eq!(m.fields.len(), 2, "{m:?}");
        // A key twice: its last value, as Envoy reads the claims' map entries.
        let m = decoded(br#"{"sub":"first","iss":"a","sub":7,"iss":"b"}"#);
        assert!(!m.fields.contains_key("sub"), "{m:?}");
        assert_eq!(m.fields["iss"], s("b"));
        assert_eq!(claims_of(&m).fields["iss"], s("b"));
        assert_eq!(
            claims_of(&m).fields["sub"].kind,
            Some(Kind::NumberValue(7.0))
        );
    }

    #[test]
    fn identity_without_iss_or_sub_omits_them() {
        let m = decoded(b"{}");
        assert!(!m.fields.contains_key("iss"));
        assert!(!m.fields.contains_key("sub"));
        assert_eq!(m.fields.len(), 2);
        assert_eq!(claims_of(&m), &Struct::default());
    }

    #[test]
    fn anything_but_an_object_names_no_claim() {
        for json in [&b"[1]"[..], b"{", b"1", b"{\"a\":1} x", b""] {
            let bytes = identity_metadata(&identity_of(b"{}"), Some(json));
            let m = Struct::decode(&bytes[..]).unwrap();
            let want: HashMap<_, _> = [
                ("provider".to_owned(), s("corp")),
                (
                    "claims".to_owned(),
                    kind(Kind::StructValue(Struct::default())),
                ),
            ]
            .into();
            assert_eq!(m.fields, want, "{json:?}");
        }
    }
}
