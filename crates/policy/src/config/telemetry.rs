//! The top-level `telemetry:` block: OpenTelemetry trace export over OTLP
//! (off unless an endpoint is named here or in the standard `OTEL_*`
//! environment variables). Raw (serde) and validated forms side by side; no IO.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, Ctx};

/// The service name spans are exported under by default.
pub const DEFAULT_SERVICE_NAME: &str = "portcullis";

/// The path an OTLP/HTTP collector takes traces on (appended to a base URL).
pub const TRACES_PATH: &str = "/v1/traces";

/// `telemetry:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// The collector: `http://HOST:4318` (`/v1/traces` is added) or a full traces URL.
    #[schemars(with = "Option<String>")]
    pub otlp_endpoint: Option<Spanned<String>>,
    /// `http/protobuf` (the only one supported).
    #[schemars(with = "Option<crate::schema::OtlpProtocolWord>")]
    pub protocol: Option<Spanned<String>>,
    /// `service.name` of the exported spans (default `portcullis`).
    #[schemars(with = "Option<String>")]
    pub service_name: Option<Spanned<String>>,
    /// The share of new traces sampled, 0.0 to 1.0 (default 1.0); a sampled
    /// incoming `traceparent` is always followed.
    #[schemars(with = "Option<crate::schema::Ratio>")]
    pub sample_ratio: Option<Spanned<f64>>,
    /// Headers sent with every export (an API key for a hosted collector).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Spanned<String>>,
}

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// The full OTLP/HTTP traces URL (`http://HOST:4318/v1/traces`).
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// The share of new traces sampled (0.0 to 1.0).
    pub sample_ratio: f64,
    /// Headers sent with every export.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Validates `telemetry:`; without the block (or without its endpoint) the
/// standard environment variables stand in: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// (used as it is), `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` added),
/// `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_PROTOCOL`.
/// `None`: no endpoint anywhere, so nothing is exported.
pub(super) fn validate_telemetry(
    cx: &Ctx<'_>,
    raw: Option<Spanned<RawTelemetry>>,
) -> Result<Option<TelemetryConfig>, ConfigError> {
    let block_line = raw.as_ref().map_or(0, |r| r.referenced.line());
    let RawTelemetry {
        otlp_endpoint,
        protocol,
        service_name,
        sample_ratio,
        headers,
    } = raw.map(|r| r.value).unwrap_or_default();
    let env = |name: &str| (cx.env)(name).filter(|v| !v.trim().is_empty());

    let endpoint = match otlp_endpoint {
        Some(e) => endpoint_url(&e.value, true)
            .map_err(|p| cx.err(e.referenced.line(), "telemetry.otlp_endpoint", p))?,
        None => {
            let from_env = [
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", true),
            ]
            .into_iter()
            .find_map(|(name, base)| env(name).map(|v| (name, v, base)));
            match from_env {
                Some((name, value, base)) => {
                    endpoint_url(value.trim(), base).map_err(|p| cx.err(0, name, p))?
                }
                None if block_line > 0 => {
                    return Err(cx.err(
                        block_line,
                        "telemetry.otlp_endpoint",
                        "missing: name the collector (http://HOST:4318) here or in OTEL_EXPORTER_OTLP_ENDPOINT",
                    ));
                }
                None => return Ok(None),
            }
        }
    };

    match protocol {
        Some(p) => check_protocol(&p.value)
            .map_err(|e| cx.err(p.referenced.line(), "telemetry.protocol", e))?,
        None => {
            for name in [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ] {
                if let Some(v) = env(name) {
                    check_protocol(v.trim()).map_err(|e| cx.err(0, name, e))?;
                    break;
                }
            }
        }
    }

    let service_name = match service_name {
        Some(s) => check_service_name(&s.value)
            .map_err(|e| cx.err(s.referenced.line(), "telemetry.service_name", e))?,
        None => match env("OTEL_SERVICE_NAME") {
            Some(v) => {
                check_service_name(v.trim()).map_err(|e| cx.err(0, "OTEL_SERVICE_NAME", e))?
            }
            None => DEFAULT_SERVICE_NAME.to_owned(),
        },
    };

    let sample_ratio = match sample_ratio {
        Some(r) => check_ratio(r.value)
            .map_err(|e| cx.err(r.referenced.line(), "telemetry.sample_ratio", e))?,
        None => match env("OTEL_TRACES_SAMPLER_ARG") {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{v:?} is not a number between 0.0 and 1.0"))
                .and_then(check_ratio)
                .map_err(|e| cx.err(0, "OTEL_TRACES_SAMPLER_ARG", e))?,
            None => 1.0,
        },
    };

    let mut out_headers = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let line = value.referenced.line();
        let field = format!("telemetry.headers.{name}");
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| cx.err(line, &field, format!("{name:?} is not a valid header name")))?;
        // HeaderValue refuses CR, LF and other control bytes: no header injection.
        let v = HeaderValue::from_str(&value.value).map_err(|_| {
            cx.err(
                line,
                &field,
                "is not a valid header value (control characters or non-ASCII)",
            )
        })?;
        out_headers.push((n, v));
    }

    Ok(Some(TelemetryConfig {
        endpoint,
        service_name,
        sample_ratio,
        headers: out_headers,
    }))
}

/// An `http(s)://host[:port][/path]` URL; `base`: a URL without a path gets `/v1/traces`.
fn endpoint_url(text: &str, base: bool) -> Result<String, String> {
    let bad = || format!("{text:?} is not an http:// or https:// URL like http://127.0.0.1:4318");
    let uri: Uri = text.parse().map_err(|_| bad())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad()),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad());
    };
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(format!(
            "{text:?}: the URL needs a host and no user:password (use telemetry.headers)"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("{text:?}: the URL takes no query"));
    }
    let path = uri.path();
    let out = text.trim_end_matches('/');
    if base && (path.is_empty() || path == "/") {
        Ok(format!("{out}{TRACES_PATH}"))
    } else {
        Ok(text.to_owned())
    }
}

fn check_protocol(p: &str) -> Result<(), String> {
    match p {
        "http/protobuf" => Ok(()),
        "grpc" | "http/json" => Err(format!(
            "{p:?} is not supported: use http/protobuf (OTLP/HTTP, port 4318)"
        )),
        _ => Err(format!("{p:?} is not an OTLP protocol: use http/protobuf")),
    }
}

fn check_service_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err("must be 1 to 255 characters, no control characters".to_owned());
    }
    Ok(s.to_owned())
}

fn check_ratio(r: f64) -> Result<f64, String> {
    if r.is_finite() && (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not between 0.0 and 1.0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_the_traces_path() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:4318", true).unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:4318/", true).unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            endpoint_url("https://c.example/otlp/v1/traces", true).unwrap(),
            "https://c.example/otlp/v1/traces"
        );
        assert_eq!(
            endpoint_url("http://c:4318", false).unwrap(),
            "http://c:4318"
        );
    }

    #[test]
    fn denies_urls_that_are_not_http() {
        for bad in [
            "127.0.0.1:4318",
            "ftp://c:21",
            "http://",
            "not a url",
            "http://u:p@c:4318",
            "http://c:4318/v1/traces?x=1",
            "",
        ] {
            assert!(endpoint_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn denies_ratios_outside_zero_to_one() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(check_ratio(bad).is_err(), "{bad}");
        }
        assert_eq!(check_ratio(0.25), Ok(0.25));
    }
}
