//! The response cache: pre-rendered answers, single-flight fetches, stale serving.
//!
//! An entry is the exact response a client gets (status, content type, body bytes),
//! so a hit costs a hash lookup and a reference-count increment: nothing is parsed or
//! rendered again. Entries are keyed by [`CacheKey`]: the principal, the API family
//! and the canonical filter, so two users never share an entry (vCenter filters tasks
//! by permission) and every spelling of one filter shares one.
//!
//! Fetches are single-flight: concurrent misses for one key wait on one fetch, which
//! runs in its own task, so a client that disconnects does not cancel it for the
//! others. Around the fresh TTL there are two windows:
//!
//! * stale-while-revalidate: a good entry past its TTL but within the window is served
//!   at once while one background fetch refreshes it;
//! * stale-if-error: when a fetch fails (5xx or no answer), a good entry within the
//!   window is served instead of the failure.
//!
//! A success answer that is kept gets its compressed copies and validators
//! ([`crate::encoding`]) once per fetch, after the fetch has been cached and
//! has answered its waiters: until they are made, requests get the identity bytes;
//! then the entry is replaced by its encoded twin (same fetch time, so the same
//! expiry), weighed with its copies.
//!
//! Error answers are cached for `error_ttl` (so a bad filter polled by many clients
//! costs vCenter once per window), except 401 and 403, which are about one session
//! and must never be served to another.
//!
//! With a cluster configured, a fetch first asks the second level shared by the
//! replicas ([`super::shared`]); what this replica fetches it stores there too (its
//! compressed copies once made), for the same windows.

use http::StatusCode;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::answer::{Answer, Outcome};
use super::shared::{Origin, SharedLevel};
use crate::encoding::{encode, Encoders};

/// Who asked which question: the principal and the canonical request key
/// ([`crate::protocol::filter::Resolved::key`], which holds the API family).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub principal: Arc<str>,
    pub request: Arc<[u8]>,
}

impl CacheKey {
    /// The key as bytes, for the level shared with other replicas (which hashes
    /// them): principal and question, each length-prefixed so no two keys run
    /// together.
    fn material(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.principal.len() + self.request.len() + 8);
        m.extend_from_slice(&(self.principal.len() as u32).to_be_bytes());
        m.extend_from_slice(self.principal.as_bytes());
        m.extend_from_slice(&(self.request.len() as u32).to_be_bytes());
        m.extend_from_slice(&self.request);
        m
    }
}

/// How a fetched answer may be cached: the cache's policy, decided by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// A merged answer, or an error vCenter gave about the question itself (4xx other
    /// than 401/403): cached.
    Keep,
    /// vCenter failed or could not be reached (5xx, transport): stale-if-error applies.
    Failure,
    /// About this session only (401, 403): never cached, never shared.
    Private,
}

impl Policy {
    fn of(status: StatusCode) -> Policy {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Policy::Private
        } else if status.is_server_error() {
            Policy::Failure
        } else {
            Policy::Keep
        }
    }
}

/// An entry's weight against `max_bytes`: the body, its slack, the key and the
/// bookkeeping around them.
fn weight(key: &CacheKey, answer: &Answer) -> u32 {
    let copies = answer.encoded.as_ref().map_or(0, |e| e.weight());
    let bytes =
        answer.body.len() + answer.spare + copies + key.request.len() + key.principal.len() + 160;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub error_ttl: Duration,
    pub max_bytes: u64,
    /// The compressed copies made of each kept success answer.
    pub encoders: Encoders,
}

impl From<&crate::config::Cache> for CacheSettings {
    fn from(c: &crate::config::Cache) -> CacheSettings {
        CacheSettings {
            ttl: c.ttl,
            stale_while_revalidate: c.stale_while_revalidate,
            stale_if_error: c.stale_if_error,
            error_ttl: c.error_ttl,
            max_bytes: c.max_memory.0,
            encoders: Encoders {
                gzip: c.compression.contains(&crate::config::Compression::Gzip),
                zstd: c.compression.contains(&crate::config::Compression::Zstd),
            },
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(5),
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(60),
            error_ttl: Duration::from_secs(1),
            max_bytes: 256 * 1024 * 1024,
            encoders: Encoders::default(),
        }
    }
}

/// Keeps good answers for as long as either stale window may still use them, and
/// error answers for `error_ttl`.
struct EntryExpiry {
    keep_good: Duration,
    keep_error: Duration,
}

impl Expiry<Arc<CacheKey>, Arc<Answer>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &Arc<CacheKey>,
        entry: &Arc<Answer>,
        now: Instant,
    ) -> Option<Duration> {
        // From the fetch, not from the insert (which follows the compression).
        let keep = if entry.keeps_as_good() {
            self.keep_good
        } else {
            self.keep_error
        };
        Some(keep.saturating_sub(entry.age(now)))
    }
    fn expire_after_update(
        &self,
        key: &Arc<CacheKey>,
        entry: &Arc<Answer>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, entry, now)
    }
}

type Flight = watch::Receiver<Option<Arc<Answer>>>;

/// The cache and its in-flight fetches. Cheap to clone.
#[derive(Clone)]
pub struct ResponseCache {
    entries: Cache<Arc<CacheKey>, Arc<Answer>>,
    /// Keys whose last fetch failed while a good entry was kept for stale-if-error,
    /// for `error_ttl`: within it the stale entry is served without a new fetch, so
    /// a failing vCenter is not asked again on every request.
    recent_failures: Cache<Arc<CacheKey>, ()>,
    inflight: Arc<Mutex<HashMap<Arc<CacheKey>, Flight>>>,
    settings: CacheSettings,
    /// The level shared with the other replicas, when there is a cluster.
    shared: Option<Arc<SharedLevel>>,
}

/// Why no answer could be given (the fetch task itself died).
#[derive(Debug, thiserror::Error)]
#[error("the fetch for this request ended without an answer")]
pub struct FetchAbandoned;

impl ResponseCache {
    pub fn new(settings: CacheSettings) -> Self {
        let entries = Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|k: &Arc<CacheKey>, v: &Arc<Answer>| weight(k, v))
            .expire_after(EntryExpiry {
                keep_good: settings.ttl
                    + settings.stale_while_revalidate.max(settings.stale_if_error),
                keep_error: settings.error_ttl,
            })
            .build();
        let recent_failures = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.error_ttl.max(Duration::from_millis(1)))
            .build();
        ResponseCache {
            entries,
            recent_failures,
            inflight: Arc::default(),
            settings,
            shared: None,
        }
    }

    /// This cache with a second level shared with the other replicas.
    pub fn with_shared(self, shared: Option<Arc<SharedLevel>>) -> Self {
        ResponseCache { shared, ..self }
    }

    /// Answers `key` from the cache, or through `fetch`, coalescing concurrent misses.
    /// With `force` (a client's `Cache-Control: no-cache`), a fresh entry is not used,
    /// but the fetch is still shared with any already in flight.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        force: bool,
        fetch: F,
    ) -> Result<(Arc<Answer>, Outcome), FetchAbandoned>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        // Hits look up by reference; the key is moved into an Arc only when a fetch
        // is started or joined.
        let now = Instant::now();
        let cached = self.entries.get(&key).await;
        if let (Some(entry), false) = (&cached, force) {
            let age = entry.age(now);
            let fresh_for = if entry.keeps_as_good() {
                self.settings.ttl
            } else {
                self.settings.error_ttl
            };
            if age < fresh_for {
                return Ok((entry.clone(), Outcome::Hit));
            }
            if entry.keeps_as_good()
                && age < self.settings.ttl + self.settings.stale_if_error
                && self.recent_failures.contains_key(&key)
            {
                return Ok((entry.clone(), Outcome::Stale));
            }
            if entry.keeps_as_good()
                && age < self.settings.ttl + self.settings.stale_while_revalidate
            {
                // Serve now; refresh once in the background.
                let _ = self.join_or_start(Arc::new(key), false, fetch);
                return Ok((entry.clone(), Outcome::Stale));
            }
        }

        let (mut flight, leader) = self.join_or_start(Arc::new(key), force, fetch);
        let answer = flight
            .wait_for(Option::is_some)
            .await
            .map_err(|_| FetchAbandoned)?
            .clone()
            .ok_or(FetchAbandoned)?;
        // A failure with a good entry still within stale-if-error: serve the good one.
        if !answer.is_success() && answer.status.is_server_error() {
            if let Some(good) = cached.filter(|e| {
                e.keeps_as_good()
                    && e.age(Instant::now()) < self.settings.ttl + self.settings.stale_if_error
            }) {
                return Ok((good, Outcome::Stale));
            }
        }
        Ok((
            answer,
            if leader {
                Outcome::Miss
            } else {
                Outcome::Coalesced
            },
        ))
    }

    /// Joins the fetch in flight for `key`, or starts one in its own task.
    /// Returns the flight and whether this call started it.
    fn join_or_start<F, Fut>(&self, key: Arc<CacheKey>, force: bool, fetch: F) -> (Flight, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = inflight.get(&key) {
            return (flight.clone(), false);
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.clone(), rx.clone());
        drop(inflight);

        let fut = fetch();
        let this = self.clone();
        // The fetch logs (per-vCenter status and latency) inside the span of the
        // request that started it.
        let span = tracing::Span::current();
        let task = async move {
            // Removes the flight even if the fetch panics, so the key is not wedged.
            let _guard = FlightGuard {
                inflight: &this.inflight,
                key: &key,
            };
            // The key as the shared level names it, made once per fetch.
            let material = this
                .shared
                .as_ref()
                .map(|_| key.material())
                .unwrap_or_default();
            let (answer, origin) = match &this.shared {
                Some(shared) => {
                    let fresh = |a: &Answer| this.fresh_for(a, Instant::now()) > Duration::ZERO;
                    shared.answer(&material, force, fresh, fut).await
                }
                None => (fut.await, Origin::Fetched(None)),
            };
            let entry = Arc::new(answer);
            let policy = Policy::of(entry.status);
            match policy {
                Policy::Keep => {
                    this.recent_failures.invalidate(&key).await;
                    this.put(&key, entry.clone()).await;
                }
                Policy::Failure => {
                    // Keep a good entry that stale-if-error may still serve; otherwise
                    // cache the failure briefly like any other error.
                    let keep_good = this
                        .entries
                        .get(&key)
                        .await
                        .is_some_and(|e| e.keeps_as_good());
                    if keep_good {
                        this.recent_failures.insert(key.clone(), ()).await;
                    } else {
                        this.put(&key, entry.clone()).await;
                    }
                }
                Policy::Private => {}
            }
            // Leave the in-flight map before answering, so that a request arriving
            // from now on finds the cache entry (or starts its own fetch) instead of
            // joining a flight that has already landed.
            drop(_guard);
            let _ = tx.send(Some(entry.clone()));
            // Then the other replicas: the answer stored, the lock released, which
            // tells those waiting that it is there.
            let fetched_here = matches!(origin, Origin::Fetched(_));
            if let (Some(shared), Origin::Fetched(lock)) = (&this.shared, origin) {
                if let Some(ttl) = this.shared_ttl(policy, &entry) {
                    shared.store(&material, &entry, ttl).await;
                }
                if let Some(lock) = lock {
                    shared.release(lock).await;
                }
            }
            // Then the copies, off every request's path; the entry is replaced by
            // its encoded twin unless a newer fetch has replaced it meanwhile.
            if policy == Policy::Keep && entry.status == StatusCode::OK && entry.encoded.is_none() {
                let encoded = this.encoded(&entry).await;
                this.entries
                    .entry(key.clone())
                    .and_compute_with(|current| {
                        let same = current.is_some_and(|c| Arc::ptr_eq(c.value(), &entry));
                        std::future::ready(if same {
                            Op::Put(encoded.clone())
                        } else {
                            Op::Nop
                        })
                    })
                    .await;
                if let (Some(shared), true) = (&this.shared, fetched_here) {
                    if let Some(ttl) = this.shared_ttl(policy, &encoded) {
                        shared.store(&material, &encoded, ttl).await;
                    }
                }
            }
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
        (rx, true)
    }

    /// Caches `entry` under `key`. Through the key's lock, like the replacement of
    /// an entry by its encoded twin, so that the two never interleave.
    async fn put(&self, key: &Arc<CacheKey>, entry: Arc<Answer>) {
        self.entries
            .entry(key.clone())
            .and_compute_with(|_| std::future::ready(Op::Put(entry)))
            .await;
    }

    /// `answer` with its compressed copies and validators, made on the blocking
    /// pool; `answer` itself if that fails.
    async fn encoded(&self, answer: &Arc<Answer>) -> Arc<Answer> {
        let encoders = self.settings.encoders;
        let source = answer.clone();
        let made = tokio::task::spawn_blocking(move || {
            let fetched = std::time::SystemTime::now() - source.age(Instant::now());
            Answer {
                encoded: Some(encode(&source.body, fetched, encoders)),
                ..(*source).clone()
            }
        })
        .await;
        match made {
            Ok(a) => Arc::new(a),
            Err(e) => {
                tracing::warn!(error = %e, "compressing an answer failed; kept uncompressed");
                answer.clone()
            }
        }
    }

    /// How long the other replicas may keep `entry`: as long as this replica would
    /// (fresh and stale windows for a good answer, `error_ttl` for an error), from
    /// now; `None` for what is never shared or already too old.
    fn shared_ttl(&self, policy: Policy, entry: &Answer) -> Option<Duration> {
        let keep = match policy {
            Policy::Private => return None,
            _ if entry.keeps_as_good() => {
                self.settings.ttl
                    + self
                        .settings
                        .stale_while_revalidate
                        .max(self.settings.stale_if_error)
            }
            _ => self.settings.error_ttl,
        };
        Some(keep.saturating_sub(entry.age(Instant::now()))).filter(|t| !t.is_zero())
    }

    /// How long `entry` stays fresh from `now` (`Cache-Control: max-age`).
    pub fn fresh_for(&self, entry: &Answer, now: Instant) -> Duration {
        let ttl = if entry.keeps_as_good() {
            self.settings.ttl
        } else {
            self.settings.error_ttl
        };
        ttl.saturating_sub(entry.age(now))
    }

    /// Drops every entry (the admin `POST /cache/purge`), and the answers stored
    /// for the other replicas.
    pub async fn purge(&self) {
        self.entries.invalidate_all();
        self.recent_failures.invalidate_all();
        if let Some(shared) = &self.shared {
            shared.purge().await;
        }
    }

    /// Entries and weighed bytes, approximately (moka counts lazily).
    pub async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

struct FlightGuard<'a> {
    inflight: &'a Mutex<HashMap<Arc<CacheKey>, Flight>>,
    key: &'a Arc<CacheKey>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn an_entrys_weight_counts_its_spare_capacity() {
        let k = key(1);
        let plain = Answer::json(StatusCode::OK, Bytes::from_static(b"[]"));
        let spare = Answer {
            spare: 1000,
            ..Answer::json(StatusCode::OK, Bytes::from_static(b"[]"))
        };
        assert_eq!(weight(&k, &spare), weight(&k, &plain) + 1000);
    }

    fn key(i: usize) -> CacheKey {
        CacheKey {
            principal: "u".into(),
            request: format!("filter-{i}").into_bytes().into(),
        }
    }

    fn answer(bytes: usize) -> Answer {
        Answer::json(StatusCode::OK, Bytes::from(vec![b'x'; bytes]))
    }

    #[tokio::test]
    async fn entries_are_weighed_in_bytes_under_the_cap() {
        let cache = ResponseCache::new(CacheSettings {
            max_bytes: 100_000,
            ..CacheSettings::default()
        });
        for i in 0..500 {
            let (e, outcome) = cache
                .get_or_fetch(key(i), false, || async { answer(1000) })
                .await
                .unwrap();
            assert_eq!((e.body.len(), outcome), (1000, Outcome::Miss));
        }
        // Let the fetch tasks' inserts and moka's evictions settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (entries, bytes) = cache.usage().await;
        assert!(
            bytes <= 100_000,
            "{bytes} bytes held over a 100000-byte cap"
        );
        assert!(
            entries > 10 && entries < 100,
            "{entries} entries of ~1.2 KB under 100 KB"
        );
    }

    #[tokio::test]
    async fn four_hundred_and_one_and_four_hundred_and_three_are_never_cached() {
        let cache = ResponseCache::new(CacheSettings::default());
        let private =
            || async { Answer::json(StatusCode::UNAUTHORIZED, Bytes::from_static(b"{}")) };
        let (_, o1) = cache.get_or_fetch(key(1), false, private).await.unwrap();
        let (_, o2) = cache.get_or_fetch(key(1), false, private).await.unwrap();
        assert_eq!((o1, o2), (Outcome::Miss, Outcome::Miss));
        // Other errors are answers, cached for error_ttl.
        let bad = || async { Answer::json(StatusCode::BAD_REQUEST, Bytes::from_static(b"{}")) };
        let (_, o1) = cache.get_or_fetch(key(2), false, bad).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, o2) = cache.get_or_fetch(key(2), false, bad).await.unwrap();
        assert_eq!((o1, o2), (Outcome::Miss, Outcome::Hit));
    }
}
