//! The application state every handler and worker shares ([`AppState`]), the clock, the claim
//! lease, and the wake-ups between the intake, the processors, the senders and the deliverers.
//!
//! This is the bottom of the service: it imports the store, the domain, the configuration and
//! the outbound port (the [`Platform`] trait, the pacer), never a worker, a route or an adapter.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use jiff::Timestamp;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::ServiceConfig,
    domain::draft::Assistant,
    outbound::{pacer::Pacer, platform::Platform},
    store::Store,
};

/// How long a claim is held before another worker may assume its holder died.
pub const LEASE_MS: i64 = 30_000;

/// The largest request body accepted on `/v1/events` (and the Chatwoot webhook).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler and task shares.
pub struct AppState {
    /// Drafting.
    pub assistant: Arc<Assistant>,
    /// The store.
    pub store: Store,
    /// Settings.
    pub cfg: ServiceConfig,
    /// Prometheus text.
    pub metrics: PrometheusHandle,
    /// Wakes processors when an event arrives.
    pub new_event: Notify,
    /// Wakes senders when a send is queued.
    pub new_send: Notify,
    /// Wakes webhook deliverers when an event is written.
    pub new_webhook: Notify,
    /// The HTTP client for consumer webhooks.
    pub http: reqwest::Client,
    /// Where replies go.
    pub platform: Arc<dyn Platform>,
    /// Per-shop send pacing, shared by the sender tasks.
    pub pacer: Pacer,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
}

/// Unix milliseconds now (the edge reads the clock; the core gets it as an argument).
#[must_use]
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// The process-wide Prometheus recorder (installed once).
#[must_use]
pub fn metrics_handle() -> PrometheusHandle {
    static H: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests): then this handle renders ours only.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
    .clone()
}

/// Whether a worker should also take over claims whose holder died: always when it found no new
/// work, and under sustained load at least every third of a lease, so a crashed instance's
/// claims (which hold up their conversations) are never starved by a steady stream of new work.
pub(crate) fn reclaim_due(last: &AtomicI64, now: i64, idle: bool) -> bool {
    if idle || now - last.load(Ordering::Relaxed) >= LEASE_MS / 3 {
        last.store(now, Ordering::Relaxed);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_when_idle_or_a_third_of_a_lease_passed() {
        let last = AtomicI64::new(0);
        // (now, idle, expected)
        let table = [
            (1_000, true, true),
            (1_001, false, false),
            (1_000 + LEASE_MS / 3 - 1, false, false),
            (1_000 + LEASE_MS / 3, false, true),
            (1_000 + LEASE_MS / 3 + 1, false, false),
            (1_000 + LEASE_MS / 3 + 2, true, true),
        ];
        for (now, idle, want) in table {
            assert_eq!(reclaim_due(&last, now, idle), want, "now {now}, idle {idle}");
        }
    }
}
