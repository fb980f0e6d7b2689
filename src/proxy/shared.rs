//! The cache's second level, shared by every replica through the cluster
//! ([`crate::cluster`]): answers another replica fetched, and one fetch across
//! the cluster for each question.
//!
//! The replica's own cache stays the first level: a hit there never comes here.
//! On a local miss (or a local refresh) the question goes, in order:
//! 1. to the stored answers: one another replica fetched recently enough is used
//!    as it is (its bytes, copies, `ETag` and age);
//! 2. to the fetch lock: the replica that takes it fans out, stores the answer and
//!    announces it; the others wait for the announcement (or notice by polling
//!    that the lock is gone) and read the stored answer. A holder that died lets
//!    the lock expire: waiters give up after `lock_timeout` and fetch themselves;
//! 3. with Redis unreachable (or its breaker open), straight to the fan-out: the
//!    replica works alone, coalescing locally as before.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::answer::Answer;
use super::stored::{decode_answer, encode_answer};
use crate::cluster::{Cluster, FetchLock, LockGuard};

/// The cache's view of the cluster.
pub struct SharedLevel {
    pub cluster: Arc<Cluster>,
    /// The most a fetch lock is held, and waited for.
    pub lock_timeout: Duration,
}

/// Where an answer came from, and what the replica still owes the others.
pub enum Origin {
    /// Another replica's stored answer: nothing to store.
    Shared,
    /// Fetched here: to be stored, then the lock (if this replica held it)
    /// released, which announces the answer.
    Fetched(Option<LockGuard>),
}

impl SharedLevel {
    /// The answer to the question `material` names (the cache key as bytes): a
    /// stored one that `fresh` accepts (unless `force`), another replica's fetch,
    /// or `fetch` run here.
    pub async fn answer(
        &self,
        material: &[u8],
        force: bool,
        fresh: impl Fn(&Answer) -> bool,
        fetch: impl Future<Output = Answer>,
    ) -> (Answer, Origin) {
        if !force {
            if let Some(a) = self.stored(material, &fresh).await {
                return (a, Origin::Shared);
            }
        }
        match self.cluster.lock_fetch(material, self.lock_timeout).await {
            FetchLock::Acquired(guard) => (fetch.await, Origin::Fetched(Some(guard))),
            FetchLock::Unavailable => (fetch.await, Origin::Fetched(None)),
            FetchLock::HeldElsewhere => {
                let started = Instant::now();
                if self.cluster.wait_fetched(material, self.lock_timeout).await {
                    // Whatever the other replica stored is as fresh as it gets.
                    if let Some(a) = self.stored(material, &|_: &Answer| true).await {
                        return (a, Origin::Shared);
                    }
                }
                tracing::debug!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "no answer from the replica holding the fetch lock; fetching here"
                );
                (fetch.await, Origin::Fetched(None))
            }
        }
    }

    async fn stored(&self, material: &[u8], fresh: &impl Fn(&Answer) -> bool) -> Option<Answer> {
        let bytes = self.cluster.get_answer(material).await?;
        decode_answer(&bytes).filter(|a| fresh(a))
    }

    /// Stores `answer` for the other replicas for `ttl`.
    pub async fn store(&self, material: &[u8], answer: &Answer, ttl: Duration) {
        self.cluster
            .put_answer(material, &encode_answer(answer), ttl)
            .await;
    }

    /// Announces the answer to the replicas waiting for it.
    pub async fn release(&self, guard: LockGuard) {
        guard.release(&self.cluster).await;
    }

    /// Drops every stored answer (the admin `POST /cache/purge`).
    pub async fn purge(&self) {
        self.cluster.purge_answers().await;
    }
}
