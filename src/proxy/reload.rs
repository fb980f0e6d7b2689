//! Reload: a new configuration applied to the running proxy, on SIGHUP or
//! `POST /reload` on the admin listener, without dropping a connection or a client
//! session.
//!
//! The new file is read and validated first, and everything that can fail with it
//! (a vCenter's TLS settings, the listener's key pair) is built before anything is
//! changed: an invalid file leaves the proxy exactly as it was, and the error names
//! the key as at start-up.
//!
//! What a reload does, part by part:
//! * vCenters: unchanged ones keep their client, pooled connections and sessions;
//!   removed and changed ones are logged out of; added ones are logged in to
//!   lazily by passthrough users and at once by the service account
//!   ([`super::sessions::Sessions::reload`]).
//! * The cache: a new, empty one when the vCenters or the cache or merge settings
//!   change, since its answers came from the old set or obey the old rules; kept
//!   otherwise. Requests in flight finish on the generation they started with.
//! * The listener: its certificate and key are read again (rotation: new
//!   connections present the new pair, existing ones keep theirs) and its limits
//!   apply to new connections.
//! * `[log]`: through the [`super::LogControl`] the binary installed.
//! * Kept until a restart, and said so: `listen.addr`, `admin.addr`, turning HTTPS
//!   on or off, `auth.mode`, `auth.client_session_idle`.

use serde::Serialize;
use std::sync::Arc;
use tracing::{info, warn};

use super::state::{serve_options, Generation, Proxy, ProxyError};
use crate::config::{self, Config, ConfigError};
use crate::net::listener::ServeOptions;
use crate::net::tls::certified;
use crate::net::untrusted::Untrusted;
use crate::upstream::Backends;

/// What a reload changed, and what it kept until a restart.
#[derive(Debug, Default, Serialize)]
pub struct ReloadReport {
    pub changed: Vec<String>,
    pub kept: Vec<String>,
}

/// Why a reload left everything as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not read from a file, so there is nothing to read again")]
    NoFile,
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Build(#[from] ProxyError),
}

impl Proxy {
    /// Reads the configuration file again and applies it ([`Proxy::apply`]).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.applied.lock().await.source.clone();
        let result = match path {
            None => Err(ReloadError::NoFile),
            Some(path) => match Config::load(&path) {
                Ok(config) => self.apply(config).await,
                Err(e) => Err(e.into()),
            },
        };
        if let Err(e) = &result {
            self.metrics.config_reload(false);
            // One line, however many the error has (toml quotes the offending line).
            let error = e.to_string();
            warn!(error = %Untrusted(&error), "configuration not reloaded; the running one stays");
        }
        result
    }

    /// Applies a validated configuration to the running proxy.
    pub async fn apply(&self, mut new: Config) -> Result<ReloadReport, ReloadError> {
        let mut applied = self.applied.lock().await;
        let old = &*applied;
        let previous = self.current.load_full();

        // Everything that can fail, before anything changes.
        let backends = Backends::rebuild(&new.vcenters, &previous.backends)
            .map_err(|e| ReloadError::Build(e.into()))?;
        let certificate = match (&self.certs, &new.listen.tls) {
            (Some(_), Some(tls)) if !same_key_pair(old.listen.tls.as_ref(), tls) => Some(
                certified(tls.cert_chain.clone(), tls.key.clone_key())
                    .map_err(|e| ReloadError::Build(e.into()))?,
            ),
            _ => None,
        };

        let mut report = ReloadReport::default();
        keep_what_needs_a_restart(old, &mut new, &mut report);
        describe_vcenters(&previous.backends, &backends, &mut report);

        let generation = Generation::build(
            &new,
            backends.clone(),
            Some(&previous),
            &self.sessions,
            &self.metrics,
            self.cluster.as_ref().map(|c| c.shared.clone()),
        );
        let shared = generation.shares_cache_with(&previous);
        if !shared {
            report
                .changed
                .push("cache: emptied (new vCenters, cache or merge settings)".into());
        }
        if generation.body_read_timeout != previous.body_read_timeout
            || !Arc::ptr_eq(&generation.requests, &previous.requests)
        {
            report.changed.push("listen: request limits".into());
        }
        self.current.store(Arc::new(generation));
        if let Some(gone) = previous.take_fanout_gone().filter(|_| !shared) {
            // Requests in flight across the reload may log in again to a vCenter it
            // removed; once the last of them is over, those sessions go too.
            let sessions = self.sessions.clone();
            tokio::spawn(async move {
                let _ = gone.await;
                sessions.log_out_strays().await;
            });
        }

        let sessions = self
            .sessions
            .reload(backends, new.auth.mode.clone(), (&new.auth).into())
            .await;
        if sessions.logged_out > 0 {
            report.changed.push(format!(
                "vCenter sessions logged out on removed or changed vCenters: {}",
                sessions.logged_out
            ));
        }
        if sessions.logged_in > 0 {
            report.changed.push(format!(
                "service account logged in to added vCenters: {}",
                sessions.logged_in
            ));
        }
        report.changed.extend(sessions.changed);

        if let (Some(store), Some(key)) = (&self.certs, certificate) {
            store.replace(Arc::new(key));
            report
                .changed
                .push("listen.tls_cert: new certificate for new connections".into());
        }
        let limits = serve_options(&new.listen, Some(&self.listen.borrow()));
        if !same_limits(&self.listen.borrow(), &limits) {
            self.listen.send_replace(limits);
            report
                .changed
                .push("listen: connection limits and timeouts for new connections".into());
        }
        if new.log != old.log {
            match self.log_control.get().map(|c| c.apply(&new.log)) {
                Some(Ok(())) => report.changed.push("log: level and format".into()),
                Some(Err(e)) => {
                    report.kept.push(format!("log: {e}"));
                    new.log = old.log.clone();
                }
                None => {
                    report
                        .kept
                        .push("log: this process's log output cannot be changed".into());
                    new.log = old.log.clone();
                }
            }
        }
        *applied = new;
        self.metrics.config_reload(true);
        info!(changed = %report.changed.join("; "), "configuration reloaded");
        for k in &report.kept {
            warn!(kept = %k, "not changed until a restart");
        }
        Ok(report)
    }
}

/// Puts back into `new` what cannot change while the process runs, saying so.
fn keep_what_needs_a_restart(old: &Config, new: &mut Config, report: &mut ReloadReport) {
    if new.listen.addr != old.listen.addr {
        report.kept.push(format!(
            "listen.addr stays {} until a restart",
            old.listen.addr
        ));
        new.listen.addr = old.listen.addr;
    }
    if new.admin.addr != old.admin.addr {
        report.kept.push(format!(
            "admin.addr stays {} until a restart",
            old.admin.addr
        ));
        new.admin.addr = old.admin.addr;
    }
    if new.listen.tls.is_some() != old.listen.tls.is_some() {
        report.kept.push(format!(
            "listen.tls_cert/tls_key: the listener stays {} until a restart",
            if old.listen.tls.is_some() {
                "HTTPS"
            } else {
                "plain HTTP"
            }
        ));
        new.listen.tls = old.listen.tls.clone();
    }
    if new.auth.mode.name() != old.auth.mode.name() {
        report.kept.push(format!(
            "auth.mode stays {} until a restart (client sessions belong to it)",
            old.auth.mode.name()
        ));
        new.auth.mode = old.auth.mode.clone();
    }
    if !same_cluster(old.cluster.as_ref(), new.cluster.as_ref()) {
        report
            .kept
            .push("cluster: the link to Redis stays as it is until a restart".into());
        new.cluster = old.cluster.clone();
    }
    if new.auth.client_session_idle != old.auth.client_session_idle {
        report.kept.push(format!(
            "auth.client_session_idle stays {} until a restart",
            humantime::format_duration(old.auth.client_session_idle)
        ));
        new.auth.client_session_idle = old.auth.client_session_idle;
    }
}

/// Names the vCenters added, removed and changed.
fn describe_vcenters(old: &Backends, new: &Backends, report: &mut ReloadReport) {
    for b in new.iter() {
        if old.by_id(b.id).is_none() {
            let verb = if old.iter().any(|o| o.name() == b.name()) {
                "changed"
            } else {
                "added"
            };
            report.changed.push(format!("vcenter {}: {verb}", b.name()));
        }
    }
    for b in old.iter() {
        if !new.iter().any(|n| n.name() == b.name()) {
            report
                .changed
                .push(format!("vcenter {}: removed", b.name()));
        }
    }
    let order = |s: &Backends| s.iter().map(|b| b.id).collect::<Vec<_>>();
    let kept: Vec<_> = order(new)
        .into_iter()
        .filter(|id| old.by_id(*id).is_some())
        .collect();
    let was: Vec<_> = order(old)
        .into_iter()
        .filter(|id| new.by_id(*id).is_some())
        .collect();
    if kept != was {
        report.changed.push("vcenter: order".into());
    }
}

/// Whether two `[cluster]` sections are the same (the secrets compared too).
fn same_cluster(a: Option<&config::Cluster>, b: Option<&config::Cluster>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let secret = |c: &config::Cluster| {
                (
                    c.secret.expose().to_owned(),
                    c.password.as_ref().map(|p| p.expose().to_owned()),
                )
            };
            format!("{a:?}") == format!("{b:?}")
                && secret(a) == secret(b)
                && a.ca_certs == b.ca_certs
                && a.connect_timeout == b.connect_timeout
        }
        _ => false,
    }
}

fn same_key_pair(old: Option<&config::ListenTls>, new: &config::ListenTls) -> bool {
    old.is_some_and(|old| {
        old.cert_chain == new.cert_chain && old.key.secret_der() == new.key.secret_der()
    })
}

fn same_limits(a: &ServeOptions, b: &ServeOptions) -> bool {
    a.max_connections == b.max_connections
        && a.max_header_bytes == b.max_header_bytes
        && a.header_read_timeout == b.header_read_timeout
        && a.shutdown_grace == b.shutdown_grace
        && a.idle_timeout == b.idle_timeout
}
