//! Which wire protocol a request speaks, and what differs between them.
//!
//! Every difference between the protocols is asked of [`Family`] here and answered
//! by the protocol's own module ([`super::rest`], [`super::api`],
//! [`super::jsonrpc`]); the rest of the proxy never matches on a path or a body
//! shape itself. A new protocol is a new module beside those and a new variant.
//!
//! For JSON-RPC a "body" here is an answer *value* (`result.output`, or the error
//! value of `result.error`); the front end wraps it per request with the request's
//! id, so values are what the cache stores and the merge produces.

use bytes::Bytes;
use http::{Method, StatusCode};
use std::fmt;

use super::error::VapiError;
use super::{api, jsonrpc, rest, Operation};

/// Which of vCenter's protocols a request speaks. Bodies differ (wrapping, map
/// encoding, typed values, error shape), so every response is rendered in the
/// protocol of the request it answers, and each is forwarded in its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `/rest/...` (vSphere 6.5 and later): wrapped values, maps as key/value arrays.
    Rest,
    /// `/api/...` (vSphere 7.0 U2 and later): bare values, maps as JSON objects.
    Api,
    /// vAPI JSON-RPC 2.0 on `POST /api`: typed values, maps as map entries, every
    /// answer HTTP 200 (the official SDKs' default).
    JsonRpc,
}

impl Family {
    /// Which protocol a request speaks, if any: JSON-RPC is a `POST` on exactly
    /// `/api` with no query; otherwise the path's family.
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> Option<Family> {
        if method == Method::POST && path == jsonrpc::PATH && query.is_none() {
            Some(Family::JsonRpc)
        } else {
            Family::of_path(path)
        }
    }

    /// Which URL family a request path belongs to, if any.
    pub fn of_path(path: &str) -> Option<Family> {
        if path == "/rest" || path.starts_with("/rest/") {
            Some(Family::Rest)
        } else if path == "/api" || path.starts_with("/api/") {
            Some(Family::Api)
        } else {
            None
        }
    }

    /// `"rest"`, `"api"` or `"jsonrpc"`, for logs, metric labels and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Rest => "rest",
            Family::Api => "api",
            Family::JsonRpc => "jsonrpc",
        }
    }

    /// Whether sessions can be made in this family (JSON-RPC's are made through
    /// the REST families' session service: one namespace for all three).
    pub fn logs_in(self) -> bool {
        matches!(self, Family::Rest | Family::Api)
    }

    /// The operation a request in this family asks for, if the proxy serves it
    /// (JSON-RPC names its operation in the body: [`jsonrpc::operation`]).
    pub(crate) fn operation(
        self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Option<Operation> {
        match self {
            Family::Rest => rest::operation(method, path, query),
            Family::Api => api::operation(method, path, query),
            Family::JsonRpc => None,
        }
    }

    /// Where sessions are made (`POST`) and ended (`DELETE`) on a vCenter. JSON-RPC
    /// sessions are `/api`'s.
    pub(crate) fn session_path(self) -> &'static str {
        match self {
            Family::Rest => rest::SESSION_PATH,
            Family::Api | Family::JsonRpc => api::SESSION_PATH,
        }
    }

    /// Who-am-I on a vCenter: the method and the path with its query.
    pub(crate) fn whoami_request(self) -> (Method, &'static str) {
        match self {
            Family::Rest => (Method::POST, rest::WHOAMI),
            Family::Api | Family::JsonRpc => (Method::GET, api::SESSION_PATH),
        }
    }

    /// The answer to a successful log-in that made session `id`.
    pub(crate) fn login_answer(self, id: &str) -> (StatusCode, Bytes) {
        match self {
            Family::Rest => rest::login_answer(id),
            Family::Api => api::login_answer(id),
            Family::JsonRpc => jsonrpc::login_answer(id),
        }
    }

    /// The session id in a vCenter's log-in answer; `None` unless it is a non-empty
    /// value that can travel in a header.
    pub(crate) fn session_id(self, body: &[u8]) -> Option<String> {
        match self {
            Family::Rest => rest::session_id(body),
            Family::Api => api::session_id(body),
            Family::JsonRpc => jsonrpc::session_id(body),
        }
        .filter(|id| !id.is_empty() && http::HeaderValue::from_str(id).is_ok())
    }

    /// A value as this family answers it: wrapped in `/rest`, bare in `/api` and
    /// JSON-RPC (whose envelope is added per request).
    pub(crate) fn answer_value(self, value: &[u8]) -> Vec<u8> {
        match self {
            Family::Rest => rest::wrap(|out| out.extend_from_slice(value)),
            Family::Api | Family::JsonRpc => value.to_vec(),
        }
    }

    /// Who-am-I's answer for a session of `user`; times are RFC 3339.
    pub(crate) fn session_info(self, user: &str, created: &str, last_accessed: &str) -> Vec<u8> {
        if self == Family::JsonRpc {
            return jsonrpc::session_info(user, created, last_accessed);
        }
        let mut info = Vec::with_capacity(96 + user.len());
        info.extend_from_slice(b"{\"user\":");
        super::json::write_json_str(&mut info, user);
        info.extend_from_slice(b",\"created_time\":");
        super::json::write_json_str(&mut info, created);
        info.extend_from_slice(b",\"last_accessed_time\":");
        super::json::write_json_str(&mut info, last_accessed);
        info.push(b'}');
        self.answer_value(&info)
    }

    /// A successful log-out's answer: no body in the REST families, a void output
    /// in JSON-RPC.
    pub(crate) fn logout_answer(self) -> (StatusCode, Bytes) {
        match self {
            Family::JsonRpc => (StatusCode::OK, Bytes::from_static(jsonrpc::VOID)),
            f => (f.logout_status(), Bytes::new()),
        }
    }

    /// The body of a request to a vCenter whose session is `session`: a JSON-RPC
    /// call (`body` is its head, [`jsonrpc::envelope::call_head`]) carries the
    /// session in itself; other bodies go as they are.
    pub(crate) fn upstream_body(self, body: Option<&Bytes>, session: &str) -> Option<Bytes> {
        match (self, body) {
            (Family::JsonRpc, Some(head)) => {
                Some(jsonrpc::envelope::call_with_session(head, session))
            }
            (_, body) => body.cloned(),
        }
    }

    /// The status of a successful log-in.
    pub(crate) fn login_status(self) -> StatusCode {
        match self {
            Family::Rest => rest::LOGIN_STATUS,
            Family::Api => api::LOGIN_STATUS,
            Family::JsonRpc => StatusCode::OK,
        }
    }

    /// The status of a successful log-out (which has no body).
    pub(crate) fn logout_status(self) -> StatusCode {
        match self {
            Family::Rest => rest::LOGOUT_STATUS,
            Family::Api => api::LOGOUT_STATUS,
            Family::JsonRpc => StatusCode::OK,
        }
    }

    /// `e` in this family's error shape.
    pub(crate) fn error_body(self, e: &VapiError) -> Bytes {
        match self {
            Family::Rest => rest::error_body(e),
            Family::Api => api::error_body(e),
            Family::JsonRpc => jsonrpc::error_body(e),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Operation;

    #[test]
    fn login_answers_in_both_families() {
        assert_eq!(
            Family::Rest.login_answer("abc"),
            (StatusCode::OK, Bytes::from_static(br#"{"value":"abc"}"#))
        );
        assert_eq!(
            Family::Api.login_answer("abc"),
            (StatusCode::CREATED, Bytes::from_static(br#""abc""#))
        );
        assert_eq!(
            Family::Rest.session_id(br#"{"value":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(Family::Api.session_id(br#""abc""#).as_deref(), Some("abc"));
        assert_eq!(Family::Api.session_id(br#""a\nb""#), None);
        assert_eq!(Family::Rest.session_id(b"<html>"), None);
    }

    #[test]
    fn operations_the_proxy_serves() {
        let r = |m: Method, p: &str, q: Option<&str>| {
            Family::of_path(p).and_then(|f| f.operation(&m, p, q))
        };
        assert_eq!(
            r(Method::GET, "/rest/cis/tasks", None),
            Some(Operation::ListTasks)
        );
        assert_eq!(
            r(Method::POST, "/api/cis/tasks", Some("action=list")),
            Some(Operation::ListTasks)
        );
        assert_eq!(r(Method::POST, "/api/cis/tasks", Some("action=get")), None);
        assert_eq!(r(Method::POST, "/api/cis/tasks", None), None);
        assert_eq!(
            r(Method::POST, "/rest/com/vmware/cis/session", None),
            Some(Operation::Login)
        );
        assert_eq!(
            r(
                Method::POST,
                "/rest/com/vmware/cis/session",
                Some("~action=get")
            ),
            Some(Operation::WhoAmI)
        );
        assert_eq!(
            r(Method::POST, "/rest/com/vmware/cis/session", Some("x=1")),
            None
        );
        assert_eq!(
            r(Method::DELETE, "/api/session", None),
            Some(Operation::Logout)
        );
        assert_eq!(
            r(Method::GET, "/api/session", None),
            Some(Operation::WhoAmI)
        );
        assert_eq!(r(Method::GET, "/api/vcenter/vm", None), None);
        assert_eq!(r(Method::PUT, "/rest/cis/tasks", None), None);
        assert_eq!(
            r(Method::GET, "/rest/cis/tasks/abc", None),
            Some(Operation::GetTask)
        );
        assert_eq!(
            r(
                Method::GET,
                "/api/cis/tasks/abc",
                Some("exclude_result=true")
            ),
            Some(Operation::GetTask)
        );
        assert_eq!(r(Method::GET, "/api/cis/tasks/a/b", None), None);
        // The SDK's REST-mode session paths.
        assert_eq!(
            r(Method::POST, "/rest/session", None),
            Some(Operation::Login)
        );
        assert_eq!(
            r(Method::GET, "/rest/session", None),
            Some(Operation::WhoAmI)
        );
        assert_eq!(
            r(Method::DELETE, "/rest/session", None),
            Some(Operation::Logout)
        );
    }

    #[test]
    fn json_rpc_is_a_post_on_exactly_api() {
        assert_eq!(
            Family::of_request(&Method::POST, "/api", None),
            Some(Family::JsonRpc)
        );
        assert_eq!(
            Family::of_request(&Method::POST, "/api", Some("x=1")),
            Some(Family::Api)
        );
        assert_eq!(
            Family::of_request(&Method::GET, "/api", None),
            Some(Family::Api)
        );
        assert_eq!(
            Family::of_request(&Method::POST, "/api/session", None),
            Some(Family::Api)
        );
    }

    #[test]
    fn family_of_path() {
        assert_eq!(Family::of_path("/rest/cis/tasks"), Some(Family::Rest));
        assert_eq!(Family::of_path("/api/cis/tasks"), Some(Family::Api));
        assert_eq!(Family::of_path("/restx"), None);
        assert_eq!(Family::of_path("/metrics"), None);
    }
}
