//! Request routing and handling: the vCenter endpoints of the two REST families, the
//! helpers JSON-RPC (`super::jsonrpc`) shares with them, and the `/_sim/` control API.
//! Which of the two answers a request is decided in `super::server`.
//!
//! Requests are told apart with [`Family::of_request`]: `POST /api` with no query is
//! a JSON-RPC call; anything else under `/rest` or `/api` is a REST-family request.
//! Every vCenter request is counted, then faults are applied ([`faulted`], shared by
//! all three protocols), then it is answered in its protocol's shape. Routing
//! decisions, chosen to match the vAPI REST dispatcher, which routes on method and
//! path together:
//!
//! * an unknown path, or a known path with a method it does not serve, is an
//!   unknown operation: 404 `not_found` in the family's shape (not 405);
//! * `POST /api/cis/tasks` without `action=list` is likewise 404;
//! * the session is checked before the input, so a bad session is 401 even when
//!   the filter is also wrong;
//! * Get Task takes the get spec (`exclude_result`, `return_all`) as query
//!   parameters (`spec.`-prefixed in `/rest`) or, in `/rest`, as a JSON body
//!   `{"spec":{..}}`, as the SDK sends it;
//! * request bodies over the limit are 400 `invalid_argument` (read up to the limit
//!   and no further); paths outside `/rest`, `/api` and `/_sim` get a plain-text 404.
//!
//! Control requests under `/_sim/` are neither counted nor faulted.

use super::data::{Clock, TaskSet};
use super::faults::{Action, FaultState, Faults, SimBody, HTTP500_BODY};
use super::model::{iso8601, FlatValue, Millis, Shape, Writer};
use super::query;
use super::sessions::{self, Session, Sessions, UserSpec};
use super::stats::{Counters, Endpoint, FaultKind, Stats};
use crate::protocol::error::{ErrorKind, VapiError};
use crate::protocol::filter::{self, Limits};
use crate::protocol::get_task::GetTask;
use crate::protocol::{api, rest, Family, JSON, SESSION_HEADER};
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything a simulator holds.
pub(crate) struct SimState {
    pub(crate) tasks: TaskSet,
    pub(crate) clock: Clock,
    pub(crate) users: Vec<UserSpec>,
    /// Users whose log-ins are refused from now on, as if their password had been
    /// changed (their open sessions stay valid, as on vCenter).
    pub(crate) refused: std::sync::Mutex<std::collections::HashSet<String>>,
    pub(crate) sessions: Sessions,
    pub(crate) faults: FaultState,
    pub(crate) counters: Counters,
    pub(crate) limits: Limits,
    /// Rendered List Tasks answers, per user and request, for the simulated instant
    /// they were rendered at. While simulated time stands still (`--static`) a
    /// repeated question costs a lookup: a real vCenter's CPU is not the proxy's,
    /// and benchmarks running simulators in the proxy's process must not charge the
    /// simulators' JSON rendering to the proxy. The request key starts with the
    /// family ([`filter::ListRequest::key`]), so each protocol's answers are kept
    /// apart; a JSON-RPC entry is the call's `output` value, which each answer wraps
    /// with its own request id.
    pub(crate) answers: AnswerMemo,
    /// Becomes `true` at shutdown; hanging requests wait for it.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// (user, canonical request key) to (simulated instant, rendered body), weighed in
/// bytes.
pub(crate) type AnswerMemo = moka::sync::Cache<(String, Vec<u8>), (Millis, Bytes)>;

impl SimState {
    /// The index of the user these credentials log in, unless refused.
    pub(crate) fn authenticate(&self, name: &str, password: &str) -> Option<usize> {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name);
        if refused {
            return None;
        }
        sessions::authenticate(&self.users, name, password)
    }
}

pub(crate) fn answer_memo() -> AnswerMemo {
    moka::sync::Cache::builder()
        .max_capacity(64 * 1024 * 1024)
        .weigher(
            |(user, key): &(String, Vec<u8>), (_, body): &(Millis, Bytes)| {
                u32::try_from(user.len() + key.len() + body.len()).unwrap_or(u32::MAX)
            },
        )
        .build()
}

impl SimState {
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.counters.snapshot();
        s.sessions_opened = self.sessions.opened();
        s.sessions_open = self.sessions.open_now();
        s
    }

    /// Every task at the current simulated time, as an `/api` map.
    pub(crate) fn tasks_api_json(&self) -> Bytes {
        let now = self.clock.now();
        let mut w = Writer::new(Shape::Api);
        w.task_map(
            self.tasks
                .tasks
                .iter()
                .map(|t| (t.id.as_str(), t.info_at(now))),
            false,
        );
        w.finish()
    }
}

/// The service's error: the request was abandoned (a hanging request at shutdown),
/// which makes hyper drop the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("request abandoned at shutdown")]
pub(crate) struct Hangup;

/// What a vCenter path and method resolve to.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Login,
    WhoAmI,
    Logout,
    List,
    /// Get one task; the raw (still percent-encoded) id.
    Get(String),
    NotFound,
}

impl Route {
    fn endpoint(&self) -> Endpoint {
        match self {
            Route::Login => Endpoint::SessionCreate,
            Route::WhoAmI => Endpoint::SessionGet,
            Route::Logout => Endpoint::SessionDelete,
            Route::List => Endpoint::TasksList,
            Route::Get(_) => Endpoint::TasksGet,
            Route::NotFound => Endpoint::Other,
        }
    }
}

fn route(shape: Shape, method: &Method, path: &str, query: Option<&str>) -> Route {
    // Get Task: the tasks path, a slash, and one segment.
    let task_id = |tasks: &str| {
        path.strip_prefix(tasks)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(str::to_owned)
    };
    match shape {
        Shape::Rest => match (method, path) {
            (&Method::POST, rest::SESSION_PATH) => match query_param(query, "~action").as_deref() {
                None => Route::Login,
                Some("get") => Route::WhoAmI,
                Some(_) => Route::NotFound,
            },
            (&Method::DELETE, rest::SESSION_PATH) => Route::Logout,
            (&Method::GET, rest::TASKS_PATH) => Route::List,
            (&Method::GET, _) => task_id(rest::TASKS_PATH).map_or(Route::NotFound, Route::Get),
            _ => Route::NotFound,
        },
        Shape::Api => match (method, path) {
            (&Method::POST, api::SESSION_PATH) => Route::Login,
            (&Method::GET, api::SESSION_PATH) => Route::WhoAmI,
            (&Method::DELETE, api::SESSION_PATH) => Route::Logout,
            (&Method::POST, api::TASKS_PATH) => {
                if query_param(query, "action").as_deref() == Some("list") {
                    Route::List
                } else {
                    Route::NotFound
                }
            }
            (&Method::GET, _) => task_id(api::TASKS_PATH).map_or(Route::NotFound, Route::Get),
            _ => Route::NotFound,
        },
    }
}

/// A REST-family request: count, fault, answer.
pub(super) async fn vcenter(
    state: Arc<SimState>,
    shape: Shape,
    path: String,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Hangup> {
    let family = shape.family();
    let route = route(shape, req.method(), &path, req.uri().query());
    faulted(
        &state,
        family,
        route.endpoint(),
        |e| vapi_error(family, e),
        answer(&state, shape, route, req),
    )
    .await
}

/// Counts a request to `endpoint` in `family`, applies the faults in force, and
/// unless one of them answers, answers with `answer` (which only runs then).
/// `unavailable` renders the `service_unavailable` error in the protocol's shape.
pub(super) async fn faulted(
    state: &SimState,
    family: Family,
    endpoint: Endpoint,
    unavailable: impl FnOnce(&VapiError) -> Response<SimBody>,
    answer: impl Future<Output = Response<SimBody>>,
) -> Result<Response<SimBody>, Hangup> {
    let _in_flight = state.counters.begin(endpoint, family);
    let (delay, action) = state.faults.plan(endpoint);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let truncate = match action {
        Action::Hang => {
            state.counters.fault(FaultKind::Hang);
            tracing::debug!(%endpoint, %family, "fault: hanging");
            let mut shutdown = state.shutdown.clone();
            // Returns at shutdown (or if the simulator is gone).
            let _ = shutdown.wait_for(|stop| *stop).await;
            return Err(Hangup);
        }
        Action::Unavailable => {
            state.counters.fault(FaultKind::Unavailable);
            let e = VapiError::new(
                ErrorKind::ServiceUnavailable,
                "com.vmware.vapi.endpoint.serviceUnavailable",
                "The service is temporarily unavailable. Try again later.",
            );
            return Ok(unavailable(&e));
        }
        Action::Http500 => {
            state.counters.fault(FaultKind::Http500);
            let mut resp = Response::new(SimBody::full(HTTP500_BODY));
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return Ok(resp);
        }
        Action::Proceed { truncate } => truncate,
    };
    let resp = answer.await;
    let status = resp.status();
    tracing::debug!(%endpoint, %family, status = status.as_u16(), truncate, "answered");
    if truncate {
        state.counters.fault(FaultKind::Truncate);
        let (mut parts, body) = resp.into_parts();
        let body = match body {
            SimBody::Full(b) => b.unwrap_or_default(),
            other => return Ok(Response::from_parts(parts, other)),
        };
        // Advertise the whole length, send half.
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        return Ok(Response::from_parts(parts, SimBody::full(body).truncate()));
    }
    Ok(resp)
}

async fn answer(
    state: &SimState,
    shape: Shape,
    route: Route,
    req: Request<Incoming>,
) -> Response<SimBody> {
    let family = shape.family();
    if route == Route::NotFound {
        let e = VapiError::new(
            ErrorKind::NotFound,
            "com.vmware.vapi.rest.httpNotFound",
            "Not found.",
        );
        return vapi_error(family, &e);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, &parts.headers, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return vapi_error(family, &e),
    };
    let query = parts.uri.query();
    let result = match route {
        Route::Login => login(state, shape, &parts.headers),
        Route::WhoAmI => session(state, &parts.headers).map(|(_, s)| who_am_i(state, shape, &s)),
        Route::Logout => logout(state, family, &parts.headers),
        Route::List => session(state, &parts.headers)
            .and_then(|(user, _)| list(state, shape, user, query, &body)),
        Route::Get(raw) => session(state, &parts.headers)
            .and_then(|(user, _)| get(state, shape, user, &raw, query, &body)),
        Route::NotFound => Err(VapiError::not_found("Not found.")),
    };
    result.unwrap_or_else(|e| vapi_error(family, &e))
}

/// Reads a request body of at most `limit` bytes.
pub(super) async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, VapiError> {
    let too_big = || {
        VapiError::invalid_argument(format!(
            "The request body is larger than the limit of {limit} bytes."
        ))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Err(_) => Err(VapiError::invalid_argument(
            "The request body could not be read.",
        )),
    }
}

/// The session named by the request's `vmware-api-session-id`, and its user.
fn session<'s>(
    state: &'s SimState,
    headers: &http::HeaderMap,
) -> Result<(&'s UserSpec, Session), VapiError> {
    let id = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
    session_by_id(state, id)
}

/// Session `id` (refreshed) and its user; `unauthenticated` when there is no id,
/// or it names no open session.
pub(super) fn session_by_id<'s>(
    state: &'s SimState,
    id: Option<&str>,
) -> Result<(&'s UserSpec, Session), VapiError> {
    let id = id.ok_or_else(VapiError::unauthenticated)?;
    let s = state
        .sessions
        .touch(id.trim())
        .ok_or_else(VapiError::unauthenticated)?;
    let user = state
        .users
        .get(s.user)
        .ok_or_else(VapiError::unauthenticated)?;
    Ok((user, s))
}

fn login(
    state: &SimState,
    shape: Shape,
    headers: &http::HeaderMap,
) -> Result<Response<SimBody>, VapiError> {
    let family = shape.family();
    let (name, password) =
        crate::auth::basic_auth::decode(headers.get(http::header::AUTHORIZATION))
            .ok_or_else(VapiError::unauthenticated)?;
    let user = state.authenticate(&name, &password).ok_or_else(|| {
        tracing::info!(user = ?name, %family, "log-in refused");
        VapiError::unauthenticated()
    })?;
    let id = state.sessions.create(user).ok_or_else(|| {
        VapiError::service_unavailable("No randomness available to create a session.")
    })?;
    tracing::info!(user = %name, %family, "session created");
    let mut w = Writer::new(shape);
    w.wrapped(|w| w.string(&id));
    Ok(json(family.login_status(), w.finish()))
}

fn who_am_i(state: &SimState, shape: Shape, s: &Session) -> Response<SimBody> {
    let name = state.users.get(s.user).map_or("", |u| u.name.as_str());
    let mut w = Writer::new(shape);
    w.wrapped(|w| {
        w.flat_struct(&[
            ("created_time", FlatValue::Time(s.created_ms)),
            ("last_accessed_time", FlatValue::Time(s.last_accessed_ms)),
            ("user", FlatValue::Str(name)),
        ])
    });
    json(StatusCode::OK, w.finish())
}

fn logout(
    state: &SimState,
    family: Family,
    headers: &http::HeaderMap,
) -> Result<Response<SimBody>, VapiError> {
    let id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(VapiError::unauthenticated)?;
    if !state.sessions.delete(id.trim()) {
        return Err(VapiError::unauthenticated());
    }
    tracing::info!(%family, "session deleted");
    let mut resp = Response::new(SimBody::empty());
    *resp.status_mut() = family.logout_status();
    Ok(resp)
}

fn list(
    state: &SimState,
    shape: Shape,
    user: &UserSpec,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<SimBody>, VapiError> {
    let request = filter::ListRequest::parse(shape.family(), query, body, &state.limits)?;
    let q = &request.query;
    let now = state.clock.now();
    let memo_key = (user.name.clone(), request.key());
    if let Some((at, body)) = state.answers.get(&memo_key) {
        if at == now {
            return Ok(json(StatusCode::OK, body));
        }
    }
    let found = query::list(&state.tasks, now, user, q)?;
    let mut w = Writer::new(shape);
    w.task_map(
        found.iter().map(|t| (t.id.as_str(), t.info_at(now))),
        q.result.exclude_result == Some(true),
    );
    let body = w.finish();
    state.answers.insert(memo_key, (now, body.clone()));
    Ok(json(StatusCode::OK, body))
}

/// Get Task: `raw_id` is the path segment; the get spec comes from the query or,
/// in `/rest`, the body.
fn get(
    state: &SimState,
    shape: Shape,
    user: &UserSpec,
    raw_id: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<SimBody>, VapiError> {
    // An id that does not decode names no task; checked before the options.
    let id = percent_decode(raw_id).ok_or_else(|| task_not_found(raw_id))?;
    let q = match shape {
        Shape::Rest => GetTask::parse_rest(raw_id, query, body, &state.limits)?,
        Shape::Api => GetTask::parse_api(raw_id, query)?,
    };
    let task = visible_task(state, user, &id)?;
    let mut w = Writer::new(shape);
    w.wrapped(|w| {
        w.info(
            &task.info_at(state.clock.now()),
            q.spec.exclude_result == Some(true),
        )
    });
    Ok(json(StatusCode::OK, w.finish()))
}

/// Task `id`, if it exists and `user` may see it; otherwise `not_found`, in every
/// protocol.
pub(super) fn visible_task<'s>(
    state: &'s SimState,
    user: &UserSpec,
    id: &str,
) -> Result<&'s super::data::TaskPlan, VapiError> {
    state
        .tasks
        .get(id)
        .filter(|t| user.may_see(t.service))
        .ok_or_else(|| task_not_found(id))
}

fn task_not_found(id: &str) -> VapiError {
    VapiError::new(
        ErrorKind::NotFound,
        "com.vmware.cis.task.not_found",
        format!("The task {} was not found.", shorten(id)),
    )
}

/// Client text quoted in a message, kept short.
pub(super) fn shorten(s: &str) -> &str {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Decodes `%XX` escapes (and `+` as space when `plus`); `None` if malformed or not
/// UTF-8.
fn decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let h = hex(*b.get(i + 1)?)?;
                let l = hex(*b.get(i + 2)?)?;
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A path segment, percent-decoded.
fn percent_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// The first value of query parameter `name`, decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k, true)? == name)
            .then(|| decode(v, true))
            .flatten()
    })
}

pub(super) fn json(status: StatusCode, body: Bytes) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}

fn vapi_error(family: Family, e: &VapiError) -> Response<SimBody> {
    json(e.status(), e.render(family))
}

pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn control_json(status: StatusCode, value: &impl serde::Serialize) -> Response<SimBody> {
    match serde_json::to_vec(value) {
        Ok(v) => json(status, Bytes::from(v)),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "serialization failed\n"),
    }
}

fn control_error(status: StatusCode, message: String) -> Response<SimBody> {
    control_json(status, &serde_json::json!({ "error": message }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(with = "humantime_serde")]
    by: Duration,
}

/// The control API under `/_sim/`.
pub(super) async fn control(
    state: &SimState,
    path: &str,
    req: Request<Incoming>,
) -> Response<SimBody> {
    let method = req.method().clone();
    let allowed: &'static str = match path {
        "/_sim/faults" => "GET, PUT",
        "/_sim/expire-sessions" | "/_sim/advance" => "POST",
        "/_sim/tasks" | "/_sim/stats" => "GET",
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body, &parts.headers, state.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return control_error(StatusCode::BAD_REQUEST, e.message),
    };
    match (&method, path) {
        (&Method::GET, "/_sim/faults") => control_json(StatusCode::OK, &state.faults.get()),
        (&Method::PUT, "/_sim/faults") => {
            let faults: Faults = match serde_json::from_slice(&body) {
                Ok(f) => f,
                Err(e) => return control_error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            match state.faults.set(faults) {
                Ok(()) => {
                    tracing::info!(faults = ?state.faults.get(), "faults changed");
                    control_json(StatusCode::OK, &state.faults.get())
                }
                Err(e) => control_error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        (&Method::POST, "/_sim/expire-sessions") => {
            let n = state.sessions.expire_all();
            tracing::info!(expired = n, "sessions expired");
            control_json(StatusCode::OK, &serde_json::json!({ "expired": n }))
        }
        (&Method::POST, "/_sim/advance") => {
            let a: Advance = match serde_json::from_slice(&body) {
                Ok(a) => a,
                Err(e) => return control_error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            state.clock.advance(a.by);
            control_json(
                StatusCode::OK,
                &serde_json::json!({ "now": iso8601(state.clock.now()) }),
            )
        }
        (&Method::GET, "/_sim/tasks") => json(StatusCode::OK, state.tasks_api_json()),
        (&Method::GET, "/_sim/stats") => control_json(StatusCode::OK, &state.stats()),
        _ => {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allowed));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |f, m: Method, p: &str, q: Option<&str>| route(f, &m, p, q);
        use Shape::{Api, Rest};
        assert_eq!(
            r(Rest, Method::POST, "/rest/com/vmware/cis/session", None),
            Route::Login
        );
        assert_eq!(
            r(
                Rest,
                Method::POST,
                "/rest/com/vmware/cis/session",
                Some("~action=get")
            ),
            Route::WhoAmI
        );
        assert_eq!(
            r(
                Rest,
                Method::POST,
                "/rest/com/vmware/cis/session",
                Some("%7Eaction=get")
            ),
            Route::WhoAmI
        );
        assert_eq!(
            r(
                Rest,
                Method::POST,
                "/rest/com/vmware/cis/session",
                Some("~action=x")
            ),
            Route::NotFound
        );
        assert_eq!(r(Rest, Method::GET, "/rest/cis/tasks", None), Route::List);
        assert_eq!(
            r(Rest, Method::POST, "/rest/cis/tasks", None),
            Route::NotFound
        );
        assert_eq!(
            r(Rest, Method::GET, "/rest/cis/tasks/a%3Ab", None),
            Route::Get("a%3Ab".into())
        );
        assert_eq!(
            r(Rest, Method::GET, "/rest/cis/tasks/", None),
            Route::NotFound
        );
        assert_eq!(
            r(Rest, Method::GET, "/rest/cis/tasks/a/b", None),
            Route::NotFound
        );
        assert_eq!(r(Api, Method::POST, "/api/session", None), Route::Login);
        assert_eq!(r(Api, Method::GET, "/api/session", None), Route::WhoAmI);
        assert_eq!(r(Api, Method::DELETE, "/api/session", None), Route::Logout);
        assert_eq!(
            r(Api, Method::POST, "/api/cis/tasks", Some("action=list")),
            Route::List
        );
        assert_eq!(
            r(Api, Method::POST, "/api/cis/tasks", None),
            Route::NotFound
        );
        assert_eq!(
            r(Api, Method::GET, "/api/cis/tasks", Some("action=list")),
            Route::NotFound
        );
        assert_eq!(r(Api, Method::PUT, "/api/session", None), Route::NotFound);
        assert_eq!(
            r(Api, Method::GET, "/api/cis/tasks/x", None),
            Route::Get("x".into())
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%3Ab").as_deref(), Some("a:b"));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(query_param(Some("a=1&b=x+y"), "b").as_deref(), Some("x y"));
        assert_eq!(query_param(Some("a"), "a").as_deref(), Some(""));
        assert_eq!(query_param(None, "a"), None);
        assert_eq!(shorten("é".repeat(100).as_str()).len(), 120);
    }
}
