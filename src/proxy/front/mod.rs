//! The client-facing front end: one request in, one response out.
//!
//! Clients use vcproxy exactly as they use vCenter: the same paths, session header,
//! JSON, JSON-RPC calls and errors. The protocol layer says which protocol and
//! operation a request is; only those operations are served, anything else is
//! vAPI's `not_found` (JSON-RPC: `operation_not_found`) and nothing is sent
//! upstream, so vcproxy is never an open proxy.
//!
//! Every request's body is read (up to the body limit) before it is answered,
//! whatever the route: a pooled keep-alive connection (Go's, govmomi's chunked empty
//! log-in body) must stay usable after the answer. A body over the limit is refused
//! with `Connection: close`, since its unread rest is still on the connection.
//!
//! * [`session`]: log-in, who-am-I, log-out, in every protocol;
//! * [`tasks`]: List Tasks and Get Task: resolve → cache → fan-out → answer;
//! * [`jsonrpc`]: the JSON-RPC envelope: the call read, the answer wrapped around
//!   the same handlers' answers.
//!
//! Handlers return a [`Reply`] (an answer and how the cache produced it); the
//! protocol's envelope turns it into a response in one place each:
//! [`Answer::cached_response`] (and [`Answer::response`] for answers the cache did
//! not give) and [`Answer::rpc_response`].

mod access;
mod jsonrpc;
mod native;
mod session;
mod tasks;
mod ui;

use tasks::Fetching;

use crate::net::untrusted::Untrusted;
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE,
};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, debug_span, field, Instrument};

use super::answer::{Answer, Body, Outcome};
use super::sessions::{ClientSession, Credentials};
use super::state::{Generation, Proxy};
use crate::net::trace_context::{TraceContext, TRACEPARENT};
use crate::protocol::get_task::GetTask;
use crate::protocol::jsonrpc::envelope::{code, ProtocolError};
use crate::protocol::{Family, Operation, VapiError, SESSION_HEADER};

/// What a handler answers: the answer, and how the cache produced it (`None` for
/// answers that do not go through the cache).
pub(super) struct Reply {
    pub answer: Arc<Answer>,
    pub outcome: Option<Outcome>,
    /// For a cached answer, how long it stays fresh (`Cache-Control: max-age`).
    pub fresh_for: std::time::Duration,
    /// Whom the request was made as, for the access log.
    pub user: Option<Arc<str>>,
}

impl Reply {
    fn new(answer: Answer) -> Reply {
        Reply {
            answer: Arc::new(answer),
            outcome: None,
            fresh_for: std::time::Duration::ZERO,
            user: None,
        }
    }

    /// The reply, noting whom the request was made as.
    fn by(self, user: &Arc<str>) -> Reply {
        Reply {
            user: Some(user.clone()),
            ..self
        }
    }

    /// Puts the user in the response's extensions, for the access log.
    fn tag(&self, mut response: Response<Body>) -> Response<Body> {
        if let Some(user) = &self.user {
            response.extensions_mut().insert(access::User(user.clone()));
        }
        response
    }

    /// The response in a REST family: a cached answer as the request's
    /// `Accept-Encoding` and `If-None-Match` ask, anything else as it is.
    fn response(&self, proxy: &Proxy, request: &HeaderMap) -> Response<Body> {
        let r = match self.outcome {
            Some(outcome) => self
                .answer
                .cached_response(outcome, self.fresh_for, request),
            None => self.answer.response(None),
        };
        self.count(proxy, &r);
        self.tag(r)
    }

    /// Counts a cached answer by outcome, with the body bytes it sent (compressed
    /// when it went compressed).
    fn count(&self, proxy: &Proxy, response: &Response<Body>) {
        use hyper::body::Body as _;
        if let Some(outcome) = self.outcome {
            let bytes = response.body().size_hint().exact().unwrap_or(0);
            proxy.metrics.cache_outcome(outcome, bytes as usize);
        }
    }

    /// The proxy's own error, in `family`'s shape.
    fn error(family: Family, e: &VapiError) -> Reply {
        Reply::new(Answer::error(e, family))
    }
}

pub(super) async fn handle(
    proxy: &Arc<Proxy>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // The generation in force now serves this request to its end, even if a reload
    // replaces it meanwhile.
    let generation = proxy.current.load_full();
    // Read the clock only when a line that reports the time will be written.
    let started =
        (generation.access_log || tracing::enabled!(tracing::Level::DEBUG)).then(Instant::now);
    let (parts, body) = req.into_parts();
    let family = Family::of_request(&parts.method, parts.uri.path(), parts.uri.query());
    let id = proxy.next_request_id.fetch_add(1, Ordering::Relaxed);
    // A debug-level span: at the default `info` level it is disabled and costs the
    // hit path nothing (an enabled span formats every recorded field).
    let span = debug_span!(
        "request",
        id,
        route = field::Empty,
        family = field::Empty,
        principal = field::Empty,
        cache = field::Empty,
        status = field::Empty,
        trace_id = field::Empty,
    );
    if let Some(f) = family {
        span.record("family", f.as_str());
    }
    if !span.is_disabled() {
        let trace = parts.headers.get(TRACEPARENT).and_then(TraceContext::parse);
        if let Some(t) = trace {
            span.record("trace_id", t.trace_id());
        }
    }
    let (route, response) = async {
        let limit = generation.requests.limits().max_body_bytes;
        let body = match read_body(body, limit, generation.body_read_timeout).await {
            Ok(body) => body,
            Err(e) => return ("refused_body", refused_body(family, &e, parts.version)),
        };
        match family {
            Some(Family::JsonRpc) => jsonrpc::serve(proxy, &generation, &parts, &body).await,
            Some(f) => rest(proxy, &generation, f, &parts, &body).await,
            None if parts.uri.path().starts_with(native::PREFIX) => {
                native::serve(proxy, &generation, &parts).await
            }
            None if parts.uri.path() == "/ui" || parts.uri.path().starts_with("/ui/") => {
                ui::serve(proxy, &parts, &body).await
            }
            None => (
                "not_found",
                plain_not_found(&parts.method, parts.uri.path()),
            ),
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("route", route);
    span.record("status", status);
    proxy.metrics.request(route, status);
    if let Some(started) = started {
        span.in_scope(|| {
            debug!(%peer, elapsed_us = started.elapsed().as_micros() as u64, "answered");
        });
        if generation.access_log {
            access::record(peer, &parts, &response, route, started);
        }
    }
    response
}

/// A request in one of the REST families (`/rest`, `/api`).
async fn rest(
    proxy: &Proxy,
    generation: &Generation,
    family: Family,
    parts: &Parts,
    body: &Bytes,
) -> (&'static str, Response<Body>) {
    let (path, query) = (parts.uri.path(), parts.uri.query());
    let Some(operation) = family.operation(&parts.method, path, query) else {
        return ("not_found", not_found(family, &parts.method, path));
    };
    let session = session_id(&parts.headers);
    let reply = match operation {
        Operation::Login => {
            let credentials = Credentials::basic(parts.headers.get(AUTHORIZATION));
            session::login(proxy, family, credentials).await
        }
        Operation::WhoAmI => session::whoami(proxy, family, session).await,
        Operation::Logout => session::logout(proxy, family, session).await,
        Operation::ListTasks => {
            let how = Fetching::new(generation, &parts.headers);
            tasks::list(proxy, &how, family, session, query, body).await
        }
        Operation::GetTask => {
            let limits = generation.requests.limits();
            let ask = GetTask::parse(family, path, query, body, limits);
            let how = Fetching::new(generation, &parts.headers);
            tasks::get(proxy, &how, family, session, ask).await
        }
    };
    (operation.name(), reply.response(proxy, &parts.headers))
}

/// The session id a REST request carries.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER)?.to_str().ok()
}

async fn client_session(proxy: &Proxy, id: Option<&str>) -> Option<Arc<ClientSession>> {
    proxy.sessions.client(id?).await
}

/// `Cache-Control: no-cache`: the client wants an answer fetched now.
fn wants_fresh(headers: &HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        })
    })
}

fn not_found(family: Family, method: &Method, path: &str) -> Response<Body> {
    debug!(%method, path = %Untrusted(path), "no such route; nothing forwarded");
    let e = VapiError::not_found(format!(
        "vcproxy serves sessions, List Tasks and Get Task only; {method} {path} is not one of them."
    ));
    Answer::error(&e, family).response(None)
}

/// Outside `/rest` and `/api`: not the vSphere API at all.
fn plain_not_found(method: &Method, path: &str) -> Response<Body> {
    debug!(%method, path = %Untrusted(path), "no such route; nothing forwarded");
    let mut r = Response::new(Body::full(Bytes::from_static(b"not found\n")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Why a request body was not read whole.
enum BodyError {
    TooLarge(usize),
    /// Not complete within `[listen] body_read_timeout` (a client dripping it).
    TooSlow(std::time::Duration),
    Unreadable(String),
}

/// Reads the whole body, up to `limit` bytes, within `within`.
async fn read_body(
    body: Incoming,
    limit: usize,
    within: std::time::Duration,
) -> Result<Bytes, BodyError> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        // A GET without a body: nothing to wait for or buffer.
        return Ok(Bytes::new());
    }
    match tokio::time::timeout(within, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TooSlow(within)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
    }
}

/// The answer to a request whose body was not read whole: an error in the
/// request's protocol, and, on HTTP/1, `Connection: close` (the rest of the body is
/// still on the connection, so it cannot carry another request).
fn refused_body(family: Option<Family>, e: &BodyError, version: Version) -> Response<Body> {
    let message = match e {
        BodyError::TooLarge(limit) => {
            format!("The request body is over the limit of {limit} bytes.")
        }
        BodyError::TooSlow(within) => format!(
            "The request body did not arrive within {} s.",
            within.as_secs_f64()
        ),
        BodyError::Unreadable(e) => format!("The request body could not be read: {e}"),
    };
    let mut r = match family {
        Some(Family::JsonRpc) => {
            let e = ProtocolError {
                code: code::INVALID_REQUEST,
                message: format!("Invalid request: {message}"),
                id: None,
            };
            jsonrpc::protocol_error(&e)
        }
        Some(f) => Answer::error(&VapiError::invalid_argument(message), f).response(None),
        None => Response::new(Body::full(Bytes::from(message + "\n"))),
    };
    // JSON-RPC answers on 200 whatever happened. The REST families answer their
    // invalid_argument (400), except a body too slow to arrive: 408. Outside them,
    // the plain statuses.
    match (family, e) {
        (Some(Family::JsonRpc), _) => {}
        (_, BodyError::TooSlow(_)) => *r.status_mut() = StatusCode::REQUEST_TIMEOUT,
        (None, BodyError::TooLarge(_)) => *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE,
        (None, BodyError::Unreadable(_)) => *r.status_mut() = StatusCode::BAD_REQUEST,
        (Some(_), _) => {}
    }
    if version < Version::HTTP_2 {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
