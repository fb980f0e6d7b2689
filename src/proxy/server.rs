//! The proxy's front end: routing, the List Tasks path, sessions, the admin listener.
//!
//! Clients use vcproxy exactly as they use vCenter: the same paths, session header,
//! JSON and errors. Only the API the proxy knows is served; anything else is a vAPI
//! `not_found` and nothing is sent upstream, so vcproxy is never an open proxy.
//!
//! The List Tasks path: session → read and parse the filter → cache key (principal,
//! family, canonical filter) → [`ResponseCache`] → on a miss, one [`Fanout`] shared by
//! every concurrent asker. A hit sends pre-rendered bytes.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::{debug, debug_span, field, info, warn, Instrument};

use crate::config::{Config, OnTooMany};
use crate::protocol::error::{Family, VapiError};
use crate::protocol::filter::{Limits, ListRequest};
use crate::protocol::merge::MergeOptions;
use crate::proxy::cache::{CacheKey, CacheSettings, Entry, KeyMemo, Outcome, ResponseCache};
use crate::proxy::fanout::{Fanout, JSON};
use crate::proxy::metrics::Metrics;
use crate::proxy::sessions::{
    login_response, Backend, LoginError, SessionSettings, Sessions, SESSION_HEADER,
};
use crate::upstream::{Upstream, UpstreamConfigError, UpstreamSettings};

pub const CACHE_HEADER: HeaderName = HeaderName::from_static("vcproxy-cache");
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("vcproxy-upstream");
pub const PARTIAL_HEADER: HeaderName = HeaderName::from_static("vcproxy-partial");
/// How long each vCenter and the merge took, on the responses a fetch answered.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

type Body = Full<Bytes>;

/// Everything a request handler needs, built once from the configuration.
pub struct Proxy {
    pub sessions: Arc<Sessions>,
    pub cache: ResponseCache,
    pub fanout: Arc<Fanout>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Raw requests already parsed, to their canonical keys.
    pub keys: KeyMemo,
    /// TLS for the client listener, when `[listen] tls_cert`/`tls_key` are set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connection and header limits for the client listener.
    pub serve_options: crate::net::listener::ServeOptions,
    ready: AtomicBool,
    next_request_id: AtomicU64,
}

/// Why the proxy could not be built from a (validated) configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamConfigError),
    #[error("listen.tls_cert / listen.tls_key: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

impl Proxy {
    /// Builds the proxy's state from a validated configuration.
    pub fn new(config: &Config) -> Result<Arc<Proxy>, ProxyError> {
        let metrics = Arc::new(Metrics::new());
        let mut backends = Vec::with_capacity(config.vcenters.len());
        for vc in &config.vcenters {
            let upstream = Upstream::new(&UpstreamSettings::from_config(vc))?;
            backends.push(Backend {
                upstream,
                families: vc.families.clone(),
            });
        }
        let sessions = Sessions::new(
            backends.into(),
            config.auth.mode.clone(),
            SessionSettings {
                client_idle: config.auth.client_session_idle,
                backend_idle: config.auth.backend_idle_timeout,
            },
            metrics.clone(),
        );
        let cache = ResponseCache::new(CacheSettings {
            ttl: config.cache.ttl,
            stale_while_revalidate: config.cache.stale_while_revalidate,
            stale_if_error: config.cache.stale_if_error,
            error_ttl: config.cache.error_ttl,
            max_bytes: config.cache.max_memory.0,
        });
        let fanout = Arc::new(Fanout {
            sessions: sessions.clone(),
            metrics: metrics.clone(),
            merge: MergeOptions {
                max_tasks: match config.merge.on_too_many {
                    OnTooMany::Error => Some(config.merge.max_tasks),
                    OnTooMany::ReturnAll => None,
                },
            },
            partial: config.merge.partial,
        });
        Ok(Arc::new(Proxy {
            sessions,
            cache,
            fanout,
            metrics,
            keys: KeyMemo::new(16 * 1024 * 1024),
            limits: Limits {
                max_query_bytes: config.listen.max_query_bytes.as_usize(),
                max_body_bytes: config.listen.max_body_bytes.as_usize(),
            },
            tls: match &config.listen.tls {
                Some(t) => Some(crate::net::tls::server_config(
                    t.cert_chain.clone(),
                    t.key.clone_key(),
                )?),
                None => None,
            },
            serve_options: crate::net::listener::ServeOptions {
                max_connections: config.listen.max_connections,
                max_header_bytes: config.listen.max_header_bytes.as_usize(),
                header_read_timeout: config.listen.header_read_timeout,
            },
            ready: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        }))
    }
}

/// Serves clients on `listener` and the admin API on `admin` until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish, and logs out of
/// every vCenter session.
pub async fn run(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let reaper = {
        let sessions = proxy.sessions.clone();
        let settings = *sessions.settings();
        let period = (settings.backend_idle.min(settings.client_idle) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => sessions.reap().await,
                    () = &mut stop => break,
                }
            }
        })
    };

    let admin_task = {
        let proxy = proxy.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(crate::net::listener::serve(
            admin,
            None,
            move |_peer| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(admin_route(&proxy, req).await) }
                })
            },
            stop,
        ))
    };

    proxy.ready.store(true, Ordering::SeqCst);
    let front = {
        let proxy = proxy.clone();
        crate::net::listener::serve_with(
            listener,
            proxy.tls.clone(),
            proxy.serve_options,
            move |peer: SocketAddr| {
                let proxy = proxy.clone();
                hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(handle(&proxy, peer, req).await) }
                })
            },
            async move {
                shutdown.await;
                info!("shutting down: no new connections; finishing requests in flight");
            },
        )
    };
    front.await;
    proxy.ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    let _ = reaper.await;
    proxy.sessions.close_all().await;
    info!("stopped; vCenter sessions closed");
}

/// The client-facing routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Login,
    WhoAmI,
    Logout,
    ListTasks,
    NotFound,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Login => "login",
            Route::WhoAmI => "whoami",
            Route::Logout => "logout",
            Route::ListTasks => "list_tasks",
            Route::NotFound => "not_found",
        }
    }
}

fn route(method: &Method, path: &str, query: Option<&str>) -> Route {
    let has_param = |name: &str, value: &str| {
        query.is_some_and(|q| {
            q.split('&')
                .any(|p| p.split_once('=') == Some((name, value)))
        })
    };
    match (method, path) {
        (&Method::POST, "/rest/com/vmware/cis/session") if has_param("~action", "get") => {
            Route::WhoAmI
        }
        (&Method::POST, "/rest/com/vmware/cis/session") if query.is_none() => Route::Login,
        (&Method::DELETE, "/rest/com/vmware/cis/session") => Route::Logout,
        (&Method::POST, "/api/session") => Route::Login,
        (&Method::GET, "/api/session") => Route::WhoAmI,
        (&Method::DELETE, "/api/session") => Route::Logout,
        (&Method::GET, "/rest/cis/tasks") => Route::ListTasks,
        (&Method::POST, "/api/cis/tasks") if has_param("action", "list") => Route::ListTasks,
        _ => Route::NotFound,
    }
}

async fn handle(proxy: &Proxy, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    // Read the clock only when the line that reports the time will be written.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let family = Family::of_path(req.uri().path());
    let route = route(req.method(), req.uri().path(), req.uri().query());
    let id = proxy.next_request_id.fetch_add(1, Ordering::Relaxed);
    // A debug-level span: at the default `info` level it is disabled and costs the
    // hit path nothing (an enabled span formats every recorded field).
    let span = debug_span!(
        "request",
        id,
        route = route.name(),
        family = field::Empty,
        principal = field::Empty,
        cache = field::Empty,
        status = field::Empty,
    );
    if let Some(f) = family {
        span.record("family", f.as_str());
    }
    let response = async {
        match (route, family) {
            (Route::NotFound, _) | (_, None) => not_found(family, req.method(), req.uri().path()),
            (Route::Login, Some(f)) => login(proxy, f, req).await,
            (Route::WhoAmI, Some(f)) => whoami(proxy, f, &req).await,
            (Route::Logout, Some(f)) => logout(proxy, f, &req).await,
            (Route::ListTasks, Some(f)) => list_tasks(proxy, f, req).await,
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("status", status);
    proxy.metrics.request(route.name(), status);
    if let Some(started) = started {
        span.in_scope(|| {
            debug!(%peer, elapsed_us = started.elapsed().as_micros() as u64, "answered");
        });
    }
    response
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

fn error_response(family: Family, e: &VapiError) -> Response<Body> {
    json_response(e.status(), e.render(family))
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
            let (status, body) = login_response(family, &id);
            json_response(status, body)
        }
        Err(LoginError::Proxy(e)) => error_response(family, &e),
        Err(LoginError::Upstream(f)) => entry_response(&f.into_entry(family), None),
    }
}

async fn client_session(
    proxy: &Proxy,
    req: &Request<Incoming>,
) -> Option<Arc<crate::proxy::sessions::ClientSession>> {
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
    let body = match family {
        Family::Rest => serde_json::json!({ "value": info }),
        Family::Api => info,
    };
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

async fn logout(proxy: &Proxy, family: Family, req: &Request<Incoming>) -> Response<Body> {
    let id = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok());
    match id {
        Some(id) if proxy.sessions.logout(id).await => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = match family {
                Family::Rest => StatusCode::OK,
                Family::Api => StatusCode::NO_CONTENT,
            };
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
    let body = match read_body(body, proxy.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(family, &e),
    };
    // A poll seen before skips parsing; the parsed request is needed only to fetch.
    let query = parts.uri.query();
    let (request_key, parsed) = match proxy.keys.get(family, query, &body) {
        Some(key) => (key, None),
        None => match ListRequest::parse(family, query, &body, &proxy.limits) {
            Ok(r) => {
                let key: Arc<[u8]> = r.key().into();
                proxy.keys.insert(family, query, &body, key.clone());
                (key, Some(r))
            }
            Err(e) => return error_response(family, &e),
        },
    };
    let key = CacheKey {
        principal: session.user.clone(),
        request: request_key,
    };
    let fanout = proxy.fanout.clone();
    let principal = session.principal.clone();
    let limits = proxy.limits;
    let fetch = move || {
        // Parsing cannot fail here: these bytes parsed before with the same limits.
        let request = parsed
            .map(Ok)
            .unwrap_or_else(|| ListRequest::parse(family, parts.uri.query(), &body, &limits));
        async move {
            match request {
                Ok(request) => fanout.list(principal, &request).await,
                Err(e) => crate::proxy::cache::Fetched::Answer(Entry::error(&e, family)),
            }
        }
    };
    let result = proxy.cache.get_or_fetch(key, force, fetch).await;
    match result {
        Ok((entry, outcome)) => {
            tracing::Span::current().record("cache", outcome.as_str());
            proxy.metrics.cache_outcome(outcome, entry.body.len());
            entry_response(&entry, Some(outcome))
        }
        Err(e) => {
            warn!(error = %e, "fetch abandoned");
            error_response(family, &VapiError::service_unavailable(e.to_string()))
        }
    }
}

/// A cached (or just fetched) answer as a response: the bytes as stored, plus the
/// cache outcome and age.
fn entry_response(entry: &Entry, outcome: Option<Outcome>) -> Response<Body> {
    let mut r = Response::new(Full::new(entry.body.clone()));
    *r.status_mut() = entry.status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, entry.content_type.clone());
    if let Some(outcome) = outcome {
        h.insert(CACHE_HEADER, outcome.header());
        h.insert(AGE, HeaderValue::from(entry.age(Instant::now()).as_secs()));
    }
    if let Some(v) = &entry.upstream {
        h.insert(UPSTREAM_HEADER, v.clone());
    }
    if let Some(v) = &entry.partial {
        h.insert(PARTIAL_HEADER, v.clone());
    }
    // Timings describe the fetch: only the responses it answered carry them.
    if let (Some(v), Some(Outcome::Miss | Outcome::Coalesced)) = (&entry.timing, outcome) {
        h.insert(SERVER_TIMING, v.clone());
    }
    r
}

async fn admin_route(proxy: &Proxy, req: Request<Incoming>) -> Response<Body> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let (entries, bytes) = proxy.cache.usage().await;
            proxy.metrics.cache_entries.set(entries as i64);
            proxy.metrics.cache_weighted_bytes.set(bytes as i64);
            let mut r = text(StatusCode::OK, proxy.metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/readyz") => {
            if proxy.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
            }
        }
        (&Method::POST, "/cache/purge") => {
            proxy.cache.purge();
            info!("cache purged by the admin API");
            text(StatusCode::OK, "purged\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, p: &str, q: Option<&str>| route(&m, p, q);
        assert_eq!(r(Method::GET, "/rest/cis/tasks", None), Route::ListTasks);
        assert_eq!(
            r(Method::POST, "/api/cis/tasks", Some("action=list")),
            Route::ListTasks
        );
        assert_eq!(
            r(Method::POST, "/api/cis/tasks", Some("action=get")),
            Route::NotFound
        );
        assert_eq!(r(Method::POST, "/api/cis/tasks", None), Route::NotFound);
        assert_eq!(
            r(Method::POST, "/rest/com/vmware/cis/session", None),
            Route::Login
        );
        assert_eq!(
            r(
                Method::POST,
                "/rest/com/vmware/cis/session",
                Some("~action=get")
            ),
            Route::WhoAmI
        );
        assert_eq!(
            r(Method::POST, "/rest/com/vmware/cis/session", Some("x=1")),
            Route::NotFound
        );
        assert_eq!(r(Method::DELETE, "/api/session", None), Route::Logout);
        assert_eq!(r(Method::GET, "/api/session", None), Route::WhoAmI);
        assert_eq!(r(Method::GET, "/api/vcenter/vm", None), Route::NotFound);
        assert_eq!(r(Method::PUT, "/rest/cis/tasks", None), Route::NotFound);
        assert_eq!(r(Method::GET, "/rest/cis/tasks/abc", None), Route::NotFound);
    }
}
