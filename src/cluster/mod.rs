//! The Redis layer that lets several vcproxy replicas share answers, fetch locks
//! and sessions. Redis (or Valkey) is the engine; this layer adds no replication of
//! its own, and every replica keeps working alone when Redis is down or slow.
//!
//! One idea per file: [`crypto`] (keys derived from the secret, key names,
//! sealed values), [`breaker`] (the circuit breaker), [`store`] (the connection
//! and the one door every call goes through), [`lock`] (one fetch across the
//! cluster), [`subscriber`] (the shared pub/sub connection), [`metrics`].
//!
//! # What Redis holds
//!
//! Every key and channel starts with `key_prefix` (`vcproxy:` below):
//!
//! | name | what |
//! |---|---|
//! | `vcproxy:gen` | the answers' generation (an integer) |
//! | `vcproxy:a:GEN:MAC` | an answer; MAC = base64url(HMAC(names key, GEN (8 bytes, big-endian) \|\| key material)) |
//! | `vcproxy:l:MAC` | the fetch lock for that answer: an owner token, `PX` = hold time |
//! | `vcproxy:d:MAC` | the last holder's token after it released, for pollers (expires) |
//! | `vcproxy:s:HANDLE` | a session record; HANDLE = base64url(HMAC(handle key, session id)) |
//! | channel `vcproxy:done` | a holder's "stored": the 32-byte MAC |
//! | channel `vcproxy:logout` | a logged-out session: the 32-byte handle |
//!
//! The key material (user and question), the session ids and every plaintext stay
//! out of Redis: names are MACs; values are AES-256-GCM sealed with the key name as
//! associated data (a value copied under another name fails authentication, and
//! is then a miss, with one warning logged per process). Answers are sealed under a
//! key derived from the secret; a session record under a key derived from the
//! secret *and the session id* (as oauth2-proxy's tickets), so even someone with
//! the secret and a dump cannot read a session without its id. The sub-keys come
//! from the secret's bytes (as [`Secret::expose`] gives them) by HKDF-SHA256; a
//! replica with another secret reads only misses. Nothing here logs a key, id,
//! value or password.
//!
//! # Consistency
//!
//! * **Purge** is `INCR vcproxy:gen`: older answers are no longer named and
//!   expire by their TTL. Each replica caches the generation and re-reads it every
//!   [`GENERATION_REFRESH`] (and after Redis comes back), so a purge on one replica
//!   reaches the others within that time.
//! * **One fetch**: on an L2 miss, [`Cluster::lock_fetch`] (`SET NX PX`). The
//!   holder fetches, [`Cluster::put_answer`]s, then [`LockGuard::release`]s: a Lua
//!   script (EVALSHA, EVAL on NOSCRIPT) compare-and-deletes the lock, leaves its
//!   token under the `d:` key and publishes the MAC on `done`. The others call
//!   [`Cluster::wait_fetched`]: one pub/sub connection per replica fans `done`
//!   out to its waiters; a poll of the lock (every 250 ms while subscribed, every
//!   50 ms while not) sees a release the message missed, a new holder, or a holder
//!   that died (its lock expired with no `d:` token: the waiter gives up at once
//!   and fetches itself). A guard dropped without release deletes its lock in a
//!   spawned task (best effort; otherwise `PX` expires it), so waiters stop waiting.
//! * **Sessions**: [`Cluster::delete_session`] replaces the record by a
//!   revocation mark and publishes its handle on `logout`; every replica's
//!   subscriber hands it to [`Cluster::revocations`] within a round trip. After
//!   the subscriber reconnects it sends [`Revocation::Resync`]: messages may have
//!   been missed, and [`Cluster::session_state`] tells a session logged out
//!   meanwhile (the mark) from one whose record Redis lost (nothing: a restarted
//!   Redis), which the replicas holding it store again.
//!
//! # Redis down or slow
//!
//! Every call is bounded by `command_timeout` (a probe, which may have to connect
//! first, by `connect_timeout + command_timeout`). `breaker_failures` consecutive
//! failures open the circuit breaker: calls then return at once (a miss,
//! [`FetchLock::Unavailable`], `None`) without touching Redis, and one probe goes
//! through every `breaker_probe` (a background task probes too, so the layer
//! rejoins by itself, without traffic). [`Cluster::start`] never waits for Redis:
//! the breaker starts open and closes on the first answer. When Redis drops the
//! connection (a restart), the next call fails and redis-rs reconnects; the
//! background generation read (every [`GENERATION_REFRESH`]) usually takes that
//! failure. The subscriber reconnects with backoff (up to `breaker_probe`) and
//! pings an idle subscription every `breaker_probe` (1 to 5 s).
//!
//! # Security
//!
//! `rediss://` is verified with rustls against the configured CA certificates (or
//! the system roots), as for vCenters; `#insecure` URLs are refused. redis-rs takes
//! roots only as PEM bytes (`TlsCertificates::root_cert`), so the DER certificates
//! are handed over as PEM; it also always reads the system root store when it
//! connects and fails if that store reports an error (`SSL_CERT_FILE` pointing
//! nowhere), even though the roots given here replace it. It also builds its
//! rustls config on the process-wide crypto provider, so starting a `rediss://`
//! cluster installs ring as that default if none is (vcproxy links no other). No
//! client certificates.
//!
//! The layer sends only: `GET SET MGET DEL EXISTS PEXPIRE INCR PUBLISH SUBSCRIBE
//! PING EVALSHA EVAL` (the scripts call `GET SET DEL PUBLISH`), plus `AUTH` with a
//! password and `SELECT` for a database other than 0 (RESP2: no `HELLO`; no
//! `CLIENT SETINFO`). Never `KEYS`, `SCAN`, `FLUSHALL` or `FLUSHDB`. The ACL an
//! operator needs, for prefix `vcproxy:`:
//!
//! ```text
//! ACL SETUSER vcproxy on >PASSWORD resetkeys ~vcproxy:* resetchannels &vcproxy:* -@all +get +set +mget +del +exists +pexpire +incr +publish +subscribe +ping +evalsha +eval
//! ```
//!
//! (add `+select` when the URL names a database other than 0).

mod breaker;
mod crypto;
mod from_config;
mod lock;
mod metrics;
mod store;
mod subscriber;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::auth::Secret;
use crypto::{Keys, Mac};
use store::{CallError, Store};

pub use lock::{FetchLock, LockGuard};
pub use metrics::ClusterMetrics;

/// How often each replica re-reads the answers' generation: the most a purge on
/// another replica takes to reach this one (plus a command timeout).
pub const GENERATION_REFRESH: Duration = Duration::from_secs(2);

/// Runtime settings (built by the proxy from its `[cluster]` section). `Debug`
/// shows no secret, password, or credentials in the URL.
#[derive(Clone)]
pub struct ClusterSettings {
    /// `redis://host:port/db` or `rediss://host:port/db` (also `valkey://`,
    /// `valkeys://`, `redis+unix:///path`).
    pub url: String,
    /// The ACL user; overrides one in the URL.
    pub username: Option<String>,
    /// The ACL password; overrides one in the URL.
    pub password: Option<Secret>,
    /// Roots trusted for `rediss://`; empty: the system roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Shared by all replicas, at least 32 bytes (the caller checks): the key
    /// material every name and value key is derived from.
    pub secret: Secret,
    /// Starts every key and channel name, e.g. `vcproxy:`.
    pub key_prefix: String,
    /// Bound on each Redis call, e.g. 250 ms (a breaker probe, which may have to
    /// connect first, gets `connect_timeout` on top).
    pub command_timeout: Duration,
    /// Bound on each connection attempt.
    pub connect_timeout: Duration,
    /// Consecutive failures that open the circuit breaker, e.g. 3.
    pub breaker_failures: u32,
    /// While the breaker is open, one probe this often, e.g. 2 s.
    pub breaker_probe: Duration,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_certs", &self.ca_certs.len())
            .field("secret", &self.secret)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_probe", &self.breaker_probe)
            .finish()
    }
}

/// `scheme://user:password@host/...` without its credentials.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster URL: {0}")]
    Url(String),
    #[error("cluster TLS: {0}")]
    Tls(String),
    #[error("the cluster layer starts inside a Tokio runtime")]
    NoRuntime,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(String),
}

/// A session logged out somewhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The handle ([`Cluster::session_handle`]) of a session logged out.
    Handle([u8; 32]),
    /// Messages may have been missed (the subscriber reconnected, or this
    /// receiver lagged): re-check every local session with
    /// [`Cluster::session_exists`].
    Resync,
}

/// The Redis layer. `Send + Sync`; share it as `Arc<Cluster>`. Dropping it stops
/// its background tasks.
pub struct Cluster {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::AbortHandle>,
}

pub(crate) struct Inner {
    store: Store,
    keys: Keys,
    prefix: String,
    gen_key: String,
    done_channel: String,
    logout_channel: String,
    generation: Mutex<Generation>,
    /// MACs whose holder published "done", from the subscriber to the waiters.
    done: broadcast::Sender<Mac>,
    revocations: broadcast::Sender<Revocation>,
    /// Whether the subscriber connection is subscribed.
    subscribed: watch::Sender<bool>,
    metrics: ClusterMetrics,
    warned_answer: AtomicBool,
    warned_session: AtomicBool,
}

/// The cached generation. `epoch` counts local purges, so a refresh issued before
/// one cannot overwrite what it set; `closings` is the store's count when read, so
/// the value is re-read after an outage.
struct Generation {
    value: Option<u64>,
    read_at: Instant,
    epoch: u64,
    closings: u64,
}

/// Options the tests use to take a part away.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) subscriber: bool,
}

impl Cluster {
    /// Starts the layer: returns at once, connecting in the background (the breaker
    /// starts open and closes on the first answer). Fails only on settings that
    /// cannot work (a bad URL, a TLS setup) or outside a Tokio runtime.
    pub fn start(
        settings: ClusterSettings,
        metrics: ClusterMetrics,
    ) -> Result<Arc<Cluster>, ClusterError> {
        Cluster::start_with(settings, metrics, Options { subscriber: true })
    }

    pub(crate) fn start_with(
        settings: ClusterSettings,
        metrics: ClusterMetrics,
        options: Options,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClusterError::NoRuntime)?;
        let store = Store::new(&settings, metrics.clone())?;
        let prefix = settings.key_prefix.clone();
        let inner = Arc::new(Inner {
            store,
            keys: Keys::derive(settings.secret.expose().as_bytes()),
            gen_key: format!("{prefix}gen"),
            done_channel: format!("{prefix}done"),
            logout_channel: format!("{prefix}logout"),
            prefix,
            generation: Mutex::new(Generation {
                value: None,
                read_at: Instant::now(),
                epoch: 0,
                closings: 0,
            }),
            done: broadcast::channel(1024).0,
            revocations: broadcast::channel(1024).0,
            subscribed: watch::channel(false).0,
            metrics,
            warned_answer: AtomicBool::new(false),
            warned_session: AtomicBool::new(false),
        });
        let mut tasks = vec![runtime
            .spawn(maintain(inner.clone(), settings.breaker_probe))
            .abort_handle()];
        if options.subscriber {
            tasks.push(runtime.spawn(subscriber::run(inner.clone())).abort_handle());
        }
        Ok(Arc::new(Cluster { inner, tasks }))
    }

    /// The breaker is closed and the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.store.breaker.is_up()
    }

    /// One `PING`, ignoring the breaker (for `vcproxy check`): its round trip.
    pub async fn ping(&self) -> Result<Duration, ClusterError> {
        self.inner.store.ping().await.map_err(|e| match e {
            CallError::Timeout => ClusterError::Timeout(self.inner.store.command_timeout()),
            CallError::Redis(e) => ClusterError::Redis(e.to_string()),
            CallError::Refused => ClusterError::Redis("refused".to_owned()),
        })
    }

    // ---- answers (the L2 cache)

    /// The answer stored under `key` (the caller's canonical user and question
    /// bytes). `None` on a miss, an error, the breaker open, or a value failing
    /// authentication (tampered, moved, or sealed under another secret).
    pub async fn get_answer(&self, key: &[u8]) -> Option<Vec<u8>> {
        let inner = &self.inner;
        let generation = inner.generation().await?;
        let name = inner.answer_key(&inner.keys.answer_mac(generation, key), generation);
        let sealed: Option<Vec<u8>> = inner.store.query(cmd("GET", &name)).await.ok()?;
        let Some(sealed) = sealed else {
            inner.metrics.l2("miss");
            return None;
        };
        match inner.keys.open_answer(name.as_bytes(), &sealed) {
            Some(plain) => {
                inner.metrics.l2("hit");
                Some(plain)
            }
            None => {
                inner.metrics.l2("miss");
                inner.decrypt_failed(&inner.warned_answer, "an answer");
                None
            }
        }
    }

    /// Stores an answer for `ttl` (at least 1 ms). Errors are counted and logged
    /// at debug; the caller does not wait on them beyond one command timeout.
    pub async fn put_answer(&self, key: &[u8], value: &[u8], ttl: Duration) {
        let inner = &self.inner;
        let Some(generation) = inner.generation().await else {
            return;
        };
        let name = inner.answer_key(&inner.keys.answer_mac(generation, key), generation);
        let sealed = inner.keys.seal_answer(name.as_bytes(), value);
        let mut set = cmd("SET", &name);
        set.arg(sealed).arg("PX").arg(millis(ttl));
        let _ = inner.store.query::<()>(set).await;
    }

    /// Makes every stored answer unreadable: `INCR` of the generation (older keys
    /// just expire). Reaches other replicas within [`GENERATION_REFRESH`]. When
    /// Redis is unavailable the purge is lost (logged).
    pub async fn purge_answers(&self) {
        let inner = &self.inner;
        match inner.store.query::<u64>(cmd("INCR", &inner.gen_key)).await {
            Ok(generation) => {
                let mut g = inner.generation_state();
                g.epoch += 1;
                g.value = Some(generation);
                g.read_at = Instant::now();
                g.closings = inner.store.closings();
            }
            Err(e) => {
                tracing::warn!(
                    error = ?e,
                    "cluster purge failed: other replicas keep their answers until they expire"
                );
            }
        }
    }

    // ---- sessions

    /// Stores a session record for `ttl`, sealed under a key derived from `id`,
    /// under the session's handle, unless Redis holds something there (`SET NX`):
    /// a new session's id is new, and a record stored again (Redis lost it) never
    /// replaces the revocation mark of a log-out made meanwhile.
    pub async fn put_session(&self, id: &str, record: &[u8], ttl: Duration) {
        let inner = &self.inner;
        let name = inner.session_key(id);
        let sealed = inner.keys.seal_session(id, name.as_bytes(), record);
        let mut set = cmd("SET", &name);
        set.arg(sealed).arg("NX").arg("PX").arg(millis(ttl));
        let _ = inner.store.query::<Option<String>>(set).await;
    }

    /// The session's record; `None` when absent, unreadable, or Redis can't say.
    pub async fn get_session(&self, id: &str) -> Option<Vec<u8>> {
        let inner = &self.inner;
        let name = inner.session_key(id);
        let sealed: Vec<u8> = inner
            .store
            .query::<Option<Vec<u8>>>(cmd("GET", &name))
            .await
            .ok()??;
        if sealed == REVOKED {
            return None;
        }
        let plain = inner.keys.open_session(id, name.as_bytes(), &sealed);
        if plain.is_none() {
            inner.decrypt_failed(&inner.warned_session, "a session record");
        }
        plain
    }

    /// Extends the session's TTL (`PEXPIRE`): `Some(false)` when Redis holds
    /// nothing for it (it lost the record), `None` when Redis can't say.
    pub async fn touch_session(&self, id: &str, ttl: Duration) -> Option<bool> {
        let inner = &self.inner;
        let mut expire = cmd("PEXPIRE", &inner.session_key(id));
        expire.arg(millis(ttl));
        inner.store.query::<i64>(expire).await.ok().map(|n| n == 1)
    }

    /// Replaces the session's record by a revocation mark kept for `ttl` (the
    /// longest another replica may still hold the session unused), and publishes
    /// the session's handle on the logout channel: every replica's
    /// [`Cluster::revocations`] hears it. The mark is what tells a replica that
    /// missed the message (its subscription was down) that the session ended,
    /// where a missing record only says Redis does not have it (a restarted Redis
    /// has none).
    pub async fn delete_session(&self, id: &str, ttl: Duration) {
        let inner = &self.inner;
        let handle = inner.keys.session_handle(id);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(inner.session_key_for(&handle))
            .arg(REVOKED)
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .cmd("PUBLISH")
            .arg(&inner.logout_channel)
            .arg(&handle[..])
            .ignore();
        if let Err(e) = inner.store.query_pipe::<()>(pipe).await {
            tracing::warn!(error = ?e, "cluster logout not propagated");
        }
    }

    /// Handles of sessions logged out anywhere, as they are published, and
    /// [`Revocation::Resync`] after the subscriber reconnects. A receiver that lags
    /// gets `RecvError::Lagged`: treat it as a `Resync`.
    pub fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.inner.revocations.subscribe()
    }

    /// The session's handle: `HMAC(handle key, id)`, what Redis and the logout
    /// channel see instead of the id.
    pub fn session_handle(&self, id: &str) -> [u8; 32] {
        self.inner.keys.session_handle(id)
    }

    /// What Redis holds for the session; `None` when Redis can't say.
    pub async fn session_state(&self, id: &str) -> Option<SessionState> {
        let inner = &self.inner;
        let value: Option<Vec<u8>> = inner
            .store
            .query(cmd("GET", &inner.session_key(id)))
            .await
            .ok()?;
        Some(match value {
            None => SessionState::Absent,
            Some(v) if v == REVOKED => SessionState::Revoked,
            Some(_) => SessionState::Live,
        })
    }

    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

/// What Redis holds for a session ([`Cluster::session_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Its record: the session lives.
    Live,
    /// The mark a log-out leaves: the session ended.
    Revoked,
    /// Nothing: never shared, expired unused, or lost with Redis's data.
    Absent,
}

/// The value a log-out leaves under a session's name. Shorter than any sealed
/// record (nonce and tag alone are 28 bytes), so never mistaken for one.
const REVOKED: &[u8] = b"revoked";

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.inner.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The generation: cached, read from Redis when unknown or after an outage.
    async fn generation(&self) -> Option<u64> {
        {
            let g = self.generation_state();
            if let Some(value) = g.value {
                if g.closings == self.store.closings() {
                    return Some(value);
                }
            }
        }
        self.refresh_generation(true).await
    }

    /// Reads the generation from Redis (`count_refusal`: as for any call).
    async fn refresh_generation(&self, count_refusal: bool) -> Option<u64> {
        let epoch = self.generation_state().epoch;
        let get = cmd("GET", &self.gen_key);
        let read: Option<u64> = self
            .store
            .call(count_refusal, move |mut conn| async move {
                get.query_async(&mut conn).await
            })
            .await
            .ok()?;
        let mut g = self.generation_state();
        if g.epoch == epoch {
            g.value = Some(read.unwrap_or(0));
            g.read_at = Instant::now();
            g.closings = self.store.closings();
        }
        g.value
    }

    fn generation_state(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer_key(&self, mac: &Mac, generation: u64) -> String {
        format!(
            "{}a:{generation}:{}",
            self.prefix,
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    fn lock_key(&self, mac: &Mac) -> String {
        format!("{}l:{}", self.prefix, URL_SAFE_NO_PAD.encode(mac))
    }

    fn done_key(&self, mac: &Mac) -> String {
        format!("{}d:{}", self.prefix, URL_SAFE_NO_PAD.encode(mac))
    }

    fn session_key(&self, id: &str) -> String {
        self.session_key_for(&self.keys.session_handle(id))
    }

    fn session_key_for(&self, handle: &Mac) -> String {
        format!("{}s:{}", self.prefix, URL_SAFE_NO_PAD.encode(handle))
    }

    fn decrypt_failed(&self, warned: &AtomicBool, what: &str) {
        self.metrics.error("decrypt");
        if !warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{what} in Redis failed authentication (tampered, or written with another \
                 cluster secret); treated as a miss (logged once)"
            );
        } else {
            tracing::debug!("{what} in Redis failed authentication");
        }
    }
}

/// The background task: probes while the breaker is open (so the layer rejoins
/// without traffic) and re-reads the generation every [`GENERATION_REFRESH`].
async fn maintain(inner: Arc<Inner>, probe: Duration) {
    let tick = (probe.min(GENERATION_REFRESH) / 4)
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    loop {
        let due = {
            let g = inner.generation_state();
            inner.store.breaker.is_open()
                || g.value.is_none()
                || g.read_at.elapsed() >= GENERATION_REFRESH
        };
        if due {
            // While open the breaker lets this through only when a probe is due.
            inner.refresh_generation(false).await;
        }
        tokio::time::sleep(tick).await;
    }
}

fn cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

/// A TTL in milliseconds for `PX`/`PEXPIRE`: at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
