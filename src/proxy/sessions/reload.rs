//! A reload of the session store: the vCenters, the service account and its
//! users, the idle and verify intervals, in place; every client session stays.

use futures_util::future::join_all;
use std::sync::Arc;

use super::{lock, Principal, SessionSettings, Sessions, Slot};
use crate::auth::AuthMode;
use crate::protocol::Family;
use crate::upstream::{Backend, Backends};

/// What a reload changed in the session store, and what it could not change.
#[derive(Debug, Default)]
pub struct SessionsReload {
    /// vCenter sessions logged out because their vCenter was removed or changed.
    pub logged_out: usize,
    /// Service-account sessions opened on added or changed vCenters.
    pub logged_in: usize,
    /// What else changed.
    pub changed: Vec<String>,
}

impl Sessions {
    /// Applies a reloaded configuration: the new vCenters (sessions on removed or
    /// changed ones logged out; the service account logged in to added ones at
    /// once), the service account and its users, the idle and verify intervals.
    /// Client sessions all stay. The caller keeps what cannot change in place: the
    /// mode (client sessions belong to it) and the client idle timeout (the session
    /// cache was built with it).
    pub async fn reload(
        &self,
        backends: Backends,
        mode: AuthMode,
        settings: SessionSettings,
    ) -> SessionsReload {
        let mut report = SessionsReload::default();
        {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            if let (AuthMode::ServiceAccount(old), AuthMode::ServiceAccount(new)) =
                (&current.mode, &mode)
            {
                if old.username != new.username || old.password.expose() != new.password.expose() {
                    report
                        .changed
                        .push("auth: service account (new log-ins use it)".into());
                }
                let names = |u: &crate::auth::users::UserList| {
                    u.names()
                        .map(str::to_owned)
                        .collect::<std::collections::BTreeSet<_>>()
                };
                if names(&old.users) != names(&new.users) {
                    report.changed.push("auth: users list".into());
                }
            }
            if settings != current.settings {
                report
                    .changed
                    .push("auth: backend_idle_timeout / verify_interval".into());
            }
            current.mode = mode;
            current.settings = settings;
            current.backends = backends.clone();
        }
        let removed = self.take_sessions(|b| backends.by_id(b.id).is_some()).await;
        report.logged_out = removed.len();
        self.logout_all(&removed).await;

        // The service account's pool follows at once: its clients expect every
        // vCenter to be there on their next request.
        let accounts: Vec<Arc<Principal>> = lock(&self.principals)
            .values()
            .filter(|p| p.keep_password)
            .cloned()
            .collect();
        for principal in accounts {
            let Some(password) = lock(&principal.password).clone() else {
                continue;
            };
            let mut slots = principal.backends.lock().await;
            let missing: Vec<&Backend> = backends
                .iter()
                .filter(|b| !slots.iter().any(|s| s.backend.id == b.id))
                .collect();
            let logins = missing.into_iter().map(|backend| {
                let (user, password) = (&principal.user, &password);
                async move {
                    let result = self
                        .backend_login(backend, user, password, backend.login_family(Family::Api))
                        .await;
                    (backend, result)
                }
            });
            for (backend, result) in join_all(logins).await {
                // A failure here is logged by the login; the next request tries again.
                if let Ok(session) = result {
                    report.logged_in += 1;
                    slots.push(Slot {
                        backend: backend.clone(),
                        session,
                    });
                }
            }
        }
        report
    }
}
