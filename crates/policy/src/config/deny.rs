//! `deny:` blocks (rules and providers): compiled into [`DenyTemplate`]s at load.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::raw::RawDeny;
use super::{ConfigError, Ctx};
use crate::deny_template::DenyTemplate;

/// Compiles the `deny:` block at `field` (`rules[2].deny`), if there is one.
pub(super) fn compile(
    cx: &Ctx<'_>,
    field: &str,
    raw: Option<Spanned<RawDeny>>,
) -> Result<Option<Arc<DenyTemplate>>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let line = raw.referenced.line();
    let RawDeny {
        body,
        content_type,
        headers,
    } = raw.value;
    DenyTemplate::try_new(
        body.as_deref(),
        content_type.as_deref(),
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .map(|t| Some(Arc::new(t)))
    .map_err(|e| cx.err(line, format!("{field}.{}", e.field), e.problem))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn error(text: &str) -> crate::ConfigError {
        crate::config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap_err()
    }

    /// An unknown variable is a load error naming the line and the full field.
    #[test]
    fn denies_unknown_variables_with_line_and_field() {
        let e = error(
            "rules:\n  - name: r\n    allow: anonymous\n    deny:\n      body: '{{ claims.sub | upper }}'\n",
        );
        assert_eq!((e.line, e.field.as_str()), (5, "rules[0].deny.body"), "{e}");
        assert!(
            e.problem
                .contains("not one of status, reason, message, request_id"),
            "{e}"
        );
        let e = error(concat!(
            "providers:\n  - name: p\n    jwks: {inline: {\"keys\": [{\"kty\": \"oct\", ",
            "\"k\": \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"}]}}\n",
            "    deny:\n      headers: {www-authenticate: x}\n",
        ));
        assert_eq!(e.field, "providers[0].deny.headers.www-authenticate", "{e}");
        let e = error("rules:\n  - name: r\n    allow: anonymous\n    deny: {bodyy: x}\n");
        assert!(e.to_string().contains("bodyy"), "{e}");
    }
}
