//! One fetch across the cluster: a short lock per answer (`SET NX PX`), released
//! by a compare-and-delete script that also leaves the holder's token for pollers
//! and publishes "done"; waiters hear the message or poll the lock.

use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::crypto::Mac;
use super::store::{CallError, Script};
use super::{cmd, millis, Cluster, Inner};

/// How often a waiter polls the lock while the subscriber is subscribed (the done
/// message is the fast path) and while it is not.
const POLL_SUBSCRIBED: Duration = Duration::from_millis(250);
const POLL_UNSUBSCRIBED: Duration = Duration::from_millis(50);

/// The shortest the released holder's token stays for pollers.
const DONE_MARK_MIN: Duration = Duration::from_secs(1);

/// KEYS: lock, done mark. ARGV: token, mark TTL (ms), done channel, MAC.
/// Deletes the lock if it is still ours, leaves our token as the done mark, and
/// publishes (even if the lock had expired: the answer is stored all the same).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end \
         redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) \
         redis.call('PUBLISH', ARGV[3], ARGV[4]) \
         return 1",
    )
});

/// KEYS: lock. ARGV: token. Deletes the lock if it is still ours.
static ABANDON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
         return 0",
    )
});

/// What [`Cluster::lock_fetch`] got.
#[derive(Debug)]
pub enum FetchLock {
    /// This caller fetches; then [`LockGuard::release`].
    Acquired(LockGuard),
    /// Another replica (or task) fetches: [`Cluster::wait_fetched`].
    HeldElsewhere,
    /// Redis is down or slow: fetch locally.
    Unavailable,
}

/// The lock on one answer's fetch. Call [`LockGuard::release`] once the answer is
/// stored. Dropped without release (the fetch failed), it deletes the lock in a
/// spawned task, best effort (without a Tokio runtime, or with Redis down, the
/// lock's `PX` expires it): waiters then give up and fetch themselves, without a
/// done message.
pub struct LockGuard {
    inner: Weak<Inner>,
    lock_key: String,
    done_key: String,
    mac: Mac,
    token: String,
    hold_for: Duration,
    armed: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("hold_for", &self.hold_for)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// Publishes "done" for this answer and deletes the lock if it is still ours
    /// (compare-and-delete). Store the answer first.
    pub async fn release(mut self, cluster: &Cluster) {
        self.armed = false;
        let inner = &cluster.inner;
        let mark_ttl = self.hold_for.max(DONE_MARK_MIN);
        let args = vec![
            self.token.as_bytes().to_vec(),
            millis(mark_ttl).to_string().into_bytes(),
            inner.done_channel.as_bytes().to_vec(),
            self.mac.to_vec(),
        ];
        let result = inner
            .store
            .eval::<i64>(&RELEASE, &[&self.lock_key, &self.done_key], args)
            .await;
        if let Err(e) = result {
            tracing::debug!(error = ?e, "fetch lock release failed; waiters poll or time out");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (Some(inner), Ok(runtime)) =
            (self.inner.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let lock_key = std::mem::take(&mut self.lock_key);
        let token = std::mem::take(&mut self.token).into_bytes();
        runtime.spawn(async move {
            let _ = inner
                .store
                .eval::<i64>(&ABANDON, &[&lock_key], vec![token])
                .await;
        });
    }
}

/// What a poll of the lock saw.
enum Seen {
    /// Held, by this token.
    Held(Vec<u8>),
    /// Released by the holder we waited for (or, first poll, by someone recently).
    Done,
    /// Neither held nor released: its holder died (the lock expired).
    Abandoned,
}

impl Cluster {
    /// Tries to take the fetch lock for `key` (the answer's key material) for
    /// `hold_for`, which must outlast the fetch: an expired lock makes waiters
    /// fetch too.
    pub async fn lock_fetch(&self, key: &[u8], hold_for: Duration) -> FetchLock {
        let inner = &self.inner;
        let Some(generation) = inner.generation().await else {
            return FetchLock::Unavailable;
        };
        let mac = inner.keys.answer_mac(generation, key);
        let lock_key = inner.lock_key(&mac);
        let token = URL_SAFE_NO_PAD.encode(inner.keys.token());
        let mut set = cmd("SET", &lock_key);
        set.arg(&token).arg("NX").arg("PX").arg(millis(hold_for));
        match inner.store.query::<Option<String>>(set).await {
            Ok(Some(_)) => FetchLock::Acquired(LockGuard {
                inner: Arc::downgrade(inner),
                done_key: inner.done_key(&mac),
                lock_key,
                mac,
                token,
                hold_for,
                armed: true,
            }),
            Ok(None) => FetchLock::HeldElsewhere,
            Err(_) => FetchLock::Unavailable,
        }
    }

    /// Waits, at most `within`, for the holder of `key`'s lock to finish. `true`:
    /// it released the lock (its done message, or a poll saw it), so the answer
    /// should be stored: read it with [`Cluster::get_answer`]. `false`: the
    /// deadline passed, the holder died, or Redis is down: fetch yourself.
    pub async fn wait_fetched(&self, key: &[u8], within: Duration) -> bool {
        let outcome = self.wait(key, Instant::now() + within).await;
        self.inner.metrics.lock_wait(outcome.unwrap_or("timeout"));
        outcome.is_some()
    }

    /// `Some("notified" | "polled")` when the holder finished; `None` otherwise.
    async fn wait(&self, key: &[u8], deadline: Instant) -> Option<&'static str> {
        let inner = &self.inner;
        // Listen before the first poll, so a release between the two is not missed.
        let mut done = inner.done.subscribe();
        let generation = tokio::time::timeout_at(deadline, inner.generation())
            .await
            .ok()??;
        let mac = inner.keys.answer_mac(generation, key);
        let (lock_key, done_key) = (inner.lock_key(&mac), inner.done_key(&mac));
        let mut holder = match self.poll(&lock_key, &done_key, None, deadline).await? {
            Seen::Held(token) => token,
            Seen::Done => return Some("polled"),
            Seen::Abandoned => return None,
        };
        let mut listening = true;
        let mut next_poll = Instant::now() + self.poll_every();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return None,
                message = done.recv(), if listening => match message {
                    Ok(m) if m == mac => return Some("notified"),
                    Ok(_) => continue,
                    // Missed messages: poll now.
                    Err(RecvError::Lagged(_)) => next_poll = Instant::now(),
                    Err(RecvError::Closed) => listening = false,
                },
                () = tokio::time::sleep_until(next_poll) => {}
            }
            if Instant::now() < next_poll {
                continue;
            }
            match self
                .poll(&lock_key, &done_key, Some(&holder), deadline)
                .await?
            {
                Seen::Held(token) => holder = token,
                Seen::Done => return Some("polled"),
                Seen::Abandoned => return None,
            }
            next_poll = Instant::now() + self.poll_every();
        }
    }

    /// One `MGET lock done`. `holder`: the token seen so far (none at the first
    /// poll). `None` when Redis is unavailable or the deadline passed.
    async fn poll(
        &self,
        lock_key: &str,
        done_key: &str,
        holder: Option<&[u8]>,
        deadline: Instant,
    ) -> Option<Seen> {
        let store = &self.inner.store;
        loop {
            let mut mget = cmd("MGET", lock_key);
            mget.arg(done_key);
            let read = tokio::time::timeout_at(
                deadline,
                store.query::<(Option<Vec<u8>>, Option<Vec<u8>>)>(mget),
            )
            .await
            .ok()?;
            match read {
                // A holder (the same, or a new one after ours expired): keep waiting.
                Ok((Some(token), _)) => return Some(Seen::Held(token)),
                Ok((None, mark)) => {
                    return Some(match (holder, mark) {
                        (Some(holder), Some(mark)) if mark == holder => Seen::Done,
                        (None, Some(_)) => Seen::Done,
                        _ => Seen::Abandoned,
                    })
                }
                Err(CallError::Refused) => return None,
                // A timeout or error: the breaker decides; retry until the deadline.
                Err(_) => {
                    if store.breaker.is_open() {
                        return None;
                    }
                }
            }
        }
    }

    fn poll_every(&self) -> Duration {
        if *self.inner.subscribed.borrow() {
            POLL_SUBSCRIBED
        } else {
            POLL_UNSUBSCRIBED
        }
    }
}
