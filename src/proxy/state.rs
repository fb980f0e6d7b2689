//! The proxy's state, built from the configuration.
//!
//! [`Proxy::new`] is the one place configuration becomes runtime: each settings
//! type converts itself from its configuration section (`From<&config::…>`), and
//! the list of vCenters is built here and handed to the session pool and the
//! fan-out.
//!
//! The state comes in two parts, so that a reload ([`super::reload`]) can replace
//! one without touching the other:
//! * what lives as long as the process: client sessions and the vCenter sessions
//!   behind them, metrics, the listener's certificate store and limits;
//! * a [`Generation`]: the vCenters and everything whose answers depend on them or
//!   on the cache and merge settings (the cache, the fan-out, Get Task's owners),
//!   and the request limits. A request takes the generation in force when it
//!   arrives and uses it throughout, so an answer fetched from the old vCenter set
//!   can never land in the new generation's cache.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::cache::{CacheSettings, ResponseCache};
use super::fanout::{Fanout, FanoutSettings};
use super::lookup::Lookup;
use super::metrics::Metrics;
use super::owners::TaskOwners;
use super::sessions::{SessionSettings, Sessions};
use super::shared::SharedLevel;
use super::watch::{WatchSettings, Watches};
use crate::cluster::{Cluster, ClusterSettings};
use crate::config::{self, Config};
use crate::net::listener::ServeOptions;
use crate::net::tls::CertStore;
use crate::protocol::filter::{Limits, Resolver};
use crate::upstream::{Backends, UpstreamConfigError};

/// Applies `[log]` to the running log subscriber, at a reload. The binary installs
/// the subscriber, so it hands the proxy this handle on it.
pub trait LogControl: Send + Sync {
    /// Switches to `log`'s level and format, or says why not.
    fn apply(&self, log: &config::Log) -> Result<(), String>;
}

/// Everything a request handler needs.
pub struct Proxy {
    pub(super) sessions: Arc<Sessions>,
    pub(super) metrics: Arc<Metrics>,
    /// `[cluster]`: the replicas' shared level, when configured. It lives as long
    /// as the process (a reload does not change it).
    pub(super) cluster: Option<ClusterLink>,
    /// The part a reload replaces; see [`Generation`].
    pub(super) current: ArcSwap<Generation>,
    /// TLS for the client listener, when `[listen] tls_cert`/`tls_key` are set. Its
    /// certificate comes from `certs` at each handshake.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) certs: Option<Arc<CertStore>>,
    /// Connection and header limits for the client listener; a reload sends new ones.
    pub(super) listen: tokio::sync::watch::Sender<ServeOptions>,
    pub(super) ready: AtomicBool,
    pub(super) next_request_id: AtomicU64,
    /// Watch streams, one hub per question watched.
    pub(super) watches: Watches,
    /// The configuration in force. Its lock also makes reloads take turns.
    pub(super) applied: tokio::sync::Mutex<Config>,
    /// Applies `[log]` at a reload; set by whoever installed the log subscriber.
    pub(super) log_control: OnceLock<Box<dyn LogControl>>,
}

/// The vCenters and what depends on them, replaced whole by a reload.
pub(super) struct Generation {
    pub backends: Backends,
    pub cache: ResponseCache,
    pub fanout: Arc<Fanout>,
    /// Get Task: the owning vCenter, else all of them.
    pub lookup: Arc<Lookup>,
    /// Raw List Tasks requests to their resolved questions (memoized).
    pub requests: Arc<Resolver>,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// `log.access`: whether each request writes an access-log line.
    pub access_log: bool,
    /// Completes once `fanout` is dropped: every request that could ask its
    /// vCenters is over. Taken by the reload that replaces the fan-out.
    pub fanout_gone: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// The sections this generation was built from, to tell what a reload changes.
    pub cache_config: config::Cache,
    pub merge_config: config::Merge,
}

/// The proxy's link to the other replicas.
pub(super) struct ClusterLink {
    pub shared: Arc<SharedLevel>,
    /// `cluster.required`: `/readyz` fails while Redis is unreachable.
    pub required: bool,
}

/// Why the proxy could not be built from a (validated) configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamConfigError),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("listen.tls_cert / listen.tls_key: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

impl Proxy {
    /// Builds the proxy's state from a validated configuration.
    ///
    /// With a `[cluster]`, it must be called inside a Tokio runtime: the link to
    /// Redis starts connecting in the background at once.
    pub fn new(config: &Config) -> Result<Arc<Proxy>, ProxyError> {
        Self::with_watch_settings(config, WatchSettings::default())
    }

    /// [`Proxy::new`] with watch streams paced and bounded by `watch` instead of
    /// the defaults (which are not configurable): for tests, which shorten the
    /// heartbeat and shrink the queues.
    pub fn with_watch_settings(
        config: &Config,
        watch: WatchSettings,
    ) -> Result<Arc<Proxy>, ProxyError> {
        let mut metrics = Metrics::new();
        let cluster = match &config.cluster {
            Some(c) => {
                let cluster_metrics = crate::cluster::ClusterMetrics::new();
                metrics = metrics.with_cluster(&cluster_metrics);
                let cluster = Cluster::start(ClusterSettings::from(c), cluster_metrics)?;
                Some(ClusterLink {
                    shared: Arc::new(SharedLevel {
                        cluster,
                        lock_timeout: c.lock_timeout,
                    }),
                    required: c.required,
                })
            }
            None => None,
        };
        let metrics = Arc::new(metrics);
        let backends = Backends::from_config(&config.vcenters)?;
        let sessions = Sessions::new(
            backends.clone(),
            config.auth.mode.clone(),
            SessionSettings::from(&config.auth),
            metrics.clone(),
            cluster.as_ref().map(|c| c.shared.cluster.clone()),
        );
        let shared = cluster.as_ref().map(|c| c.shared.clone());
        let generation = Generation::build(config, backends, None, &sessions, &metrics, shared);
        let certs = match &config.listen.tls {
            Some(t) => Some(CertStore::new(t.cert_chain.clone(), t.key.clone_key())?),
            None => None,
        };
        let tls = match &certs {
            Some(store) => Some(crate::net::tls::rotating_server_config(store.clone())?),
            None => None,
        };
        let (listen, _) = tokio::sync::watch::channel(serve_options(&config.listen, None));
        Ok(Arc::new(Proxy {
            sessions,
            metrics,
            cluster,
            current: ArcSwap::from_pointee(generation),
            tls,
            certs,
            listen,
            ready: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
            watches: Watches::new(watch),
            applied: tokio::sync::Mutex::new(config.clone()),
            log_control: OnceLock::new(),
        }))
    }

    /// Whether the client listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Lets reloads apply `[log]`: the binary hands over the handle of the log
    /// subscriber it installed. Without one, a changed `[log]` is reported as kept.
    pub fn set_log_control(&self, control: Box<dyn LogControl>) {
        let _ = self.log_control.set(control);
    }
}

impl Generation {
    /// A generation for `config` and `backends`, reusing what `previous` has that
    /// the change does not touch: the cache (and Get Task's owners, and the
    /// fan-out) when the vCenters and the cache and merge settings are unchanged,
    /// the memo of resolved requests when the limits are.
    pub(super) fn build(
        config: &Config,
        backends: Backends,
        previous: Option<&Generation>,
        sessions: &Arc<Sessions>,
        metrics: &Arc<Metrics>,
        shared: Option<Arc<SharedLevel>>,
    ) -> Generation {
        let limits = Limits {
            max_query_bytes: config.listen.max_query_bytes.as_usize(),
            max_body_bytes: config.listen.max_body_bytes.as_usize(),
        };
        let requests = match previous {
            Some(p) if *p.requests.limits() == limits => p.requests.clone(),
            _ => Arc::new(Resolver::new(limits, 16 * 1024 * 1024)),
        };
        let same_answers = previous.filter(|p| {
            same_ids(&p.backends, &backends)
                && p.cache_config == config.cache
                && p.merge_config == config.merge
        });
        let (cache, fanout, lookup, fanout_gone) = match same_answers {
            Some(p) => (
                p.cache.clone(),
                p.fanout.clone(),
                p.lookup.clone(),
                p.take_fanout_gone(),
            ),
            None => {
                // Which vCenter listed each task, for Get Task: a million ids is
                // ~100 MB at most, the order of the response cache's own default bound.
                let owners = Arc::new(TaskOwners::new(1_000_000));
                let (fanout, gone) = Fanout::new(
                    backends.clone(),
                    sessions.clone(),
                    metrics.clone(),
                    owners.clone(),
                    FanoutSettings::from(&config.merge),
                );
                let lookup = Lookup::new(fanout.clone(), owners);
                let cache =
                    ResponseCache::new(CacheSettings::from(&config.cache)).with_shared(shared);
                (cache, fanout, lookup, Some(gone))
            }
        };
        Generation {
            backends,
            cache,
            fanout,
            lookup,
            requests,
            body_read_timeout: config.listen.body_read_timeout,
            access_log: config.log.access,
            fanout_gone: std::sync::Mutex::new(fanout_gone),
            cache_config: config.cache.clone(),
            merge_config: config.merge.clone(),
        }
    }

    /// The signal that this generation's fan-out is gone (once).
    pub(super) fn take_fanout_gone(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.fanout_gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Whether this generation reuses `previous`'s cache.
    pub(super) fn shares_cache_with(&self, previous: &Generation) -> bool {
        Arc::ptr_eq(&self.fanout, &previous.fanout)
    }
}

/// The same vCenters, by identity, in the same order.
fn same_ids(a: &Backends, b: &Backends) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.id == y.id)
}

/// The client listener's limits. Built here rather than by a `From` beside the
/// type: the net layer sits below the configuration (which uses it) and does not
/// know it. `open` is the count of the listener already running, if any.
pub(super) fn serve_options(listen: &config::Listen, open: Option<&ServeOptions>) -> ServeOptions {
    ServeOptions {
        max_connections: listen.max_connections,
        max_header_bytes: listen.max_header_bytes.as_usize(),
        header_read_timeout: listen.header_read_timeout,
        shutdown_grace: listen.shutdown_grace,
        idle_timeout: listen.idle_timeout,
        open: open.map(|o| o.open.clone()).unwrap_or_default(),
    }
}
