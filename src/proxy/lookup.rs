//! Get Task: one task, from the vCenter that has it.
//!
//! A task id names its service, not its vCenter. When a List Tasks answer showed
//! which vCenter listed the task ([`super::owners`]), that vCenter alone is asked;
//! otherwise (or when it no longer has the task) every vCenter serving the client's
//! protocol is asked at once and the first success wins, the others being
//! abandoned. The answer names its vCenter in `vcproxy-upstream`.
//!
//! When no vCenter has it: if every one answered `not_found`, the first one's (in
//! configuration order) passes through; otherwise the failures other than
//! `not_found` decide by the usual precedence ([`super::failure`]), since a vCenter
//! that could not answer might hold the task.

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{debug, Instrument};

use super::answer::Answer;
use super::failure::{pick_failure, UpstreamFailure};
use super::fanout::{Fanout, UpstreamCall};
use super::owners::TaskOwners;
use super::sessions::Principal;
use crate::net::trace_context::TraceContext;
use crate::protocol::get_task::ResolvedGet;
use crate::protocol::jsonrpc::{read_reply, Reply};
use crate::protocol::{Family, VapiError};

pub struct Lookup {
    fanout: Arc<Fanout>,
    owners: Arc<TaskOwners>,
}

impl Lookup {
    pub fn new(fanout: Arc<Fanout>, owners: Arc<TaskOwners>) -> Arc<Lookup> {
        Arc::new(Lookup { fanout, owners })
    }

    /// The answer to one Get Task question: the task's Info, or the failure to
    /// report.
    pub async fn get(
        self: &Arc<Self>,
        principal: Arc<Principal>,
        ask: &Arc<ResolvedGet>,
        trace: Option<TraceContext>,
    ) -> Answer {
        let family = ask.family;
        let backends = self.fanout.backends();
        let served: Vec<usize> = (0..backends.len())
            .filter(|&i| backends[i].serves(family))
            .collect();
        let Some(&first) = served.first() else {
            let e = VapiError::not_found(format!(
                "No vCenter serves the {family} protocol, so no task can be looked up in it."
            ));
            return Answer::error(&e, family);
        };
        let mut failures = Vec::new();
        if let Some(owner) = self.owners.owner(&ask.task).filter(|i| served.contains(i)) {
            self.fanout.metrics().task_lookup("owner");
            match self.ask_one(&principal, owner, ask, trace).await {
                Ok(answer) => return answer,
                Err(f) if f.status() == StatusCode::NOT_FOUND => {
                    debug!(vcenter = %f.vcenter, "the task's vCenter no longer has it; asking all");
                    failures.push((owner, f));
                }
                Err(f) => return f.into_answer(family),
            }
        }
        self.fanout.metrics().task_lookup("all");
        let mut pending = JoinSet::new();
        for &i in served
            .iter()
            .filter(|&&i| failures.iter().all(|(o, _)| *o != i))
        {
            let (this, principal, ask) = (self.clone(), principal.clone(), ask.clone());
            pending.spawn(
                async move { (i, this.ask_one(&principal, i, &ask, trace).await) }
                    .in_current_span(),
            );
        }
        while let Some(joined) = pending.join_next().await {
            match joined {
                Ok((i, Ok(answer))) => {
                    self.owners.record(i, [&*ask.task]);
                    return answer;
                }
                Ok((i, Err(f))) => failures.push((i, f)),
                Err(e) => {
                    // A panic while reading one answer fails the lookup, not the process.
                    let name = backends[first].name();
                    let e = VapiError::service_unavailable(format!(
                        "vcproxy failed while looking the task up: {e}"
                    ));
                    failures.push((usize::MAX, UpstreamFailure::proxy(name, e)));
                }
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        let not_found = |f: &UpstreamFailure| f.status() == StatusCode::NOT_FOUND;
        let failure = if failures.iter().all(|(_, f)| not_found(f)) {
            failures.into_iter().next().map(|(_, f)| f)
        } else {
            pick_failure(
                failures
                    .into_iter()
                    .map(|(_, f)| f)
                    .filter(|f| !not_found(f))
                    .collect(),
            )
        };
        match failure {
            Some(f) => f.into_answer(family),
            None => Answer::error(&VapiError::not_found("The task was not found."), family),
        }
    }

    /// Asks vCenter `index`: its answer, naming it, or its failure.
    async fn ask_one(
        &self,
        principal: &Principal,
        index: usize,
        ask: &ResolvedGet,
        trace: Option<TraceContext>,
    ) -> Result<Answer, UpstreamFailure> {
        let call = UpstreamCall {
            method: &ask.method,
            path_and_query: &ask.path_and_query,
            body: ask.body.as_ref(),
            traceparent: trace.map(|t| t.child()),
        };
        let body = self
            .fanout
            .ask(principal, index, ask.family, &call, &mut |_| {})
            .await?;
        let name = self.fanout.backends()[index].name();
        let body = match ask.family {
            Family::JsonRpc => output_of(&body).ok_or_else(|| {
                self.fanout.metrics().upstream_error(name, "malformed");
                UpstreamFailure::proxy(
                    name,
                    VapiError::service_unavailable(format!(
                        "vCenter {name} sent a Get Task answer that is not a JSON-RPC result."
                    )),
                )
            })?,
            Family::Rest | Family::Api => body,
        };
        Ok(Answer {
            upstream: HeaderValue::from_str(name).ok(),
            ..Answer::json(StatusCode::OK, body)
        })
    }
}

/// The `output` of a JSON-RPC answer, sharing its buffer.
fn output_of(body: &Bytes) -> Option<Bytes> {
    match read_reply(body) {
        Ok(Reply::Output(o)) => Some(body.slice_ref(o.get().as_bytes())),
        _ => None,
    }
}
