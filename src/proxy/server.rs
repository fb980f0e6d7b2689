//! The run loop: the client listener, the admin listener and the session reaper,
//! until shutdown.
//!
//! [`run`] takes the listeners and the shutdown signal as arguments, so `serve`, the
//! demo and the tests run the same proxy.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::info;

use super::state::Proxy;
use super::{admin, front};
use crate::net::listener;

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
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                // Asked each time: a reload may change the idle timeouts.
                let settings = sessions.settings();
                let period = (settings.backend_idle.min(settings.client_idle) / 4)
                    .clamp(Duration::from_millis(50), Duration::from_secs(30));
                tokio::select! {
                    () = tokio::time::sleep(period) => sessions.reap().await,
                    () = &mut stop => break,
                }
            }
        })
    };

    // Sessions logged out on other replicas end here too.
    let revocations = tokio::spawn(
        proxy
            .sessions
            .clone()
            .follow_revocations(stopped(stop_rx.clone())),
    );

    let admin_task = {
        let proxy = proxy.clone();
        let stop = stopped(stop_rx.clone());
        // The client listener's deadlines, with its own connection limit and count
        // (a busy admin listener must not make /readyz say the proxy is full).
        let defaults = listener::ServeOptions::default();
        let options = listener::ServeOptions {
            open: defaults.open,
            max_connections: defaults.max_connections,
            ..proxy.listen.borrow().clone()
        };
        tokio::spawn(listener::serve_with(
            admin,
            None,
            options,
            move |_peer| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(admin::route(&proxy, req).await) }
                })
            },
            stop,
        ))
    };

    proxy.ready.store(true, Ordering::SeqCst);
    let closing = proxy.clone();
    let front = {
        let proxy = proxy.clone();
        listener::serve_reloadable(
            clients,
            proxy.tls.clone(),
            proxy.listen.subscribe(),
            move |peer: SocketAddr| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(front::handle(&proxy, peer, req).await) }
                })
            },
            async move {
                shutdown.await;
                info!("shutting down: no new connections; finishing requests in flight");
                // Watch streams never end by themselves: end them so connections drain.
                closing.watches.close();
            },
        )
    };
    front.await;
    proxy.ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    let _ = reaper.await;
    let _ = revocations.await;
    proxy.sessions.close_all().await;
    info!("stopped; vCenter sessions closed");
}
