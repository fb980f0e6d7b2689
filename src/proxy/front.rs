//! The client-facing front end: one request in, one response out.
//!
//! Clients use vcproxy exactly as they use vCenter: the same paths, session header,
//! JSON and errors. The protocol layer says which operation a request is; only
//! those are served, anything else is a vAPI `not_found` and nothing is sent
//! upstream, so vcproxy is never an open proxy.
//!
//! The List Tasks path, in one direction: session → read the filter → resolve it
//! (the protocol layer's memoized parse: cache key and upstream request) → cache
//! key (principal, canonical filter) → [`super::cache::ResponseCache`] → on a miss,
//! one [`super::fanout::Fanout`] shared by every concurrent asker → merge → answer.
//! A hit sends pre-rendered bytes.

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, debug_span, field, warn, Instrument};

use super::answer::{Answer, Body};
use super::cache::CacheKey;
use super::sessions::{ClientSession, LoginError};
use super::state::Proxy;
use crate::protocol::{Family, Operation, VapiError, SESSION_HEADER};

pub(super) async fn handle(
    proxy: &Proxy,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // Read the clock only when the line that reports the time will be written.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let family = Family::of_path(req.uri().path());
    let operation =
        family.and_then(|f| f.operation(req.method(), req.uri().path(), req.uri().query()));
    let route = operation.map_or("not_found", Operation::name);
    let id = proxy.next_request_id.fetch_add(1, Ordering::Relaxed);
    // A debug-level span: at the default `info` level it is disabled and costs the
    // hit path nothing (an enabled span formats every recorded field).
    let span = debug_span!(
        "request",
        id,
        route,
        family = field::Empty,
        principal = field::Empty,
        cache = field::Empty,
        status = field::Empty,
    );
    if let Some(f) = family {
        span.record("family", f.as_str());
    }
    let response = async {
        match (family, operation) {
            (Some(f), Some(Operation::Login)) => login(proxy, f, req).await,
            (Some(f), Some(Operation::WhoAmI)) => whoami(proxy, f, &req).await,
            (Some(f), Some(Operation::Logout)) => logout(proxy, f, &req).await,
            (Some(f), Some(Operation::ListTasks)) => list_tasks(proxy, f, req).await,
            _ => not_found(family, req.method(), req.uri().path()),
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("status", status);
    proxy.metrics.request(route, status);
    if let Some(started) = started {
        span.in_scope(|| {
            debug!(%peer, elapsed_us = started.elapsed().as_micros() as u64, "answered");
        });
    }
    response
}

fn error_response(family: Family, e: &VapiError) -> Response<Body> {
    Answer::error(e, family).response(None)
}

fn not_found(family: Option<Family>, method: &Method, path: &str) -> Response<Body> {
    debug!(%method, path, "no such route; nothing forwarded");
    match family {
        Some(f) => {
            let e = VapiError::not_found(format!(
                "vcproxy serves List Tasks and sessions only; {method} {path} is not one of them."
            ));
            error_response(f, &e)
        }
        None => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, VapiError> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        // A GET without a body: nothing to wait for or buffer.
        return Ok(Bytes::new());
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(VapiError::invalid_argument(
            format!("The request body is over the limit of {limit} bytes."),
        )),
        Err(e) => Err(VapiError::invalid_argument(format!(
            "The request body could not be read: {e}"
        ))),
    }
}

async fn login(proxy: &Proxy, family: Family, req: Request<Incoming>) -> Response<Body> {
    let auth = req.headers().get(AUTHORIZATION).cloned();
    match proxy.sessions.login(family, auth.as_ref()).await {
        Ok(id) => {
            let (status, body) = family.login_answer(&id);
            Answer::json(status, body).response(None)
        }
        Err(LoginError::Proxy(e)) => error_response(family, &e),
        Err(LoginError::Upstream(f)) => f.into_answer(family).response(None),
    }
}

async fn client_session(proxy: &Proxy, req: &Request<Incoming>) -> Option<Arc<ClientSession>> {
    let id = req.headers().get(SESSION_HEADER)?.to_str().ok()?;
    proxy.sessions.client(id).await
}

async fn whoami(proxy: &Proxy, family: Family, req: &Request<Incoming>) -> Response<Body> {
    let Some(session) = client_session(proxy, req).await else {
        return error_response(family, &VapiError::unauthenticated());
    };
    let info = serde_json::json!({
        "user": &*session.user,
        "created_time": humantime::format_rfc3339_millis(session.created).to_string(),
        "last_accessed_time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    });
    let body = family.answer_value(info.to_string().as_bytes());
    Answer::json(StatusCode::OK, Bytes::from(body)).response(None)
}

async fn logout(proxy: &Proxy, family: Family, req: &Request<Incoming>) -> Response<Body> {
    let id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok());
    match id {
        Some(id) if proxy.sessions.logout(id).await => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = family.logout_status();
            r
        }
        _ => error_response(family, &VapiError::unauthenticated()),
    }
}

fn wants_fresh(req: &Request<Incoming>) -> bool {
    req.headers().get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        })
    })
}

async fn list_tasks(proxy: &Proxy, family: Family, req: Request<Incoming>) -> Response<Body> {
    let Some(session) = client_session(proxy, &req).await else {
        return error_response(family, &VapiError::unauthenticated());
    };
    tracing::Span::current().record("principal", &*session.user);
    let force = wants_fresh(&req);
    let (parts, body) = req.into_parts();
    let body = match read_body(body, proxy.requests.limits().max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(family, &e),
    };
    // One parse per distinct poll: a poll seen before is resolved from a memo.
    let resolved = match proxy.requests.resolve(family, parts.uri.query(), &body) {
        Ok(r) => r,
        Err(e) => return error_response(family, &e),
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: resolved.key.clone(),
    };
    let fanout = proxy.fanout.clone();
    let principal = session.principal.clone();
    let fetch = move || async move { fanout.list(principal, &resolved).await };
    let result = proxy.cache.get_or_fetch(key, force, fetch).await;
    match result {
        Ok((entry, outcome)) => {
            tracing::Span::current().record("cache", outcome.as_str());
            proxy.metrics.cache_outcome(outcome, entry.body.len());
            entry.response(Some(outcome))
        }
        Err(e) => {
            warn!(error = %e, "fetch abandoned");
            error_response(family, &VapiError::service_unavailable(e.to_string()))
        }
    }
}
