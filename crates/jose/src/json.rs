//! Strict JSON: duplicate object members are an error (RFC 7515 §5.2 lets us
//! refuse them, RFC 8725 says to) and nesting is bounded.
//!
//! `serde_json::Value` silently keeps the last duplicate, so we drive serde_json's
//! parser with our own visitor that builds the same `Value` but refuses repeats.
//!
//! [`parse_object_keeping`] applies the same checks to every byte but builds values
//! only for the members its caller will read: the others are checked in place, with
//! no allocation beyond the names a duplicate check must remember.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How deep objects and arrays may nest inside a token's header or payload.
pub const MAX_DEPTH: usize = 16;

/// Parses `bytes` as one JSON value with no duplicate members and at most `MAX_DEPTH` levels.
///
/// # Errors
/// The parser's message: syntax, invalid UTF-8, a duplicate member, nesting too deep.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Parses a JSON object strictly (see [`parse_strict`]).
///
/// # Errors
/// As [`parse_strict`], or "not an object".
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse_strict(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".to_owned()),
    }
}

/// Parses a JSON object as [`parse_object`] does, checking every member the same way,
/// but keeps (and so builds) only the top-level members whose names `keep` accepts.
///
/// # Errors
/// As [`parse_object`]: a member left out is still refused for a duplicate name, too
/// deep a nesting, invalid UTF-8 or a number out of range.
pub fn parse_object_keeping(
    bytes: &[u8],
    keep: &dyn Fn(&str) -> bool,
) -> Result<Map<String, Value>, String> {
    // Anything but an object is refused by the full parse, in its own words.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return parse_object(bytes);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let members = serde::Deserializer::deserialize_any(&mut de, KeepingVisitor { keep })
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(members)
}

/// The top level of [`parse_object_keeping`]: an object, some members built.
struct KeepingVisitor<'a> {
    keep: &'a dyn Fn(&str) -> bool,
}

impl<'de> Visitor<'de> for KeepingVisitor<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inner = StrictSeed { depth: 0 }.nested()?;
        let mut seen = Seen::default();
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(NameSeed)? {
            if (self.keep)(&key) {
                let value = map.next_value_seed(inner)?;
                seen.insert::<A::Error>(key.clone())?;
                out.insert(key.into_owned(), value);
            } else {
                map.next_value_seed(CheckSeed(inner))?;
                seen.insert::<A::Error>(key)?;
            }
        }
        Ok(out)
    }
}

/// The names of one object's members so far, to refuse a repeat. Objects in tokens
/// are small: a short list is searched in order, each name behind a cheap hash of
/// its bytes so that most comparisons are one integer's; past 16 names, a tree, so
/// that a payload of many names costs a logarithm per name, not a scan.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<(u32, Cow<'de, str>)>,
    many: BTreeSet<Cow<'de, str>>,
}

impl<'de> Seen<'de> {
    const FEW: usize = 16;

    fn insert<E: serde::de::Error>(&mut self, name: Cow<'de, str>) -> Result<(), E> {
        let repeated = if self.many.is_empty() && self.few.len() < Self::FEW {
            // FNV-1a: a filter only, equality decides.
            let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            let repeated = self.few.iter().any(|(h, n)| *h == hash && *n == name);
            if !repeated {
                self.few.push((hash, name.clone()));
            }
            repeated
        } else {
            if self.many.is_empty() {
                self.many.extend(self.few.drain(..).map(|(_, n)| n));
            }
            !self.many.insert(name.clone())
        };
        if repeated {
            return Err(E::custom(format_args!(
                "duplicate member {:?}",
                crate::error::printable(&name)
            )));
        }
        Ok(())
    }
}

/// A member's name, borrowed from the input when it has no escapes.
struct NameSeed;

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A value checked as [`StrictSeed`] checks it (no duplicate member at any depth,
/// bounded nesting, finite numbers), without building it.
#[derive(Clone, Copy)]
struct CheckSeed(StrictSeed);

impl<'de> DeserializeSeed<'de> for CheckSeed {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CheckSeed {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        // As StrictSeed: a number `Value` cannot hold is refused, read or not.
        Number::from_f64(v)
            .map(drop)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = CheckSeed(self.0.nested()?);
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = CheckSeed(self.0.nested()?);
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(NameSeed)? {
            map.next_value_seed(inner)?;
            seen.insert::<A::Error>(key)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct StrictSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl StrictSeed {
    fn nested<E: serde::de::Error>(self) -> Result<StrictSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH}")));
        }
        Ok(StrictSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for StrictSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            // One search per member: insert, or find the repeat.
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    return Err(A::Error::custom(format_args!(
                        "duplicate member {:?}",
                        crate::error::printable(slot.key())
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"x":{"a":1,"a":1}}"#).is_err());
        assert!(parse_strict(br#"[{"a":1},{"a":1}]"#).is_ok());
        // Escapes that spell the same name are the same member.
        assert!(parse_strict(br#"{"alg":1,"\u0061lg":2}"#).is_err());
    }

    #[test]
    fn bounds_depth() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(parse_strict(deep.as_bytes()).is_err());
        let very_deep = "[".repeat(100_000);
        assert!(parse_strict(very_deep.as_bytes()).is_err());
    }

    #[test]
    fn rejects_trailing_data_bad_utf8_and_huge_numbers() {
        assert!(parse_strict(br#"{} {}"#).is_err());
        assert!(parse_strict(b"{\"a\":\"\xff\"}").is_err());
        assert!(parse_strict(br#"{"a":"\ud800"}"#).is_err());
        assert!(parse_strict(br#"{"exp":1e309}"#).is_err());
        assert!(parse_object(b"[]").is_err());
    }

    /// Every input of the other tests, and more: `parse_object_keeping` refuses what
    /// `parse_object` refuses, whatever it keeps, and keeps exactly what it is asked for.
    #[test]
    fn keeping_refuses_what_the_full_parse_refuses() {
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        let ok_deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        let many: String = (0..40).map(|i| format!("\"m{i}\":{i},")).collect();
        let many_dup = format!("{{{many}\"m7\":0}}");
        let many_ok = format!("{{{many}\"z\":0}}");
        let inputs: Vec<Vec<u8>> = [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"a":1,"b":{"x":1,"x":2}}"#,
            br#"{"b":[{"x":1},{"x":1}]}"#,
            br#"{"alg":1,"\u0061lg":2}"#,
            br#"{"a":1,"\u0061":{}}"#,
            br#"{} {}"#,
            b"{\"a\":\"\xff\"}",
            b"{\"\xff\":1}",
            br#"{"a":"\ud800"}"#,
            br#"{"exp":1e309}"#,
            br#"{"b":[1e309]}"#,
            br#"{"b":{"c":-1e400}}"#,
            b"[]",
            b"1",
            b"\"s\"",
            b"null",
            b"{",
            br#"{"a":}"#,
            br#"{"a":1,}"#,
            br#"{"a":[1,]}"#,
            br#"{"iss":"x","sub":"y","aud":["a","b"],"exp":1,"nested":{"k":[1,{"q":true}]}}"#,
            b"{}",
        ]
        .iter()
        .map(|b| b.to_vec())
        .chain([deep, ok_deep, many_dup, many_ok].map(String::into_bytes))
        .collect();
        let keeps: [&dyn Fn(&str) -> bool; 4] =
            [&|_| true, &|_| false, &|n| n == "a" || n == "iss", &|n| {
                n.starts_with('m') || n == "b"
            }];
        for input in &inputs {
            let full = parse_object(input);
            for keep in keeps {
                let kept = parse_object_keeping(input, keep);
                match (&full, &kept) {
                    (Ok(all), Ok(some)) => {
                        let expected: Map<String, Value> = all
                            .iter()
                            .filter(|(name, _)| keep(name))
                            .map(|(n, v)| (n.clone(), v.clone()))
                            .collect();
                        assert_eq!(some, &expected, "{}", String::from_utf8_lossy(input));
                    }
                    (Err(_), Err(_)) => {}
                    _ => panic!(
                        "{}: full {full:?}, keeping {kept:?}",
                        String::from_utf8_lossy(input)
                    ),
                }
            }
        }
    }

    #[test]
    fn keeping_refuses_a_non_object_in_the_full_parse_s_words() {
        for input in [&b"[]"[..], b" 1", b"\"s\"", b"null", b"", b"[1,"] {
            assert_eq!(
                parse_object_keeping(input, &|_| true).unwrap_err(),
                parse_object(input).unwrap_err()
            );
        }
    }

    #[test]
    fn keeping_names_the_duplicate_as_the_full_parse_does() {
        let keep_none: &dyn Fn(&str) -> bool = &|_| false;
        let e = parse_object_keeping(br#"{"a":1,"b":{"x":1,"x":2}}"#, keep_none).unwrap_err();
        assert!(e.contains("duplicate member \"x\""), "{e}");
        let e = parse_object_keeping(br#"{"a":1,"a":2}"#, &|n| n == "a").unwrap_err();
        assert!(e.contains("duplicate member \"a\""), "{e}");
    }
}
