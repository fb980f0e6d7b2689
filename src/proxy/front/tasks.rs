//! List Tasks and Get Task, in one direction: session → resolve the question (the
//! protocol layer's parse: cache key and upstream request) → cache key (user,
//! question) → [`crate::proxy::cache::ResponseCache`] → on a miss, one fetch shared
//! by every concurrent asker ([`crate::proxy::fanout::Fanout`] for lists,
//! [`crate::proxy::lookup::Lookup`] for one task) → answer. A hit sends
//! pre-rendered bytes.

use crate::net::untrusted::Untrusted;
use std::future::Future;
use tracing::warn;

use super::{client_session, Reply};
use crate::protocol::get_task::GetTask;
use crate::protocol::{Family, VapiError};
use crate::proxy::answer::Answer;
use crate::proxy::cache::CacheKey;
use crate::proxy::state::Proxy;

/// List Tasks: `query` and `body` as the protocol carries the filter (JSON-RPC: no
/// query, `body` is the call's input).
pub(super) async fn list(
    proxy: &Proxy,
    family: Family,
    session: Option<&str>,
    query: Option<&str>,
    body: &[u8],
    force: bool,
) -> Reply {
    let Some(session) = client_session(proxy, session).await else {
        return Reply::error(family, &VapiError::unauthenticated());
    };
    tracing::Span::current().record("principal", &*session.user);
    // One parse per distinct poll: a poll seen before is resolved from a memo.
    let resolved = match proxy.requests.resolve(family, query, body) {
        Ok(r) => r,
        Err(e) => return Reply::error(family, &e),
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: resolved.key.clone(),
    };
    let fanout = proxy.fanout.clone();
    let principal = session.principal.clone();
    let fetch = move || async move { fanout.list(principal, &resolved).await };
    cached(proxy, family, key, force, fetch).await
}

/// Get Task: the question as parsed (or why it could not be).
pub(super) async fn get(
    proxy: &Proxy,
    family: Family,
    session: Option<&str>,
    ask: Result<GetTask, VapiError>,
    force: bool,
) -> Reply {
    let Some(session) = client_session(proxy, session).await else {
        return Reply::error(family, &VapiError::unauthenticated());
    };
    tracing::Span::current().record("principal", &*session.user);
    let resolved = match ask {
        Ok(ask) => std::sync::Arc::new(ask.resolve()),
        Err(e) => return Reply::error(family, &e),
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: resolved.key.clone(),
    };
    let lookup = proxy.lookup.clone();
    let principal = session.principal.clone();
    let fetch = move || async move { lookup.get(principal, &resolved).await };
    cached(proxy, family, key, force, fetch).await
}

/// The answer for `key` from the cache, fetched (once, for every concurrent asker)
/// when missing or stale.
async fn cached<F, Fut>(
    proxy: &Proxy,
    family: Family,
    key: CacheKey,
    force: bool,
    fetch: F,
) -> Reply
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    match proxy.cache.get_or_fetch(key, force, fetch).await {
        Ok((entry, outcome)) => {
            tracing::Span::current().record("cache", outcome.as_str());
            Reply {
                fresh_for: proxy.cache.fresh_for(&entry, std::time::Instant::now()),
                answer: entry,
                outcome: Some(outcome),
            }
        }
        Err(e) => {
            warn!(error = %Untrusted(&e), "fetch abandoned");
            Reply::error(family, &VapiError::service_unavailable(e.to_string()))
        }
    }
}
