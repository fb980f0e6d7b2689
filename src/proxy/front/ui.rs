//! The web view at `/ui/`: a page (assets embedded in the binary, in `ui/`) that
//! logs in, picks a filter and shows every vCenter's tasks live from the watch
//! stream ([`super::native`]).
//!
//! Why it is built this way:
//! * The session travels in a cookie (`vcproxy_ui`: `HttpOnly`, so no script
//!   reads it; `SameSite=Strict`, so no other site's page sends it; `Secure` over
//!   TLS), never in a URL: an `EventSource` cannot send headers.
//! * What changes state is protected against cross-site requests twice: the
//!   cookie is `SameSite=Strict`, and log-out needs the `X-CSRF-Token` header
//!   (the SHA-256 of the session id, which a page on another site can neither
//!   read nor compute); log-in needs a JSON body, which a cross-site form cannot
//!   send.
//! * The page runs no inline script and loads nothing from elsewhere: a
//!   `Content-Security-Policy` says so, and the script writes task fields (which
//!   come from vCenter) as text, never as HTML.

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE,
};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

use super::native::{cookie, COOKIE};
use crate::protocol::Family;
use crate::proxy::answer::Body;
use crate::proxy::sessions::{Credentials, LoginError};
use crate::proxy::state::Proxy;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) async fn serve(
    proxy: &Arc<Proxy>,
    parts: &Parts,
    body: &Bytes,
) -> (&'static str, Response<Body>) {
    let r = match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/ui") => {
            let mut r = plain(StatusCode::PERMANENT_REDIRECT, "text/plain", "/ui/\n");
            r.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/ui/"));
            r
        }
        (&Method::GET, "/ui/") => plain(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        (&Method::GET, "/ui/app.js") => {
            plain(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
        }
        (&Method::GET, "/ui/app.css") => plain(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        (&Method::POST, "/ui/login") => login(proxy, parts, body).await,
        (&Method::GET, "/ui/session") => session(proxy, parts).await,
        (&Method::POST, "/ui/logout") => logout(proxy, parts).await,
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
    };
    ("ui", r)
}

/// A page or asset, with the headers every response of the view carries.
fn plain(status: StatusCode, content_type: &'static str, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(r)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    secure(r)
}

fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The token a state-changing request must carry: the SHA-256 of the session
/// id, base64url. Only a page that was given it (same origin) has it.
fn csrf(id: &str) -> String {
    use base64::Engine as _;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"vcproxy ui csrf\0");
    ctx.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())
}

fn set_cookie(proxy: &Proxy, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if proxy.is_tls() {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("a session id is a valid header value")
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(proxy: &Proxy, parts: &Parts, body: &Bytes) -> Response<Body> {
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim() == "application/json")
        });
    if !is_json {
        return json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            serde_json::json!({"error": "send the credentials as application/json"}),
        );
    }
    let Ok(form) = serde_json::from_slice::<LoginForm>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "expected {\"username\": …, \"password\": …}"}),
        );
    };
    let user = form.username.clone();
    match proxy
        .sessions
        .login(Family::Api, Credentials::new(form.username, form.password))
        .await
    {
        Ok(id) => {
            let mut r = json(
                StatusCode::OK,
                serde_json::json!({"user": user, "csrf": csrf(&id)}),
            );
            r.headers_mut()
                .insert(SET_COOKIE, set_cookie(proxy, &id, None));
            r
        }
        Err(e) => {
            let (status, message) = match e {
                LoginError::Proxy(e) => (e.status(), e.to_string()),
                LoginError::Upstream(f) => {
                    let status = f.status();
                    let message = if status == StatusCode::UNAUTHORIZED {
                        "vCenter refused the user name or password".to_owned()
                    } else {
                        format!("vCenter {} could not log in ({status})", f.vcenter)
                    };
                    (status, message)
                }
            };
            json(status, serde_json::json!({"error": message}))
        }
    }
}

async fn session(proxy: &Proxy, parts: &Parts) -> Response<Body> {
    let id = cookie(&parts.headers, COOKIE);
    match proxy.sessions.client(id.unwrap_or_default()).await {
        Some(s) if id.is_some() => json(
            StatusCode::OK,
            serde_json::json!({"user": &*s.user, "csrf": csrf(id.unwrap_or_default())}),
        ),
        _ => json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "not logged in"}),
        ),
    }
}

async fn logout(proxy: &Proxy, parts: &Parts) -> Response<Body> {
    let id = cookie(&parts.headers, COOKIE).unwrap_or_default();
    let token = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok());
    let valid = !id.is_empty()
        && token.is_some_and(|t| {
            let expected = csrf(id);
            // Compared in constant time: the token must not leak byte by byte.
            t.len() == expected.len()
                && t.bytes()
                    .zip(expected.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
    if !valid {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "missing or wrong X-CSRF-Token"}),
        );
    }
    proxy.sessions.logout(id).await;
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut()
        .insert(SET_COOKIE, set_cookie(proxy, "", Some(0)));
    secure(r)
}
