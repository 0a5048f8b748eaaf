//! How a claim's value becomes header text: `csv` (default), `json` or `first`.
//!
//! - `csv`: a string as it is; a number or boolean as JSON; an array's elements
//!   joined with `,`. When an element is no scalar, or a string element holds a `,`
//!   or a `"`, joining would be ambiguous: the whole array is written as compact
//!   JSON instead. An object is compact JSON.
//! - `json`: compact JSON of the value, whatever it is (a string is quoted).
//! - `first`: the first element of an array (rendered as `csv` renders a lone
//!   value), the value itself otherwise; an empty array sets no header.
//!
//! The text is never altered afterwards: a value holding a control character
//! (CR, LF, NUL, TAB, DEL...) is refused by [`super::Template::render`].

use std::fmt;

use serde_json::Value;

/// A claim header's format.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub enum ClaimFormat {
    /// Elements joined with `,` (JSON when that would be ambiguous).
    #[default]
    Csv,
    /// The first element of an array.
    First,
    /// Compact JSON.
    Json,
}

impl ClaimFormat {
    /// Every format, as written in the config.
    pub const NAMES: [&'static str; 3] = ["csv", "json", "first"];

    /// The format named `name` (`csv`, `json`, `first`).
    pub fn from_name(name: &str) -> Option<ClaimFormat> {
        match name {
            "csv" => Some(ClaimFormat::Csv),
            "first" => Some(ClaimFormat::First),
            "json" => Some(ClaimFormat::Json),
            _ => None,
        }
    }

    /// Its name in the config.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClaimFormat::Csv => "csv",
            ClaimFormat::First => "first",
            ClaimFormat::Json => "json",
        }
    }

    /// Appends `value` in this format to `out`. `false`: nothing to write (the
    /// first element of an empty array).
    pub(crate) fn push(self, out: &mut String, value: &Value) -> bool {
        match (self, value) {
            (ClaimFormat::Json, v) => push_json(out, v),
            (ClaimFormat::First, Value::Array(items)) => match items.first() {
                Some(first) => push_scalar(out, first),
                None => return false,
            },
            (ClaimFormat::Csv, Value::Array(items)) => {
                if items.iter().all(joins_plainly) {
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        push_scalar(out, item);
                    }
                } else {
                    push_json(out, value);
                }
            }
            (ClaimFormat::Csv | ClaimFormat::First, v) => push_scalar(out, v),
        }
        true
    }
}

impl fmt::Display for ClaimFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an array element can be joined with `,` and read back one way only.
fn joins_plainly(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains([',', '"']),
        Value::Bool(_) | Value::Number(_) => true,
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// A string as it is, `null` as nothing, anything else as compact JSON.
fn push_scalar(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        other => push_json(out, other),
    }
}

fn push_json(out: &mut String, v: &Value) {
    // Writing JSON into a String cannot fail; should it, the header is empty
    // rather than wrong.
    if let Ok(text) = serde_json::to_string(v) {
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(format: ClaimFormat, v: Value) -> Option<String> {
        let mut out = String::new();
        format.push(&mut out, &v).then_some(out)
    }

    #[test]
    fn renders_arrays_in_each_format() {
        let groups = json!(["admins", "dev ops", 7, true]);
        assert_eq!(
            render(ClaimFormat::Csv, groups.clone()).as_deref(),
            Some("admins,dev ops,7,true")
        );
        assert_eq!(
            render(ClaimFormat::Json, groups.clone()).as_deref(),
            Some(r#"["admins","dev ops",7,true]"#)
        );
        assert_eq!(
            render(ClaimFormat::First, groups).as_deref(),
            Some("admins")
        );
        assert_eq!(render(ClaimFormat::First, json!([])), None);
        assert_eq!(render(ClaimFormat::Csv, json!([])).as_deref(), Some(""));
    }

    #[test]
    fn csv_turns_to_json_when_joining_is_ambiguous() {
        for v in [
            json!(["a,b", "c"]),
            json!(["say \"hi\"", "c"]),
            json!(["a", ["b"]]),
            json!(["a", {"b": 1}]),
            json!(["a", null]),
        ] {
            assert_eq!(
                render(ClaimFormat::Csv, v.clone()),
                Some(v.to_string()),
                "{v}"
            );
        }
    }

    #[test]
    fn renders_objects_as_json_and_scalars_plainly() {
        let o = json!({"roles": ["a", "b"], "n": 1});
        for f in [ClaimFormat::Csv, ClaimFormat::First, ClaimFormat::Json] {
            assert_eq!(render(f, o.clone()), Some(o.to_string()), "{f}");
        }
        assert_eq!(
            render(ClaimFormat::Csv, json!("alice")).as_deref(),
            Some("alice")
        );
        assert_eq!(render(ClaimFormat::First, json!(42)).as_deref(), Some("42"));
        assert_eq!(
            render(ClaimFormat::Json, json!("alice")).as_deref(),
            Some("\"alice\"")
        );
        assert_eq!(
            render(ClaimFormat::First, json!([{"a": 1}])).as_deref(),
            Some(r#"{"a":1}"#)
        );
    }

    #[test]
    fn json_escapes_what_csv_cannot_carry() {
        assert_eq!(
            render(ClaimFormat::Json, json!(["a\r\nx-admin: 1"])).as_deref(),
            Some(r#"["a\r\nx-admin: 1"]"#)
        );
    }
}
