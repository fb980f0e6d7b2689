//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Label values are bounded: routes are a fixed set, vCenter names come from the
//! configuration, statuses are HTTP codes. Nothing a client writes becomes a label,
//! so a hostile client cannot grow the series count.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::proxy::answer::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VcenterLabels {
    pub vcenter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub vcenter: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `owner`: asked of the vCenter a list showed it on; `all`: asked of every one.
    pub asked: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub vcenter: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// Every metric vcproxy exports. Cheap to share (`Arc<Metrics>`); each metric is
/// atomics inside.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    /// `vcproxy_cache_requests_total` and `vcproxy_cache_served_bytes_total`
    /// resolved per outcome once, so the hit path increments two atomics instead of
    /// looking labels up.
    outcome_counters: [(Counter, Counter); 4],
    pub cache_entries: Gauge,
    /// Client connections open, set when `/metrics` is read.
    pub client_connections_open: Gauge,
    pub cache_weighted_bytes: Gauge<i64, AtomicI64>,
    /// The cap `cache_weighted_bytes` is weighed against (`[cache] max_memory`).
    pub cache_max_bytes: Gauge,
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    pub upstream_errors: Family<UpstreamErrorLabels, Counter>,
    pub upstream_latency: Family<VcenterLabels, Histogram>,
    pub backend_sessions: Family<VcenterLabels, Gauge>,
    pub backend_logins: Family<VcenterLabels, Counter>,
    pub client_sessions: Gauge,
    pub duplicate_tasks: Counter<u64, AtomicU64>,
    pub task_lookups: Family<LookupLabels, Counter>,
    /// `vcproxy_config_reloads_total{result="ok"}` and `{result="failed"}`, resolved
    /// once and present from the start (at 0), so that alert rules on them always
    /// have a series to compare.
    config_reloads_ok: Counter,
    config_reloads_failed: Counter,
    config_last_reload_successful: Gauge,
}

use std::sync::atomic::AtomicI64;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// These metrics and the cluster layer's (`vcproxy_redis_*`, `vcproxy_l2_*`,
    /// `vcproxy_fetch_lock_waits_total`), in one exposition.
    pub fn with_cluster(mut self, cluster: &crate::cluster::ClusterMetrics) -> Metrics {
        cluster.register(&mut self.registry);
        self
    }

    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vcproxy");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests answered, by route and status",
            requests.clone(),
        );
        let cache_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cache_requests",
            "List Tasks requests by cache outcome (hit, miss, stale, coalesced)",
            cache_requests.clone(),
        );
        let cache_bytes_served = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "cache_served_bytes",
            "Response body bytes served (as sent: compressed when compressed), by cache outcome",
            cache_bytes_served.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Entries in the response cache",
            cache_entries.clone(),
        );
        let client_connections_open = Gauge::default();
        registry.register(
            "client_connections_open",
            "Client connections open on the listener (at listen.max_connections, /readyz is 503)",
            client_connections_open.clone(),
        );
        let cache_weighted_bytes = Gauge::default();
        registry.register(
            "cache_size_bytes",
            "Bytes held by the response cache, as weighed against its cap",
            cache_weighted_bytes.clone(),
        );
        let cache_max_bytes = Gauge::default();
        registry.register(
            "cache_max_bytes",
            "Cap on the bytes the response cache holds ([cache] max_memory)",
            cache_max_bytes.clone(),
        );
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests sent to vCenters that got an answer, by vCenter and status",
            upstream_requests.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "vCenter requests that got no usable answer, by vCenter and kind",
            upstream_errors.clone(),
        );
        let upstream_latency = Family::<VcenterLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "upstream_latency_seconds",
            "Time for a vCenter to answer a request, whole body read",
            upstream_latency.clone(),
        );
        let backend_sessions = Family::<VcenterLabels, Gauge>::default();
        registry.register(
            "backend_sessions_open",
            "Pooled vCenter sessions currently open, by vCenter",
            backend_sessions.clone(),
        );
        let backend_logins = Family::<VcenterLabels, Counter>::default();
        registry.register(
            "backend_logins",
            "Sessions opened on vCenters, by vCenter",
            backend_logins.clone(),
        );
        let client_sessions = Gauge::default();
        registry.register(
            "client_sessions_open",
            "Client sessions the proxy holds",
            client_sessions.clone(),
        );
        let duplicate_tasks = Counter::default();
        registry.register(
            "duplicate_tasks",
            "Task ids reported by more than one vCenter in one merge (first vCenter kept)",
            duplicate_tasks.clone(),
        );
        let task_lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "task_lookups",
            "Get Task fetches, by whom they asked: the task's vCenter (owner) or every vCenter (all)",
            task_lookups.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result (ok, failed: the previous configuration stays)",
            config_reloads.clone(),
        );
        let config_reloads_ok = config_reloads
            .get_or_create(&ReloadLabels { result: "ok" })
            .clone();
        let config_reloads_failed = config_reloads
            .get_or_create(&ReloadLabels { result: "failed" })
            .clone();
        let config_last_reload_successful = Gauge::default();
        // The configuration loaded at start counts as a successful load.
        config_last_reload_successful.set(1);
        registry.register(
            "config_last_reload_successful",
            "Whether the last configuration reload succeeded (1) or failed (0); 1 at start",
            config_last_reload_successful.clone(),
        );
        let outcome_counters = [
            Outcome::Hit,
            Outcome::Miss,
            Outcome::Coalesced,
            Outcome::Stale,
        ]
        .map(|o| {
            let labels = OutcomeLabels {
                outcome: o.as_str(),
            };
            (
                cache_requests.get_or_create(&labels).clone(),
                cache_bytes_served.get_or_create(&labels).clone(),
            )
        });
        Metrics {
            registry,
            requests,
            outcome_counters,
            cache_entries,
            client_connections_open,
            cache_weighted_bytes,
            cache_max_bytes,
            upstream_requests,
            upstream_errors,
            upstream_latency,
            backend_sessions,
            backend_logins,
            client_sessions,
            duplicate_tasks,
            task_lookups,
            config_reloads_ok,
            config_reloads_failed,
            config_last_reload_successful,
        }
    }

    /// A configuration reload ended: applied (`ok`), or refused with the previous
    /// configuration kept.
    pub fn config_reload(&self, ok: bool) {
        if ok {
            self.config_reloads_ok.inc();
        } else {
            self.config_reloads_failed.inc();
        }
        self.config_last_reload_successful.set(i64::from(ok));
    }

    /// One Get Task fetch asked `asked` (`owner` or `all`).
    pub fn task_lookup(&self, asked: &'static str) {
        self.task_lookups
            .get_or_create(&LookupLabels { asked })
            .inc();
    }

    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RouteLabels { route, status })
            .inc();
    }

    pub fn cache_outcome(&self, outcome: Outcome, bytes: usize) {
        let (requests, served) = &self.outcome_counters[match outcome {
            Outcome::Hit => 0,
            Outcome::Miss => 1,
            Outcome::Coalesced => 2,
            Outcome::Stale => 3,
        }];
        requests.inc();
        served.inc_by(bytes as u64);
    }

    pub fn upstream_answer(&self, vcenter: &str, status: u16, elapsed: Duration) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                vcenter: vcenter.to_owned(),
                status,
            })
            .inc();
        self.upstream_latency
            .get_or_create(&VcenterLabels {
                vcenter: vcenter.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn upstream_error(&self, vcenter: &str, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                vcenter: vcenter.to_owned(),
                kind,
            })
            .inc();
    }

    pub fn backend_session_opened(&self, vcenter: &str) {
        let labels = VcenterLabels {
            vcenter: vcenter.to_owned(),
        };
        self.backend_logins.get_or_create(&labels).inc();
        self.backend_sessions.get_or_create(&labels).inc();
    }

    pub fn backend_session_closed(&self, vcenter: &str) {
        self.backend_sessions
            .get_or_create(&VcenterLabels {
                vcenter: vcenter.to_owned(),
            })
            .dec();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.request("list_tasks", 200);
        m.request("list_tasks", 200);
        m.cache_outcome(Outcome::Hit, 10);
        m.upstream_answer("vc1", 200, Duration::from_millis(3));
        m.backend_session_opened("vc1");
        m.duplicate_tasks.inc();
        let text = m.render();
        assert!(
            text.contains(r#"vcproxy_requests_total{route="list_tasks",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vcproxy_cache_requests_total{outcome="hit"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vcproxy_cache_served_bytes_total{outcome="hit"} 10"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vcproxy_backend_sessions_open{vcenter="vc1"} 1"#),
            "{text}"
        );
        assert!(text.contains("vcproxy_duplicate_tasks_total 1"), "{text}");
        assert!(
            text.contains(r#"vcproxy_upstream_latency_seconds_count{vcenter="vc1"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn config_reloads_and_cache_cap_are_there_from_the_start() {
        let m = Metrics::new();
        let text = m.render();
        for line in [
            r#"vcproxy_config_reloads_total{result="ok"} 0"#,
            r#"vcproxy_config_reloads_total{result="failed"} 0"#,
            "vcproxy_config_last_reload_successful 1",
            "vcproxy_cache_max_bytes 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        m.cache_max_bytes.set(256 << 20);
        m.config_reload(false);
        m.config_reload(false);
        let text = m.render();
        for line in [
            r#"vcproxy_config_reloads_total{result="ok"} 0"#,
            r#"vcproxy_config_reloads_total{result="failed"} 2"#,
            "vcproxy_config_last_reload_successful 0",
            "vcproxy_cache_max_bytes 268435456",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        m.config_reload(true);
        let text = m.render();
        for line in [
            r#"vcproxy_config_reloads_total{result="ok"} 1"#,
            r#"vcproxy_config_reloads_total{result="failed"} 2"#,
            "vcproxy_config_last_reload_successful 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
