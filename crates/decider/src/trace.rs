//! One span per decision (`portcullis.decision`), made only when the app
//! exports traces: without a [`TraceContext`] the decider makes no span at all,
//! so a decision costs what it did before tracing existed.
//!
//! The decider knows spans only through `tracing`; the app's telemetry module
//! (OpenTelemetry) reads and writes W3C `traceparent` headers for it.

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_policy::{AuthRequest, Decision};

use crate::frontend::Frontend;

/// The `tracing` target of every span meant for export (and never for logs).
pub const TRACE_TARGET: &str = "portcullis_telemetry";

/// The name of the span of one decision.
pub const DECISION_SPAN: &str = "portcullis.decision";

/// Reads and writes trace context (W3C Trace Context) for the decider.
pub trait TraceContext: Send + Sync + std::fmt::Debug {
    /// Makes `span` a child of the trace the request's `traceparent` names (if any).
    fn adopt(&self, span: &tracing::Span, headers: &HeaderMap);
    /// The headers (`traceparent`, `tracestate`) that carry `span`'s context onward.
    fn carry(&self, span: &tracing::Span) -> Vec<(HeaderName, HeaderValue)>;
}

/// A new decision span, a child of the request's `traceparent`.
pub(crate) fn decision_span(
    tc: &dyn TraceContext,
    req: &AuthRequest<'_>,
    frontend: Frontend,
) -> tracing::Span {
    let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
    let span = tracing::info_span!(
        target: TRACE_TARGET,
        DECISION_SPAN,
        otel.kind = "server",
        portcullis.frontend = frontend.as_str(),
        http.request.method = req.method.as_str(),
        server.address = crate::clip(req.host),
        url.path = crate::clip(path),
        portcullis.result = tracing::field::Empty,
        portcullis.rule = tracing::field::Empty,
        portcullis.provider = tracing::field::Empty,
        portcullis.reason = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        tc.adopt(&span, req.headers);
    }
    span
}

/// Records the outcome on the span; on allow, adds the headers that carry the
/// trace onward to the upstream request (overwriting a client's `traceparent`).
pub(crate) fn finish(tc: &dyn TraceContext, span: &tracing::Span, decision: &mut Decision) {
    if span.is_disabled() {
        return;
    }
    match decision {
        Decision::Allow(a) => {
            span.record("portcullis.result", "allow");
            span.record("portcullis.rule", &*a.rule);
            if let Some(i) = &a.identity {
                span.record("portcullis.provider", &*i.provider);
            }
            if let Some(d) = &a.dry_run {
                span.record("portcullis.reason", d.reason.as_str());
            }
            span.record("http.response.status_code", 200_i64);
            for (name, value) in tc.carry(span) {
                a.set_headers.retain(|(n, _)| *n != name);
                a.remove_headers.retain(|n| *n != name);
                a.set_headers.push((name, value));
            }
        }
        Decision::Deny(d) => {
            span.record("portcullis.result", "deny");
            if let Some(rule) = &d.rule {
                span.record("portcullis.rule", &**rule);
            }
            if let Some(p) = &d.provider {
                span.record("portcullis.provider", &**p);
            }
            span.record("portcullis.reason", d.reason.as_str());
            span.record("http.response.status_code", i64::from(d.status()));
        }
    }
}
