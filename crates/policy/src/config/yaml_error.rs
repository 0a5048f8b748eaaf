//! YAML and shape errors in words a user can act on: the line of the mistake, the
//! full field path (`providers[0].audiences`), and plain words instead of the
//! parser's (`expected a list`, not `expected sequence start`); unknown keys get
//! a did-you-mean, duplicate keys name the key.

use super::{ConfigError, Ctx};

/// A parser error, reworded; `text` is the config as parsed.
pub(super) fn reword(cx: &Ctx<'_>, text: &str, e: &serde_saphyr::Error) -> ConfigError {
    let line = e.location().map_or(0, |l| l.line());
    let shown = e.to_string();
    let first = shown.lines().next().unwrap_or_default();
    // "error: line 4 column 5: unknown field `x`, expected ..." -> the message part.
    let message = first
        .split_once(": ")
        .map(|(_, rest)| rest)
        .map(|rest| match rest.split_once(": ") {
            Some((pos, msg)) if pos.starts_with("line ") => msg,
            _ => rest,
        })
        .unwrap_or(first);
    let line = if line == 0 { 1 } else { line };
    let here = path_at(text, line);
    let parent = here.rsplit_once('.').map_or("", |(p, _)| p);
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    if let Some(field) = between(message, "unknown field `", "`") {
        let expected: Vec<&str> = message
            .split_once("expected one of ")
            .map(|(_, list)| list.split(", ").map(|s| s.trim_matches('`')).collect())
            .unwrap_or_default();
        let problem = match closest(field, &expected) {
            Some(near) => format!("unknown key; did you mean `{near}`?"),
            None if expected.is_empty() => "unknown key".to_owned(),
            None => format!("unknown key; expected one of {}", expected.join(", ")),
        };
        return cx.err(line, join(field), problem);
    }
    if let Some(field) = between(message, "missing field `", "`") {
        // A key indented less than its siblings ends the mapping early: say so, at its line.
        if let Some((bad_line, key, indent, wanted)) = dedented_key(text, line) {
            return cx.err(
                bad_line,
                join(&key),
                format!(
                    "indented {indent} spaces, less than the other keys here ({wanted}): YAML reads it as outside this block, and `{field}` then looks missing"
                ),
            );
        }
        return cx.err(line, join(field), "missing (it is required here)");
    }
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key).trim();
        return cx.err(line, join(key), "this key appears twice in the same block");
    }
    // A key indented less than its siblings, seen at its own line (when the block
    // it leaves has nothing required, YAML stops right there).
    if (message.contains("did not find expected") || message.contains("while parsing a block"))
        && let Some((key, indent, wanted, sibling_line)) = dedented_here(text, line)
    {
        let path = path_at(text, sibling_line);
        let parent = path.rsplit_once('.').map_or("", |(p, _)| p);
        let field = if parent.is_empty() {
            key
        } else {
            format!("{parent}.{key}")
        };
        return cx.err(
            line,
            field,
            format!(
                "indented {indent} spaces, less than the other keys here ({wanted}): YAML reads it as outside this block"
            ),
        );
    }
    let problem = if message.contains("expected sequence start") {
        "expected a list (`[a, b]`, or one `- item` per line), found a single value".to_owned()
    } else if message.contains("expected mapping start") || message.contains("expected a mapping") {
        "expected a block of `key: value` lines".to_owned()
    } else {
        message.to_owned()
    };
    let field = if here.is_empty() {
        "config".to_owned()
    } else {
        here
    };
    cx.err(line, field, problem)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// The key path of `line` (1-based): `providers[0].jwks.file`. Block YAML only
/// (flow mappings on one line give the key that opens them).
pub(super) fn path_at(text: &str, line: u64) -> String {
    // (indent, segment); a sequence item is `[n]` at the dash's indent.
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut counters: Vec<(usize, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            if (i + 1) as u64 == line {
                break;
            }
            continue;
        }
        let mut indent = raw.len() - content.len();
        let mut rest = content;
        // Every leading `- ` opens a sequence item.
        while let Some(after) = rest
            .strip_prefix("- ")
            .or_else(|| (rest == "-").then_some(""))
        {
            stack.retain(|(at, _)| *at < indent);
            counters.retain(|(at, _)| *at <= indent);
            let n = match counters.iter_mut().find(|(at, _)| *at == indent) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counters.push((indent, 0));
                    0
                }
            };
            stack.push((indent, format!("[{n}]")));
            let skipped = rest.len() - after.trim_start().len();
            indent += skipped;
            rest = after.trim_start();
        }
        if let Some((key, _)) = rest.split_once(':')
            && !key.is_empty()
            && !key.contains(['{', '[', '"', '\'', ' '])
        {
            stack.retain(|(at, _)| *at < indent);
            counters.retain(|(at, _)| *at < indent || stack.iter().any(|(s, _)| s == at));
            stack.push((indent, key.to_owned()));
        }
        if (i + 1) as u64 == line {
            break;
        }
    }
    let mut out = String::new();
    for (_, seg) in &stack {
        if !seg.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// The first line (1-based) whose key path is `path` or lies under it; 1 when
/// none does (an error still names a line of the file, never 0).
pub fn line_of(text: &str, path: &str) -> u64 {
    let lines = text.lines().count();
    (1..=lines as u64)
        .find(|&l| {
            let p = path_at(text, l);
            p == path || p.starts_with(&format!("{path}.")) || p.starts_with(&format!("{path}["))
        })
        .unwrap_or(1)
}

/// After the mapping whose last key is on `line`: the next key indented less
/// than that mapping's keys (but more than its parent), as (line, key, its
/// indent, the mapping's indent).
fn dedented_key(text: &str, line: u64) -> Option<(u64, String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let at = usize::try_from(line).ok()?.checked_sub(1)?;
    let here = lines.get(at)?;
    let content = here.trim_start().trim_start_matches("- ");
    let wanted = here.len() - content.len();
    for (j, raw) in lines.iter().enumerate().skip(at + 1) {
        let c = raw.trim_start();
        if c.is_empty() || c.starts_with('#') {
            continue;
        }
        let indent = raw.len() - c.len();
        if indent >= wanted {
            continue;
        }
        if indent > 0 && !c.starts_with('-') {
            let key = c.split_once(':')?.0.trim().to_owned();
            return Some(((j + 1) as u64, key, indent, wanted));
        }
        return None;
    }
    None
}

/// The key at `line` when it is indented less than the key line before it (and is
/// not a list item): its name, its indent, the sibling's, and the sibling's line.
fn dedented_here(text: &str, line: u64) -> Option<(String, usize, usize, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let at = usize::try_from(line).ok()?.checked_sub(1)?;
    let here = lines.get(at)?;
    let content = here.trim_start();
    let indent = here.len() - content.len();
    if indent == 0 || content.starts_with('-') {
        return None;
    }
    let key = content.split_once(':')?.0.trim().to_owned();
    let (j, prev) = lines[..at]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let mut prev_content = prev.trim_start();
    while let Some(after) = prev_content.strip_prefix("- ") {
        prev_content = after.trim_start();
    }
    let wanted = prev.len() - prev_content.len();
    (indent < wanted && prev_content.contains(':')).then(|| (key, indent, wanted, (j + 1) as u64))
}

/// The expected name closest to `name` (at most two edits away).
fn closest<'a>(name: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|e| (distance(name, e), *e))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

/// Levenshtein distance (names are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn error(text: &str) -> ConfigError {
        crate::config::parse(text, "c.yaml", Path::new("."), &|_| None).unwrap_err()
    }

    const HEAD: &str = "listen:\n  admin: 127.0.0.1:9999\nproviders:\n  - name: corp\n";

    #[test]
    fn a_misindented_key_is_named_at_its_own_line() {
        let e = error(&format!(
            "{HEAD}    issuer: https://idp\n  audiences: [api]\n    jwks: {{file: jwks.json}}\n"
        ));
        assert_eq!(
            (e.line, e.field.as_str()),
            (6, "providers[0].audiences"),
            "{e}"
        );
        assert!(
            e.problem
                .contains("indented 2 spaces, less than the other keys here (4)"),
            "{e}"
        );
    }

    #[test]
    fn a_single_value_where_a_list_goes_says_so() {
        let e = error(&format!(
            "{HEAD}    audiences: orders-api\n    jwks: {{file: j.json}}\n"
        ));
        assert_eq!(
            (e.line, e.field.as_str()),
            (5, "providers[0].audiences"),
            "{e}"
        );
        assert!(e.problem.starts_with("expected a list"), "{e}");
        assert!(!e.to_string().contains("sequence start"));
    }

    #[test]
    fn a_duplicate_key_is_named_without_parser_internals() {
        let e = error(&format!(
            "{HEAD}    name: other\n    jwks: {{file: j.json}}\n"
        ));
        assert_eq!((e.line, e.field.as_str()), (5, "providers[0].name"), "{e}");
        assert_eq!(e.problem, "this key appears twice in the same block");
        assert!(!e.to_string().contains("DuplicateKeyPolicy"));
    }

    #[test]
    fn an_unknown_key_gets_a_did_you_mean() {
        let e = error(&format!(
            "{HEAD}    audience: [a]\n    jwks: {{file: j.json}}\n"
        ));
        assert_eq!(
            (e.line, e.field.as_str()),
            (5, "providers[0].audience"),
            "{e}"
        );
        assert_eq!(e.problem, "unknown key; did you mean `audiences`?");
        let e = error("rules:\n  - name: r\n    allow: anonymous\n    zzz: 1\n");
        assert_eq!((e.line, e.field.as_str()), (4, "rules[0].zzz"), "{e}");
        assert!(
            e.problem.starts_with("unknown key; expected one of name, "),
            "{e}"
        );
    }

    #[test]
    fn a_missing_key_names_its_full_path() {
        let e = error(&format!("{HEAD}    issuer: https://idp\n"));
        assert_eq!(e.field, "providers[0].jwks", "{e}");
        assert!(e.line > 0);
    }

    #[test]
    fn paths_follow_sequences_and_nesting() {
        let text = "a:\n  - x: 1\n    y:\n      z: 2\n  - x: 3\nb: 4\n";
        assert_eq!(path_at(text, 2), "a[0].x");
        assert_eq!(path_at(text, 4), "a[0].y.z");
        assert_eq!(path_at(text, 5), "a[1].x");
        assert_eq!(path_at(text, 6), "b");
    }
}
