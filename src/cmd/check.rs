//! `vcproxy check`: validate the configuration, then reach every vCenter.
//!
//! Operators run it before `serve` (and in CI for their config repo), so it reports
//! per vCenter what would go wrong at the first client request: DNS, connection,
//! TLS trust, whether the endpoint speaks the vSphere Automation API, and, given
//! credentials (the service account's, or `--user`), whether a login succeeds.

use std::time::{Duration, Instant};

use crate::auth::Secret;
use crate::config::{Config, Vcenter};
use crate::protocol::Family;
use crate::upstream::session_service::{self, LoginError};
use crate::upstream::{Upstream, UpstreamSettings};

/// What `check` found for one vCenter.
#[derive(Debug, Clone)]
pub struct Report {
    pub vcenter: String,
    pub ok: bool,
    pub detail: String,
}

/// Reaches every vCenter concurrently: an unauthenticated who-am-I (a vCenter answers
/// 401 in vAPI form), then, with credentials, a login and log-out. With a
/// `[cluster]`, Redis too (a `PING` with its credentials), reported last as
/// `redis`.
pub async fn check(config: &Config, credentials: Option<(String, Secret)>) -> Vec<Report> {
    let checks = config
        .vcenters
        .iter()
        .map(|vc| check_vcenter(vc, credentials.clone()));
    let mut reports = futures_util::future::join_all(checks).await;
    if let Some(cluster) = &config.cluster {
        reports.push(check_cluster(cluster).await);
    }
    reports
}

/// One `PING` to the cluster's Redis, past the connection's TLS and ACL log-in.
async fn check_cluster(c: &crate::config::Cluster) -> Report {
    use crate::cluster::{Cluster, ClusterMetrics, ClusterSettings};
    let report = |ok: bool, detail: String| Report {
        vcenter: "redis".into(),
        ok,
        detail,
    };
    let cluster = match Cluster::start(ClusterSettings::from(c), ClusterMetrics::new()) {
        Ok(cluster) => cluster,
        Err(e) => return report(false, e.to_string()),
    };
    let within = c.connect_timeout + c.command_timeout;
    match tokio::time::timeout(within, cluster.ping()).await {
        Ok(Ok(took)) => report(
            true,
            format!("{} answered PING in {} ms", c.redis, took.as_millis()),
        ),
        Ok(Err(e)) => report(false, format!("{}: {e}", c.redis)),
        Err(_) => report(
            false,
            format!(
                "{}: no answer within {}",
                c.redis,
                humantime::format_duration(within)
            ),
        ),
    }
}

/// The longest [`try_at_start`] waits for any vCenter.
const START_DEADLINE_CAP: Duration = Duration::from_secs(10);

/// `serve`'s start-up look at the vCenters, before it tells systemd it is ready:
/// [`check`] without credentials, each vCenter given its `connect_timeout` plus one
/// second (10 s at most; an answer that slow counts as unreachable), the outcome
/// logged per vCenter (info when it answered as a vCenter does, warn when not).
/// A vCenter that fails stops nothing: it may come up later, and its requests fail
/// (or are left out of `merge.partial` answers) until then. Returns the reports, in
/// configuration order.
pub async fn try_at_start(config: &Config) -> Vec<Report> {
    let deadline = start_deadline(config);
    let tries = config.vcenters.iter().map(|vc| async move {
        match tokio::time::timeout(deadline, check_vcenter(vc, None)).await {
            Ok(report) => report,
            Err(_) => Report {
                vcenter: vc.name.clone(),
                ok: false,
                detail: format!("no answer within {}", humantime::format_duration(deadline)),
            },
        }
    });
    let reports = futures_util::future::join_all(tries).await;
    for r in &reports {
        if r.ok {
            tracing::info!(vcenter = %r.vcenter, detail = %r.detail, "vCenter reachable");
        } else {
            tracing::warn!(
                vcenter = %r.vcenter,
                detail = %r.detail,
                "vCenter not reachable at start; serving anyway"
            );
        }
    }
    reports
}

/// The largest `connect_timeout` plus one second, at most [`START_DEADLINE_CAP`].
fn start_deadline(config: &Config) -> Duration {
    let slowest = config
        .vcenters
        .iter()
        .map(|vc| vc.connect_timeout)
        .max()
        .unwrap_or_default();
    (slowest + Duration::from_secs(1)).min(START_DEADLINE_CAP)
}

async fn check_vcenter(vc: &Vcenter, credentials: Option<(String, Secret)>) -> Report {
    let settings = UpstreamSettings {
        // One connection is all a check needs.
        max_idle_connections: 1,
        ..UpstreamSettings::from(vc)
    };
    let family = if vc.serves(Family::Api) {
        Family::Api
    } else {
        Family::Rest
    };
    match Upstream::new(&settings) {
        Ok(up) => one(&up, family, credentials).await,
        Err(e) => Report {
            vcenter: vc.name.clone(),
            ok: false,
            detail: e.to_string(),
        },
    }
}

async fn one(up: &Upstream, family: Family, credentials: Option<(String, Secret)>) -> Report {
    let report = |ok, detail: String| Report {
        vcenter: up.name().to_owned(),
        ok,
        detail,
    };
    let started = Instant::now();
    match session_service::whoami_anonymous(up, family).await {
        Err(e) => return report(false, format!("unreachable: {e}")),
        Ok(r) if r.status != http::StatusCode::UNAUTHORIZED => {
            let (_, whoami_path) = family.whoami_request();
            return report(
                false,
                format!(
                    "reachable, but {whoami_path} answered {} instead of 401: is this a vCenter?",
                    r.status
                ),
            );
        }
        Ok(_) => {}
    }
    let reach_ms = started.elapsed().as_millis();
    let Some((user, password)) = credentials else {
        return report(
            true,
            format!("reachable over {}, speaks the /{family} API ({reach_ms} ms); no credentials to test a login", up.base_url().split(':').next().unwrap_or("http")),
        );
    };
    match session_service::login(up, family, &user, &password).await {
        Ok((id, _)) => {
            let _ = session_service::logout(up, family, &id).await;
            report(
                true,
                format!("reachable ({reach_ms} ms); login as {user} works"),
            )
        }
        Err(LoginError::Unsendable) => report(
            false,
            "the credentials cannot be sent in an HTTP header".into(),
        ),
        Err(LoginError::Transport(e)) => report(false, format!("login failed: {e}")),
        Err(LoginError::Refused(r)) => {
            report(false, format!("login as {user} refused: {}", r.status))
        }
        // Accepted, but with no session id to log out with.
        Err(LoginError::NoSessionId(_)) => report(
            true,
            format!("reachable ({reach_ms} ms); login as {user} works"),
        ),
    }
}
