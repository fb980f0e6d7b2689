//! Starting a simulator in-process, and the handle that controls it.

use super::data::{Clock, TaskSet};
use super::faults::SimBody;
use super::faults::{FaultState, Faults, InvalidFaults};
use super::jsonrpc;
use super::model::Shape;
use super::routes::{self, Hangup, SimState};
use super::sessions::{Sessions, UserSpec};
use super::stats::{Counters, Stats};
use crate::net::tls::{self, SelfSigned};
use crate::protocol::filter::Limits;
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How a simulator is set up. `SimConfig::default()` is one admin user, 200
/// evolving tasks from seed 1, plain HTTP, no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Who may log in; empty means [`UserSpec::default_admin`].
    pub users: Vec<UserSpec>,
    /// How many tasks to generate.
    pub tasks: usize,
    /// Seed for the task data (and the fault draws).
    pub seed: u64,
    /// Freeze every task as generated (simulated time stands still except for
    /// explicit [`SimHandle::advance`]).
    pub static_tasks: bool,
    /// Sessions idle longer than this are gone (vCenter's default is 30 minutes).
    pub session_idle: Duration,
    /// Serve HTTPS on a generated self-signed certificate.
    pub tls: bool,
    /// Extra DNS names or IPs for the certificate, beyond `localhost`, `127.0.0.1`,
    /// `::1` and the bound address.
    pub tls_names: Vec<String>,
    /// Faults in force from the start.
    pub faults: Faults,
    /// Request size limits.
    pub limits: Limits,
    /// `(i, text)`: the i-th generated task's description (`default_message`) is
    /// `text` instead: hostile text for testing how clients show task fields.
    pub descriptions: Vec<(usize, String)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: Vec::new(),
            tasks: 200,
            seed: 1,
            static_tasks: false,
            session_idle: Duration::from_secs(30 * 60),
            tls: false,
            tls_names: Vec::new(),
            faults: Faults::default(),
            limits: Limits::default(),
            descriptions: Vec::new(),
        }
    }
}

/// A running simulator. Dropping it stops the simulator (without waiting);
/// [`SimHandle::shutdown`] stops it and waits until every connection is closed.
pub struct SimHandle {
    addr: SocketAddr,
    cert: Option<SelfSigned>,
    state: Arc<SimState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("tls", &self.cert.is_some())
            .finish_non_exhaustive()
    }
}

/// Starts a simulator listening on `addr` (port 0 picks a free port).
///
/// Fails if the address cannot be bound, the faults are invalid, or (with TLS) the
/// certificate cannot be generated.
pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<SimHandle> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    config
        .faults
        .validate()
        .map_err(|InvalidFaults(e)| invalid(e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;

    let cert = if config.tls {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !local.ip().is_unspecified() {
            names.push(local.ip().to_string());
        }
        names.extend(config.tls_names.iter().cloned());
        names.sort();
        names.dedup();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Some(tls::self_signed(&names).map_err(|e| invalid(e.to_string()))?)
    } else {
        None
    };

    let (stop, stopped) = watch::channel(false);
    let users = if config.users.is_empty() {
        vec![UserSpec::default_admin()]
    } else {
        config.users.clone()
    };
    let state = Arc::new(SimState {
        tasks: {
            let mut tasks = TaskSet::generate(config.tasks, config.seed);
            for (i, text) in &config.descriptions {
                if let Some(t) = tasks.tasks.get_mut(*i) {
                    t.description.default_message.clone_from(text);
                }
            }
            tasks
        },
        clock: Clock::new(config.static_tasks),
        users,
        refused: Default::default(),
        sessions: Sessions::new(config.session_idle),
        faults: FaultState::new(config.faults.clone(), config.seed),
        counters: Counters::default(),
        limits: config.limits,
        answers: routes::answer_memo(),
        shutdown: stopped.clone(),
    });

    let service_state = state.clone();
    let make_service = move |_peer: SocketAddr| {
        let state = service_state.clone();
        hyper::service::service_fn(move |req| handle(state.clone(), req))
    };
    let mut until_stopped = stopped;
    let shutdown = async move {
        let _ = until_stopped.wait_for(|stop| *stop).await;
    };
    let server_config = cert.as_ref().map(|c| c.config.clone());
    let task = tokio::spawn(crate::net::listener::serve(
        listener,
        server_config,
        make_service,
        shutdown,
    ));
    tracing::info!(addr = %local, tls = config.tls, tasks = config.tasks, seed = config.seed,
        static_tasks = config.static_tasks, "simulator started");
    Ok(SimHandle {
        addr: local,
        cert,
        state,
        stop,
        task: Some(task),
    })
}

impl SimHandle {
    /// The address the simulator is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` or `https://IP:PORT`, with a loopback IP when bound to an
    /// unspecified address (`0.0.0.0`, `::`).
    pub fn base_url(&self) -> String {
        let scheme = if self.cert.is_some() { "https" } else { "http" };
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("{scheme}://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The self-signed certificate (PEM) when serving HTTPS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert.as_ref().map(|c| c.cert_pem.as_str())
    }

    /// The certificate's SHA-256 fingerprint (`AB:CD:...`) when serving HTTPS.
    pub fn cert_fingerprint(&self) -> Option<String> {
        self.cert
            .as_ref()
            .map(|c| tls::fingerprint_sha256(&c.cert_der))
    }

    /// Replaces the faults in force (for requests that start after the call).
    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFaults> {
        self.state.faults.set(faults)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.state.faults.get()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Refuses `user`'s log-ins from now on (`false`: accepts them again), as if
    /// the password had been changed on vCenter; open sessions stay valid.
    pub fn refuse_logins(&self, user: &str, refuse: bool) {
        let mut refused = self.state.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refuse {
            refused.insert(user.to_owned());
        } else {
            refused.remove(user);
        }
    }

    /// Ends every session now; returns how many were open.
    pub fn expire_sessions(&self) -> usize {
        self.state.sessions.expire_all()
    }

    /// Moves simulated time forward (tasks evolve by that much), also with
    /// `static_tasks`.
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Every task as of now, as an `/api` map `{"<id>": {Info}, ...}` (what
    /// `GET /_sim/tasks` returns).
    pub fn tasks_api_json(&self) -> Bytes {
        self.state.tasks_api_json()
    }

    /// Every task id, in generation order.
    pub fn task_ids(&self) -> Vec<String> {
        self.state
            .tasks
            .tasks
            .iter()
            .map(|t| t.id.clone())
            .collect()
    }

    /// Stops accepting connections, abandons hanging requests, lets the others
    /// finish, and returns when every connection is closed.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "simulator task failed");
            }
        }
        tracing::info!(addr = %self.addr, "simulator stopped");
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Answers one request: the control API, or a vCenter request in its protocol
/// (the REST families in [`routes`], JSON-RPC in [`jsonrpc`]).
async fn handle(
    state: Arc<SimState>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<SimBody>, Hangup> {
    use crate::protocol::Family;
    let path = req.uri().path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return Ok(routes::control(&state, &path, req).await);
    }
    if let Some(t) = req.headers().get("traceparent") {
        state.counters.saw_traceparent(t.as_bytes());
    }
    match Family::of_request(req.method(), &path, req.uri().query()) {
        Some(Family::Rest) => routes::vcenter(state, Shape::Rest, path, req).await,
        Some(Family::Api) => routes::vcenter(state, Shape::Api, path, req).await,
        Some(Family::JsonRpc) => jsonrpc::serve(state, req).await,
        None => Ok(routes::plain(http::StatusCode::NOT_FOUND, "not found\n")),
    }
}
