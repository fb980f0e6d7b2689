//! The access log (`[log] access = true`): one line, or one JSON object, per
//! request, in the log's own format, for the tools operators already point at
//! nginx's: time, client, method, path, status, bytes, duration, cache outcome,
//! user, trace id.
//!
//! Never a session id or a password: the user is the name the session belongs to
//! (or the name a log-in tried), and query values, the one place a client could
//! put anything, are cut short. Values from the client are escaped
//! ([`Untrusted`]). With the access log off nothing here runs.

use http::request::Parts;
use http::Response;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::net::trace_context::{TraceContext, TRACEPARENT};
use crate::net::untrusted::Untrusted;
use crate::proxy::answer::{Body, CACHE_HEADER};

/// The most of one query value logged.
const MAX_VALUE: usize = 64;
/// The most of a path and query logged.
const MAX_TARGET: usize = 512;

/// Who a request was made as, put in the response's extensions by the handler
/// that knows it (extensions never reach the wire).
#[derive(Clone)]
pub(super) struct User(pub Arc<str>);

/// Writes the access-log line of one answered request.
pub(super) fn record(
    peer: SocketAddr,
    parts: &Parts,
    response: &Response<Body>,
    route: &str,
    started: Instant,
) {
    use hyper::body::Body as _;
    let bytes = response.body().size_hint().exact().unwrap_or(0);
    let user = response.extensions().get::<User>().map(|u| u.0.clone());
    let cache = response
        .headers()
        .get(CACHE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let trace = parts
        .headers
        .get(TRACEPARENT)
        .and_then(TraceContext::parse)
        .map(|t| t.trace_id());
    tracing::info!(
        target: "vcproxy::access",
        client = %peer,
        method = %parts.method,
        path = %Untrusted(&target(&parts.uri)),
        version = ?parts.version,
        status = response.status().as_u16(),
        bytes,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        cache,
        user = %Untrusted(user.as_deref().unwrap_or("-")),
        route,
        trace_id = trace.as_deref().unwrap_or("-"),
        "access"
    );
}

/// The path and query to log: each query value cut at [`MAX_VALUE`] bytes, the
/// whole at [`MAX_TARGET`], cuts marked with `…`.
fn target(uri: &http::Uri) -> String {
    let mut out = String::with_capacity(uri.path().len().min(MAX_TARGET) + 16);
    push_cut(&mut out, uri.path(), MAX_TARGET);
    if let Some(query) = uri.query() {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if out.len() >= MAX_TARGET {
                out.push('…');
                break;
            }
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) => {
                    push_cut(&mut out, name, MAX_VALUE);
                    out.push('=');
                    push_cut(&mut out, value, MAX_VALUE);
                }
                None => push_cut(&mut out, pair, MAX_VALUE),
            }
        }
    }
    out
}

/// Appends `s`, cut at `max` bytes (on a character boundary).
fn push_cut(out: &mut String, s: &str, max: usize) {
    if s.len() <= max {
        out.push_str(s);
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let _ = write!(out, "{}…", &s[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_query_values_are_cut_and_short_ones_kept() {
        let long = "x".repeat(100);
        let uri: http::Uri = format!("/rest/cis/tasks?filter_spec.services={long}&a=b&flag")
            .parse()
            .unwrap();
        let t = target(&uri);
        assert_eq!(
            t,
            format!(
                "/rest/cis/tasks?filter_spec.services={}…&a=b&flag",
                "x".repeat(64)
            )
        );
    }

    #[test]
    fn the_whole_target_is_bounded() {
        let query: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let uri: http::Uri = format!("/api/cis/tasks?{}", query.join("&"))
            .parse()
            .unwrap();
        let t = target(&uri);
        assert!(t.len() <= MAX_TARGET + 16, "{}", t.len());
        assert!(t.ends_with('…'));
    }
}
