//! The connection to Redis and the one door every call goes through: the
//! circuit breaker, a timeout per call, the error and latency metrics.
//!
//! Commands use a [`ConnectionManager`] (one multiplexed connection, reconnected
//! on I/O errors). Its own response timeout is off: each call is bounded by
//! `command_timeout` here (a probe, which may have to connect first, by
//! `connect_timeout + command_timeout`), so a frozen Redis (SIGSTOP, a stalled
//! network) makes calls fail by timeout rather than hang. When the breaker opens, and after each
//! failed probe, the manager is replaced by a fresh one (connected lazily), so a
//! connection stuck in a state the manager does not recover from (a failed
//! handshake, a half-open socket) cannot keep the layer down once Redis is back.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, ConnectionAddr, FromRedisValue, IntoConnectionInfo, ProtocolVersion, RedisError,
    RedisResult,
};
use rustls::pki_types::CertificateDer;

use super::breaker::{Admit, Breaker, Transition};
use super::metrics::ClusterMetrics;
use super::{ClusterError, ClusterSettings};

/// Why a call gave no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The breaker is open: Redis was not called.
    Refused,
    /// No answer within `command_timeout`.
    Timeout,
    Redis(RedisError),
}

/// A Lua script run with `EVALSHA`, falling back to `EVAL` when the server does not
/// have it cached (`NOSCRIPT`); so the ACL needs no `SCRIPT LOAD`.
pub(crate) struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    pub(crate) fn new(source: &'static str) -> Script {
        Script {
            source,
            sha1: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

pub(crate) struct Store {
    client: Client,
    manager_config: ConnectionManagerConfig,
    manager: Mutex<Option<ConnectionManager>>,
    pub(crate) breaker: Breaker,
    command_timeout: Duration,
    connect_timeout: Duration,
    breaker_probe: Duration,
    metrics: ClusterMetrics,
    /// How often the breaker closed: a reconnection after an outage.
    closings: AtomicU64,
    /// Calls that reached Redis (or tried to): what the breaker tests count.
    attempts: AtomicU64,
}

impl Store {
    pub(crate) fn new(s: &ClusterSettings, metrics: ClusterMetrics) -> Result<Store, ClusterError> {
        let client = client(s)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(s.connect_timeout))
            .set_response_timeout(None)
            // One attempt per (re)connection: the breaker paces the retries.
            .set_number_of_retries(0);
        metrics.up.set(0);
        Ok(Store {
            client,
            manager_config,
            manager: Mutex::new(None),
            breaker: Breaker::new(s.breaker_failures, s.breaker_probe),
            command_timeout: s.command_timeout,
            connect_timeout: s.connect_timeout,
            breaker_probe: s.breaker_probe,
            metrics,
            closings: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn breaker_probe(&self) -> Duration {
        self.breaker_probe
    }

    pub(crate) fn closings(&self) -> u64 {
        self.closings.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// One command through the breaker. `T` is what the reply converts to.
    pub(crate) async fn query<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: redis::Cmd,
    ) -> Result<T, CallError> {
        self.call(true, move |mut conn| async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// A pipeline through the breaker (one round trip, not atomic).
    pub(crate) async fn query_pipe<T: FromRedisValue + Send + 'static>(
        &self,
        pipe: redis::Pipeline,
    ) -> Result<T, CallError> {
        self.call(true, move |mut conn| async move {
            pipe.query_async(&mut conn).await
        })
        .await
    }

    /// A script through the breaker: `EVALSHA`, then `EVAL` on `NOSCRIPT` (both
    /// within the one call's timeout).
    pub(crate) async fn eval<T: FromRedisValue + Send + 'static>(
        &self,
        script: &Script,
        keys: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<T, CallError> {
        let build = |name: &str, script_arg: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(script_arg).arg(keys.len()).arg(keys);
            for a in &args {
                cmd.arg(a.as_slice());
            }
            cmd
        };
        let evalsha = build("EVALSHA", &script.sha1);
        let eval = build("EVAL", script.source);
        self.call(true, move |mut conn| async move {
            match evalsha.query_async(&mut conn).await {
                Err(e) if e.code() == Some("NOSCRIPT") => eval.query_async(&mut conn).await,
                other => other,
            }
        })
        .await
    }

    /// `PING`, ignoring the breaker (its outcome still counts).
    pub(crate) async fn ping(&self) -> Result<Duration, CallError> {
        let start = Instant::now();
        self.attempt(Admit::Closed, |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await?;
        Ok(start.elapsed())
    }

    /// A call through the breaker. `count_refusal`: whether a refusal counts as an
    /// `errors{kind="breaker_open"}` (not for the layer's own background probes).
    pub(crate) async fn call<T, F, Fut>(&self, count_refusal: bool, f: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let admit = self.breaker.admit();
        if admit == Admit::Refused {
            if count_refusal {
                self.metrics.error("breaker_open");
            }
            return Err(CallError::Refused);
        }
        self.attempt(admit, f).await
    }

    async fn attempt<T, F, Fut>(&self, admit: Admit, f: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let conn = match self.manager() {
            Ok(conn) => conn,
            Err(e) => {
                self.failed(admit, classify(&e));
                return Err(CallError::Redis(e));
            }
        };
        // A probe may have to connect first (the manager is fresh after a failure):
        // it gets the connect timeout on top, or a slow handshake would never fit.
        let budget = match admit {
            Admit::Probe => self.connect_timeout + self.command_timeout,
            _ => self.command_timeout,
        };
        let start = Instant::now();
        match tokio::time::timeout(budget, f(conn)).await {
            Ok(Ok(value)) => {
                self.metrics.latency.observe(start.elapsed().as_secs_f64());
                if self.breaker.success() == Transition::Closed {
                    self.closings.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("Redis answers: cluster sharing on");
                }
                self.metrics.up.set(1);
                Ok(value)
            }
            Ok(Err(e)) => {
                let kind = classify(&e);
                tracing::debug!(kind, error = %e, "Redis call failed");
                self.failed(admit, kind);
                Err(CallError::Redis(e))
            }
            Err(_) => {
                tracing::debug!(timeout = ?budget, "Redis call timed out");
                self.failed(admit, "timeout");
                Err(CallError::Timeout)
            }
        }
    }

    fn failed(&self, admit: Admit, kind: &'static str) {
        self.metrics.error(kind);
        let transition = self.breaker.failure();
        if transition == Transition::Opened {
            tracing::warn!(
                kind,
                "Redis unavailable: serving from this replica alone until it answers again"
            );
        }
        if transition == Transition::Opened || admit == Admit::Probe {
            self.reset_manager();
        }
        self.metrics.up.set(i64::from(self.breaker.is_up()));
    }

    fn manager(&self) -> RedisResult<ConnectionManager> {
        let mut slot = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let manager = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        )?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    fn reset_manager(&self) {
        *self.manager.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The metric kind of a Redis error.
pub(crate) fn classify(e: &RedisError) -> &'static str {
    if matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) {
        return "auth";
    }
    match e.kind() {
        redis::ErrorKind::AuthenticationFailed => "auth",
        _ if e.is_timeout() => "timeout",
        _ if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => "io",
        _ => "other",
    }
}

/// The redis-rs client for `s`: URL, credentials, RESP2 (the dedicated pub/sub
/// connection needs it), no `CLIENT SETINFO` (one command less for the ACL), TLS
/// roots.
fn client(s: &ClusterSettings) -> Result<Client, ClusterError> {
    // redis-rs's messages name the problem, never the URL (which may hold a password).
    let info = s
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| ClusterError::Url(e.to_string()))?;
    let mut redis_settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP2)
        .set_skip_set_lib_name();
    if let Some(user) = &s.username {
        redis_settings = redis_settings.set_username(user);
    }
    if let Some(password) = &s.password {
        redis_settings = redis_settings.set_password(password.expose());
    }
    let tls = match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(ClusterError::Url(
                "#insecure turns certificate verification off; vcproxy always verifies".to_owned(),
            ))
        }
        ConnectionAddr::TcpTls { .. } => true,
        _ => false,
    };
    let info = info.set_redis_settings(redis_settings);
    if !tls {
        if !s.ca_certs.is_empty() {
            return Err(ClusterError::Tls(
                "CA certificates are set but the URL is not rediss://".to_owned(),
            ));
        }
        return Client::open(info).map_err(|e| ClusterError::Url(e.to_string()));
    }
    // redis-rs builds its rustls config with `ClientConfig::builder()`, the
    // process-wide provider: make sure it is ring, as everywhere else in vcproxy
    // (harmless when one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = if s.ca_certs.is_empty() {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            return Err(ClusterError::Tls(format!(
                "no system root certificates found ({:?}); set the cluster's CA file",
                found.errors
            )));
        }
        found.certs
    } else {
        s.ca_certs.clone()
    };
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem(&roots)),
    };
    Client::build_with_tls(info, certs).map_err(|e| ClusterError::Tls(e.to_string()))
}

/// DER certificates as one PEM bundle: the form redis-rs takes roots in.
fn pem(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut out = String::new();
    for cert in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            // Base64 is ASCII.
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}
