//! `/api`: the vSphere Automation REST API of vSphere 7.0 U2 and later.
//!
//! Values are bare, maps are JSON objects, and errors are
//! `{"error_type":"<NAME>","messages":[...]}`.

use bytes::Bytes;
use http::{Method, StatusCode};

use super::error::VapiError;
use super::get_task::task_segment;
use super::json::write_json_str;
use super::rest::has_param;
use super::Operation;

/// Log-in (`POST`), who-am-I (`GET`) and log-out (`DELETE`).
pub const SESSION_PATH: &str = "/api/session";
/// List Tasks (`POST` with [`LIST_QUERY`], filter in the body) and, below it, Get Task.
pub const TASKS_PATH: &str = "/api/cis/tasks";
/// The query that makes a `POST` on [`TASKS_PATH`] a List Tasks.
pub const LIST_QUERY: &str = "action=list";

/// Which operation an `/api` request asks for, as the proxy serves them.
pub(crate) fn operation(method: &Method, path: &str, query: Option<&str>) -> Option<Operation> {
    match (method, path) {
        (&Method::POST, SESSION_PATH) => Some(Operation::Login),
        (&Method::GET, SESSION_PATH) => Some(Operation::WhoAmI),
        (&Method::DELETE, SESSION_PATH) => Some(Operation::Logout),
        (&Method::POST, TASKS_PATH) if has_param(query, LIST_QUERY) => Some(Operation::ListTasks),
        (&Method::GET, _) if task_segment(TASKS_PATH, path).is_some() => Some(Operation::GetTask),
        _ => None,
    }
}

/// 201 `"<id>"`.
pub(crate) fn login_answer(id: &str) -> (StatusCode, Bytes) {
    let mut body = Vec::with_capacity(id.len() + 2);
    write_json_str(&mut body, id);
    (LOGIN_STATUS, Bytes::from(body))
}

/// The session id in a login answer, `"<id>"`.
pub(crate) fn session_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<String>(body).ok()
}

/// Log-in answers with this status.
pub(crate) const LOGIN_STATUS: StatusCode = StatusCode::CREATED;

/// Log-out answers 204 with no body.
pub(crate) const LOGOUT_STATUS: StatusCode = StatusCode::NO_CONTENT;

/// The error shape: `{"error_type":"<NAME>","messages":[...]}`.
pub(crate) fn error_body(e: &VapiError) -> Bytes {
    let mut out = Vec::with_capacity(160 + e.message.len());
    out.extend_from_slice(b"{\"error_type\":\"");
    out.extend_from_slice(e.kind.api_name().as_bytes());
    out.extend_from_slice(b"\",\"messages\":");
    e.write_messages(&mut out);
    out.push(b'}');
    Bytes::from(out)
}
