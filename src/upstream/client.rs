//! The HTTP client for one vCenter: pooled keep-alive connections, TLS, timeouts.
//!
//! Each vCenter gets its own client so that its TLS trust (system roots, an
//! operator's CA bundle, or a pinned certificate) and its timeouts apply to it alone.
//! Verification is always on: the only ways to trust a self-signed vCenter are to
//! give its CA (`ca_file`) or pin its certificate (`pin_sha256`).
//!
//! Failures that leave no vCenter answer to pass through (refused, reset, timeout,
//! TLS, oversized body) are a [`TransportError`]; the caller turns them into
//! `service_unavailable` naming the vCenter.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::JSON;

use super::settings::{UpstreamConfigError, UpstreamSettings};
use super::trust::client_tls_config;

/// The largest upstream body read: 1000 tasks with large results fit many times
/// over, and a misbehaving vCenter cannot make the proxy buffer without bound.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// What a vCenter answered.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("reading the answer failed: {0}")]
    Body(String),
    #[error("bad request target {0:?}")]
    Uri(String),
}

/// A client for one vCenter. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Upstream {
    name: Arc<str>,
    base_url: Arc<str>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    pub fn new(settings: &UpstreamSettings) -> Result<Upstream, UpstreamConfigError> {
        let tls = client_tls_config(settings)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            // Below the idle limits servers keep (nginx 75 s, vcproxy's own listener
            // and simulator 75 s): the pool drops a connection before the server
            // closes it, rather than racing the close with a request.
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(settings.max_idle_connections)
            .build(connector);
        Ok(Upstream {
            name: settings.name.as_str().into(),
            base_url: settings.base_url.trim_end_matches('/').into(),
            client,
            request_timeout: settings.request_timeout,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one request and reads the whole answer, within the request timeout.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<UpstreamResponse, TransportError> {
        self.send_observed(method, path_and_query, headers, body, &mut |_| {})
            .await
    }

    /// [`send`](Self::send), showing a 200 answer's body to `on_body` as it arrives:
    /// after each chunk, with everything received so far. The fan-out reads List
    /// Tasks answers this way while their last bytes are still on the way.
    pub async fn send_observed(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<UpstreamResponse, TransportError> {
        let uri = format!("{}{}", self.base_url, path_and_query);
        let mut builder = Request::builder().method(method).uri(&uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, JSON);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| TransportError::Uri(path_and_query.to_owned()))?;

        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    TransportError::Connect(error_chain(&e))
                } else {
                    TransportError::Request(error_chain(&e))
                }
            })?;
            let (parts, mut incoming) = response.into_parts();
            let observe = parts.status == StatusCode::OK;
            // One buffer, sized by Content-Length when given, so that the body is
            // copied once and `on_body` always sees it contiguous.
            let announced = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = Vec::with_capacity(announced.min(MAX_UPSTREAM_BODY));
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|e| TransportError::Body(error_chain(&e)))?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                if body.len() + data.len() > MAX_UPSTREAM_BODY {
                    return Err(TransportError::Body(format!(
                        "the answer is larger than the limit of {MAX_UPSTREAM_BODY} bytes"
                    )));
                }
                body.extend_from_slice(&data);
                if observe {
                    on_body(&body);
                }
            }
            Ok(UpstreamResponse {
                status: parts.status,
                content_type: parts.headers.get(CONTENT_TYPE).cloned(),
                body: Bytes::from(body),
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.request_timeout))?
    }
}

/// An error and its sources, joined: hyper's top-level messages ("client error
/// (Connect)") say little on their own.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A vCenter stand-in on loopback that answers one request with `head`, then
    /// the chunks `body` yields (chunked encoding, each written on its own), until
    /// `body` ends or the client goes away.
    async fn serve_once(
        head: &'static str,
        body: impl Iterator<Item = Vec<u8>> + Send + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_request_head(&mut s).await;
            s.write_all(head.as_bytes()).await.unwrap();
            for chunk in body {
                let framed =
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if s.write_all(&framed).await.is_err() {
                    return; // the client stopped reading
                }
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
        Upstream::new(&UpstreamSettings {
            name: "vc1".into(),
            base_url: format!("http://{addr}"),
            ca_certs: Vec::new(),
            pin_sha256: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_idle_connections: 1,
        })
        .unwrap()
    }

    async fn read_request_head(s: &mut TcpStream) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending a request");
            got.extend_from_slice(&buf[..n]);
        }
    }

    const CHUNKED_200: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";

    #[tokio::test]
    async fn a_200_answer_is_shown_as_it_grows_and_whole_at_the_end() {
        let parts: Vec<Vec<u8>> = (0..20).map(|i| vec![b'a' + i; 1000]).collect();
        let whole = parts.concat();
        let upstream = serve_once(CHUNKED_200, parts.into_iter()).await;
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let r = upstream
            .send_observed(Method::GET, "/rest/cis/tasks", &[], None, &mut |b| {
                seen.push(b.to_vec())
            })
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], &whole[..]);
        // Every call sees a longer prefix of the answer; the last sees all of it.
        assert!(!seen.is_empty());
        for pair in seen.windows(2) {
            assert!(pair[1].len() > pair[0].len());
        }
        for s in &seen {
            assert_eq!(&s[..], &whole[..s.len()]);
        }
        assert_eq!(seen.last().unwrap(), &whole);
    }

    #[tokio::test]
    async fn other_statuses_are_read_but_not_shown() {
        let upstream = serve_once(
            "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n",
            std::iter::once(br#"{"type":"com.vmware.vapi.std.errors.not_found"}"#.to_vec()),
        )
        .await;
        let mut calls = 0;
        let r = upstream
            .send_observed(Method::GET, "/rest/cis/tasks", &[], None, &mut |_| {
                calls += 1
            })
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(
            &r.body[..],
            br#"{"type":"com.vmware.vapi.std.errors.not_found"}"#
        );
        assert_eq!(calls, 0);
    }

    #[tokio::test]
    async fn an_answer_past_the_size_limit_is_refused() {
        // An endless answer: reading stops at the limit, with a body error.
        let upstream = serve_once(CHUNKED_200, std::iter::repeat(vec![b' '; 1 << 20])).await;
        let mut largest = 0;
        let e = upstream
            .send_observed(Method::GET, "/rest/cis/tasks", &[], None, &mut |b| {
                largest = b.len()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, TransportError::Body(m) if m.contains("larger than the limit")),
            "{e}"
        );
        assert!(largest <= MAX_UPSTREAM_BODY, "{largest} bytes held");
        assert!(
            largest >= MAX_UPSTREAM_BODY - (1 << 20),
            "stopped early at {largest}"
        );
    }
}
