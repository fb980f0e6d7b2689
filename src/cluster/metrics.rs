//! The cluster layer's metrics: plain prometheus-client values the layer updates;
//! the lead registers them in the proxy's registry ([`ClusterMetrics::register`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Why a Redis call gave no answer: `timeout`, `io`, `auth` (NOAUTH, WRONGPASS,
/// NOPERM: the ACL), `breaker_open` (refused without calling), `decrypt` (a value
/// failed authentication), `other` (any other error reply).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// `hit`/`miss` for L2 lookups; `notified`/`polled`/`timeout` for lock waits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Cheap to clone: every metric is a shared atomic.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    /// 1 while the breaker is closed and the last call succeeded.
    pub up: Gauge,
    pub errors: Family<KindLabel, Counter>,
    /// Seconds per Redis call that got an answer (errors are counted, not timed).
    pub latency: Histogram,
    /// L2 lookups that Redis answered: `hit` or `miss` (a value failing
    /// authentication counts as a miss and as an `errors{kind="decrypt"}`).
    pub l2: Family<OutcomeLabel, Counter>,
    /// How waits for another replica's fetch ended: `notified` (its done message),
    /// `polled` (the lock poll saw it finish), `timeout` (gave up: deadline, holder
    /// gone, Redis down; the waiter fetches itself).
    pub lock_waits: Family<OutcomeLabel, Counter>,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        ClusterMetrics::new()
    }
}

impl ClusterMetrics {
    pub fn new() -> ClusterMetrics {
        ClusterMetrics {
            up: Gauge::default(),
            errors: Family::default(),
            // 0.25 ms .. ~1 s.
            latency: Histogram::new(exponential_buckets(0.000_25, 2.0, 13)),
            l2: Family::default(),
            lock_waits: Family::default(),
        }
    }

    /// Registers under names without the `vcproxy_` prefix: pass the proxy's
    /// registry (`Registry::with_prefix("vcproxy")`) to get `vcproxy_redis_up`,
    /// `vcproxy_redis_errors_total{kind}`, `vcproxy_redis_latency_seconds`,
    /// `vcproxy_l2_requests_total{outcome}`, `vcproxy_fetch_lock_waits_total{outcome}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "redis_up",
            "Whether Redis answers (1: breaker closed and the last call succeeded)",
            self.up.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis calls that gave no answer, by kind (timeout, io, auth, breaker_open, decrypt, other)",
            self.errors.clone(),
        );
        registry.register(
            "redis_latency_seconds",
            "Time for Redis to answer a call",
            self.latency.clone(),
        );
        registry.register(
            "l2_requests",
            "Shared (Redis) cache lookups Redis answered, by outcome (hit, miss)",
            self.l2.clone(),
        );
        registry.register(
            "fetch_lock_waits",
            "Waits for another replica's fetch, by outcome (notified, polled, timeout)",
            self.lock_waits.clone(),
        );
    }

    pub(crate) fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }

    pub(crate) fn l2(&self, outcome: &'static str) {
        self.l2.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub(crate) fn lock_wait(&self, outcome: &'static str) {
        self.lock_waits
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    #[cfg(test)]
    pub(crate) fn error_count(&self, kind: &'static str) -> u64 {
        self.errors.get_or_create(&KindLabel { kind }).get()
    }

    #[cfg(test)]
    pub(crate) fn lock_wait_count(&self, outcome: &'static str) -> u64 {
        self.lock_waits
            .get_or_create(&OutcomeLabel { outcome })
            .get()
    }

    #[cfg(test)]
    pub(crate) fn l2_count(&self, outcome: &'static str) -> u64 {
        self.l2.get_or_create(&OutcomeLabel { outcome }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_the_documented_names() {
        let metrics = ClusterMetrics::new();
        metrics.up.set(1);
        metrics.error("timeout");
        metrics.l2("hit");
        metrics.lock_wait("notified");
        metrics.latency.observe(0.001);
        let mut registry = Registry::with_prefix("vcproxy");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "vcproxy_redis_up 1",
            "vcproxy_redis_errors_total{kind=\"timeout\"} 1",
            "vcproxy_redis_latency_seconds_count 1",
            "vcproxy_l2_requests_total{outcome=\"hit\"} 1",
            "vcproxy_fetch_lock_waits_total{outcome=\"notified\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
