//! The JSON-RPC envelope: a client's call read, answers wrapped around values, and
//! the calls vcproxy sends a vCenter.
//!
//! A call is read borrowing from its body (no copies of `input` or the security
//! context): the hit path reads one envelope per request.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::super::json::write_json_str;
use super::{SESSION_SCHEME, USER_PASS_SCHEME};

/// JSON-RPC 2.0's and vAPI's protocol error codes (`jsonrpc.py:503-514` in the
/// runtime).
pub mod code {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    /// The `vapi-service`/`vapi-operation` headers disagree with the body.
    pub const OPERATION_MISMATCH: i32 = -31001;
}

/// A request that is not a JSON-RPC `invoke` call: answered with a top-level
/// `error` (HTTP 200), never forwarded.
#[derive(Debug, Clone)]
pub struct ProtocolError {
    pub code: i32,
    pub message: String,
    /// The request's id, when it could be read and the code allows echoing it (only
    /// -32700 and -32600 answer with `null`).
    pub id: Option<Box<RawValue>>,
}

impl ProtocolError {
    fn new(code: i32, message: impl Into<String>, id: Option<&RawValue>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            id: id.map(ToOwned::to_owned),
        }
    }

    /// `{"jsonrpc":"2.0","id":<id|null>,"error":{"code":..,"message":..}}`.
    pub fn body(&self) -> Bytes {
        let mut out = Vec::with_capacity(96 + self.message.len());
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(self.id.as_ref().map_or("null", |id| id.get()).as_bytes());
        out.extend_from_slice(b",\"error\":{\"code\":");
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.extend_from_slice(b",\"message\":");
        write_json_str(&mut out, &self.message);
        out.extend_from_slice(b"}}");
        Bytes::from(out)
    }
}

/// Who the caller says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security<'a> {
    /// No security context.
    None,
    /// `user_pass`: a log-in's credentials.
    UserPass {
        user: Cow<'a, str>,
        password: Cow<'a, str>,
    },
    /// `session_id`: a session made by a log-in in any protocol.
    Session(Cow<'a, str>),
    /// Another scheme (SAML tokens and the like), which the proxy does not take.
    Other(Cow<'a, str>),
}

/// One `invoke` call, borrowed from the request body.
#[derive(Debug)]
pub struct Call<'a> {
    /// The request's id as written (a string or a number), echoed in the answer.
    pub id: &'a RawValue,
    pub service: Cow<'a, str>,
    pub operation: Cow<'a, str>,
    /// The operation's typed input, `{"STRUCTURE":{"operation-input":{..}}}`.
    pub input: &'a RawValue,
    pub security: Security<'a>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// A well-formed call, read in one pass (the hit path's case).
#[derive(Deserialize)]
struct WellFormed<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: RawParams<'a>,
    #[serde(borrow)]
    id: &'a RawValue,
}

#[derive(Deserialize)]
struct RawParams<'a> {
    #[serde(rename = "serviceId", borrow)]
    service: Cow<'a, str>,
    #[serde(rename = "operationId", borrow)]
    operation: Cow<'a, str>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ctx: Option<RawCtx<'a>>,
}

#[derive(Deserialize)]
struct RawCtx<'a> {
    #[serde(rename = "securityCtx", borrow, default)]
    security: Option<RawSecurity<'a>>,
}

#[derive(Deserialize)]
struct RawSecurity<'a> {
    #[serde(rename = "schemeId", borrow, default)]
    scheme: Option<Cow<'a, str>>,
    #[serde(rename = "userName", borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    password: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default)]
    session: Option<Cow<'a, str>>,
}

/// Reads a JSON-RPC call. `service_header`/`operation_header` are the
/// `vapi-service`/`vapi-operation` headers, which must agree with the body when sent.
pub fn parse_call<'a>(
    body: &'a [u8],
    service_header: Option<&[u8]>,
    operation_header: Option<&[u8]>,
) -> Result<Call<'a>, ProtocolError> {
    // One pass for a well-formed call; anything else is read again, step by step,
    // to say exactly what is wrong with it.
    if let Ok(call) = serde_json::from_slice::<WellFormed<'a>>(body) {
        if call.jsonrpc == "2.0"
            && call.method == "invoke"
            && is_id(call.id)
            && call.params.input.is_some()
        {
            return finish(call.id, call.params, service_header, operation_header);
        }
    }
    let envelope: RawEnvelope<'a> = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(ProtocolError::new(
                code::PARSE_ERROR,
                format!("Parse error: the body is not JSON ({e})."),
                None,
            ))
        }
        Err(e) => {
            return Err(ProtocolError::new(
                code::INVALID_REQUEST,
                format!("Invalid request: not a JSON-RPC 2.0 request object ({e})."),
                None,
            ))
        }
    };
    let id = match envelope.id {
        Some(id) if is_id(id) => id,
        Some(_) => {
            return Err(ProtocolError::new(
                code::INVALID_REQUEST,
                "Invalid request: \"id\" must be a string or a number.",
                None,
            ))
        }
        None => {
            return Err(ProtocolError::new(
                code::INVALID_REQUEST,
                "Invalid request: \"id\" is missing (vAPI calls are never notifications).",
                None,
            ))
        }
    };
    if envelope.jsonrpc.as_deref() != Some("2.0") {
        return Err(ProtocolError::new(
            code::INVALID_REQUEST,
            "Invalid request: \"jsonrpc\" must be \"2.0\".",
            None,
        ));
    }
    match envelope.method.as_deref() {
        Some("invoke") => {}
        Some(other) => {
            return Err(ProtocolError::new(
                code::METHOD_NOT_FOUND,
                format!("Method not found: {other:?}; vAPI calls use \"invoke\"."),
                Some(id),
            ))
        }
        None => {
            return Err(ProtocolError::new(
                code::INVALID_REQUEST,
                "Invalid request: \"method\" is missing.",
                None,
            ))
        }
    }
    let invalid_params = |m: String| {
        ProtocolError::new(
            code::INVALID_PARAMS,
            format!("Invalid params: {m}"),
            Some(id),
        )
    };
    let params = envelope
        .params
        .ok_or_else(|| invalid_params("\"params\" is missing.".into()))?;
    let params: RawParams<'a> = serde_json::from_str(params.get())
        .map_err(|e| invalid_params(format!("\"params\" is not an invoke call's ({e}).")))?;
    finish(id, params, service_header, operation_header)
}

/// The call, once the envelope is known good: its parameters checked.
fn finish<'a>(
    id: &'a RawValue,
    params: RawParams<'a>,
    service_header: Option<&[u8]>,
    operation_header: Option<&[u8]>,
) -> Result<Call<'a>, ProtocolError> {
    let input = params.input.ok_or_else(|| {
        ProtocolError::new(
            code::INVALID_PARAMS,
            "Invalid params: \"params.input\" is missing.",
            Some(id),
        )
    })?;
    for (header, value, name) in [
        (service_header, &params.service, "vapi-service"),
        (operation_header, &params.operation, "vapi-operation"),
    ] {
        if let Some(h) = header {
            if h != value.as_bytes() {
                return Err(ProtocolError::new(
                    code::OPERATION_MISMATCH,
                    format!("The {name} header does not match the body's {value:?}."),
                    Some(id),
                ));
            }
        }
    }
    let security = match params.ctx.and_then(|c| c.security) {
        None => Security::None,
        Some(s) => match s.scheme.as_deref() {
            Some(USER_PASS_SCHEME) => Security::UserPass {
                user: s.user.unwrap_or_default(),
                password: s.password.unwrap_or_default(),
            },
            Some(SESSION_SCHEME) => Security::Session(s.session.unwrap_or_default()),
            Some(_) => Security::Other(s.scheme.unwrap_or_default()),
            // No scheme: a session id alone is still a session.
            None => s.session.map_or(Security::None, Security::Session),
        },
    };
    Ok(Call {
        id,
        service: params.service,
        operation: params.operation,
        input,
        security,
    })
}

/// JSON-RPC ids are strings or numbers.
fn is_id(id: &RawValue) -> bool {
    id.get()
        .starts_with(|c: char| c == '"' || c == '-' || c.is_ascii_digit())
}

/// The bytes before and after an answer value: `{"jsonrpc":"2.0","id":<id>,
/// "result":{"output":` or `..{"error":`, then `}}`. A cached value is sent between
/// them as it is.
pub fn answer_head(id: &RawValue, error: bool) -> Bytes {
    let id = id.get().as_bytes();
    let mut out = Vec::with_capacity(48 + id.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(if error {
        b",\"result\":{\"error\":"
    } else {
        b",\"result\":{\"output\":"
    });
    Bytes::from(out)
}

/// How a vCenter's successful answer to vcproxy's call (id `"0"`) starts when it
/// is written as the vAPI runtime writes it.
pub const OUTPUT_HEAD: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"0\",\"result\":{\"output\":";

/// What follows an answer value.
pub const ANSWER_TAIL: &[u8] = b"}}";

/// The start of a call vcproxy sends a vCenter, up to the session id: `input` is the
/// typed operation input. [`call_with_session`] completes it.
pub fn call_head(service: &str, operation: &str, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + input.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"invoke\",\"params\":{\"serviceId\":");
    write_json_str(&mut out, service);
    out.extend_from_slice(b",\"operationId\":");
    write_json_str(&mut out, operation);
    out.extend_from_slice(b",\"input\":");
    out.extend_from_slice(input);
    out.extend_from_slice(
        b",\"ctx\":{\"appCtx\":{\"opId\":\"vcproxy\"},\"securityCtx\":{\"schemeId\":\"",
    );
    out.extend_from_slice(SESSION_SCHEME.as_bytes());
    out.extend_from_slice(b"\",\"sessionId\":");
    out
}

/// A call started by [`call_head`], with the vCenter session `session` in its
/// security context.
pub fn call_with_session(head: &[u8], session: &str) -> Bytes {
    let mut out = Vec::with_capacity(head.len() + session.len() + 24);
    out.extend_from_slice(head);
    write_json_str(&mut out, session);
    out.extend_from_slice(b"}}},\"id\":\"0\"}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &[u8] = br#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"create","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"3d65b346-981c-45d9-97d7-e0b964211bb2"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.user_pass","userName":"administrator@vsphere.local","password":"VMware1!"}}},"id":"0"}"#;

    #[test]
    fn reads_the_sdks_log_in_as_captured() {
        let call = parse_call(LOGIN, Some(b"com.vmware.cis.session"), Some(b"create")).unwrap();
        assert_eq!(call.id.get(), r#""0""#);
        assert_eq!(call.service, "com.vmware.cis.session");
        assert_eq!(call.operation, "create");
        assert_eq!(call.input.get(), r#"{"STRUCTURE":{"operation-input":{}}}"#);
        assert_eq!(
            call.security,
            Security::UserPass {
                user: "administrator@vsphere.local".into(),
                password: "VMware1!".into()
            }
        );
    }

    #[test]
    fn bad_requests_get_the_codes_the_sdk_knows() {
        let code = |body: &[u8]| parse_call(body, None, None).unwrap_err().code;
        assert_eq!(code(b"{not json"), code::PARSE_ERROR);
        assert_eq!(code(b""), code::PARSE_ERROR);
        assert_eq!(code(b"[1]"), code::INVALID_REQUEST);
        assert_eq!(
            code(br#"{"method":"invoke","id":"1","params":{}}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"invoke","params":{}}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"x","id":7}"#),
            code::METHOD_NOT_FOUND
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"invoke","id":"1"}"#),
            code::INVALID_PARAMS
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","method":"invoke","id":"1","params":{"serviceId":1}}"#),
            code::INVALID_PARAMS
        );
        let mismatch = parse_call(LOGIN, Some(b"com.vmware.cis.tasks"), None).unwrap_err();
        assert_eq!(mismatch.code, code::OPERATION_MISMATCH);
        assert_eq!(mismatch.id.as_deref().map(RawValue::get), Some(r#""0""#));
        // The id is echoed where allowed, as written; never for -32600/-32700.
        let e = parse_call(br#"{"jsonrpc":"2.0","method":"x","id":7}"#, None, None).unwrap_err();
        assert_eq!(
            &e.body()[..],
            br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found: \"x\"; vAPI calls use \"invoke\"."}}"#
        );
        let e = parse_call(b"{", None, None).unwrap_err();
        assert!(e
            .body()
            .starts_with(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700"#));
    }

    #[test]
    fn answers_wrap_values_with_the_callers_id() {
        let id = RawValue::from_string(r#""12""#.into()).unwrap();
        let mut out = answer_head(&id, false).to_vec();
        out.extend_from_slice(b"null");
        out.extend_from_slice(ANSWER_TAIL);
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","id":"12","result":{"output":null}}"#
        );
        assert!(answer_head(&id, true).ends_with(br#""result":{"error":"#));
    }

    #[test]
    fn a_call_to_a_vcenter_is_valid_json_with_its_session() {
        let head = call_head(
            "com.vmware.cis.tasks",
            "get",
            br#"{"STRUCTURE":{"operation-input":{"task":"t","spec":{"OPTIONAL":null}}}}"#,
        );
        let body = call_with_session(&head, "s\"1");
        let call = parse_call(&body, None, None).unwrap();
        assert_eq!(call.security, Security::Session("s\"1".into()));
        assert_eq!(call.operation, "get");
    }
}
