//! vAPI JSON-RPC 2.0: the protocol the official vSphere SDKs (Python, Java) speak by
//! default, on `POST /api` with the whole call in the body.
//!
//! Every call is `{"jsonrpc":"2.0","method":"invoke","params":{"serviceId",
//! "operationId","input","ctx":{"securityCtx":..}},"id":..}`, and every answer is
//! HTTP 200 with `result.output` or `result.error` (a vAPI error, `{"ERROR":{..}}`)
//! and the request's `id` echoed as the same JSON value. Values are typed
//! (`OPTIONAL`, `STRUCTURE`, `SECRET`, map entries): [`typed`] converts.
//!
//! In this crate a JSON-RPC *answer value* (the `output`, or the error's value) is
//! what the other families call a body: the proxy caches and merges values, and
//! [`envelope`] wraps one per request with that request's id, so a cached answer is
//! never rendered again. Everything here follows `JSONRPC-NOTES.md` in the vSphere
//! notes, which records what the SDK sends and accepts byte for byte.

pub mod envelope;
mod rest_errors;
pub mod typed;

pub use rest_errors::error_from_rest;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ErrorKind, VapiError};
use super::json::write_json_str;
use super::Operation;

/// Every JSON-RPC call goes to this path, with no query.
pub const PATH: &str = "/api";
/// Log-in (`create`), who-am-I (`get`), log-out (`delete`).
pub const SESSION_SERVICE: &str = "com.vmware.cis.session";
/// List Tasks (`list`) and Get Task (`get`).
pub const TASKS_SERVICE: &str = "com.vmware.cis.tasks";
/// The security scheme of a log-in: user name and password in the body.
pub const USER_PASS_SCHEME: &str = "com.vmware.vapi.std.security.user_pass";
/// The security scheme of every later call: the session id in the body.
pub const SESSION_SCHEME: &str = "com.vmware.vapi.std.security.session_id";
/// Headers the SDK sends beside the body, naming the service and operation.
pub const SERVICE_HEADER: http::HeaderName = http::HeaderName::from_static("vapi-service");
pub const OPERATION_HEADER: http::HeaderName = http::HeaderName::from_static("vapi-operation");

/// Which operation a JSON-RPC call asks for, as the proxy serves them.
pub(crate) fn operation(service: &str, operation: &str) -> Option<Operation> {
    match (service, operation) {
        (SESSION_SERVICE, "create") => Some(Operation::Login),
        (SESSION_SERVICE, "get") => Some(Operation::WhoAmI),
        (SESSION_SERVICE, "delete") => Some(Operation::Logout),
        (TASKS_SERVICE, "list") => Some(Operation::ListTasks),
        (TASKS_SERVICE, "get") => Some(Operation::GetTask),
        _ => None,
    }
}

/// A log-in's output: the session id as a secret, `{"SECRET":"<id>"}`.
pub(crate) fn login_answer(id: &str) -> (StatusCode, Bytes) {
    let mut out = Vec::with_capacity(id.len() + 14);
    out.extend_from_slice(b"{\"SECRET\":");
    write_json_str(&mut out, id);
    out.push(b'}');
    (StatusCode::OK, Bytes::from(out))
}

/// The session id in a log-in's output: `{"SECRET":"<id>"}`, or a bare string (both
/// are what the runtime accepts).
pub(crate) fn session_id(output: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Secret {
        Tagged {
            #[serde(rename = "SECRET")]
            secret: String,
        },
        Bare(String),
    }
    match serde_json::from_slice::<Secret>(output).ok()? {
        Secret::Tagged { secret } | Secret::Bare(secret) => Some(secret),
    }
}

/// Who-am-I's output, a `com.vmware.cis.session.info` structure (all three fields
/// required by the SDK).
pub(crate) fn session_info(user: &str, created: &str, last_accessed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + user.len());
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.cis.session.info\":{\"user\":");
    write_json_str(&mut out, user);
    out.extend_from_slice(b",\"created_time\":");
    write_json_str(&mut out, created);
    out.extend_from_slice(b",\"last_accessed_time\":");
    write_json_str(&mut out, last_accessed);
    out.extend_from_slice(b"}}}");
    out
}

/// A log-out's output: void.
pub(crate) const VOID: &[u8] = b"null";

/// `e` as a vAPI error value: `{"ERROR":{"com.vmware.vapi.std.errors.<name>":{..}}}`
/// with the standard error's fields, every message a typed localizable message.
pub(crate) fn error_body(e: &VapiError) -> Bytes {
    let mut out = Vec::with_capacity(320 + e.message.len());
    out.extend_from_slice(b"{\"ERROR\":{\"com.vmware.vapi.std.errors.");
    out.extend_from_slice(e.kind.name().as_bytes());
    out.extend_from_slice(b"\":{\"messages\":[");
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.vapi.std.localizable_message\":{\"id\":");
    write_json_str(&mut out, e.id);
    out.extend_from_slice(b",\"default_message\":");
    write_json_str(&mut out, &e.message);
    out.extend_from_slice(
        b",\"args\":[],\"params\":{\"OPTIONAL\":null},\"localized\":{\"OPTIONAL\":null}}}}",
    );
    out.extend_from_slice(b"],\"data\":{\"OPTIONAL\":null},\"error_type\":{\"OPTIONAL\":\"");
    out.extend_from_slice(e.kind.api_name().as_bytes());
    out.extend_from_slice(b"\"}}}}");
    Bytes::from(out)
}

/// A vCenter's JSON-RPC answer, read.
#[derive(Debug)]
pub enum Reply<'a> {
    /// `result.output`.
    Output(&'a RawValue),
    /// `result.error`: the error's status (by its name, as the REST families would
    /// answer it) and its value, to pass through.
    Error {
        status: StatusCode,
        name: String,
        value: &'a RawValue,
    },
}

/// Reads a vCenter's answer to a call; an answer that is not a JSON-RPC result (a
/// protocol error, not JSON, no `result`) is described in the error.
pub fn read_reply(body: &[u8]) -> Result<Reply<'_>, String> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<ResultValue<'a>>,
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct ResultValue<'a> {
        #[serde(borrow)]
        output: Option<&'a RawValue>,
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    let answer: Answer<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON-RPC answer: {e}"))?;
    match (answer.result, answer.error) {
        (
            Some(ResultValue {
                output: Some(o), ..
            }),
            None,
        ) => Ok(Reply::Output(o)),
        (
            Some(ResultValue {
                error: Some(value), ..
            }),
            None,
        ) => {
            let name = error_name(value).unwrap_or_default();
            let kind = name
                .strip_prefix("com.vmware.vapi.std.errors.")
                .and_then(ErrorKind::from_name);
            Ok(Reply::Error {
                status: kind.map_or(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::status),
                name,
                value,
            })
        }
        (_, Some(e)) => Err(format!("a JSON-RPC protocol error: {}", e.get())),
        (_, None) => Err("a JSON-RPC answer without output or error".into()),
    }
}

/// The name inside an error value, `com.vmware.vapi.std.errors.<name>`.
fn error_name(value: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Tagged<'a> {
        #[serde(rename = "ERROR", alias = "STRUCTURE", borrow)]
        error: std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>,
    }
    let tagged: Tagged<'_> = serde_json::from_str(value.get()).ok()?;
    let name = tagged.error.into_keys().next()?;
    Some(name.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_value_is_the_shape_the_sdk_resolves() {
        let e = VapiError::new(
            ErrorKind::NotFound,
            "rec.not_found",
            "The task was not found.",
        );
        assert_eq!(
            &error_body(&e)[..],
            br#"{"ERROR":{"com.vmware.vapi.std.errors.not_found":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"rec.not_found","default_message":"The task was not found.","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"NOT_FOUND"}}}}"#
        );
    }

    #[test]
    fn replies_are_told_apart() {
        let body = br#"{"jsonrpc":"2.0","id":"0","result":{"output":[1,2]}}"#;
        assert!(matches!(read_reply(body), Ok(Reply::Output(o)) if o.get() == "[1,2]"));
        let e = VapiError::service_unavailable("down");
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"0","result":{{"error":{}}}}}"#,
            std::str::from_utf8(&error_body(&e)).unwrap()
        );
        match read_reply(body.as_bytes()) {
            Ok(Reply::Error {
                status,
                name,
                value,
            }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(name, "com.vmware.vapi.std.errors.service_unavailable");
                assert_eq!(value.get().as_bytes(), &error_body(&e)[..]);
            }
            other => panic!("{other:?}"),
        }
        let unknown = br#"{"jsonrpc":"2.0","id":"0","result":{"error":{"ERROR":{"x.y":{}}}}}"#;
        assert!(matches!(
            read_reply(unknown),
            Ok(Reply::Error { status, .. }) if status == StatusCode::INTERNAL_SERVER_ERROR
        ));
        assert!(read_reply(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700}}"#).is_err());
        assert!(read_reply(b"<html>").is_err());
    }

    #[test]
    fn session_ids_in_both_spellings() {
        let (status, body) = login_answer("abc");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], br#"{"SECRET":"abc"}"#);
        assert_eq!(session_id(&body).as_deref(), Some("abc"));
        assert_eq!(session_id(br#""abc""#).as_deref(), Some("abc"));
        assert_eq!(session_id(b"null"), None);
    }
}
