//! Simulators and a proxy in front of them, all in this process on loopback; and the
//! proxy configurations they run with.

use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vcproxy::config::Config;
use vcproxy::sim::{self, SimConfig, SimHandle};

use crate::client::Http;
use crate::proxy::{bind_proxy, BoundProxy};
use crate::sims::start_sims;

/// The listener tables of a configuration (the proxy in this process binds its own
/// 127.0.0.1 listeners; these addresses only have to be valid).
pub const LISTEN: &str = "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.2:0\"\n";

/// A configuration's TOML: `head` (the `[listen]` table and any other sections), then
/// one `[[vcenter]]` per url, named vc1, vc2, ..., each with `per_vcenter(index)`
/// added.
pub fn config_toml(head: &str, urls: &[String], per_vcenter: impl Fn(usize) -> String) -> String {
    let mut toml = head.to_owned();
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[vcenter]]\nname = \"vc{}\"\nurl = \"{url}\"\n{}\n",
            i + 1,
            per_vcenter(i)
        ));
    }
    toml
}

/// A configuration from its TOML; panics, showing the TOML, when it is invalid.
pub fn parse_config(toml: &str) -> Config {
    Config::from_toml_str(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

/// [`config_toml`], parsed.
pub fn config(head: &str, urls: &[String], per_vcenter: impl Fn(usize) -> String) -> Config {
    parse_config(&config_toml(head, urls, per_vcenter))
}

/// Simulators and a proxy in front of them, all on loopback, with a client for each
/// of the proxy's listeners. Dropping it stops the proxy; [`Env::stop`] also waits
/// for it and stops the simulators.
pub struct Env {
    pub sims: Vec<SimHandle>,
    /// A client of the proxy's client listener.
    pub http: Http,
    /// A client of the proxy's admin listener.
    pub admin: Http,
    /// The client listener's address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Env {
    /// Starts one simulator per config and the proxy; `extra` is appended to the
    /// generated TOML (sections other than `[listen]`/`[[vcenter]]`), and
    /// `vcenter_extra` to every `[[vcenter]]` table.
    pub async fn start(sims: Vec<SimConfig>, extra: &str, vcenter_extra: &str) -> Env {
        let handles = start_sims(sims).await;
        let urls: Vec<String> = handles.iter().map(|s| s.base_url()).collect();
        Self::start_with_urls(handles, &urls, extra, vcenter_extra).await
    }

    /// Starts the proxy in front of vCenters at `urls` (`sims` are kept, to be
    /// counted and stopped).
    pub async fn start_with_urls(
        sims: Vec<SimHandle>,
        urls: &[String],
        extra: &str,
        vcenter_extra: &str,
    ) -> Env {
        let config = config(&format!("{LISTEN}{extra}\n"), urls, |_| {
            vcenter_extra.to_owned()
        });
        Self::start_with_config(sims, &config).await
    }

    /// Starts the proxy for `config` (its listen addresses are ignored: the proxy
    /// binds 127.0.0.1 ports of its own) in front of already running simulators.
    pub async fn start_with_config(sims: Vec<SimHandle>, config: &Config) -> Env {
        Self::start_bound(sims, bind_proxy(config).await)
    }

    /// Serves `proxy`, already built and bound (see [`BoundProxy::bind`]), in front
    /// of already running simulators.
    pub fn start_bound(sims: Vec<SimHandle>, proxy: BoundProxy) -> Env {
        let (addr, admin_addr) = (proxy.addr, proxy.admin_addr);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async move {
            let _ = rx.await;
        }));
        Env {
            sims,
            http: Http::new(format!("http://{addr}")),
            admin: Http::new(format!("http://{admin_addr}")),
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the proxy for the configuration file at `path` (so that a reload
    /// reads it again), in front of already running simulators.
    pub async fn start_from_file(sims: Vec<SimHandle>, path: &std::path::Path) -> Env {
        let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        Self::start_with_config(sims, &config).await
    }

    /// `POST /reload` on the admin listener: the proxy reads its file again.
    pub async fn reload(&self) -> crate::client::Resp {
        self.admin
            .call(http::Method::POST, "/reload", &[], None)
            .await
    }

    /// List Tasks requests each simulator has received.
    pub fn upstream_lists(&self) -> Vec<u64> {
        self.sims
            .iter()
            .map(|s| s.stats().endpoint_total(sim::Endpoint::TasksList))
            .collect()
    }

    /// All requests each simulator has received.
    pub fn upstream_total(&self) -> Vec<u64> {
        self.sims
            .iter()
            .map(|s| s.stats().total_requests())
            .collect()
    }

    /// Sessions each simulator has opened so far.
    pub fn upstream_sessions_opened(&self) -> Vec<u64> {
        self.sims
            .iter()
            .map(|s| s.stats().sessions_opened)
            .collect()
    }

    /// Graceful shutdown of the proxy alone; returns when it has stopped.
    pub async fn stop_proxy(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Stops the proxy, then the simulators.
    pub async fn stop(mut self) {
        self.stop_proxy().await;
        for s in std::mem::take(&mut self.sims) {
            s.shutdown().await;
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
