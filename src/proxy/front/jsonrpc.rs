//! JSON-RPC on `POST /api`: the call read, dispatched to the same handlers as the
//! REST families, and their answer wrapped with the call's id.
//!
//! The session travels in the body's security context; a `vmware-api-session-id`
//! header, when sent, takes precedence (as in the vAPI runtime's own server).
//! Every answer is HTTP 200: the SDK raises on any other status before it reads a
//! body.

use crate::net::untrusted::Untrusted;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Response, StatusCode};

use super::{session, session_id, tasks, Fetching, Reply};
use crate::encoding::Accepted;
use crate::protocol::get_task::GetTask;
use crate::protocol::jsonrpc::envelope::{parse_call, ProtocolError, Security};
use crate::protocol::jsonrpc::{self, OPERATION_HEADER, SERVICE_HEADER};
use crate::protocol::{ErrorKind, Family, Operation, VapiError, JSON};
use crate::proxy::answer::Body;
use crate::proxy::sessions::Credentials;
use crate::proxy::state::{Generation, Proxy};

const RPC: Family = Family::JsonRpc;

pub(super) async fn serve(
    proxy: &Proxy,
    generation: &Generation,
    parts: &Parts,
    body: &Bytes,
) -> (&'static str, Response<Body>) {
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &http::HeaderValue| v.as_bytes())
    };
    let call = match parse_call(body, header(SERVICE_HEADER), header(OPERATION_HEADER)) {
        Ok(call) => call,
        Err(e) => return ("jsonrpc_invalid", protocol_error(&e)),
    };
    let session = session_id(&parts.headers).or(match &call.security {
        Security::Session(id) => Some(&**id),
        _ => None,
    });
    let operation = jsonrpc::operation(&call.service, &call.operation);
    let reply = match operation {
        None => {
            tracing::debug!(service = %Untrusted(&call.service), operation = %Untrusted(&call.operation), "no such operation; nothing forwarded");
            Reply::error(
                RPC,
                &VapiError::new(
                    ErrorKind::OperationNotFound,
                    "vcproxy.operation_not_found",
                    format!(
                        "vcproxy serves sessions, List Tasks and Get Task only; {} {} is not one of them.",
                        crate::protocol::filter::quote(&call.service),
                        crate::protocol::filter::quote(&call.operation)
                    ),
                ),
            )
        }
        Some(Operation::Login) => {
            let credentials = match &call.security {
                Security::UserPass { user, password } => {
                    Credentials::new(user.to_string(), password.to_string())
                }
                _ => None,
            };
            session::login(proxy, RPC, credentials).await
        }
        Some(Operation::WhoAmI) => session::whoami(proxy, RPC, session).await,
        Some(Operation::Logout) => session::logout(proxy, RPC, session).await,
        Some(Operation::ListTasks) => {
            let input = call.input.get().as_bytes();
            let how = Fetching::new(generation, &parts.headers);
            tasks::list(proxy, &how, RPC, session, None, input).await
        }
        Some(Operation::GetTask) => {
            let ask = GetTask::parse_jsonrpc(call.input.get());
            let how = Fetching::new(generation, &parts.headers);
            tasks::get(proxy, &how, RPC, session, ask).await
        }
    };
    let route = operation.map_or("not_found", Operation::name);
    let accepted = Accepted::from_headers(&parts.headers);
    let response = reply.answer.rpc_response(call.id, reply.outcome, accepted);
    reply.count(proxy, &response);
    (route, reply.tag(response))
}

/// A request that is not a JSON-RPC call: a top-level `error`, HTTP 200.
pub(super) fn protocol_error(e: &ProtocolError) -> Response<Body> {
    tracing::debug!(code = e.code, message = %Untrusted(&e.message), "not a JSON-RPC call");
    let mut r = Response::new(Body::full(e.body()));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}
