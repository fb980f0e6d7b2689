//! `/rest`: the vSphere Automation REST API of vSphere 6.5 and later.
//!
//! Values are wrapped (`{"value":...}`), maps are key/value arrays, and errors are
//! `{"type":"com.vmware.vapi.std.errors.<name>","value":{"messages":[...]}}`.

use bytes::Bytes;
use http::{Method, StatusCode};

use super::error::VapiError;
use super::get_task::task_segment;
use super::json::write_json_str;
use super::Operation;

/// Log-in (`POST`), who-am-I (`POST` with [`WHOAMI_QUERY`]) and log-out (`DELETE`).
pub const SESSION_PATH: &str = "/rest/com/vmware/cis/session";
/// The query that makes a `POST` on [`SESSION_PATH`] a who-am-I.
pub const WHOAMI_QUERY: &str = "~action=get";
/// Who-am-I, as sent to a vCenter: [`SESSION_PATH`] `?` [`WHOAMI_QUERY`].
pub const WHOAMI: &str = "/rest/com/vmware/cis/session?~action=get";
/// List Tasks (`GET`, filter in the query) and, below it, Get Task.
pub const TASKS_PATH: &str = "/rest/cis/tasks";
/// Where the official SDK in REST mode makes (`POST`), reads (`GET`) and ends
/// (`DELETE`) sessions: its metadata's path, not vCenter's documented one. Served
/// like [`SESSION_PATH`]; vCenters are always asked on the documented path.
pub const SDK_SESSION_PATH: &str = "/rest/session";

/// Which operation a `/rest` request asks for, as the proxy serves them.
pub(crate) fn operation(method: &Method, path: &str, query: Option<&str>) -> Option<Operation> {
    match (method, path) {
        (&Method::POST, SESSION_PATH) if has_param(query, WHOAMI_QUERY) => Some(Operation::WhoAmI),
        (&Method::POST, SESSION_PATH) if query.is_none() => Some(Operation::Login),
        (&Method::DELETE, SESSION_PATH) => Some(Operation::Logout),
        (&Method::GET, TASKS_PATH) => Some(Operation::ListTasks),
        (&Method::POST, SDK_SESSION_PATH) if query.is_none() => Some(Operation::Login),
        (&Method::GET, SDK_SESSION_PATH) if query.is_none() => Some(Operation::WhoAmI),
        (&Method::DELETE, SDK_SESSION_PATH) => Some(Operation::Logout),
        (&Method::GET, _) if task_segment(TASKS_PATH, path).is_some() => Some(Operation::GetTask),
        _ => None,
    }
}

/// Whether `query` holds the parameter `pair` (`name=value`) exactly.
pub(super) fn has_param(query: Option<&str>, pair: &str) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == pair))
}

/// 200 `{"value":"<id>"}`.
pub(crate) fn login_answer(id: &str) -> (StatusCode, Bytes) {
    (
        LOGIN_STATUS,
        Bytes::from(wrap(|out| write_json_str(out, id))),
    )
}

/// The session id in a login answer, `{"value":"<id>"}`.
pub(crate) fn session_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Wrapped {
        value: String,
    }
    serde_json::from_slice::<Wrapped>(body)
        .ok()
        .map(|w| w.value)
}

/// `{"value":<value>}`.
pub(crate) fn wrap(value: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"value\":");
    value(&mut out);
    out.push(b'}');
    out
}

/// Log-in answers with this status.
pub(crate) const LOGIN_STATUS: StatusCode = StatusCode::OK;

/// Log-out answers 200 with no body.
pub(crate) const LOGOUT_STATUS: StatusCode = StatusCode::OK;

/// The error shape: `{"type":"com.vmware.vapi.std.errors.<name>","value":{"messages":[...]}}`.
pub(crate) fn error_body(e: &VapiError) -> Bytes {
    let mut out = Vec::with_capacity(160 + e.message.len());
    out.extend_from_slice(b"{\"type\":\"com.vmware.vapi.std.errors.");
    out.extend_from_slice(e.kind.name().as_bytes());
    out.extend_from_slice(b"\",\"value\":{\"messages\":");
    e.write_messages(&mut out);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_is_the_session_path_with_its_query() {
        assert_eq!(WHOAMI, format!("{SESSION_PATH}?{WHOAMI_QUERY}"));
    }
}
