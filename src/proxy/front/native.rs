//! vcproxy's own API, under `/vcproxy/v1/` (never forwarded upstream):
//!
//! * `GET /vcproxy/v1/vcenters`: the configured vCenters' names;
//! * `GET /vcproxy/v1/tasks?<the /rest filter parameters>[&vcenter=NAME…]`: the
//!   merged tasks with each task's vCenter named and each vCenter's outcome
//!   reported on its own ([`crate::protocol::native`]); cached and coalesced like
//!   List Tasks, under a key of its own;
//! * `GET /vcproxy/v1/tasks/watch?…`: the same as Server-Sent Events: a snapshot,
//!   then changes ([`crate::proxy::watch`]).
//!
//! Authenticated with the proxy's sessions: the `vmware-api-session-id` header, or
//! the web view's `vcproxy_ui` cookie (an `EventSource` cannot send headers; the
//! cookie is `SameSite=Strict`, and these routes change nothing). Errors are in
//! the `/api` shape. A user sees exactly what the same user's List Tasks shows:
//! the same vCenter sessions ask.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tasks::{cached, Fetching};
use super::{client_session, Reply};
use crate::protocol::filter::Resolved;
use crate::protocol::json::write_json_str;
use crate::protocol::{Family, VapiError, SESSION_HEADER};
use crate::proxy::answer::{Answer, Body};
use crate::proxy::cache::CacheKey;
use crate::proxy::sessions::ClientSession;
use crate::proxy::state::{Generation, Proxy};
use crate::upstream::Backends;

/// The path prefix.
pub const PREFIX: &str = "/vcproxy/v1/";
/// The web view's session cookie.
pub const COOKIE: &str = "vcproxy_ui";

const API: Family = Family::Api;

pub(super) async fn serve(
    proxy: &Arc<Proxy>,
    generation: &Generation,
    parts: &Parts,
) -> (&'static str, Response<Body>) {
    let path = parts.uri.path();
    let route = match path {
        "/vcproxy/v1/vcenters" => "native_vcenters",
        "/vcproxy/v1/tasks" => "native_tasks",
        "/vcproxy/v1/tasks/watch" => "native_watch",
        _ => {
            let e = VapiError::not_found(format!("vcproxy's API has no {path}."));
            return ("not_found", Answer::error(&e, API).response(None));
        }
    };
    if parts.method != Method::GET {
        let e = VapiError::new(
            crate::protocol::ErrorKind::OperationNotFound,
            "vcproxy.method_not_allowed",
            format!("{path} answers GET only."),
        );
        return (route, Answer::error(&e, API).response(None));
    }
    let Some(session) = client_session(proxy, session_id(&parts.headers)).await else {
        let r = Reply::error(API, &VapiError::unauthenticated());
        return (route, r.response(proxy, &parts.headers));
    };
    tracing::Span::current().record("principal", &*session.user);
    let response = match route {
        "native_vcenters" => vcenters(&generation.backends),
        _ => match Question::read(generation, parts.uri.query()) {
            Err(e) => Reply::error(API, &e).response(proxy, &parts.headers),
            Ok(q) if route == "native_tasks" => {
                let how = Fetching::new(generation, &parts.headers);
                tasks(generation, &how, &session, &q)
                    .await
                    .response(proxy, &parts.headers)
            }
            Ok(q) => watch(proxy, &session, q, &parts.headers),
        },
    };
    (route, response)
}

/// The session id: the header, else the web view's cookie.
pub(super) fn session_id(headers: &HeaderMap) -> Option<&str> {
    if let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(id);
    }
    cookie(headers, COOKIE)
}

/// The value of cookie `name`.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn vcenters(backends: &Backends) -> Response<Body> {
    let mut out = b"{\"vcenters\":".to_vec();
    crate::protocol::json::write_list(&mut out, backends.iter(), |out, b| {
        write_json_str(out, b.name())
    });
    out.push(b'}');
    Answer::json(StatusCode::OK, Bytes::from(out)).response(None)
}

/// A native question: the `/rest` filter, resolved, and the vCenters asked.
struct Question {
    resolved: Arc<Resolved>,
    /// The `vcenter` parameters; empty: every vCenter.
    names: Vec<String>,
}

impl Question {
    fn read(generation: &Generation, query: Option<&str>) -> Result<Question, VapiError> {
        let mut names = Vec::new();
        let mut filter = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("vcenter", name)) => {
                    if generation.backends.iter().all(|b| b.name() != name) {
                        return Err(VapiError::invalid_argument(format!(
                            "vcenter: there is no vCenter named {}.",
                            crate::protocol::filter::quote(name)
                        )));
                    }
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
                _ => filter.push(pair),
            }
        }
        let filter = filter.join("&");
        let query = (!filter.is_empty()).then_some(filter.as_str());
        let resolved = generation.requests.resolve(Family::Rest, query, b"")?;
        Ok(Question { resolved, names })
    }

    /// The configured order's indices of the named vCenters in `backends` (names
    /// a reload removed are left out); `None` for every vCenter.
    fn indices(&self, backends: &Backends) -> Option<Vec<usize>> {
        if self.names.is_empty() {
            return None;
        }
        Some(
            (0..backends.len())
                .filter(|&i| self.names.iter().any(|n| n == backends[i].name()))
                .collect(),
        )
    }

    /// The cache key: native answers apart from List Tasks', by vCenters asked.
    fn key(&self, user: &Arc<str>, only: Option<&[usize]>) -> CacheKey {
        let mut request = b"native\0".to_vec();
        for i in only.unwrap_or_default() {
            request.extend_from_slice(&(*i as u32).to_be_bytes());
        }
        request.push(0);
        request.extend_from_slice(&self.resolved.key);
        CacheKey {
            principal: user.clone(),
            request: request.into(),
        }
    }
}

async fn tasks(
    generation: &Generation,
    how: &Fetching<'_>,
    session: &ClientSession,
    q: &Question,
) -> Reply {
    let only = q.indices(&generation.backends);
    let key = q.key(&session.user, only.as_deref());
    let (fanout, principal, resolved) = (
        generation.fanout.clone(),
        session.principal.clone(),
        q.resolved.clone(),
    );
    let trace = how.trace;
    let fetch = move || async move {
        fanout
            .each(principal, &resolved, trace, only.as_deref())
            .await
    };
    cached(how, API, key, fetch).await
}

/// The watch stream: this user's hub for the question, a snapshot (or the
/// events missed since `Last-Event-ID`), then changes.
fn watch(
    proxy: &Arc<Proxy>,
    session: &ClientSession,
    q: Question,
    headers: &HeaderMap,
) -> Response<Body> {
    let q = Arc::new(q);
    let mut hub_key = session.user.as_bytes().to_vec();
    hub_key.push(0);
    hub_key.extend_from_slice(&q.key(&session.user, None).request);
    for n in &q.names {
        hub_key.push(0);
        hub_key.extend_from_slice(n.as_bytes());
    }
    let (weak, user, principal) = (
        Arc::downgrade(proxy),
        session.user.clone(),
        session.principal.clone(),
    );
    let refresh = move || {
        let (weak, user, principal, q) = (weak.clone(), user.clone(), principal.clone(), q.clone());
        async move {
            let failed = |e: VapiError| (Arc::new(Answer::error(&e, API)), Duration::from_secs(1));
            let Some(proxy) = weak.upgrade() else {
                return failed(VapiError::service_unavailable("vcproxy is stopping."));
            };
            let generation = proxy.current.load_full();
            let only = q.indices(&generation.backends);
            let key = q.key(&user, only.as_deref());
            let (fanout, resolved) = (generation.fanout.clone(), q.resolved.clone());
            let fetch = move || async move {
                fanout
                    .each(principal, &resolved, None, only.as_deref())
                    .await
            };
            match generation.cache.get_or_fetch(key, false, fetch).await {
                Ok((answer, _)) => {
                    let fresh = generation.cache.fresh_for(&answer, Instant::now());
                    (answer, fresh)
                }
                Err(e) => failed(VapiError::service_unavailable(e.to_string())),
            }
        }
    };
    let hub = proxy.watches.hub(hub_key, refresh);
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let frames = hub.watch(last, proxy.watches.closing());
    let mut r = Response::new(Body::stream(frames));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}
