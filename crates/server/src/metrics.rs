//! Prometheus metrics (`GET /metrics`, OpenMetrics text), with the official Rust client
//! (`prometheus-client`). Labels take values from closed sets only — the served methods, the
//! gateway's codes and sub_codes, fixed phase and outcome names — so the series stay bounded
//! whatever callers send. Per gateway (not process-global): tests that run several servers in
//! one process read their own.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// One answered request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `v2` (`gateway.do`) or `v3`.
    pub protocol: &'static str,
    /// The method's wire name, `-` when none was named or served.
    pub method: &'static str,
    /// The gateway code (`10000`, `40002`, …).
    pub code: &'static str,
    /// The sub_code, empty for a success.
    pub sub_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    protocol: &'static str,
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Where a request's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The checks: decoding, the app, the signature verification, the token.
    Verify,
    /// The method: its store reads and writes.
    Store,
    /// The answer's JSON, its charset and encryption.
    Render,
    /// The answer's RSA signature.
    Sign,
    /// Everything, from the request's bytes to the answer's.
    Total,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Store => "store",
            Self::Render => "render",
            Self::Sign => "sign",
            Self::Total => "total",
        }
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs … about 1.6 s, doubling: an RSA sign is ~0.2–1 ms, a slow store call 100s of ms.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 17))
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    phases: Histograms<PhaseLabels>,
    signature_cache: Family<OutcomeLabels, Counter>,
    signature_cache_entries: Gauge,
    signature_cache_bytes: Gauge,
    deliveries: Family<OutcomeLabels, Counter>,
    store_errors: Counter,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabels, Counter>,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    audit_entries: Family<OutcomeLabels, Counter>,
    audit_pending: Gauge,
    audit_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agreements");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Answered gateway requests by protocol, method, code and sub_code",
            requests.clone(),
        );
        let phases: Histograms<PhaseLabels> = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "request_phase_duration",
            "Time per request spent verifying, in the store, rendering and signing, and in all",
            Unit::Seconds,
            phases.clone(),
        );
        let signature_cache = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "signature_cache",
            "Answer signatures: found kept (hit), made and kept (miss), or made without looking (bypass: signature_cache = false)",
            signature_cache.clone(),
        );
        let signature_cache_entries = Gauge::default();
        registry.register(
            "signature_cache_entries",
            "Answer signatures kept (read at each scrape)",
            signature_cache_entries.clone(),
        );
        let signature_cache_bytes = Gauge::default();
        registry.register_with_unit(
            "signature_cache_size",
            "What the kept answer signatures weigh, bounded by signature_cache_mib (read at each scrape)",
            Unit::Bytes,
            signature_cache_bytes.clone(),
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "notification_deliveries",
            "Notification sends by outcome: delivered, retry (failed, sent again later) or failed (given up)",
            deliveries.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Requests answered 20000 because the store failed",
            store_errors.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections being served",
            connections_open.clone(),
        );
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused at a limit: per_address or total",
            connections_refused.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Notifications waiting to be sent (read at each scrape)",
            outbox_pending.clone(),
        );
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "outbox_oldest_pending_age",
            "Age of the oldest notification waiting to be sent, 0 when none (read at each scrape)",
            Unit::Seconds,
            outbox_oldest_age.clone(),
        );
        let audit_entries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audit_entries",
            "Audit-trail entries by outcome: written, or lost (not written when the writer stopped)",
            audit_entries.clone(),
        );
        let audit_pending = Gauge::default();
        registry.register(
            "audit_pending",
            "Audit-trail entries answered but not yet written",
            audit_pending.clone(),
        );
        let audit_lag = latency_histogram();
        registry.register_with_unit(
            "audit_write_lag",
            "Per written batch, the time from its oldest entry's answer to its commit (what a crash could lose)",
            Unit::Seconds,
            audit_lag.clone(),
        );
        Self {
            registry,
            requests,
            phases,
            signature_cache,
            signature_cache_entries,
            signature_cache_bytes,
            deliveries,
            store_errors,
            connections_open,
            connections_refused,
            outbox_pending,
            outbox_oldest_age,
            audit_entries,
            audit_pending,
            audit_lag,
        }
    }
}

impl Metrics {
    /// Counts an answered request.
    pub fn answered(&self, labels: RequestLabels) {
        self.requests.get_or_create(&labels).inc();
    }

    /// Records `spent` in `phase` of a request of `protocol`.
    pub fn spent(&self, protocol: &'static str, phase: Phase, spent: Duration) {
        self.phases
            .get_or_create(&PhaseLabels {
                protocol,
                phase: phase.label(),
            })
            .observe(spent.as_secs_f64());
    }

    /// Counts an answer's signature: found kept, made and kept, or made without looking.
    pub fn signature_kept(&self, kept: crate::cache::Kept) {
        let outcome = match kept {
            crate::cache::Kept::Hit => "hit",
            crate::cache::Kept::Miss => "miss",
            crate::cache::Kept::Bypassed => "bypass",
        };
        self.signature_cache
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a notification send: `delivered`, `retry` or `failed`.
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a request the store failed.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// An audit entry was queued for writing.
    pub fn audit_queued(&self) {
        self.audit_pending.inc();
    }

    /// A batch of `written` audit entries was committed, the oldest `lag` after its answer.
    pub fn audit_written(&self, written: usize, lag: Duration) {
        let n = i64::try_from(written).unwrap_or(i64::MAX);
        self.audit_pending.dec_by(n);
        self.audit_entries
            .get_or_create(&OutcomeLabels { outcome: "written" })
            .inc_by(n.unsigned_abs());
        self.audit_lag.observe(lag.as_secs_f64());
    }

    /// `lost` audit entries could not be written before the writer stopped.
    pub fn audit_lost(&self, lost: usize) {
        let n = i64::try_from(lost).unwrap_or(i64::MAX);
        self.audit_pending.dec_by(n);
        self.audit_entries
            .get_or_create(&OutcomeLabels { outcome: "lost" })
            .inc_by(n.unsigned_abs());
    }

    /// A connection opened; its guard closes it in the gauge when dropped.
    pub fn connection(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        self.connections_open.inc();
        ConnectionGuard(self.clone())
    }

    /// Counts a refused connection (`per_address` limit, else the total's).
    pub fn connection_refused(&self, per_address: bool) {
        let reason = if per_address { "per_address" } else { "total" };
        self.connections_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The exposition, with the outbox's backlog (`pending`, the oldest's age in seconds) and
    /// the signature cache's size (entries, bytes).
    pub fn render(&self, backlog: Option<(u64, f64)>, signatures: (usize, u64)) -> String {
        let (entries, bytes) = signatures;
        self.signature_cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.signature_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        if let Some((pending, oldest_age)) = backlog {
            self.outbox_pending
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            self.outbox_oldest_age.set(oldest_age.max(0.0));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// An open connection, counted in `agreements_connections_open` until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(std::sync::Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// The Content-Type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_follow_the_prometheus_conventions() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.answered(RequestLabels {
            protocol: "v2",
            method: "alipay.user.agreement.query",
            code: "40004",
            sub_code: "USER_AGREEMENT_NOT_EXIST",
        });
        metrics.spent("v2", Phase::Sign, Duration::from_micros(300));
        metrics.delivery("delivered");
        for _ in 0..3 {
            metrics.audit_queued();
        }
        metrics.audit_written(2, Duration::from_millis(3));
        let open = metrics.connection();
        let text = metrics.render(Some((3, 42.5)), (2, 880));
        for line in [
            "agreements_requests_total{protocol=\"v2\",method=\"alipay.user.agreement.query\",code=\"40004\",sub_code=\"USER_AGREEMENT_NOT_EXIST\"} 1",
            "agreements_request_phase_duration_seconds_count{protocol=\"v2\",phase=\"sign\"} 1",
            "agreements_signature_cache_entries 2",
            "agreements_signature_cache_size_bytes 880",
            "agreements_notification_deliveries_total{outcome=\"delivered\"} 1",
            "agreements_connections_open 1",
            "agreements_outbox_pending 3",
            "agreements_outbox_oldest_pending_age_seconds 42.5",
            "agreements_audit_entries_total{outcome=\"written\"} 2",
            "agreements_audit_pending 1",
            "agreements_audit_write_lag_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        drop(open);
        assert!(
            metrics
                .render(None, (0, 0))
                .contains("agreements_connections_open 0")
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
