//! Client sessions at the proxy, and the pool of vCenter sessions behind them.
//!
//! vCenter caps sessions (2000 in all, 550 per user) and tools that log in on every
//! poll exhaust them, so the proxy never multiplies sessions: however many times a user
//! logs in at the proxy, that user holds at most one session per vCenter.
//!
//! * A client logs in at the proxy with HTTP Basic auth and gets a proxy session id
//!   (128 random bits). The id maps to a [`Principal`]: who the client is, and the
//!   vCenter sessions its requests use.
//! * **Passthrough mode** (default): the principal is the user's own vCenter identity.
//!   The first login logs in to every vCenter concurrently with the client's
//!   credentials; later logins by the same user with the same password reuse those
//!   sessions. If any vCenter refuses, its status and body pass through. The password
//!   is held in memory (for one re-login when a vCenter session expires) only while the
//!   user has live client sessions; the pool entry itself keeps a salted digest.
//! * **Service-account mode**: clients log in against a proxy-local user list, and
//!   every request uses the configured service account's vCenter sessions.
//!
//! vCenter sessions left without a client close after `backend_idle_timeout`, and all
//! of them close at shutdown.
//!
//! With a cluster, sessions are shared by every replica ([`shared`]): a session
//! made here is stored (encrypted, under a hash of its id) for the others, one made
//! elsewhere is adopted on first sight, and a log-out anywhere ends it everywhere.
//!
//! A reload ([`Sessions::reload`]) keeps every client session: vCenter sessions are
//! held per [`BackendId`], so those of unchanged vCenters stay, those of removed (or
//! changed) vCenters are logged out, and added vCenters are logged in to lazily by
//! passthrough users (on their next request, with the password held for their live
//! sessions) and at once by the service account.

mod credentials;
mod principal;
mod reload;
mod shared;

use credentials::new_session_id;
pub use credentials::Credentials;
pub use principal::Principal;
use principal::{client_session_ended, slot, Slot};

use crate::net::untrusted::Untrusted;
use futures_util::future::join_all;
use http::StatusCode;
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

use super::failure::{pick_failure, UpstreamFailure};
use super::metrics::Metrics;
use crate::auth::{AuthMode, Secret, ServiceAccount};
use crate::protocol::{Family, VapiError};
use crate::upstream::session_service::{self, LoginError as BackendLoginError};
use crate::upstream::{Backend, Backends};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A client session unused this long ends.
    pub client_idle: Duration,
    /// vCenter sessions without a client session this long are logged out.
    pub backend_idle: Duration,
    /// How long a remembered password check is trusted (passthrough mode).
    pub verify_interval: Duration,
}

impl From<&crate::config::Auth> for SessionSettings {
    fn from(auth: &crate::config::Auth) -> SessionSettings {
        SessionSettings {
            client_idle: auth.client_session_idle,
            backend_idle: auth.backend_idle_timeout,
            verify_interval: auth.verify_interval,
        }
    }
}

/// One client session at the proxy.
#[derive(Debug)]
pub struct ClientSession {
    /// Who the client is: the cache key's principal. In service-account mode this is
    /// the proxy-local user, so users still never share cache entries.
    pub user: Arc<str>,
    pub principal: Arc<Principal>,
    pub created: SystemTime,
    /// With a cluster: the session's handle there, and when this replica last
    /// extended its life there.
    shared: Option<shared::SharedMark>,
}

/// A refused or failed login, ready to pass through to the client.
#[derive(Debug)]
pub enum LoginError {
    /// The proxy's own refusal (no or malformed credentials, unknown local user).
    Proxy(VapiError),
    /// A vCenter's answer or transport failure.
    Upstream(UpstreamFailure),
}

/// A pooled principal: the user name and a salted digest of the password, so a
/// login with another password never reuses sessions opened with this one.
type PrincipalKey = (String, [u8; 32]);

/// The session store: client sessions and the principals behind them.
pub struct Sessions {
    /// The vCenters, the mode and the settings; replaced by a reload.
    current: RwLock<Current>,
    clients: Cache<Arc<str>, Arc<ClientSession>>,
    principals: Mutex<HashMap<PrincipalKey, Arc<Principal>>>,
    salt: [u8; 16],
    metrics: Arc<Metrics>,
    /// The cluster the sessions are shared through, if any.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// How often a replica extends a shared session's life: an eighth of the
    /// client idle timeout, in milliseconds.
    touch_every_ms: u64,
}

/// What a reload replaces in the session store.
struct Current {
    backends: Backends,
    mode: AuthMode,
    settings: SessionSettings,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    pub fn new(
        backends: Backends,
        mode: AuthMode,
        settings: SessionSettings,
        metrics: Arc<Metrics>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Arc<Sessions> {
        let mut salt = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .expect("the operating system's random generator failed");
        let gauge = metrics.client_sessions.clone();
        let clients = Cache::builder()
            .time_to_idle(settings.client_idle)
            .eviction_listener(move |_id, session: Arc<ClientSession>, cause| {
                gauge.dec();
                client_session_ended(&session.principal, cause);
            })
            .build();
        Arc::new(Sessions {
            current: RwLock::new(Current {
                backends,
                mode,
                settings,
            }),
            clients,
            principals: Mutex::new(HashMap::new()),
            salt,
            metrics,
            cluster,
            touch_every_ms: (settings.client_idle / 8).as_millis() as u64,
        })
    }

    /// The client session for a `vmware-api-session-id` value.
    pub async fn client(&self, id: &str) -> Option<Arc<ClientSession>> {
        let session = match self.clients.get(id).await {
            Some(s) => s,
            None => self.adopt(id).await?,
        };
        session.principal.touch();
        if let Some(cluster) = &self.cluster {
            self.keep_alive(cluster, id, &session);
        }
        Some(session)
    }

    /// `POST /rest/com/vmware/cis/session` or `POST /api/session`.
    /// Returns the new proxy session id.
    pub async fn login(
        &self,
        family: Family,
        credentials: Option<Credentials>,
    ) -> Result<String, LoginError> {
        let Credentials { user, password } =
            credentials.ok_or_else(|| LoginError::Proxy(VapiError::unauthenticated()))?;
        let mode = self.current().mode.clone();
        let (client_user, principal) = match &mode {
            AuthMode::Passthrough => {
                let principal = self.passthrough_principal(&user, &password, family).await?;
                (principal.user.clone(), principal)
            }
            AuthMode::ServiceAccount(ServiceAccount {
                username,
                password: account_password,
                users,
            }) => {
                // PBKDF2 is deliberately slow: keep it off the async workers.
                let users = users.clone();
                let (u, p) = (user.clone(), password.clone());
                let ok = tokio::task::spawn_blocking(move || users.verify(&u, p.expose()))
                    .await
                    .unwrap_or(false);
                if !ok {
                    info!(user = %Untrusted(&user), "login refused: unknown user or wrong password");
                    return Err(LoginError::Proxy(VapiError::unauthenticated()));
                }
                let principal = self
                    .principal_with_sessions(username, account_password, family, true)
                    .await?;
                (Arc::from(user.as_str()), principal)
            }
        };
        let id = new_session_id();
        let created = SystemTime::now();
        let record = crate::proxy::stored::SessionRecord {
            user: client_user.to_string(),
            password: match &mode {
                AuthMode::Passthrough => password.expose().to_owned(),
                AuthMode::ServiceAccount(_) => String::new(),
            },
            created,
        };
        self.publish(&id, &record).await;
        let session = self.session(&id, client_user, principal, created);
        self.clients.insert(Arc::from(id.as_str()), session).await;
        Ok(id)
    }

    /// A client session for `principal`, counted.
    fn session(
        &self,
        id: &str,
        user: Arc<str>,
        principal: Arc<Principal>,
        created: SystemTime,
    ) -> Arc<ClientSession> {
        principal.clients.fetch_add(1, Ordering::SeqCst);
        self.metrics.client_sessions.inc();
        Arc::new(ClientSession {
            user,
            principal,
            created,
            shared: self
                .cluster
                .as_ref()
                .map(|c| shared::SharedMark::new(c, id)),
        })
    }

    async fn passthrough_principal(
        &self,
        user: &str,
        password: &Secret,
        family: Family,
    ) -> Result<Arc<Principal>, LoginError> {
        let principal = self
            .principal_with_sessions(user, password, family, false)
            .await?;
        *lock(&principal.password) = Some(password.clone());
        Ok(principal)
    }

    /// The pooled principal for these credentials, with a session on every vCenter,
    /// logging in where one is missing.
    async fn principal_with_sessions(
        &self,
        user: &str,
        password: &Secret,
        family: Family,
        keep_password: bool,
    ) -> Result<Arc<Principal>, LoginError> {
        let verifier = self.verifier(user, password);
        let key = (user.to_owned(), verifier);
        let principal = lock(&self.principals)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Principal::new(user, keep_password)))
            .clone();
        let (backends, verify_interval) = {
            let current = self.current();
            (current.backends.clone(), current.settings.verify_interval)
        };
        if keep_password {
            *lock(&principal.password) = Some(password.clone());
        }
        principal.touch();

        let mut slots = principal.backends.lock().await;
        let missing: Vec<&Backend> = backends
            .iter()
            .filter(|b| !slots.iter().any(|s| s.backend.id == b.id))
            .collect();
        if missing.is_empty() {
            let checked = lock(&principal.verified).elapsed();
            if keep_password || checked < verify_interval {
                debug!(user = %Untrusted(&user), "login reuses pooled vCenter sessions");
                return Ok(principal.clone());
            }
            // The remembered check is too old: ask vCenter again (the first one),
            // swapping the new session for the pooled one so none is added.
            let first = &backends[0];
            match self.backend_login(first, user, password, family).await {
                Ok(fresh) => {
                    let old = slot(&mut slots, first.id)
                        .map(|s| std::mem::replace(&mut s.session, fresh));
                    drop(slots);
                    *lock(&principal.verified) = Instant::now();
                    if let Some(old) = old {
                        self.backend_logout(first, &old).await;
                    }
                    return Ok(principal.clone());
                }
                Err(failure) if refused(&failure) => {
                    drop(slots);
                    self.end_principal(&principal).await;
                    return Err(LoginError::Upstream(failure));
                }
                Err(failure) => {
                    // vCenter could not say: the pooled sessions still work, and the
                    // next log-in asks again.
                    warn!(user = %Untrusted(&user), status = failure.status().as_u16(), "could not check the password again; pooled sessions kept");
                    return Ok(principal.clone());
                }
            }
        }
        let logins = missing.into_iter().map(|backend| async move {
            let result = self.backend_login(backend, user, password, family).await;
            (backend, result)
        });
        let results = join_all(logins).await;
        let mut failures = Vec::new();
        for (backend, result) in results {
            match result {
                Ok(session) => slots.push(Slot {
                    backend: backend.clone(),
                    session,
                }),
                Err(f) => failures.push(f),
            }
        }
        if failures.is_empty() {
            *lock(&principal.verified) = Instant::now();
        }
        if let Some(failure) = pick_failure(failures) {
            // Don't keep half a pool for credentials a vCenter refused: log out of the
            // vCenters that accepted and forget the principal, unless clients use it.
            if principal.clients.load(Ordering::SeqCst) == 0 && !keep_password {
                let opened = std::mem::take(&mut *slots);
                drop(slots);
                lock(&self.principals).remove(&key);
                self.logout_all(&opened).await;
            }
            return Err(LoginError::Upstream(failure));
        }
        Ok(principal.clone())
    }

    fn verifier(&self, user: &str, password: &Secret) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.salt);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.expose().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    async fn backend_login(
        &self,
        backend: &Backend,
        user: &str,
        password: &Secret,
        family: Family,
    ) -> Result<Secret, UpstreamFailure> {
        let name = backend.name();
        let started = Instant::now();
        let result = session_service::login(
            &backend.upstream,
            backend.login_family(family),
            user,
            password,
        )
        .await;
        let answered = |status: StatusCode| {
            self.metrics
                .upstream_answer(name, status.as_u16(), started.elapsed())
        };
        match result {
            Ok((id, status)) => {
                answered(status);
                self.metrics.backend_session_opened(name);
                info!(vcenter = %name, user = %Untrusted(&user), "opened vCenter session");
                Ok(id)
            }
            Err(BackendLoginError::Unsendable) => Err(UpstreamFailure::proxy(
                name,
                VapiError::invalid_argument("The credentials cannot be sent in an HTTP header."),
            )),
            Err(BackendLoginError::Transport(e)) => {
                self.metrics.upstream_error(name, "login");
                warn!(vcenter = %name, error = %Untrusted(&e), "vCenter login failed in transport");
                Err(UpstreamFailure::transport(name, &e))
            }
            Err(BackendLoginError::Refused(response)) => {
                answered(response.status);
                info!(vcenter = %name, user = %Untrusted(&user), status = response.status.as_u16(), "vCenter refused login");
                Err(UpstreamFailure::answer(name, response))
            }
            Err(BackendLoginError::NoSessionId(status)) => {
                answered(status);
                Err(UpstreamFailure::proxy(
                    name,
                    VapiError::service_unavailable(format!(
                        "vCenter {name} answered the login with a body that holds no session id."
                    )),
                ))
            }
        }
    }

    async fn backend_logout(&self, backend: &Backend, id: &Secret) {
        let name = backend.name();
        let family = backend.login_family(Family::Api);
        let result = session_service::logout(&backend.upstream, family, id).await;
        self.metrics.backend_session_closed(name);
        match result {
            Ok(r) => debug!(vcenter = %name, status = r.status.as_u16(), "closed vCenter session"),
            Err(e) => {
                debug!(vcenter = %name, error = %Untrusted(&e), "closing vCenter session failed")
            }
        }
    }

    /// Called after a vCenter answered 401 to `stale`: logs in again once, with the
    /// password held for live client sessions. Returns the new session, or `None`
    /// when there is no password to log in with (the 401 then passes through).
    ///
    /// Also how a passthrough user gets a session on a vCenter a reload added: the
    /// fan-out finds none and asks here.
    pub async fn relogin(
        &self,
        principal: &Principal,
        backend: &Backend,
        stale: &Secret,
        family: Family,
    ) -> Result<Option<Secret>, UpstreamFailure> {
        let mut slots = principal.backends.lock().await;
        if let Some(current) = slot(&mut slots, backend.id) {
            if current.session.expose() != stale.expose() {
                // Another request already logged in again.
                return Ok(Some(current.session.clone()));
            }
        }
        let Some(password) = lock(&principal.password).clone() else {
            return Ok(None);
        };
        let before = slots.len();
        slots.retain(|s| s.backend.id != backend.id);
        if slots.len() < before {
            self.metrics.backend_session_closed(backend.name());
        }
        match self
            .backend_login(backend, &principal.user, &password, family)
            .await
        {
            Ok(id) => {
                slots.push(Slot {
                    backend: backend.clone(),
                    session: id.clone(),
                });
                *lock(&principal.verified) = Instant::now();
                Ok(Some(id))
            }
            Err(failure) if refused(&failure) && !principal.keep_password => {
                // The password no longer works: nobody keeps using it through us.
                drop(slots);
                self.end_principal(principal).await;
                Err(failure)
            }
            Err(failure) => Err(failure),
        }
    }

    /// Ends a pooled principal whose credentials vCenter refused: its client
    /// sessions, its vCenter sessions, and its place in the pool.
    async fn end_principal(&self, principal: &Principal) {
        lock(&self.principals).retain(|_, p| !std::ptr::eq(Arc::as_ptr(p), principal));
        let ended: Vec<Arc<str>> = self
            .clients
            .iter()
            .filter(|(_, s)| std::ptr::eq(Arc::as_ptr(&s.principal), principal))
            .map(|(id, _)| Arc::clone(&*id))
            .collect();
        for id in &ended {
            self.clients.invalidate(id).await;
            self.unpublish(id).await;
        }
        info!(
            user = %Untrusted(&principal.user),
            client_sessions = ended.len(),
            "vCenter refused the user's password: its sessions are ended"
        );
        self.close_principal(principal).await;
    }

    /// `DELETE` on a session path: ends the client session. vCenter sessions stay
    /// pooled for the user's other sessions and next login.
    ///
    /// With a cluster, the session ends on every replica: its record is deleted
    /// and the others are told.
    pub async fn logout(&self, id: &str) -> bool {
        let here = self.clients.remove(id).await.is_some();
        let elsewhere = self.unpublish(id).await;
        here || elsewhere
    }

    /// Logs out vCenter sessions that no client has used for `backend_idle`, and
    /// ends idle client sessions. Run periodically.
    pub async fn reap(&self) {
        self.clients.run_pending_tasks().await;
        let (backend_idle, backends) = {
            let current = self.current();
            (current.settings.backend_idle, current.backends.clone())
        };
        let idle: Vec<(PrincipalKey, Arc<Principal>)> = {
            let mut principals = lock(&self.principals);
            let keys: Vec<_> = principals
                .iter()
                .filter(|(_, p)| {
                    p.clients.load(Ordering::SeqCst) == 0
                        && lock(&p.last_used).elapsed() >= backend_idle
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| principals.remove(&k).map(|p| (k, p)))
                .collect()
        };
        for ((user, _), principal) in idle {
            info!(user = %Untrusted(&user), "closing idle vCenter sessions");
            self.close_principal(&principal).await;
        }
        // Should a stray session (see `log_out_strays`) have escaped, it goes now.
        let stray = self.take_sessions(|b| backends.by_id(b.id).is_some()).await;
        self.logout_all(&stray).await;
    }

    /// Logs out sessions on vCenters no longer configured: a request in flight
    /// across a reload may have logged in to one the reload removed. Called when
    /// the last such request is over.
    pub async fn log_out_strays(&self) {
        let backends = self.current().backends.clone();
        let stray = self.take_sessions(|b| backends.by_id(b.id).is_some()).await;
        if !stray.is_empty() {
            debug!(
                sessions = stray.len(),
                "logging out sessions on removed vCenters"
            );
        }
        self.logout_all(&stray).await;
    }

    /// Takes every principal's sessions on vCenters `keep` rejects.
    async fn take_sessions(&self, keep: impl Fn(&Backend) -> bool + Copy) -> Vec<Slot> {
        let principals: Vec<Arc<Principal>> = lock(&self.principals).values().cloned().collect();
        let mut taken = Vec::new();
        for p in principals {
            taken.extend(p.take_sessions(keep).await);
        }
        taken
    }

    async fn logout_all(&self, slots: &[Slot]) {
        join_all(
            slots
                .iter()
                .map(|s| self.backend_logout(&s.backend, &s.session)),
        )
        .await;
    }

    async fn close_principal(&self, principal: &Principal) {
        let opened = principal.take_sessions(|_| false).await;
        *lock(&principal.password) = None;
        self.logout_all(&opened).await;
    }

    /// Logs out every vCenter session (graceful shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<Principal>> = lock(&self.principals).drain().map(|(_, p)| p).collect();
        for p in all {
            self.close_principal(&p).await;
        }
        self.clients.invalidate_all();
    }

    pub fn settings(&self) -> SessionSettings {
        self.current().settings
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether vCenter refused the credentials (401 or 403), as opposed to failing.
fn refused(failure: &UpstreamFailure) -> bool {
    matches!(
        failure.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    )
}
