//! List Tasks and Get Task, in one direction: session → resolve the question (the
//! protocol layer's parse: cache key and upstream request) → cache key (user,
//! question) → [`crate::proxy::cache::ResponseCache`] → on a miss, one fetch shared
//! by every concurrent asker ([`crate::proxy::fanout::Fanout`] for lists,
//! [`crate::proxy::lookup::Lookup`] for one task) → answer. A hit sends
//! pre-rendered bytes.

use crate::net::untrusted::Untrusted;
use std::future::Future;
use tracing::warn;

use super::{client_session, wants_fresh, Reply};
use crate::net::trace_context::{TraceContext, TRACEPARENT};
use crate::protocol::get_task::GetTask;
use crate::protocol::{Family, VapiError};
use crate::proxy::answer::Answer;
use crate::proxy::cache::CacheKey;
use crate::proxy::state::{Generation, Proxy};
use http::HeaderMap;

/// How a request wants its answer fetched: from which generation of the proxy,
/// whether fresh (`Cache-Control: no-cache`), and as part of which client trace.
pub(super) struct Fetching<'a> {
    pub generation: &'a Generation,
    pub force: bool,
    pub trace: Option<TraceContext>,
}

impl<'a> Fetching<'a> {
    pub fn new(generation: &'a Generation, headers: &HeaderMap) -> Fetching<'a> {
        Fetching {
            generation,
            force: wants_fresh(headers),
            trace: headers.get(TRACEPARENT).and_then(TraceContext::parse),
        }
    }

    /// `reply`, noting its user when the access log will want it (only then: it
    /// costs the hit path an allocation).
    fn tagged(&self, reply: Reply, user: &std::sync::Arc<str>) -> Reply {
        if self.generation.access_log {
            reply.by(user)
        } else {
            reply
        }
    }
}

/// List Tasks: `query` and `body` as the protocol carries the filter (JSON-RPC: no
/// query, `body` is the call's input).
pub(super) async fn list(
    proxy: &Proxy,
    how: &Fetching<'_>,
    family: Family,
    session: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    let Some(session) = client_session(proxy, session).await else {
        return Reply::error(family, &VapiError::unauthenticated());
    };
    tracing::Span::current().record("principal", &*session.user);
    let reply = |r: Reply| how.tagged(r, &session.user);
    // One parse per distinct poll: a poll seen before is resolved from a memo.
    let resolved = match how.generation.requests.resolve(family, query, body) {
        Ok(r) => r,
        Err(e) => return reply(Reply::error(family, &e)),
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: resolved.key.clone(),
    };
    let fanout = how.generation.fanout.clone();
    let principal = session.principal.clone();
    let trace = how.trace;
    let fetch = move || async move { fanout.list(principal, &resolved, trace).await };
    reply(cached(how, family, key, fetch).await)
}

/// Get Task: the question as parsed (or why it could not be).
pub(super) async fn get(
    proxy: &Proxy,
    how: &Fetching<'_>,
    family: Family,
    session: Option<&str>,
    ask: Result<GetTask, VapiError>,
) -> Reply {
    let Some(session) = client_session(proxy, session).await else {
        return Reply::error(family, &VapiError::unauthenticated());
    };
    tracing::Span::current().record("principal", &*session.user);
    let reply = |r: Reply| how.tagged(r, &session.user);
    let resolved = match ask {
        Ok(ask) => std::sync::Arc::new(ask.resolve()),
        Err(e) => return reply(Reply::error(family, &e)),
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: resolved.key.clone(),
    };
    let lookup = how.generation.lookup.clone();
    let principal = session.principal.clone();
    let trace = how.trace;
    let fetch = move || async move { lookup.get(principal, &resolved, trace).await };
    reply(cached(how, family, key, fetch).await)
}

/// The answer for `key` from the cache, fetched (once, for every concurrent asker)
/// when missing or stale.
pub(super) async fn cached<F, Fut>(
    how: &Fetching<'_>,
    family: Family,
    key: CacheKey,
    fetch: F,
) -> Reply
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let cache = &how.generation.cache;
    match cache.get_or_fetch(key, how.force, fetch).await {
        Ok((entry, outcome)) => {
            tracing::Span::current().record("cache", outcome.as_str());
            Reply {
                fresh_for: cache.fresh_for(&entry, std::time::Instant::now()),
                answer: entry,
                outcome: Some(outcome),
                user: None,
            }
        }
        Err(e) => {
            warn!(error = %Untrusted(&e), "fetch abandoned");
            Reply::error(family, &VapiError::service_unavailable(e.to_string()))
        }
    }
}
