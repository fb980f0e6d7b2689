//! The one HTTP client of the tests and the load benchmark: hyper-util's pooled
//! client (what vcproxy itself is built on), over plain HTTP or rustls.
//!
//! One client, because there were three (the proxy tests', the simulator tests', the
//! benchmark's), each building requests, logging in and listing tasks its own way.
//! Tests want a panic that names the request (`call`, `session`); the benchmark wants
//! an error it can show in its table (`try_call`, `try_session`): the panicking
//! methods are the fallible ones unwrapped.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use vcproxy::sim::SimHandle;
use vcproxy::Family;

use crate::queries::RestQuery;
use crate::sims::ADMIN;

/// The header that carries a vAPI session id.
pub const SESSION: &str = "vmware-api-session-id";

/// How long one request may take, head and body, before it counts as unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics, showing the body, when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The proxy's cache outcome (`vcproxy-cache`: hit, miss, stale, coalesced), or
    /// "" when the answer has none.
    pub fn cache(&self) -> &str {
        self.header("vcproxy-cache").unwrap_or("")
    }
}

/// An HTTP client against one base URL: http, or https trusting given roots only.
/// Clones share one connection pool.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    /// HTTP/1.1; an https base is trusted by nothing.
    pub fn new(base: impl Into<String>) -> Http {
        Self::build(base.into(), rustls::RootCertStore::empty(), false)
    }

    /// A client for one simulator's base URL.
    pub fn for_sim(sim: &SimHandle) -> Http {
        Self::new(sim.base_url())
    }

    /// HTTPS (HTTP/1.1) trusting exactly `roots`.
    pub fn tls(base: impl Into<String>, roots: rustls::RootCertStore) -> Http {
        Self::build(base.into(), roots, false)
    }

    /// HTTP/2 only: prior knowledge on plain HTTP, ALPN h2 over TLS (trusting
    /// exactly `roots`).
    pub fn h2(base: impl Into<String>, roots: rustls::RootCertStore) -> Http {
        Self::build(base.into(), roots, true)
    }

    fn build(base: String, roots: rustls::RootCertStore, h2: bool) -> Http {
        let tls = rustls::ClientConfig::builder_with_provider(vcproxy::net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Small requests and answers: no Nagle delay on either side of a measurement.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = if h2 {
            b.enable_http2().wrap_connector(tcp)
        } else {
            b.enable_http1().wrap_connector(tcp)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(h2)
            .build(connector);
        Http { base, client }
    }

    fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("{k}: {e}"))?,
                HeaderValue::from_str(v).map_err(|e| format!("{k}: {e}"))?,
            );
        }
        b.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| format!("{path}: {e}"))
    }

    /// A request to `path` under the base URL, not sent (see [`Http::send`]).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Request<Full<Bytes>> {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends a request and returns hyper's answer as it is: the head, and the body
    /// still to read. For what the other methods hide: a transport error, a body
    /// cut short.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }

    /// Sends a request and reads the whole answer; an error when there is no
    /// answer, or none within 30 s.
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, String> {
        let req = self.try_request(method.clone(), path, headers, body)?;
        let work = async {
            let resp = self.send(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Resp {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(ANSWER_WITHIN, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", ANSWER_WITHIN.as_secs())))
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    /// [`Http::try_call`], panicking on a transport error or timeout.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        self.try_call(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GET path` with a session id.
    pub async fn get(&self, path: &str, sid: &str) -> Resp {
        self.call(Method::GET, path, &[(SESSION, sid)], None).await
    }

    /// Where `family` makes sessions (JSON-RPC clients share `/api`'s).
    fn session_path(family: Family) -> &'static str {
        match family {
            Family::Rest => "/rest/com/vmware/cis/session",
            Family::Api | Family::JsonRpc => "/api/session",
        }
    }

    async fn try_login(&self, family: Family, user: &str, password: &str) -> Result<Resp, String> {
        let auth = basic(user, password);
        let path = Self::session_path(family);
        self.try_call(Method::POST, path, &[("authorization", &auth)], None)
            .await
    }

    /// A login with Basic credentials in `family`: the answer, whatever its status.
    pub async fn login(&self, family: Family, user: &str, password: &str) -> Resp {
        self.try_login(family, user, password)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Logs in and returns the session id; an error when the login is refused.
    pub async fn try_session(
        &self,
        family: Family,
        user: &str,
        password: &str,
    ) -> Result<String, String> {
        let r = self.try_login(family, user, password).await?;
        if !r.status.is_success() {
            return Err(format!("login failed: {:?} {}", r.status, r.text()));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("login: {e}"))?;
        let id = match family {
            Family::Rest => &v["value"],
            Family::Api | Family::JsonRpc => &v,
        };
        id.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("login: no session id in {v}"))
    }

    /// Logs in and returns the session id; panics when the login is refused.
    pub async fn session(&self, family: Family, user: &str, password: &str) -> String {
        self.try_session(family, user, password)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Who-am-I in `family` (`POST /rest/com/vmware/cis/session?~action=get` or
    /// `GET /api/session`) with session `sid`.
    pub async fn whoami(&self, family: Family, sid: &str) -> Resp {
        let (method, path) = match family {
            Family::Rest => (Method::POST, "/rest/com/vmware/cis/session?~action=get"),
            Family::Api | Family::JsonRpc => (Method::GET, "/api/session"),
        };
        self.call(method, path, &[(SESSION, sid)], None).await
    }

    /// A JSON-RPC body posted to `/api` as it is, with no `vapi-*` headers (for
    /// calls a test builds whole, malformed or hostile ones included).
    pub async fn rpc_body(&self, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.call(Method::POST, "/api", &h, Some(body.to_string().as_bytes()))
            .await
    }

    /// An administrator's `/api` session id.
    pub async fn admin(&self) -> String {
        self.session(Family::Api, ADMIN.0, ADMIN.1).await
    }

    /// Logs session `sid` out; an error unless the answer is a success.
    pub async fn try_logout(&self, family: Family, sid: &str) -> Result<(), String> {
        let path = Self::session_path(family);
        let r = self
            .try_call(Method::DELETE, path, &[(SESSION, sid)], None)
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(format!("logout: {}", r.status))
        }
    }

    /// `GET /rest/cis/tasks?{query}` (no `?` for an empty query).
    pub async fn rest_list(&self, sid: &str, query: &str) -> Resp {
        let path = if query.is_empty() {
            "/rest/cis/tasks".to_owned()
        } else {
            format!("/rest/cis/tasks?{query}")
        };
        self.get(&path, sid).await
    }

    /// `POST /api/cis/tasks?action=list` with a JSON `body`.
    pub async fn api_list(&self, sid: &str, body: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/cis/tasks?action=list",
            &[(SESSION, sid), ("content-type", "application/json")],
            Some(body.as_bytes()),
        )
        .await
    }

    /// List Tasks in `family`: `rest_query` for `/rest`, `api_body` for `/api` and,
    /// typed, for JSON-RPC.
    pub async fn list(&self, family: Family, sid: &str, rest_query: &str, api_body: &str) -> Resp {
        match family {
            Family::Rest => self.rest_list(sid, rest_query).await,
            Family::Api => self.api_list(sid, api_body).await,
            Family::JsonRpc => {
                let body: Value = serde_json::from_str(api_body).expect("an /api body");
                self.rpc_list(sid, &body).await
            }
        }
    }

    /// A JSON-RPC call (`POST /api`) as the official SDK sends it: `input` is the
    /// typed operation input, `security` the security context, `id` the request id.
    pub async fn rpc(
        &self,
        service: &str,
        operation: &str,
        input: Value,
        security: Value,
        id: &str,
    ) -> Resp {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "method": "invoke",
            "params": {"serviceId": service, "operationId": operation, "input": input,
                       "ctx": {"appCtx": {"opId": "testkit"}, "securityCtx": security}},
            "id": id,
        });
        self.call(
            Method::POST,
            "/api",
            &[
                ("content-type", "application/json"),
                ("vapi-service", service),
                ("vapi-operation", operation),
            ],
            Some(body.to_string().as_bytes()),
        )
        .await
    }

    /// The session security context for `sid`.
    pub fn rpc_session(sid: &str) -> Value {
        serde_json::json!({"schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": sid})
    }

    /// JSON-RPC List Tasks with the filter of `/api` body `api_body`, typed as the SDK
    /// types it (every optional present).
    pub async fn rpc_list(&self, sid: &str, api_body: &Value) -> Resp {
        self.rpc(
            "com.vmware.cis.tasks",
            "list",
            crate::typed::list_input(api_body),
            Self::rpc_session(sid),
            "0",
        )
        .await
    }

    /// A `/rest` List Tasks request in any spelling (query string and/or JSON body),
    /// with `extra` headers.
    pub async fn try_rest_query(
        &self,
        sid: &str,
        query: &RestQuery,
        extra: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let path = match &query.query {
            Some(q) => format!("/rest/cis/tasks?{q}"),
            None => "/rest/cis/tasks".to_owned(),
        };
        let mut headers = vec![(SESSION, sid)];
        if query.body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        headers.extend_from_slice(extra);
        self.try_call(Method::GET, &path, &headers, query.body.as_deref())
            .await
    }

    /// A simulator's counters (`GET /_sim/stats`).
    pub async fn stats(&self) -> Value {
        self.call(Method::GET, "/_sim/stats", &[], None)
            .await
            .json()
    }

    /// Every task a simulator holds, by id (`GET /_sim/tasks`).
    pub async fn all_tasks(&self) -> BTreeMap<String, Value> {
        let r = self.call(Method::GET, "/_sim/tasks", &[], None).await;
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).unwrap()
    }
}

/// An `Authorization: Basic` value for `user` and `password`.
pub fn basic(user: &str, password: &str) -> String {
    let value = vcproxy::auth::basic_auth::encode(user, password).unwrap();
    value.to_str().unwrap().to_owned()
}
