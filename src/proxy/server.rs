//! The proxy's state, built once from the configuration, and its run loop.
//!
//! [`Proxy::new`] is the one place configuration becomes runtime: each settings
//! type converts itself from its configuration section (`From<&config::…>`), and
//! the list of vCenters is built once here and handed to the session pool and the
//! fan-out. [`run`] takes the listeners and the shutdown signal as arguments, so
//! `serve`, the demo and the tests run the same proxy.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::info;

use super::cache::{CacheSettings, KeyMemo, ResponseCache};
use super::fanout::{Fanout, FanoutSettings};
use super::metrics::Metrics;
use super::sessions::{SessionSettings, Sessions};
use crate::config::Config;
use crate::net::listener::{self, ServeOptions};
use crate::protocol::filter::Limits;
use crate::upstream::{Backends, UpstreamConfigError};

/// Everything a request handler needs, built once from the configuration.
pub struct Proxy {
    pub(super) sessions: Arc<Sessions>,
    pub(super) cache: ResponseCache,
    pub(super) fanout: Arc<Fanout>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) limits: Limits,
    /// Raw requests already parsed, to their canonical keys.
    pub(super) keys: KeyMemo,
    /// TLS for the client listener, when `[listen] tls_cert`/`tls_key` are set.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Connection and header limits for the client listener.
    serve_options: ServeOptions,
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
        let fanout = Fanout::new(
            backends,
            sessions.clone(),
            metrics.clone(),
            FanoutSettings::from(&config.merge),
        );
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
            metrics,
            keys: KeyMemo::new(16 * 1024 * 1024),
            // Built here rather than by a `From` beside `Limits`: the protocol layer
            // sits below the configuration and does not know it.
            limits: Limits {
                max_query_bytes: config.listen.max_query_bytes.as_usize(),
                max_body_bytes: config.listen.max_body_bytes.as_usize(),
            },
            tls,
            serve_options: ServeOptions::from(&config.listen),
            ready: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        }))
    }

    /// Whether the client listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Serves clients on `clients` and the admin API on `admin` until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish, and logs out of
/// every vCenter session.
pub async fn run(
    proxy: Arc<Proxy>,
    clients: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let reaper = {
        let sessions = proxy.sessions.clone();
        let settings = *sessions.settings();
        let period = (settings.backend_idle.min(settings.client_idle) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => sessions.reap().await,
                    () = &mut stop => break,
                }
            }
        })
    };

    let admin_task = {
        let proxy = proxy.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(listener::serve(
            admin,
            None,
            move |_peer| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(super::admin::route(&proxy, req).await) }
                })
            },
            stop,
        ))
    };

    proxy.ready.store(true, Ordering::SeqCst);
    let front = {
        let proxy = proxy.clone();
        listener::serve_with(
            clients,
            proxy.tls.clone(),
            proxy.serve_options,
            move |peer: SocketAddr| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(super::front::handle(&proxy, peer, req).await) }
                })
            },
            async move {
                shutdown.await;
                info!("shutting down: no new connections; finishing requests in flight");
            },
        )
    };
    front.await;
    proxy.ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    let _ = reaper.await;
    proxy.sessions.close_all().await;
    info!("stopped; vCenter sessions closed");
}
