//! A principal: whose tasks a client sees, and the pool of vCenter sessions
//! (one per vCenter) its requests use.

use crate::net::untrusted::Untrusted;
use moka::notification::RemovalCause;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::debug;

use super::lock;
use crate::auth::Secret;
use crate::upstream::{Backend, BackendId};

/// Whose tasks a client sees, and the vCenter sessions that fetch them.
pub struct Principal {
    /// The vCenter user name (the service account's in that mode).
    pub user: Arc<str>,
    /// Held only while client sessions exist (or always, for the service account).
    pub(super) password: Mutex<Option<Secret>>,
    /// The open vCenter sessions, each with the vCenter it belongs to (so it can be
    /// logged out after a reload removed that vCenter). The async lock serializes
    /// logins, so concurrent first logins by one user open one session per vCenter,
    /// not many.
    pub(super) backends: tokio::sync::Mutex<Vec<Slot>>,
    pub(super) clients: AtomicUsize,
    pub(super) last_used: Mutex<Instant>,
    /// When a vCenter last accepted this principal's credentials.
    pub(super) verified: Mutex<Instant>,
    pub(super) keep_password: bool,
}

/// One open vCenter session.
pub(super) struct Slot {
    pub(super) backend: Backend,
    pub(super) session: Secret,
}

/// The session for `id` among `slots`.
pub(super) fn slot(slots: &mut [Slot], id: BackendId) -> Option<&mut Slot> {
    slots.iter_mut().find(|s| s.backend.id == id)
}

impl Principal {
    pub(super) fn new(user: &str, keep_password: bool) -> Principal {
        Principal {
            user: user.into(),
            password: Mutex::new(None),
            backends: tokio::sync::Mutex::new(Vec::new()),
            clients: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            verified: Mutex::new(Instant::now()),
            keep_password,
        }
    }

    pub(super) fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// The vCenter session for backend `id`, if one is open.
    pub async fn backend_session(&self, id: BackendId) -> Option<Secret> {
        let slots = self.backends.lock().await;
        slots
            .iter()
            .find(|s| s.backend.id == id)
            .map(|s| s.session.clone())
    }

    /// Takes the sessions of the vCenters `keep` rejects out of the pool.
    pub(super) async fn take_sessions(&self, keep: impl Fn(&Backend) -> bool) -> Vec<Slot> {
        let mut slots = self.backends.lock().await;
        let (kept, taken) = std::mem::take(&mut *slots)
            .into_iter()
            .partition(|s| keep(&s.backend));
        *slots = kept;
        taken
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A client session of `principal` ended: the last one lets go of the password
/// (passthrough) and starts the pool entry's idle time.
pub(super) fn client_session_ended(principal: &Principal, cause: RemovalCause) {
    let left = principal
        .clients
        .fetch_sub(1, Ordering::SeqCst)
        .saturating_sub(1);
    debug!(user = %Untrusted(&principal.user), ?cause, clients_left = left, "client session ended");
    if left == 0 {
        if !principal.keep_password {
            // The password is kept only while the user has live client sessions.
            *lock(&principal.password) = None;
        }
        principal.touch();
    }
}
