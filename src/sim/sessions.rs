//! Users, log-in (HTTP Basic in the REST families, `user_pass` credentials in a
//! JSON-RPC body) and sessions: one store for all three protocols, named by the
//! `vmware-api-session-id` header or a JSON-RPC call's `securityCtx.sessionId`.
//!
//! Sessions are what a proxy must not multiply (vCenter caps them), so the store
//! counts exactly how many were opened and how many are open, and expires them
//! after an idle time like vCenter does. Session ids are 128 bits from the OS
//! random generator, hex-encoded like vCenter's; neither they nor passwords are
//! ever logged or printed in `Debug` output.

use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The user vCenter installs with, used when no `--user` is given.
pub const DEFAULT_USER: &str = "administrator@vsphere.local";
/// The default user's password.
pub const DEFAULT_PASSWORD: &str = "VMware1!";

/// A user who can log in, and which tasks they may see.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub password: String,
    /// `None`: every task. `Some(list)`: only tasks of these services (vCenter
    /// filters List Tasks by the caller's permissions).
    pub services: Option<Vec<String>>,
}

impl UserSpec {
    /// A user who sees every task.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        UserSpec {
            name: name.into(),
            password: password.into(),
            services: None,
        }
    }

    /// A user who sees only tasks of `services`.
    pub fn restricted<S: Into<String>>(
        name: impl Into<String>,
        password: impl Into<String>,
        services: impl IntoIterator<Item = S>,
    ) -> Self {
        UserSpec {
            name: name.into(),
            password: password.into(),
            services: Some(services.into_iter().map(Into::into).collect()),
        }
    }

    /// `administrator@vsphere.local` / `VMware1!`, seeing everything.
    pub fn default_admin() -> Self {
        UserSpec::new(DEFAULT_USER, DEFAULT_PASSWORD)
    }

    /// Whether this user may see tasks of `service`.
    pub fn may_see(&self, service: &str) -> bool {
        match &self.services {
            None => true,
            Some(list) => list.iter().any(|s| s == service),
        }
    }
}

impl fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("services", &self.services)
            .finish()
    }
}

/// Parses `NAME:PASSWORD` (sees every task) or `NAME:PASSWORD:SVC1,SVC2` (sees only
/// those services' tasks). The name ends at the first `:`. When more colons follow,
/// the last one starts the service list, so a password containing `:` is written
/// with a trailing service list, which may be empty (`NAME:pa:ss:` sees everything).
impl FromStr for UserSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rest) = s
            .split_once(':')
            .ok_or_else(|| "expected NAME:PASSWORD or NAME:PASSWORD:SVC1,SVC2".to_string())?;
        if name.is_empty() {
            return Err("the user name is empty".into());
        }
        let (password, services) = match rest.rsplit_once(':') {
            None => (rest, None),
            Some((password, list)) => {
                let services: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                (password, (!services.is_empty()).then_some(services))
            }
        };
        if password.is_empty() {
            return Err(format!("the password of user {name:?} is empty"));
        }
        Ok(UserSpec {
            name: name.to_string(),
            password: password.to_string(),
            services,
        })
    }
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The index in `users` of the user these credentials belong to.
pub(crate) fn authenticate(users: &[UserSpec], name: &str, password: &str) -> Option<usize> {
    users.iter().position(|u| {
        u.name == name && constant_time_eq(u.password.as_bytes(), password.as_bytes())
    })
}

/// One open session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// Index into the simulator's users.
    pub(crate) user: usize,
    /// Wall-clock creation and last access, for who-am-I (Unix ms).
    pub(crate) created_ms: i64,
    pub(crate) last_accessed_ms: i64,
    last_used: Instant,
}

/// The session store.
pub(crate) struct Sessions {
    idle: Duration,
    rng: SystemRandom,
    open: Mutex<HashMap<String, Session>>,
    opened: AtomicU64,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

impl Sessions {
    pub(crate) fn new(idle: Duration) -> Self {
        Sessions {
            idle,
            rng: SystemRandom::new(),
            open: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for user `user`; `None` only if the OS has no randomness.
    pub(crate) fn create(&self, user: usize) -> Option<String> {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = unix_ms();
        self.lock().insert(
            id.clone(),
            Session {
                user,
                created_ms: now,
                last_accessed_ms: now,
                last_used: Instant::now(),
            },
        );
        self.opened.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// The session `id`, refreshed, unless it is unknown or has been idle too long
    /// (in which case it is gone for good).
    pub(crate) fn touch(&self, id: &str) -> Option<Session> {
        let mut open = self.lock();
        let s = open.get_mut(id)?;
        if s.last_used.elapsed() > self.idle {
            open.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        s.last_accessed_ms = unix_ms();
        Some(*s)
    }

    /// Ends session `id`; whether it was open.
    pub(crate) fn delete(&self, id: &str) -> bool {
        self.touch(id).is_some() && self.lock().remove(id).is_some()
    }

    /// Ends every session; how many there were.
    pub(crate) fn expire_all(&self) -> usize {
        let mut open = self.lock();
        let n = open.len();
        open.clear();
        n
    }

    /// Sessions opened since start.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sessions open now (idle ones past the timeout are dropped first).
    pub(crate) fn open_now(&self) -> u64 {
        let mut open = self.lock();
        open.retain(|_, s| s.last_used.elapsed() <= self.idle);
        open.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_specs() {
        let u: UserSpec = "alice:pw".parse().unwrap();
        assert_eq!(u, UserSpec::new("alice", "pw"));
        let u: UserSpec = "bob@x:pw:a.b, c.d".parse().unwrap();
        assert_eq!(u, UserSpec::restricted("bob@x", "pw", ["a.b", "c.d"]));
        let u: UserSpec = "carol:p:w:".parse().unwrap();
        assert_eq!(u, UserSpec::new("carol", "p:w"));
        assert!("nopassword".parse::<UserSpec>().is_err());
        assert!(":pw".parse::<UserSpec>().is_err());
        assert!("name:".parse::<UserSpec>().is_err());
        assert!(!format!("{u:?}").contains("p:w"));
    }

    #[test]
    fn authenticate_matches_name_and_password() {
        let users = [UserSpec::new("a", "b"), UserSpec::new("c", "d")];
        assert_eq!(authenticate(&users, "c", "d"), Some(1));
        assert_eq!(authenticate(&users, "c", "b"), None);
    }

    #[test]
    fn sessions_open_touch_delete_expire() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create(0).unwrap();
        let b = s.create(1).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(s.touch(&b).unwrap().user, 1);
        assert!(s.touch("nope").is_none());
        assert!(s.delete(&a));
        assert!(!s.delete(&a));
        assert_eq!((s.opened(), s.open_now()), (2, 1));
        assert_eq!(s.expire_all(), 1);
        assert!(s.touch(&b).is_none());
        let z = Sessions::new(Duration::ZERO);
        let c = z.create(0).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(z.touch(&c).is_none());
    }
}
