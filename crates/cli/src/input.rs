//! Reading tokens and key files.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// The token from the argument, or from stdin when it is `-` or absent; surrounding whitespace trimmed.
pub(crate) fn token(arg: Option<&str>) -> Result<String> {
    let raw = match arg {
        Some(t) if t != "-" => t.to_owned(),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut s)
                .context("reading the token from stdin")?;
            s
        }
    };
    let token = raw.trim();
    if token.is_empty() {
        bail!("no token given (pass it as an argument or on stdin)");
    }
    Ok(token.to_owned())
}

/// A whole (small) file.
pub(crate) fn file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Parses NAME=VALUE where VALUE is JSON if it parses, else a string.
pub(crate) fn name_value(arg: &str) -> Result<(String, serde_json::Value)> {
    let Some((name, value)) = arg.split_once('=') else {
        bail!("{arg:?} is not NAME=VALUE");
    };
    if name.is_empty() {
        bail!("{arg:?} has an empty name");
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
    Ok((name.to_owned(), value))
}
