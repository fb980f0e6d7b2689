//! Credentials: HTTP Basic headers, secrets, the proxy-local user list of the
//! service-account mode, and the mode itself.

pub mod basic_auth;
mod secret;
pub mod users;

pub use secret::Secret;

use std::sync::Arc;
use users::UserList;

/// `auth.mode`: how clients authenticate, and whose credentials reach the vCenters.
/// Built by configuration validation with everything resolved (the password read, the
/// users file loaded), and used as is by the session store.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Each client's own credentials log in to every vCenter.
    Passthrough,
    /// One service account logs in to every vCenter; clients are checked against the
    /// proxy-local users list.
    ServiceAccount(ServiceAccount),
}

impl AuthMode {
    /// The name used in the file: `"passthrough"` or `"service_account"`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::Passthrough => "passthrough",
            AuthMode::ServiceAccount(_) => "service_account",
        }
    }
}

/// The service account and the users allowed to use it.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub username: String,
    pub password: Secret,
    /// Shared with the blocking tasks that check passwords against it.
    pub users: Arc<UserList>,
}
