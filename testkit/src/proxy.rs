//! The proxy in this process. The only place that names the proxy's server
//! (`Proxy`, `run`): when those move, this file is the one to follow them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use vcproxy::config::Config;
use vcproxy::{run, Proxy, WatchSettings};

/// The proxy built from a configuration, its client and admin listeners bound on
/// 127.0.0.1 (on ports of their own: the configuration's addresses are not used), not
/// serving yet.
pub struct BoundProxy {
    proxy: Arc<Proxy>,
    listener: TcpListener,
    admin: TcpListener,
    /// The client listener's address.
    pub addr: SocketAddr,
    /// The admin listener's address.
    pub admin_addr: SocketAddr,
}

/// Builds the proxy for `config` and binds its two listeners; panics on an invalid
/// configuration.
pub async fn bind_proxy(config: &Config) -> BoundProxy {
    BoundProxy::bind(config, WatchSettings::default()).await
}

impl BoundProxy {
    /// [`bind_proxy`] with watch streams paced and bounded by `watch` (a short
    /// heartbeat, small queues) instead of the proxy's fixed defaults.
    pub async fn bind(config: &Config, watch: WatchSettings) -> BoundProxy {
        let proxy = Proxy::with_watch_settings(config, watch).expect("proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        BoundProxy {
            proxy,
            listener,
            admin,
            addr,
            admin_addr,
        }
    }

    /// Serves until `shutdown` resolves, then stops as `vcproxy serve` does: requests
    /// in flight finish, vCenter sessions are logged out.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        run(self.proxy, self.listener, self.admin, shutdown).await
    }
}
