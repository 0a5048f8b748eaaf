//! OpenTelemetry trace export (OTLP/HTTP protobuf), on only when the config's
//! `telemetry:` or the `OTEL_*` environment variables name a collector.
//!
//! Spans come from `tracing` spans with the target
//! [`portcullis_decider::TRACE_TARGET`] (the decision span, key fetches), through
//! `tracing-opentelemetry`; nothing else is exported, and these spans never reach
//! the log lines. Finished spans go into the SDK's batch span processor on the
//! tokio runtime: a bounded queue, exported off the request path every half second.
//! Spans past the queue's bound are dropped, and so are the spans of an export
//! that fails; both are counted in `portcullis_telemetry_spans_dropped_total`
//! (`reason="queue_full"`, `"export_failed"`), and exported spans in
//! `portcullis_telemetry_spans_exported_total` ([`Gate`] and [`Counted`] below:
//! the SDK keeps its own count private).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor,
};
use portcullis_decider::{SpanCounts, SpanDrop, TraceContext};
use portcullis_policy::config::telemetry::TelemetryConfig;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Most finished spans waiting for export; past it they are dropped (and counted).
pub const MAX_QUEUED_SPANS: usize = 4096;

/// Spans per export request.
const MAX_EXPORT_BATCH: usize = 512;

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the last spans at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// A running exporter.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {endpoint}: {problem}")]
pub(crate) struct TelemetryError {
    endpoint: String,
    problem: String,
}

impl Telemetry {
    /// Builds the exporter and its batch processor. Call inside the tokio runtime
    /// (the processor's task is spawned on it).
    pub(crate) fn start(
        config: &TelemetryConfig,
        counts: Arc<SpanCounts>,
    ) -> Result<Telemetry, TelemetryError> {
        let err = |problem: String| TelemetryError {
            endpoint: config.endpoint.clone(),
            problem,
        };
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(headers)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let exporter = Counted {
            inner: exporter,
            counts: counts.clone(),
            queued: queued.clone(),
        };
        // The SDK's queue is a little larger than ours, so that the gate below is
        // what drops (and counts) a span, never the SDK.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS + MAX_EXPORT_BATCH)
            .with_max_export_batch_size(MAX_EXPORT_BATCH)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
            .with_batch_config(batch)
            .build();
        let processor = Gate {
            inner: processor,
            counts,
            queued,
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            // A sampled parent is followed; a new trace is sampled at the ratio.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Telemetry { provider })
    }

    /// The `tracing` layer that turns our spans into OpenTelemetry spans.
    pub(crate) fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        let tracer = self.provider.tracer("portcullis");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_level(false)
            .with_filter(tracing_subscriber::filter::filter_fn(is_exported))
    }

    /// Exports what is queued and stops (SIGTERM), waiting at most a few seconds.
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        // The SDK's shutdown blocks until the processor's task has exported.
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_FLUSH));
        match tokio::time::timeout(SHUTDOWN_FLUSH + Duration::from_secs(1), done).await {
            Ok(Ok(Ok(()))) => tracing::info!("telemetry: last spans exported"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "telemetry: shutdown"),
            Ok(Err(e)) => tracing::warn!(error = %e, "telemetry: shutdown"),
            Err(_) => tracing::warn!("telemetry: shutdown timed out; spans may be lost"),
        }
    }
}

/// The span processor in front of the SDK's batch processor: a span past
/// [`MAX_QUEUED_SPANS`] waiting for export is dropped here and counted.
#[derive(Debug)]
struct Gate<P> {
    inner: P,
    counts: Arc<SpanCounts>,
    /// Spans handed to the batch processor and not yet given to an export.
    queued: Arc<AtomicUsize>,
}

impl<P: SpanProcessor> SpanProcessor for Gate<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // The batch processor keeps sampled spans only: so do we, in our count.
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_SPANS {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.counts.dropped(SpanDrop::QueueFull, 1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans of each export: exported, or dropped
/// when the export fails (an error, or the SDK giving up on it: its future dropped).
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    counts: Arc<SpanCounts>,
    queued: Arc<AtomicUsize>,
}

/// Counts a batch as failed unless it is disarmed (dropped mid-export: failed too).
struct Failed {
    counts: Arc<SpanCounts>,
    spans: u64,
}

impl Drop for Failed {
    fn drop(&mut self) {
        if self.spans > 0 {
            self.counts.dropped(SpanDrop::ExportFailed, self.spans);
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        // These spans left the queue; never below zero whatever the SDK does.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
        let mut failed = Failed {
            counts: self.counts.clone(),
            spans: n as u64,
        };
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            failed.spans = 0;
            self.counts.exported(n as u64);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Only our spans (not events, not other crates' spans: the HTTP client's own
/// would loop back into the export) are exported.
pub(crate) fn is_exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == portcullis_decider::TRACE_TARGET
}

/// W3C Trace Context (`traceparent`, `tracestate`) for the decider.
#[derive(Debug, Default)]
pub(crate) struct W3cTraceContext {
    propagator: TraceContextPropagator,
}

impl W3cTraceContext {
    pub(crate) fn shared() -> Arc<dyn TraceContext> {
        Arc::new(W3cTraceContext::default())
    }
}

// === impl W3cTraceContext ===

impl TraceContext for W3cTraceContext {
    fn adopt(&self, span: &tracing::Span, headers: &HeaderMap) {
        if !headers.contains_key("traceparent") {
            return;
        }
        // A malformed traceparent yields an empty context: the span starts a new trace.
        let cx = self.propagator.extract(&Headers(headers));
        let _ = span.set_parent(cx);
    }

    fn carry(&self, span: &tracing::Span) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Carried(Vec::new());
        self.propagator.inject_context(&span.context(), &mut out);
        out.0
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // A repeated header is read two ways by two hops: take none.
        let mut values = self.0.get_all(key).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        first.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct Carried(Vec<(HeaderName, HeaderValue)>);

impl Injector for Carried {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.push((n, v));
        }
    }
}
