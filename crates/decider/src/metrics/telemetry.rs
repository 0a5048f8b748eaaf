//! Counters of the span export (OpenTelemetry, on only when configured): spans
//! exported, and spans dropped because the export queue was full or because
//! their export failed. Written by the app's exporter off the request path,
//! read on a scrape; the series exist (at 0) when nothing is exported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// Why a finished span was not exported.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SpanDrop {
    /// The queue of spans waiting for export was full.
    QueueFull,
    /// The export request that carried it failed (collector down, refused, timed out).
    ExportFailed,
}

impl SpanDrop {
    /// Every reason, with its label value.
    const ALL: [(SpanDrop, &'static str); 2] = [
        (SpanDrop::ExportFailed, "export_failed"),
        (SpanDrop::QueueFull, "queue_full"),
    ];
}

/// The span export's counters, shared with the exporter.
#[derive(Debug, Default)]
pub struct SpanCounts {
    exported: AtomicU64,
    export_failed: AtomicU64,
    queue_full: AtomicU64,
}

impl SpanCounts {
    /// `n` spans were exported.
    pub fn exported(&self, n: u64) {
        self.exported.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` spans were dropped for `why`.
    pub fn dropped(&self, why: SpanDrop, n: u64) {
        self.counter(why).fetch_add(n, Ordering::Relaxed);
    }

    /// How many spans were dropped for `why` so far.
    pub fn dropped_count(&self, why: SpanDrop) -> u64 {
        self.counter(why).load(Ordering::Relaxed)
    }

    fn counter(&self, why: SpanDrop) -> &AtomicU64 {
        match why {
            SpanDrop::QueueFull => &self.queue_full,
            SpanDrop::ExportFailed => &self.export_failed,
        }
    }
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug)]
pub(crate) struct SpanCollector(pub(crate) Arc<SpanCounts>);

impl Collector for SpanCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let exported = ConstCounter::new(self.0.exported.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "portcullis_telemetry_spans_exported",
            "Spans the OpenTelemetry exporter sent to the collector",
            None,
            exported.metric_type(),
        )?;
        exported.encode(metric)?;
        let mut family = encoder.encode_descriptor(
            "portcullis_telemetry_spans_dropped",
            "Spans not exported, by reason: queue_full (the export queue was full), export_failed (their export request failed)",
            None,
            exported.metric_type(),
        )?;
        for (why, reason) in SpanDrop::ALL {
            ConstCounter::new(self.0.dropped_count(why))
                .encode(family.encode_family(&ReasonLabel { reason })?)?;
        }
        Ok(())
    }
}
