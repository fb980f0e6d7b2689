//! Test harness for the proxy: simulators and the proxy in-process on 127.0.0.1:0,
//! and a real HTTP client (hyper-util's pooled client) to talk to them.
#![allow(dead_code)]

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vcproxy::config::Config;
use vcproxy::sim::{self, SimConfig, SimHandle};
use vcproxy::Family;
use vcproxy::Proxy;

pub const ADMIN: (&str, &str) = (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD);

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cache(&self) -> &str {
        self.header("vcproxy-cache").unwrap_or("")
    }
}

/// An HTTP client against one base URL (http, or https trusting given roots).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    pub fn new(base: impl Into<String>) -> Http {
        Self::build(base.into(), rustls::RootCertStore::empty(), false)
    }

    /// HTTPS trusting exactly `roots`.
    pub fn tls(base: impl Into<String>, roots: rustls::RootCertStore) -> Http {
        Self::build(base.into(), roots, false)
    }

    /// HTTP/2 only (prior knowledge on plain HTTP, ALPN h2 over TLS).
    pub fn h2(base: impl Into<String>, roots: rustls::RootCertStore) -> Http {
        Self::build(base.into(), roots, true)
    }

    fn build(base: String, roots: rustls::RootCertStore, h2: bool) -> Http {
        let tls = rustls::ClientConfig::builder_with_provider(vcproxy::net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if h2 {
            b.enable_http2().build()
        } else {
            b.enable_http1().build()
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build(connector);
        Http { base, client }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = b
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("no answer within 30 s")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn login(&self, family: Family, user: &str, password: &str) -> Resp {
        let auth = basic(user, password);
        let path = match family {
            Family::Rest => "/rest/com/vmware/cis/session",
            Family::Api => "/api/session",
        };
        self.call(Method::POST, path, &[("authorization", &auth)], None)
            .await
    }

    /// Logs in and returns the session id.
    pub async fn session(&self, family: Family, user: &str, password: &str) -> String {
        let r = self.login(family, user, password).await;
        assert!(
            r.status.is_success(),
            "login failed: {:?} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        match family {
            Family::Rest => r.json()["value"].as_str().unwrap().to_owned(),
            Family::Api => r.json().as_str().unwrap().to_owned(),
        }
    }

    pub async fn rest_list(&self, sid: &str, query: &str) -> Resp {
        let path = if query.is_empty() {
            "/rest/cis/tasks".to_owned()
        } else {
            format!("/rest/cis/tasks?{query}")
        };
        self.call(Method::GET, &path, &[("vmware-api-session-id", sid)], None)
            .await
    }

    pub async fn api_list(&self, sid: &str, body: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/cis/tasks?action=list",
            &[
                ("vmware-api-session-id", sid),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
        .await
    }

    pub async fn list(&self, family: Family, sid: &str, rest_query: &str, api_body: &str) -> Resp {
        match family {
            Family::Rest => self.rest_list(sid, rest_query).await,
            Family::Api => self.api_list(sid, api_body).await,
        }
    }
}

/// A root store holding the certificates in `pem`.
pub fn roots(pem: &str) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    for c in vcproxy::net::tls::certs_from_pem(pem.as_bytes()).unwrap() {
        store.add(c).unwrap();
    }
    store
}

/// A fresh directory under the system's temp dir for one test's files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vcproxy-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn basic(user: &str, password: &str) -> String {
    let value = vcproxy::auth::basic_auth::encode(user, password).unwrap();
    value.to_str().unwrap().to_owned()
}

/// The listener tables of a test configuration (the proxy binds its own
/// 127.0.0.1:0 listeners; these addresses only have to be valid).
pub const LISTEN: &str = "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.2:0\"\n";

/// A configuration: `head` (the `[listen]` table and any other sections), then one
/// `[[vcenter]]` per url, named vc1, vc2, ..., each with `per_vcenter(index)` added.
pub fn config(head: &str, urls: &[String], per_vcenter: impl Fn(usize) -> String) -> Config {
    let mut toml = head.to_owned();
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "\n[[vcenter]]\nname = \"vc{}\"\nurl = \"{url}\"\n{}\n",
            i + 1,
            per_vcenter(i)
        ));
    }
    Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

/// Simulators and a proxy in front of them, all on loopback.
pub struct Env {
    pub sims: Vec<SimHandle>,
    pub proxy: Arc<Proxy>,
    pub http: Http,
    pub admin: Http,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A static simulator with `tasks` tasks from `seed`, and the two demo users.
pub fn sim_config(tasks: usize, seed: u64) -> SimConfig {
    SimConfig {
        users: vec![
            sim::UserSpec::default_admin(),
            sim::UserSpec::restricted(
                "operator@vsphere.local",
                "Operator1!",
                sim::service_ids().into_iter().take(2),
            ),
        ],
        tasks,
        seed,
        static_tasks: true,
        ..SimConfig::default()
    }
}

impl Env {
    /// Starts one simulator per config and the proxy; `extra` is appended to the
    /// generated TOML (sections other than `[listen]`/`[[vcenter]]`), and
    /// `vcenter_extra` to every `[[vcenter]]` table.
    pub async fn start(sims: Vec<SimConfig>, extra: &str, vcenter_extra: &str) -> Env {
        let mut handles = Vec::new();
        for c in sims {
            handles.push(sim::start("127.0.0.1:0".parse().unwrap(), c).await.unwrap());
        }
        let urls: Vec<String> = handles.iter().map(|s| s.base_url()).collect();
        Self::start_with_urls(handles, &urls, extra, vcenter_extra).await
    }

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
    /// binds 127.0.0.1:0) in front of already running simulators.
    pub async fn start_with_config(sims: Vec<SimHandle>, config: &Config) -> Env {
        let proxy = Proxy::new(config).expect("proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(vcproxy::run(proxy.clone(), listener, admin, async move {
            let _ = rx.await;
        }));
        Env {
            sims,
            proxy,
            http: Http::new(format!("http://{addr}")),
            admin: Http::new(format!("http://{admin_addr}")),
            addr,
            stop: Some(tx),
            task: Some(task),
        }
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

/// Every key of a `/rest` list body, in order.
pub fn rest_keys(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .expect("a /rest list")
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}
