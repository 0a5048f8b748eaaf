//! Input documents: every YAML document of every source, as JSON values, with
//! where it came from.

use serde_json::Value;

use crate::{ImportError, Source, Warning};

/// One YAML document.
#[derive(Clone, Debug)]
pub(crate) struct Doc {
    /// The source's name.
    pub(crate) file: String,
    /// Position in the source, from 1.
    pub(crate) index: usize,
    /// The document.
    pub(crate) value: Value,
}

impl Doc {
    /// `kind` (empty when absent).
    pub(crate) fn kind(&self) -> &str {
        str_at(&self.value, &["kind"]).unwrap_or("")
    }

    /// `metadata.name` (empty when absent).
    pub(crate) fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"]).unwrap_or("")
    }

    /// `metadata.namespace`.
    pub(crate) fn namespace(&self) -> Option<&str> {
        str_at(&self.value, &["metadata", "namespace"])
    }

    /// `spec` (`Null` when absent).
    pub(crate) fn spec(&self) -> &Value {
        self.value.get("spec").unwrap_or(&Value::Null)
    }

    /// `FILE: KIND NAMESPACE/NAME` for messages.
    pub(crate) fn origin(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}: {} {ns}/{}", self.file, self.kind(), self.name()),
            None => format!("{}: {} {}", self.file, self.kind(), self.name()),
        }
    }

    /// A warning about this document.
    pub(crate) fn warn(&self, warnings: &mut Vec<Warning>, message: impl Into<String>) {
        warnings.push(Warning {
            origin: self.origin(),
            message: message.into(),
        });
    }

    /// An error about this document.
    pub(crate) fn invalid(&self, what: impl Into<String>) -> ImportError {
        ImportError::InvalidDocument {
            file: self.file.clone(),
            document: self.index,
            what: what.into(),
        }
    }
}

/// Every non-empty document of every source; with `k8s`, a `kind: List` is
/// replaced by its items.
pub(crate) fn read_all(sources: &[Source], k8s: bool) -> Result<Vec<Doc>, ImportError> {
    let mut docs = Vec::new();
    for source in sources {
        let values: Vec<Value> =
            serde_saphyr::from_multiple(&source.text).map_err(|e| ImportError::InvalidYaml {
                file: source.name.clone(),
                source: Box::new(e),
            })?;
        for (i, value) in values.into_iter().enumerate() {
            let index = i + 1;
            if value.is_null() {
                continue;
            }
            if !value.is_object() {
                return Err(ImportError::InvalidDocument {
                    file: source.name.clone(),
                    document: index,
                    what: "not a mapping".to_owned(),
                });
            }
            let items = match (k8s, str_at(&value, &["kind"])) {
                (true, Some("List")) => value
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![value],
            };
            for value in items {
                docs.push(Doc {
                    file: source.name.clone(),
                    index,
                    value,
                });
            }
        }
    }
    Ok(docs)
}

/// The string at `path` (object keys).
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

/// The value at `path` (object keys).
pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(*k))
}

/// The array at `key` (empty when absent or not an array).
pub(crate) fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The strings of the array at `key` (non-strings are skipped).
pub(crate) fn strings(value: &Value, key: &str) -> Vec<String> {
    list(value, key)
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect()
}

/// The keys of the object `value` other than `known`.
pub(crate) fn unknown_keys(value: &Value, known: &[&str]) -> Vec<String> {
    value
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !known.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A boolean at `key` (`None` when absent or not a boolean).
pub(crate) fn flag(value: &Value, key: &str) -> Option<bool> {
    value.get(key).and_then(Value::as_bool)
}
