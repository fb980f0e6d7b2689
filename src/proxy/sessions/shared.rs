//! Client sessions shared by the replicas of a cluster.
//!
//! A log-in stores the session's record ([`SessionRecord`]) through the cluster
//! layer, which keeps it under a hash of the session id, encrypted with a key
//! derived from the id itself: Redis never holds a usable id or a readable
//! password. A replica that meets an id it does not know reads the record and
//! adopts the session: the same user, its own pooled vCenter sessions (logged in
//! with the record's password in passthrough mode, the service account's
//! otherwise). Use extends the record's life, at most every eighth of the idle
//! timeout per replica. A log-out replaces it by a revocation mark and publishes
//! its handle; every replica drops its copy when the handle arrives. After its
//! subscription was interrupted a replica asks Redis about each shared session it
//! holds: marked ones end (their log-out message was missed), and records Redis
//! no longer has (a restart without persistence) are stored again, since the
//! session still lives here.
//!
//! With Redis unreachable, replicas keep the sessions they have already seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

use super::{lock, ClientSession, Sessions};
use crate::auth::{AuthMode, Secret};
use crate::cluster::{Cluster, Revocation, SessionState};
use crate::net::untrusted::Untrusted;
use crate::protocol::Family;
use crate::proxy::stored::SessionRecord;

/// The first and the longest pause between attempts to resynchronize sessions
/// with a Redis that does not answer.
const RESYNC_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const RESYNC_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// A shared session's handle in the cluster, and when this replica last
/// extended its life there.
#[derive(Debug)]
pub(super) struct SharedMark {
    handle: [u8; 32],
    /// Milliseconds since [`epoch`] of the last extension.
    touched: AtomicU64,
}

impl SharedMark {
    pub(super) fn new(cluster: &Cluster, id: &str) -> SharedMark {
        SharedMark {
            handle: cluster.session_handle(id),
            touched: AtomicU64::new(since_epoch()),
        }
    }
}

/// A monotonic clock in milliseconds, from the first call.
fn since_epoch() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Sessions {
    /// The session `id` made on another replica, adopted here; `None` when no
    /// replica knows it (or Redis cannot say) or vCenter no longer takes its
    /// password. Concurrent requests with one new id adopt it once.
    pub(super) async fn adopt(&self, id: &str) -> Option<Arc<ClientSession>> {
        let cluster = self.cluster.as_ref()?;
        let init = async {
            let record = SessionRecord::decode(&cluster.get_session(id).await?)?;
            let mode = self.current().mode.clone();
            let principal = match &mode {
                AuthMode::Passthrough => {
                    let password = Secret::new(record.password.clone());
                    match self
                        .passthrough_principal(&record.user, &password, Family::Api)
                        .await
                    {
                        Ok(p) => p,
                        Err(_) => {
                            info!(user = %Untrusted(&record.user), "a shared session's password no longer logs in; refused");
                            return None;
                        }
                    }
                }
                AuthMode::ServiceAccount(sa) => {
                    if !sa.users.contains(&record.user) {
                        info!(user = %Untrusted(&record.user), "a shared session's user is not in this replica's users file; refused");
                        return None;
                    }
                    self.principal_with_sessions(&sa.username, &sa.password, Family::Api, true)
                        .await
                        .ok()?
                }
            };
            let user: Arc<str> = match &mode {
                AuthMode::Passthrough => principal.user.clone(),
                AuthMode::ServiceAccount(_) => record.user.as_str().into(),
            };
            debug!(user = %Untrusted(&user), "adopted a session made on another replica");
            Some(self.session(id, user, principal, record.created))
        };
        self.clients.optionally_get_with(Arc::from(id), init).await
    }

    /// Stores a session's record for the other replicas (unless a log-out's mark
    /// is there).
    pub(super) async fn publish(&self, id: &str, record: &SessionRecord) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let ttl = self.current().settings.client_idle;
        cluster.put_session(id, &record.encode(), ttl).await;
    }

    /// Deletes a session's record, which tells every replica; whether there was
    /// one.
    pub(super) async fn unpublish(&self, id: &str) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        let existed = cluster.session_state(id).await == Some(SessionState::Live);
        let ttl = self.current().settings.client_idle;
        cluster.delete_session(id, ttl).await;
        existed
    }

    /// Extends the record's life in the cluster, off the request's path and at
    /// most every eighth of the idle timeout; stores it again if Redis lost it
    /// (evicted, or restarted while this replica's subscription stayed up), so the
    /// other replicas can still adopt the session.
    /// (On every request of a shared session: two atomic loads and a clock read
    /// unless it is time.)
    pub(super) fn keep_alive(&self, cluster: &Arc<Cluster>, id: &str, session: &ClientSession) {
        let Some(mark) = &session.shared else {
            return;
        };
        let now = since_epoch();
        let last = mark.touched.load(Ordering::Relaxed);
        // The idle timeout cannot change without a restart (reload keeps it).
        let every = self.touch_every_ms;
        if now.saturating_sub(last) < every
            || mark
                .touched
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let idle = self.current().settings.client_idle;
        let record = self.record_of(session).map(|r| r.encode());
        let (cluster, id) = (cluster.clone(), id.to_owned());
        tokio::spawn(async move {
            if cluster.touch_session(&id, idle).await == Some(false) {
                if let Some(record) = record {
                    cluster.put_session(&id, &record, idle).await;
                    debug!("a session's record was missing from Redis; stored again");
                }
            }
        });
    }

    /// Ends local copies of sessions logged out on other replicas, until `stop`.
    pub async fn follow_revocations(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut revocations = cluster.revocations();
        tokio::pin!(stop);
        loop {
            let item = tokio::select! {
                item = revocations.recv() => item,
                () = &mut stop => return,
            };
            match item {
                Ok(Revocation::Handle(handle)) => self.revoke(|mark| mark.handle == handle).await,
                Ok(Revocation::Resync)
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Right after a reconnection Redis may not answer yet (the
                    // command connection learns of a restart on its next command):
                    // until it has answered for every session, again, backing off.
                    let mut pause = RESYNC_RETRY_MIN;
                    while !self.resync(&cluster).await {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = &mut stop => return,
                        }
                        pause = (pause * 2).min(RESYNC_RETRY_MAX);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Ends the local sessions whose mark `gone` picks.
    async fn revoke(&self, gone: impl Fn(&SharedMark) -> bool) {
        let ended: Vec<Arc<str>> = self
            .clients
            .iter()
            .filter(|(_, s)| s.shared.as_ref().is_some_and(&gone))
            .map(|(id, _)| Arc::clone(&*id))
            .collect();
        for id in &ended {
            self.clients.invalidate(id).await;
        }
        if !ended.is_empty() {
            debug!(
                sessions = ended.len(),
                "sessions logged out on another replica ended here"
            );
        }
    }

    /// After an interruption: asks the cluster about every shared session held
    /// here, ends those logged out meanwhile and stores again those it lost.
    /// `false` when Redis could not say for some session (that one is tried again).
    async fn resync(&self, cluster: &Cluster) -> bool {
        let held: Vec<(Arc<str>, Arc<ClientSession>)> = self
            .clients
            .iter()
            .filter(|(_, s)| s.shared.is_some())
            .map(|(id, s)| (Arc::clone(&*id), s))
            .collect();
        let (mut ended, mut restored, mut complete) = (0, 0, true);
        for (id, session) in held {
            match cluster.session_state(&id).await {
                Some(SessionState::Revoked) => {
                    self.clients.invalidate(&id).await;
                    ended += 1;
                }
                // Redis lost it (restarted empty, or evicted it): the session
                // lives here, so its record goes back for the other replicas.
                Some(SessionState::Absent) => {
                    if let Some(record) = self.record_of(&session) {
                        self.publish(&id, &record).await;
                        restored += 1;
                    }
                }
                Some(SessionState::Live) => {}
                None => complete = false,
            }
        }
        if ended > 0 {
            warn!(
                sessions = ended,
                "sessions logged out elsewhere while this replica was not listening; ended"
            );
        }
        if restored > 0 {
            warn!(
                sessions = restored,
                "Redis had lost the records of sessions held here; stored them again"
            );
        }
        complete
    }

    /// A held session's record as the other replicas read it; `None` when its
    /// password is no longer held (passthrough: no client sessions left).
    fn record_of(&self, session: &ClientSession) -> Option<SessionRecord> {
        let password = match &self.current().mode {
            AuthMode::Passthrough => lock(&session.principal.password)
                .as_ref()?
                .expose()
                .to_owned(),
            AuthMode::ServiceAccount(_) => String::new(),
        };
        Some(SessionRecord {
            user: session.user.to_string(),
            password,
            created: session.created,
        })
    }
}
