//! The proxy's state, built once from the configuration.
//!
//! [`Proxy::new`] is the one place configuration becomes runtime: each settings
//! type converts itself from its configuration section (`From<&config::…>`), and
//! the list of vCenters is built once here and handed to the session pool and the
//! fan-out.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use super::cache::{CacheSettings, ResponseCache};
use super::fanout::{Fanout, FanoutSettings};
use super::lookup::Lookup;
use super::metrics::Metrics;
use super::owners::TaskOwners;
use super::sessions::{SessionSettings, Sessions};
use crate::config::Config;
use crate::net::listener::ServeOptions;
use crate::protocol::filter::{Limits, Resolver};
use crate::upstream::{Backends, UpstreamConfigError};

/// Everything a request handler needs, built once from the configuration.
pub struct Proxy {
    pub(super) sessions: Arc<Sessions>,
    pub(super) cache: ResponseCache,
    pub(super) fanout: Arc<Fanout>,
    /// Get Task: the owning vCenter, else all of them.
    pub(super) lookup: Arc<Lookup>,
    pub(super) metrics: Arc<Metrics>,
    /// Raw List Tasks requests to their resolved questions (memoized).
    pub(super) requests: Resolver,
    /// TLS for the client listener, when `[listen] tls_cert`/`tls_key` are set.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// Connection and header limits for the client listener.
    pub(super) serve_options: ServeOptions,
    /// How long a request body may take to arrive.
    pub(super) body_read_timeout: std::time::Duration,
    pub(super) ready: AtomicBool,
    pub(super) next_request_id: AtomicU64,
}

/// Why the proxy could not be built from a (validated) configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamConfigError),
    #[error("listen.tls_cert / listen.tls_key: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

impl Proxy {
    /// Builds the proxy's state from a validated configuration.
    pub fn new(config: &Config) -> Result<Arc<Proxy>, ProxyError> {
        let metrics = Arc::new(Metrics::new());
        let backends = Backends::from_config(&config.vcenters)?;
        let sessions = Sessions::new(
            backends.clone(),
            config.auth.mode.clone(),
            SessionSettings::from(&config.auth),
            metrics.clone(),
        );
        // Which vCenter listed each task, for Get Task: a million ids is ~100 MB at
        // most, the order of the response cache's own default bound.
        let owners = Arc::new(TaskOwners::new(1_000_000));
        let fanout = Fanout::new(
            backends,
            sessions.clone(),
            metrics.clone(),
            owners.clone(),
            FanoutSettings::from(&config.merge),
        );
        let lookup = Lookup::new(fanout.clone(), owners);
        let tls = match &config.listen.tls {
            Some(t) => Some(crate::net::tls::server_config(
                t.cert_chain.clone(),
                t.key.clone_key(),
            )?),
            None => None,
        };
        Ok(Arc::new(Proxy {
            sessions,
            cache: ResponseCache::new(CacheSettings::from(&config.cache)),
            fanout,
            lookup,
            metrics,
            // Limits and serve options are built here rather than by a `From` beside
            // their types: the protocol and net layers sit below the configuration
            // (which uses them) and do not know it.
            requests: Resolver::new(
                Limits {
                    max_query_bytes: config.listen.max_query_bytes.as_usize(),
                    max_body_bytes: config.listen.max_body_bytes.as_usize(),
                },
                16 * 1024 * 1024,
            ),
            tls,
            serve_options: ServeOptions {
                max_connections: config.listen.max_connections,
                max_header_bytes: config.listen.max_header_bytes.as_usize(),
                header_read_timeout: config.listen.header_read_timeout,
                shutdown_grace: config.listen.shutdown_grace,
                idle_timeout: config.listen.idle_timeout,
                open: Default::default(),
            },
            body_read_timeout: config.listen.body_read_timeout,
            ready: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        }))
    }

    /// Whether the client listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}
