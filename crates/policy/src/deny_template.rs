//! Custom deny responses (`deny: {body, content_type, headers}` on a rule or a
//! provider), compiled at load. Templates read `{{ status }}`, `{{ reason }}`,
//! `{{ message }}` and `{{ request_id }}` only: each value is a number, a reason
//! code, a fixed description or a request ID of `[A-Za-z0-9._:+/=-]`, so none can
//! break out of a JSON string or an HTML text node, and CR and LF are stripped
//! from everything rendered.

use http::{HeaderName, HeaderValue};

use crate::decision::Deny;

/// The largest rendered body, in bytes (a template longer than this is refused at load).
pub const MAX_DENY_BODY: usize = 16 * 1024;

/// What a template may insert.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Var {
    Message,
    Reason,
    RequestId,
    Status,
}

#[derive(Clone, Debug, Eq, PartialEq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// One compiled text.
#[derive(Clone, Debug, Eq, PartialEq)]
struct Text {
    parts: Vec<Part>,
}

/// A compiled `deny:` block.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct DenyTemplate {
    body: Option<Text>,
    content_type: HeaderValue,
    headers: Vec<(HeaderName, Text)>,
}

/// Why a `deny:` block does not compile: the member and what is wrong.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidDenyTemplate {
    /// `body`, `content_type` or `headers.NAME`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// A deny as a frontend sends it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct DenyResponse {
    /// `Content-Type`.
    pub content_type: HeaderValue,
    /// The body.
    pub body: String,
    /// Extra headers (never `Content-Type`, `WWW-Authenticate`, `Location` or framing).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Headers a template may not set: ours to set, or the connection's.
const RESERVED: [&str; 8] = [
    "connection",
    "content-length",
    "content-type",
    "location",
    "set-cookie",
    "transfer-encoding",
    "www-authenticate",
    "x-envoy-auth-headers-to-remove",
];

impl DenyTemplate {
    /// Compiles a `deny:` block.
    ///
    /// # Errors
    /// An unknown variable, an unclosed `{{`, a content type or header name that is
    /// not valid HTTP, a reserved header, a body over [`MAX_DENY_BODY`].
    pub fn try_new<'a>(
        body: Option<&str>,
        content_type: Option<&str>,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<DenyTemplate, InvalidDenyTemplate> {
        let body = body
            .map(|b| {
                if b.len() > MAX_DENY_BODY {
                    return Err(invalid("body", format!("over {MAX_DENY_BODY} bytes")));
                }
                Text::parse(b).map_err(|p| invalid("body", p))
            })
            .transpose()?;
        let content_type = match content_type {
            None => HeaderValue::from_static("application/json"),
            Some(ct) => HeaderValue::from_str(ct.trim())
                .ok()
                .filter(|v| !v.is_empty() && ct.contains('/'))
                .ok_or_else(|| invalid("content_type", format!("{ct:?} is not a media type")))?,
        };
        let mut compiled = Vec::new();
        for (name, text) in headers {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&field, format!("{name:?} is not a header name")))?;
            if RESERVED.contains(&header.as_str()) {
                return Err(invalid(
                    &field,
                    format!("{header} is set by Portcullis and cannot be templated"),
                ));
            }
            compiled.push((header, Text::parse(text).map_err(|p| invalid(&field, p))?));
        }
        Ok(DenyTemplate {
            body,
            content_type,
            headers: compiled,
        })
    }

    /// Renders for `deny`, answered with `status`.
    pub fn render(&self, deny: &Deny, status: u16) -> DenyResponse {
        DenyResponse {
            content_type: self.content_type.clone(),
            body: match &self.body {
                Some(text) => text.render(deny, status),
                None => deny.body(),
            },
            headers: self
                .headers
                .iter()
                .filter_map(|(name, text)| {
                    HeaderValue::from_str(&text.render(deny, status))
                        .ok()
                        .map(|v| (name.clone(), v))
                })
                .collect(),
        }
    }
}

impl Text {
    fn parse(text: &str) -> Result<Text, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "`{{` without `}}`".to_owned())?;
            let var = match after[..end].trim() {
                "status" => Var::Status,
                "reason" => Var::Reason,
                "message" => Var::Message,
                "request_id" => Var::RequestId,
                other => {
                    return Err(format!(
                        "{{{{ {other} }}}} is not one of status, reason, message, request_id"
                    ));
                }
            };
            parts.push(Part::Var(var));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Text { parts })
    }

    fn render(&self, deny: &Deny, status: u16) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(Var::Status) => out.push_str(&status.to_string()),
                Part::Var(Var::Reason) => out.push_str(deny.reason.as_str()),
                Part::Var(Var::Message) => out.push_str(deny.reason.description()),
                Part::Var(Var::RequestId) => {
                    out.push_str(deny.request_id.as_deref().unwrap_or("-"));
                }
            }
        }
        out.retain(|c| c != '\r' && c != '\n');
        out
    }
}

impl Deny {
    /// The response a frontend sends for this deny with `status`: the template the
    /// engine chose (the rule's, else the token's provider's), else the default
    /// JSON body.
    pub fn response(&self, status: u16) -> DenyResponse {
        match &self.template {
            Some(t) => t.render(self, status),
            None => DenyResponse {
                content_type: HeaderValue::from_static("application/json"),
                body: self.body(),
                headers: Vec::new(),
            },
        }
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> InvalidDenyTemplate {
    InvalidDenyTemplate {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DenyReason;

    fn deny() -> Deny {
        let mut d = Deny::new(DenyReason::TokenExpired, "detail".to_owned());
        d.request_id = Some("r-1".to_owned());
        d
    }

    #[test]
    fn renders_every_variable_and_strips_cr_lf() {
        let t = DenyTemplate::try_new(
            Some("{\"status\": {{ status }}, \"why\": \"{{message}}\",\r\n \"code\": \"{{ reason }}\", \"id\": \"{{ request_id }}\"}\n"),
            Some("application/problem+json"),
            [("x-deny-reason", "{{ reason }}\r\nset-cookie: a=b"), ("retry-after", "30")],
        )
        .unwrap();
        let mut d = deny();
        d.template = Some(std::sync::Arc::new(t));
        let r = d.response(401);
        assert_eq!(
            r.body,
            r#"{"status": 401, "why": "the token has expired", "code": "token_expired", "id": "r-1"}"#
        );
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(r.headers[0].1, "token_expiredset-cookie: a=b");
        assert_eq!(
            r.headers[1],
            (
                HeaderName::from_static("retry-after"),
                HeaderValue::from_static("30")
            )
        );
    }

    #[test]
    fn denies_unknown_variables_and_reserved_headers_at_load() {
        let e = DenyTemplate::try_new(Some("{{ claims.sub }}"), None, []).unwrap_err();
        assert_eq!(e.field, "body");
        assert!(
            e.problem
                .contains("not one of status, reason, message, request_id"),
            "{e}"
        );
        let e = DenyTemplate::try_new(Some("{{ status"), None, []).unwrap_err();
        assert_eq!(e.field, "body");
        let e = DenyTemplate::try_new(None, None, [("WWW-Authenticate", "x")]).unwrap_err();
        assert_eq!(e.field, "headers.WWW-Authenticate");
        let e = DenyTemplate::try_new(None, None, [("bad header", "x")]).unwrap_err();
        assert_eq!(e.field, "headers.bad header");
        let e = DenyTemplate::try_new(None, Some("json\n"), []).unwrap_err();
        assert_eq!(e.field, "content_type");
        let e = DenyTemplate::try_new(Some(&"x".repeat(MAX_DENY_BODY + 1)), None, []).unwrap_err();
        assert_eq!(e.field, "body");
    }

    #[test]
    fn without_a_template_the_default_body() {
        let r = deny().response(401);
        assert_eq!(
            r.body,
            r#"{"error":"invalid_token","reason":"token_expired"}"#
        );
        assert_eq!(r.content_type, "application/json");
        assert!(r.headers.is_empty());
    }

    /// What a template inserts never needs escaping in JSON or HTML.
    #[test]
    fn inserted_values_need_no_escaping() {
        for reason in DenyReason::ALL {
            for text in [reason.as_str(), reason.description()] {
                assert!(
                    !text.contains(['"', '\\', '<', '>', '&', '\r', '\n']),
                    "{text}"
                );
            }
        }
    }
}
