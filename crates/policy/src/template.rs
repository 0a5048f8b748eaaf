//! Header templates over claims (`"{{ claims.tenant }}"`), compiled once.

use serde_json::Value;

use portcullis_jose::Claims;

#[derive(Clone, Debug, Eq, PartialEq)]
enum Part {
    Claim(String),
    Literal(String),
}

/// A compiled template.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `text`, where `{{ claims.PATH }}` inserts a claim (dotted path).
    ///
    /// # Errors
    /// An unclosed `{{`, or an expression other than `claims.PATH`.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("{text:?}: `{{{{` without `}}}}`"))?;
            let expr = after[..end].trim();
            let path = expr
                .strip_prefix("claims.")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    format!("{text:?}: only {{{{ claims.NAME }}}} can be used, not {expr:?}")
                })?;
            parts.push(Part::Claim(path.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The template that is just one claim.
    pub fn claim(path: &str) -> Template {
        Template {
            parts: vec![Part::Claim(path.to_owned())],
        }
    }

    /// The claim paths the template reads.
    pub fn claim_paths(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Claim(path) => Some(path.as_str()),
            _ => None,
        })
    }

    /// Renders with `claims`. `None` when a referenced claim is missing (the header is then not set).
    /// Control characters (CR, LF, NUL...) are dropped so a claim cannot split a header.
    pub fn render(&self, claims: &Claims) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Claim(path) => push_value(&mut out, claims.path(path)?),
            }
        }
        out.retain(|c| !c.is_control());
        Some(out)
    }
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
            }
        }
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        Claims::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn renders_claims() {
        let t = Template::parse("tenant={{ claims.tenant }};g={{claims.groups}}").unwrap();
        let c = claims(r#"{"tenant":"acme","groups":["a","b"]}"#);
        assert_eq!(t.render(&c).as_deref(), Some("tenant=acme;g=a,b"));
        assert_eq!(
            Template::claim("n.x")
                .render(&claims(r#"{"n":{"x":7}}"#))
                .as_deref(),
            Some("7")
        );
        assert_eq!(t.render(&claims(r#"{"tenant":"x"}"#)), None);
    }

    #[test]
    fn strips_control_characters() {
        let c = claims(r#"{"sub":"a\r\nx-admin: true\u0000"}"#);
        assert_eq!(
            Template::claim("sub").render(&c).as_deref(),
            Some("ax-admin: true")
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{{ claims.x").is_err());
        assert!(Template::parse("{{ env.HOME }}").is_err());
        assert!(Template::parse("{{ claims. }}").is_err());
    }
}
