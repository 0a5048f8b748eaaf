//! Header templates over claims (`"{{ claims.tenant }}"`, `"{{ claims.groups | json }}"`),
//! compiled once.

mod format;

pub use format::ClaimFormat;

use portcullis_jose::Claims;

#[derive(Clone, Debug, Eq, PartialEq)]
enum Part {
    Claim { path: String, format: ClaimFormat },
    Literal(String),
}

/// A compiled template.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `text`, where `{{ claims.PATH }}` inserts a claim (dotted path),
    /// in the `csv` format, and `{{ claims.PATH | FORMAT }}` in `FORMAT` (`csv`,
    /// `json`, `first`: see [`ClaimFormat`]).
    ///
    /// # Errors
    /// An unclosed `{{`, an expression other than `claims.PATH`, an unknown format.
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
            let (expr, format) = match after[..end].split_once('|') {
                None => (after[..end].trim(), ClaimFormat::Csv),
                Some((expr, name)) => {
                    let name = name.trim();
                    let format = ClaimFormat::from_name(name).ok_or_else(|| {
                        format!(
                            "{text:?}: {name:?} is not a format ({})",
                            ClaimFormat::NAMES.join(", ")
                        )
                    })?;
                    (expr.trim(), format)
                }
            };
            let path = expr
                .strip_prefix("claims.")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    format!("{text:?}: only {{{{ claims.NAME }}}} can be used, not {expr:?}")
                })?;
            parts.push(Part::Claim {
                path: path.to_owned(),
                format,
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The template that is just one claim, in the `csv` format.
    pub fn claim(path: &str) -> Template {
        Template::claim_as(path, ClaimFormat::Csv)
    }

    /// The template that is just one claim, in `format`.
    pub fn claim_as(path: &str, format: ClaimFormat) -> Template {
        Template {
            parts: vec![Part::Claim {
                path: path.to_owned(),
                format,
            }],
        }
    }

    /// The claim paths the template reads.
    pub fn claim_paths(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Claim { path, .. } => Some(path.as_str()),
            _ => None,
        })
    }

    /// Renders with `claims`. `None` when a referenced claim is missing (or is an
    /// empty array under `first`), and when the text would hold a control character
    /// (CR, LF, NUL, TAB, DEL...): such a value is refused, never altered, and the
    /// header is then not set.
    pub fn render(&self, claims: &Claims) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Claim { path, format } => {
                    if !format.push(&mut out, claims.path(path)?) {
                        return None;
                    }
                }
            }
        }
        if out.chars().any(char::is_control) {
            return None;
        }
        Some(out)
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
    fn refuses_control_characters() {
        for sub in [
            r#""a\r\nx-admin: true""#,
            r#""a\u0000""#,
            r#""a\tb""#,
            r#""a\u007f""#,
            r#""a\u0085""#,
            r#"["ok","a\nb"]"#,
        ] {
            let c = claims(&format!(r#"{{"sub":{sub}}}"#));
            assert_eq!(Template::claim("sub").render(&c), None, "{sub}");
            assert_eq!(
                Template::claim_as("sub", ClaimFormat::First)
                    .render(&c)
                    .is_some(),
                sub.starts_with('['),
                "{sub}"
            );
        }
        // JSON escapes them: nothing to refuse.
        let c = claims(r#"{"sub":"a\r\nb"}"#);
        assert_eq!(
            Template::claim_as("sub", ClaimFormat::Json)
                .render(&c)
                .as_deref(),
            Some(r#""a\r\nb""#)
        );
    }

    #[test]
    fn renders_formats_and_nested_paths() {
        let c = claims(r#"{"realm_access":{"roles":["a","b,c"]},"groups":["x","y"]}"#);
        let t = Template::parse(
            "{{ claims.groups }};{{ claims.groups|json }};{{ claims.groups | first }};{{ claims.realm_access.roles }};{{ claims.realm_access }}",
        )
        .unwrap();
        assert_eq!(
            t.render(&c).as_deref(),
            Some(r#"x,y;["x","y"];x;["a","b,c"];{"roles":["a","b,c"]}"#)
        );
        assert!(Template::parse("{{ claims.groups | yaml }}").is_err());
        assert!(Template::parse("{{ claims.groups | }}").is_err());
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{{ claims.x").is_err());
        assert!(Template::parse("{{ env.HOME }}").is_err());
        assert!(Template::parse("{{ claims. }}").is_err());
    }
}
