//! vAPI JSON-RPC 2.0 on `POST /api`, as a vCenter answers the official SDK
//! (`JSONRPC-NOTES.md` in the vSphere notes): `com.vmware.cis.session` `create`,
//! `get`, `delete` and `com.vmware.cis.tasks` `list`, `get`.
//!
//! * Every answer is HTTP 200 (except the injected non-JSON 500 and cut-short
//!   answers), members in the order `jsonrpc`, `id`, `result`, the request's `id`
//!   echoed as the same JSON value: `{"jsonrpc":"2.0","id":<id>,"result":{"output":..}}`,
//!   or `..{"error":{"ERROR":{"com.vmware.vapi.std.errors.<name>":{..}}}}}` for a vAPI
//!   error.
//! * A request that is not an `invoke` call gets a top-level JSON-RPC `error`
//!   (-32700 not JSON, -32600 not a request, -32601 another method, -32602 bad
//!   params, -31001 `vapi-service`/`vapi-operation` headers that disagree with the
//!   body); a service or operation the simulator does not serve is the vAPI error
//!   `operation_not_found`.
//! * Sessions are the REST families' (one store): a call's session is
//!   `params.ctx.securityCtx.sessionId`, or the `vmware-api-session-id` header,
//!   which, when sent, replaces the body's security context as the vAPI server
//!   does (so a log-in that sends it is a session, not credentials, and is
//!   refused). A log-in takes `user_pass` credentials from the security context.
//! * The session is checked before the input, as in the REST families.
//! * List Tasks' typed input is unwrapped into the `/api` body it equals and
//!   answered by the same query semantics; the output is a map of task id to Info
//!   as map entries ([`super::typed`]).
//!
//! A call is counted (under its operation's endpoint, `jsonrpc` family) once its
//! body is read, since the body names the operation; then faults apply as to the
//! other families, `error_rate` answering a `service_unavailable` `result.error`.

use super::faults::SimBody;
use super::model::iso8601;
use super::query;
use super::routes::{
    faulted, json, read_body, session_by_id, shorten, visible_task, Hangup, SimState,
};
use super::sessions::{Session, UserSpec};
use super::stats::Endpoint;
use super::typed;
use crate::protocol::error::{ErrorKind, VapiError};
use crate::protocol::filter::ListRequest;
use crate::protocol::get_task::GetTask;
use crate::protocol::jsonrpc::envelope::{self, code, Call, ProtocolError, Security};
use crate::protocol::jsonrpc::{self as rpc, OPERATION_HEADER, SERVICE_HEADER};
use crate::protocol::{Family, Operation, SESSION_HEADER};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Answers one JSON-RPC call.
pub(super) async fn serve(
    state: Arc<SimState>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Hangup> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let body = read_body(body, headers, state.limits.max_body_bytes).await;
    let call = match &body {
        Ok(body) => envelope::parse_call(
            body,
            headers.get(SERVICE_HEADER).map(|v| v.as_bytes()),
            headers.get(OPERATION_HEADER).map(|v| v.as_bytes()),
        ),
        Err(e) => Err(ProtocolError {
            code: code::INVALID_REQUEST,
            message: format!("Invalid request: {}", e.message),
            id: None,
        }),
    };
    let op = call
        .as_ref()
        .ok()
        .and_then(|c| rpc::operation(&c.service, &c.operation));
    let id = call.as_ref().ok().map(|c| c.id);
    faulted(
        &state,
        Family::JsonRpc,
        endpoint(op),
        |e| answer(id, Err(e)),
        async {
            match &call {
                Ok(call) => {
                    let result = invoke(&state, headers, call, op);
                    if let Err(e) = &result {
                        tracing::debug!(service = %call.service, operation = %call.operation,
                            error = %e, "JSON-RPC call failed");
                    }
                    answer(Some(call.id), result.as_ref())
                }
                Err(e) => {
                    tracing::debug!(code = e.code, message = %e.message, "JSON-RPC protocol error");
                    json(StatusCode::OK, e.body())
                }
            }
        },
    )
    .await
}

/// The endpoint a call is counted under (and faults are scoped by).
fn endpoint(op: Option<Operation>) -> Endpoint {
    match op {
        Some(Operation::Login) => Endpoint::SessionCreate,
        Some(Operation::WhoAmI) => Endpoint::SessionGet,
        Some(Operation::Logout) => Endpoint::SessionDelete,
        Some(Operation::ListTasks) => Endpoint::TasksList,
        Some(Operation::GetTask) => Endpoint::TasksGet,
        None => Endpoint::Other,
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result":{"output":<value>}}` or, for an error,
/// `..{"error":<error value>}}`; `id` is `null` only when the call could not be read.
fn answer(id: Option<&RawValue>, result: Result<&Bytes, &VapiError>) -> Response<SimBody> {
    let error;
    let (member, value): (&[u8], &[u8]) = match result {
        Ok(output) => (b"output", output),
        Err(e) => {
            error = rpc::error_body(e);
            (b"error", &error)
        }
    };
    let id = id.map_or("null", RawValue::get).as_bytes();
    let mut out = Vec::with_capacity(40 + id.len() + value.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":{\"");
    out.extend_from_slice(member);
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value);
    out.extend_from_slice(b"}}");
    json(StatusCode::OK, Bytes::from(out))
}

/// Runs the call's operation: its output value, or the vAPI error.
fn invoke(
    state: &SimState,
    headers: &HeaderMap,
    call: &Call<'_>,
    op: Option<Operation>,
) -> Result<Bytes, VapiError> {
    let Some(op) = op else {
        return Err(operation_not_found(call));
    };
    match op {
        Operation::Login => login(state, headers, call),
        Operation::WhoAmI => {
            let (user, session, _) = caller(state, headers, call)?;
            no_input(call)?;
            Ok(who_am_i(user, &session))
        }
        Operation::Logout => {
            let (_, _, id) = caller(state, headers, call)?;
            no_input(call)?;
            if !state.sessions.delete(id.trim()) {
                return Err(VapiError::unauthenticated());
            }
            tracing::info!(family = %Family::JsonRpc, "session deleted");
            Ok(Bytes::from_static(rpc::VOID))
        }
        Operation::ListTasks => {
            let (user, _, _) = caller(state, headers, call)?;
            list(state, user, call)
        }
        Operation::GetTask => {
            let (user, _, _) = caller(state, headers, call)?;
            get(state, user, call)
        }
    }
}

/// The session id a call carries: the `vmware-api-session-id` header when sent
/// (a header that is not text names no session), else the body's `session_id`
/// security context.
fn session_id<'a>(headers: &'a HeaderMap, call: &'a Call<'_>) -> Option<&'a str> {
    match headers.get(SESSION_HEADER) {
        Some(h) => h.to_str().ok(),
        None => match &call.security {
            Security::Session(id) => Some(id),
            _ => None,
        },
    }
}

/// The caller's user, session and session id.
fn caller<'s, 'a>(
    state: &'s SimState,
    headers: &'a HeaderMap,
    call: &'a Call<'_>,
) -> Result<(&'s UserSpec, Session, &'a str), VapiError> {
    let id = session_id(headers, call);
    let (user, session) = session_by_id(state, id)?;
    Ok((user, session, id.unwrap_or_default()))
}

/// Refuses any parameter: the session operations take none.
fn no_input(call: &Call<'_>) -> Result<(), VapiError> {
    let fields = rpc::typed::operation_input(call.input.get())?;
    match fields.keys().next() {
        None => Ok(()),
        Some(name) => Err(VapiError::new(
            ErrorKind::InvalidArgument,
            "vapi.bindings.typeconverter.unexpected.param",
            format!(
                "Unexpected parameter {} for {} {}: it takes none.",
                shorten(name),
                call.service,
                call.operation
            ),
        )),
    }
}

fn login(state: &SimState, headers: &HeaderMap, call: &Call<'_>) -> Result<Bytes, VapiError> {
    let (name, password) = match (headers.get(SESSION_HEADER), &call.security) {
        (None, Security::UserPass { user, password }) => (user, password),
        _ => return Err(VapiError::unauthenticated()),
    };
    let user = state.authenticate(name, password).ok_or_else(|| {
        tracing::info!(user = ?name, family = %Family::JsonRpc, "log-in refused");
        VapiError::unauthenticated()
    })?;
    no_input(call)?;
    let id = state.sessions.create(user).ok_or_else(|| {
        VapiError::service_unavailable("No randomness available to create a session.")
    })?;
    tracing::info!(user = %name, family = %Family::JsonRpc, "session created");
    Ok(rpc::login_answer(&id).1)
}

fn who_am_i(user: &UserSpec, s: &Session) -> Bytes {
    Bytes::from(rpc::session_info(
        &user.name,
        &iso8601(s.created_ms),
        &iso8601(s.last_accessed_ms),
    ))
}

fn list(state: &SimState, user: &UserSpec, call: &Call<'_>) -> Result<Bytes, VapiError> {
    let input = call.input.get().as_bytes();
    let request = ListRequest::parse(Family::JsonRpc, None, input, &state.limits)?;
    let q = &request.query;
    let now = state.clock.now();
    // The key starts with the family: apart from the same question's /api answer.
    let memo_key = (user.name.clone(), request.key());
    if let Some((at, output)) = state.answers.get(&memo_key) {
        if at == now {
            return Ok(output);
        }
    }
    let found = query::list(&state.tasks, now, user, q)?;
    let mut out = Vec::with_capacity(2048 * found.len() + 2);
    typed::task_map(
        &mut out,
        found.iter().map(|t| (t.id.as_str(), t.info_at(now))),
        q.result.exclude_result == Some(true),
    );
    let output = Bytes::from(out);
    state.answers.insert(memo_key, (now, output.clone()));
    Ok(output)
}

fn get(state: &SimState, user: &UserSpec, call: &Call<'_>) -> Result<Bytes, VapiError> {
    let q = GetTask::parse_jsonrpc(call.input.get())?;
    let task = visible_task(state, user, &q.task)?;
    let mut out = Vec::with_capacity(2048);
    typed::info(
        &mut out,
        &task.info_at(state.clock.now()),
        q.spec.exclude_result == Some(true),
    );
    Ok(Bytes::from(out))
}

/// What a vAPI server answers a call to an interface or method it does not have.
fn operation_not_found(call: &Call<'_>) -> VapiError {
    let (service, operation) = (shorten(&call.service), shorten(&call.operation));
    if matches!(service, rpc::SESSION_SERVICE | rpc::TASKS_SERVICE) {
        VapiError::new(
            ErrorKind::OperationNotFound,
            "vapi.method.input.invalid.method",
            format!("Operation {operation:?} of service {service} was not found."),
        )
    } else {
        VapiError::new(
            ErrorKind::OperationNotFound,
            "vapi.method.input.invalid.interface",
            format!("Service {service:?} was not found."),
        )
    }
}
