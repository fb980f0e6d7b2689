//! The admin listener: metrics, health, readiness, cache purge and reload, for
//! operators. It is not authenticated: keep it on loopback or a management network.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use tracing::info;

use super::answer::Body;
use super::state::Proxy;

pub(super) async fn route(proxy: &Proxy, req: Request<Incoming>) -> Response<Body> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Body::full(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let generation = proxy.current.load_full();
            let (entries, bytes) = generation.cache.usage().await;
            proxy.metrics.cache_entries.set(entries as i64);
            proxy.metrics.cache_weighted_bytes.set(bytes as i64);
            let max = generation.cache_config.max_memory.as_usize();
            proxy.metrics.cache_max_bytes.set(max as i64);
            let open = proxy.listen.borrow().open.load(Ordering::Relaxed);
            proxy.metrics.client_connections_open.set(open as i64);
            let mut r = text(StatusCode::OK, proxy.metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (&Method::GET, "/readyz") => {
            let (open, max) = {
                let listen = proxy.listen.borrow();
                (listen.open.load(Ordering::Relaxed), listen.max_connections)
            };
            let redis_down = proxy
                .cluster
                .as_ref()
                .is_some_and(|c| c.required && !c.shared.cluster.is_up());
            if !proxy.ready.load(Ordering::SeqCst) {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into())
            } else if redis_down {
                // cluster.required: without Redis this replica would serve sessions
                // and answers the others cannot see.
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: Redis (cluster.redis) is unreachable\n".into(),
                )
            } else if open >= max {
                // New clients would wait in the kernel's queue: send them elsewhere.
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: all {max} client connections are taken\n"),
                )
            } else {
                text(StatusCode::OK, "ready\n".into())
            }
        }
        (&Method::POST, "/reload") => {
            // What changed and what was kept, or why nothing was: the answer an
            // operator (or a deployment script) reads, as JSON.
            let (status, body) = match proxy.reload().await {
                Ok(report) => (
                    StatusCode::OK,
                    serde_json::json!({
                        "reloaded": true,
                        "changed": report.changed,
                        "kept": report.kept,
                    }),
                ),
                Err(e) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({ "reloaded": false, "error": e.to_string() }),
                ),
            };
            let mut r = text(status, format!("{body:#}\n"));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        (&Method::POST, "/cache/purge") => {
            proxy.current.load_full().cache.purge().await;
            info!("cache purged by the admin API");
            text(StatusCode::OK, "purged\n".into())
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}
