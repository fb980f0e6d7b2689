//! `vcproxy check`: validate the configuration, then reach every vCenter.
//!
//! Operators run it before `serve` (and in CI for their config repo), so it reports
//! per vCenter what would go wrong at the first client request: DNS, connection,
//! TLS trust, whether the endpoint speaks the vSphere Automation API, and, given
//! credentials (the service account's, or `--user`), whether a login succeeds.

use http::header::{HeaderValue, AUTHORIZATION};
use http::{Method, StatusCode};
use std::time::Instant;

use crate::auth::Secret;
use crate::config::Config;
use crate::protocol::error::Family;
use crate::proxy::sessions::SESSION_HEADER;
use crate::upstream::{Upstream, UpstreamSettings};

/// What `check` found for one vCenter.
#[derive(Debug, Clone)]
pub struct Report {
    pub vcenter: String,
    pub ok: bool,
    pub detail: String,
}

/// Reaches every vCenter concurrently: an unauthenticated who-am-I (a vCenter answers
/// 401 in vAPI form), then, with credentials, a login and log-out.
pub async fn check(config: &Config, credentials: Option<(String, Secret)>) -> Vec<Report> {
    let checks = config.vcenters.iter().map(|vc| {
        let credentials = credentials.clone();
        async move {
            let settings = UpstreamSettings {
                // One connection is all a check needs.
                max_idle_connections: 1,
                ..UpstreamSettings::from_config(vc)
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
    });
    futures_util::future::join_all(checks).await
}

async fn one(up: &Upstream, family: Family, credentials: Option<(String, Secret)>) -> Report {
    let report = |ok, detail: String| Report {
        vcenter: up.name().to_owned(),
        ok,
        detail,
    };
    let (whoami_method, session_path) = match family {
        Family::Api => (Method::GET, "/api/session"),
        Family::Rest => (Method::POST, "/rest/com/vmware/cis/session"),
    };
    let whoami_path = match family {
        Family::Api => "/api/session",
        Family::Rest => "/rest/com/vmware/cis/session?~action=get",
    };
    let started = Instant::now();
    match up.send(whoami_method, whoami_path, &[], None).await {
        Err(e) => return report(false, format!("unreachable: {e}")),
        Ok(r) if r.status != StatusCode::UNAUTHORIZED => {
            return report(
                false,
                format!(
                    "reachable, but {whoami_path} answered {} instead of 401: is this a vCenter?",
                    r.status
                ),
            )
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
    let Some(auth) = crate::auth::basic_auth::encode(&user, password.expose()) else {
        return report(
            false,
            "the credentials cannot be sent in an HTTP header".into(),
        );
    };
    let login = match up
        .send(Method::POST, session_path, &[(AUTHORIZATION, auth)], None)
        .await
    {
        Err(e) => return report(false, format!("login failed: {e}")),
        Ok(r) => r,
    };
    if !login.status.is_success() {
        return report(false, format!("login as {user} refused: {}", login.status));
    }
    let id: Option<String> = match family {
        Family::Api => serde_json::from_slice(&login.body).ok(),
        Family::Rest => serde_json::from_slice::<serde_json::Value>(&login.body)
            .ok()
            .and_then(|v| v["value"].as_str().map(str::to_owned)),
    };
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        let _ = up
            .send(
                Method::DELETE,
                session_path,
                &[(SESSION_HEADER, value)],
                None,
            )
            .await;
    }
    report(
        true,
        format!("reachable ({reach_ms} ms); login as {user} works"),
    )
}
