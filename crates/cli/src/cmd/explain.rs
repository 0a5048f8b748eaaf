//! `portcullis explain`: how the server would decide one request, step by step.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use portcullis_policy::explain::ExplainRequest;

use crate::args::ExplainArgs;
use crate::{Negative, input};

pub(crate) fn run(args: ExplainArgs) -> Result<()> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("-H {h:?}: give a header as 'Name: value'");
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            bail!("-H {h:?}: the header has no name");
        }
        let value = value.trim();
        // Repeated headers join as one list, as HTTP reads them.
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    let token = match args.token.as_deref() {
        None => None,
        Some(t) => Some(input::token(Some(t))?),
    };
    let request = ExplainRequest {
        method: Some(args.method.clone()),
        url: args.url.clone(),
        headers,
        token,
    };
    let explanation = portcullis_app::explain_with_config(&args.config, &request)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation.to_json())?);
    } else {
        println!("explain {} {}", args.method.to_ascii_uppercase(), args.url);
        print!("{}", explanation.to_text());
    }
    if explanation.allowed {
        Ok(())
    } else {
        // The answer is on stdout already; exit 1 with the reason on stderr.
        Err(Negative(format!(
            "denied: {} {}",
            explanation.status,
            explanation.reason.unwrap_or_default()
        ))
        .into())
    }
}
