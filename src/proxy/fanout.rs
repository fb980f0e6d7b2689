//! One List Tasks question, asked of every vCenter at once, answered as one.
//!
//! Each vCenter gets one request in the client's family over its pooled connections,
//! concurrently, so a miss costs the slowest vCenter's latency plus the merge. When
//! every vCenter answers 200 the bodies are merged; otherwise a failing vCenter's own
//! status and body pass through byte for byte, chosen by precedence (400, 401, 403,
//! 404, other 4xx, 5xx; ties in configuration order) and named in `vcproxy-upstream`.
//! Failures with no vCenter answer (refused, reset, timeout, TLS, unreadable body)
//! become `service_unavailable` in the client's family, naming the vCenter.
//!
//! JSON-RPC clients are forwarded in JSON-RPC: each vCenter gets the call with its
//! pooled session in the security context, and the map entries of the answers are
//! merged as they came, so every task, opaque `result` and structure names
//! included, reaches the client byte for byte. A vAPI error in a JSON-RPC result
//! (HTTP 200) counts as a failure with the status its name stands for, and its
//! value passes through like any vCenter error.
//!
//! [`Fanout::ask`], one vCenter asked with the user's pooled session (logging in
//! again once on `unauthenticated`), also serves Get Task ([`super::lookup`]).
//! Merged lists teach [`super::owners`] which vCenter each task belongs to.

use crate::net::untrusted::Untrusted;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tracing::{debug, warn, Instrument};

use super::answer::{server_timing, Answer};
use super::failure::FailureBody;
use super::failure::{pick_failure, UpstreamFailure};
use super::metrics::Metrics;
use super::owners::TaskOwners;
use super::sessions::{Principal, Sessions};
use crate::auth::Secret;
use crate::net::trace_context::{TraceContext, TRACEPARENT};
use crate::protocol::filter::Resolved;
use crate::protocol::jsonrpc::envelope::OUTPUT_HEAD;
use crate::protocol::jsonrpc::{read_reply, Reply};
use crate::protocol::merge::{
    merge_parsed_into, MergeOptions, ParsedBody, StreamParser, UpstreamBody,
};
use crate::protocol::native::{self, Outcome as NativeOutcome, VcenterPart};
use crate::protocol::{Family, VapiError, JSON};
use crate::upstream::session_service::session_header;
use crate::upstream::{Backends, TransportError, UpstreamResponse, MAX_UPSTREAM_BODY};

/// How answers are merged.
#[derive(Debug, Clone, Copy, Default)]
pub struct FanoutSettings {
    pub merge: MergeOptions,
    /// Merge the vCenters that answered when others failed with 5xx or no answer.
    pub partial: bool,
}

impl From<&crate::config::Merge> for FanoutSettings {
    fn from(m: &crate::config::Merge) -> FanoutSettings {
        FanoutSettings {
            merge: MergeOptions {
                max_tasks: match m.on_too_many {
                    crate::config::OnTooMany::Error => Some(m.max_tasks),
                    crate::config::OnTooMany::ReturnAll => None,
                },
            },
            partial: m.partial,
        }
    }
}

/// One vCenter's part of a native answer: its answer read, or its failure's
/// status and body.
type EachOutcome = Result<(Bytes, ParsedBody), (u16, Bytes)>;

/// What one vCenter's task returns: its answer, or its index and why it failed.
type VcenterResult = Result<Answered, (usize, UpstreamFailure)>;

/// One vCenter's 200 answer, read.
struct Answered {
    /// The vCenter's index in the configuration.
    index: usize,
    body: Bytes,
    parsed: ParsedBody,
    /// From sending the request to the last byte of the answer (a re-login
    /// included).
    took: Duration,
}

/// Every vCenter's outcome, in configuration order, split.
#[derive(Default)]
struct Gathered {
    /// (index, body) of each vCenter that answered 200.
    answers: Vec<(usize, Bytes)>,
    /// Where each answer's tasks are, beside `answers`.
    parsed: Vec<ParsedBody>,
    /// (index, time) of each vCenter that answered 200.
    took: Vec<(usize, Duration)>,
    failures: Vec<UpstreamFailure>,
}

impl Gathered {
    fn new(results: Vec<VcenterResult>) -> Gathered {
        let mut g = Gathered {
            answers: Vec::with_capacity(results.len()),
            parsed: Vec::with_capacity(results.len()),
            took: Vec::with_capacity(results.len()),
            failures: Vec::new(),
        };
        for r in results {
            match r {
                Ok(a) => {
                    g.answers.push((a.index, a.body));
                    g.parsed.push(a.parsed);
                    g.took.push((a.index, a.took));
                }
                Err((_, f)) => g.failures.push(f),
            }
        }
        g
    }
}

/// What the gathered outcomes call for.
enum Verdict {
    /// Merge the answers; `partial` names the vCenters left out, for the
    /// `vcproxy-partial` header.
    Merge { partial: Option<HeaderValue> },
    /// Report this vCenter's failure.
    Fail(UpstreamFailure),
}

/// One vCenter's outcome, as its task returned it or, for a task that panicked
/// (the set is never aborted while joined, so only a panic is an error here), a 503
/// naming that vCenter: a bug in reading one answer fails that vCenter, not the
/// process, and there is no vCenter answer to pass through.
fn task_result<'a>(
    joined: Result<(TaskId, VcenterResult), JoinError>,
    index_of: &HashMap<TaskId, usize>,
    name_of: impl Fn(usize) -> &'a str,
) -> VcenterResult {
    match joined {
        Ok((_, r)) => r,
        Err(e) => {
            let i = index_of.get(&e.id()).copied().unwrap_or_default();
            let name = name_of(i);
            warn!(vcenter = %name, error = %Untrusted(&e), "reading the vCenter's answer failed");
            let e = VapiError::service_unavailable(format!(
                "vcproxy failed while reading vCenter {name}'s answer."
            ));
            Err((i, UpstreamFailure::proxy(name, e)))
        }
    }
}

/// What one vCenter is sent: the method, path and body (JSON-RPC: the call's head,
/// which each vCenter's session completes).
pub struct UpstreamCall<'a> {
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub body: Option<&'a Bytes>,
    /// The client's trace, continued ([`crate::net::trace_context`]).
    pub traceparent: Option<HeaderValue>,
}

impl<'a> From<&'a Resolved> for UpstreamCall<'a> {
    fn from(r: &'a Resolved) -> UpstreamCall<'a> {
        UpstreamCall {
            method: &r.method,
            path_and_query: &r.path_and_query,
            body: r.body.as_ref(),
            traceparent: None,
        }
    }
}

/// Asks every vCenter and merges.
pub struct Fanout {
    backends: Backends,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    owners: Arc<TaskOwners>,
    settings: FanoutSettings,
    /// Dropped with the fan-out: tells a reload that nothing asks the old vCenters
    /// any more (see [`Fanout::new`]).
    _alive: tokio::sync::oneshot::Sender<()>,
}

impl Fanout {
    pub fn new(
        backends: Backends,
        sessions: Arc<Sessions>,
        metrics: Arc<Metrics>,
        owners: Arc<TaskOwners>,
        settings: FanoutSettings,
    ) -> (Arc<Fanout>, tokio::sync::oneshot::Receiver<()>) {
        // The receiver completes when the last holder (the generation, Get Task's
        // lookup, fetches in flight, background refreshes) lets the fan-out go.
        let (alive, gone) = tokio::sync::oneshot::channel();
        let fanout = Arc::new(Fanout {
            backends,
            sessions,
            metrics,
            owners,
            settings,
            _alive: alive,
        });
        (fanout, gone)
    }

    /// The configured vCenters.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The answer to one List Tasks question: the merged list, or the failure to
    /// report.
    pub async fn list(
        self: &Arc<Self>,
        principal: Arc<Principal>,
        ask: &Arc<Resolved>,
        trace: Option<TraceContext>,
    ) -> Answer {
        let family = ask.family;
        if let Some(answer) = self.unserved(family) {
            return answer;
        }
        let all: Vec<usize> = (0..self.backends.len()).collect();
        let (results, out) = self
            .ask_all(principal, family, ask.clone(), trace, &all)
            .await;
        let mut gathered = Gathered::new(results);
        match self.verdict(&mut gathered) {
            Verdict::Merge { partial } => {
                let answer = self.merge(family, &gathered, partial, out);
                if answer.is_success() && self.owners.wanted() {
                    self.learn_owners(gathered);
                }
                answer
            }
            Verdict::Fail(failure) => failure.into_answer(family),
        }
    }

    /// The native API's answer (`/vcproxy/v1/tasks`): the vCenters `only` names
    /// (by index; every one when `None`) asked at once, and each one's tasks or
    /// failure reported on its own ([`crate::protocol::native`]). Only the task
    /// limit fails the whole answer, as it fails a merge.
    pub async fn each(
        self: &Arc<Self>,
        principal: Arc<Principal>,
        ask: &Arc<Resolved>,
        trace: Option<TraceContext>,
        only: Option<&[usize]>,
    ) -> Answer {
        let family = ask.family;
        let chosen: Vec<usize> = match only {
            Some(o) => o.to_vec(),
            None => (0..self.backends.len()).collect(),
        };
        let served: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&i| self.backends[i].serves(family))
            .collect();
        let (results, _) = self
            .ask_all(principal, family, ask.clone(), trace, &served)
            .await;
        let failed_body = |f: &UpstreamFailure| -> (u16, Bytes) {
            match &f.body {
                FailureBody::Answer { status, body, .. } => (status.as_u16(), body.clone()),
                FailureBody::Proxy(e) => (e.status().as_u16(), e.render(Family::Api)),
            }
        };
        let mut outcomes: Vec<(usize, EachOutcome)> = results
            .into_iter()
            .map(|r| match r {
                Ok(a) => (a.index, Ok((a.body, a.parsed))),
                Err((i, f)) => (i, Err(failed_body(&f))),
            })
            .collect();
        for &i in chosen.iter().filter(|i| !served.contains(i)) {
            let e = VapiError::not_found(format!(
                "vCenter {} does not serve the /{family} API family.",
                self.backends[i].name()
            ));
            outcomes.push((i, Err((e.status().as_u16(), e.render(Family::Api)))));
        }
        outcomes.sort_by_key(|(i, _)| chosen.iter().position(|c| c == i));
        let total: usize = outcomes
            .iter()
            .map(|(_, o)| o.as_ref().map_or(0, |(_, p)| p.len()))
            .sum();
        if let Some(max) = self.settings.merge.max_tasks.filter(|m| total > *m) {
            let e = crate::protocol::merge::MergeError::TooMany { count: total, max };
            return Answer::error(&e.to_vapi(), Family::Api);
        }
        let parts: Vec<VcenterPart<'_>> = outcomes
            .iter()
            .map(|(i, o)| VcenterPart {
                name: self.backends[*i].name(),
                outcome: match o {
                    Ok((body, parsed)) => NativeOutcome::Answered { body, parsed },
                    Err((status, body)) => NativeOutcome::Failed {
                        status: *status,
                        body,
                    },
                },
            })
            .collect();
        // A vCenter that failed (rather than refused or does not serve the family)
        // is asked again as soon as a failure would be.
        let failed = outcomes
            .iter()
            .any(|(_, o)| matches!(o, Err((status, _)) if *status >= 500));
        Answer {
            incomplete: failed,
            ..Answer::json(StatusCode::OK, Bytes::from(native::render(&parts)))
        }
    }

    /// Records which vCenter listed each task, off the answer's path.
    fn learn_owners(&self, g: Gathered) {
        let owners = self.owners.clone();
        tokio::spawn(async move {
            for ((index, body), parsed) in g.answers.iter().zip(&g.parsed) {
                owners.record(*index, parsed.ids(body));
            }
        });
    }

    /// A 404 naming the vCenters that do not serve `family`, if any: a merge
    /// without them would silently drop their tasks.
    fn unserved(&self, family: Family) -> Option<Answer> {
        let unserved: Vec<&str> = self
            .backends
            .iter()
            .filter(|b| !b.serves(family))
            .map(|b| b.name())
            .collect();
        let first = unserved.first()?;
        let e = VapiError::not_found(format!(
            "vCenter {} does not serve the /{family} API family; use the other one.",
            unserved.join(", ")
        ));
        Some(UpstreamFailure::proxy(first, e).into_answer(family))
    }

    /// Asks every vCenter in its own task and waits for all of them. Returns their
    /// outcomes in configuration order, and the merged answer's buffer, made and
    /// touched while the slowest vCenter was awaited.
    async fn ask_all(
        self: &Arc<Self>,
        principal: Arc<Principal>,
        family: Family,
        ask: Arc<Resolved>,
        trace: Option<TraceContext>,
        indices: &[usize],
    ) -> (Vec<VcenterResult>, Vec<u8>) {
        let count = indices.len();
        // One task per vCenter: reading a 1000-task answer is ~0.5 ms of CPU, and in
        // one task the answers of vCenters that land close together would be read
        // one after another; as tasks they are read on all worker threads at once.
        // The set aborts them if this fetch is dropped.
        let mut pending = JoinSet::new();
        let mut index_of = HashMap::with_capacity(count);
        for &i in indices {
            let (this, principal, ask) = (Arc::clone(self), principal.clone(), ask.clone());
            let task = async move { this.ask_and_read(&principal, i, family, &ask, trace).await };
            let handle = pending.spawn(task.in_current_span());
            index_of.insert(handle.id(), i);
        }
        let mut results = Vec::with_capacity(count);
        let mut out = Vec::new();
        while let Some(joined) = pending.join_next_with_id().await {
            let r = task_result(joined, &index_of, |i| self.backends[i].name());
            if let (Ok(Answered { body, .. }), false) = (&r, pending.is_empty()) {
                if out.capacity() == 0 {
                    out = prefaulted_buffer(body.len().saturating_mul(count));
                }
            }
            results.push(r);
        }
        // Back to configuration order: it decides ties between failures and
        // which copy of a duplicate task is kept.
        results.sort_by_key(|r| match r {
            Ok(Answered { index, .. }) | Err((index, _)) => *index,
        });
        (results, out)
    }

    /// Whether to merge: yes when every vCenter answered, or when a partial merge
    /// is allowed (partial mode, only outages, something answered); otherwise the
    /// failure to report.
    fn verdict(&self, g: &mut Gathered) -> Verdict {
        if g.failures.is_empty() {
            return Verdict::Merge { partial: None };
        }
        let all_outages = g.failures.iter().all(|f| f.status().is_server_error());
        if !(self.settings.partial && all_outages && !g.answers.is_empty()) {
            let failures = std::mem::take(&mut g.failures);
            return Verdict::Fail(pick_failure(failures).expect("failures is not empty"));
        }
        let names: Vec<&str> = g.failures.iter().map(|f| &*f.vcenter).collect();
        warn!(failed = %names.join(","), "answering with a partial merge");
        Verdict::Merge {
            partial: HeaderValue::from_str(&names.join(",")).ok(),
        }
    }

    /// Merges the answers into `out`: the merged list with its `Server-Timing`, or
    /// the task limit's error.
    fn merge(
        &self,
        family: Family,
        g: &Gathered,
        partial: Option<HeaderValue>,
        out: Vec<u8>,
    ) -> Answer {
        let inputs: Vec<UpstreamBody<'_>> = g
            .answers
            .iter()
            .map(|(i, body)| UpstreamBody {
                vcenter: self.backends[*i].name(),
                body,
            })
            .collect();
        let merge_started = Instant::now();
        match merge_parsed_into(family, &inputs, &g.parsed, &self.settings.merge, out) {
            Ok(merged) => {
                let merge_took = merge_started.elapsed();
                debug!(
                    tasks = merged.tasks,
                    bytes = merged.body.len(),
                    merge_us = merge_took.as_micros() as u64,
                    "merged"
                );
                for d in &merged.duplicates {
                    self.metrics.duplicate_tasks.inc();
                    debug!(
                        task = %d.task,
                        kept = inputs[d.kept].vcenter,
                        dropped = inputs[d.dropped].vcenter,
                        "task id reported by two vCenters"
                    );
                }
                let timing = server_timing(
                    g.took.iter().map(|(i, d)| (self.backends[*i].name(), *d)),
                    merge_took,
                );
                let spare = merged.body.capacity() - merged.body.len();
                Answer {
                    incomplete: partial.is_some(),
                    partial,
                    timing,
                    spare,
                    ..Answer::json(StatusCode::OK, Bytes::from(merged.body))
                }
            }
            // Bodies were read already; what is left to fail is the task limit.
            Err(e) => Answer {
                partial,
                ..Answer::error(&e.to_vapi(), family)
            },
        }
    }
    /// One vCenter's answer, asked for and read: the body and where its tasks are,
    /// or the failure to report, tagged with the vCenter's index.
    async fn ask_and_read(
        &self,
        principal: &Principal,
        i: usize,
        family: Family,
        ask: &Resolved,
        trace: Option<TraceContext>,
    ) -> Result<Answered, (usize, UpstreamFailure)> {
        // Read the answer as it arrives, chunk by chunk, while its own last bytes
        // and slower vCenters are still on the way: after the slowest one's last
        // byte only its last chunk, the merge's sort and its copy remain.
        let mut reader = StreamParser::new(family);
        let started = Instant::now();
        let call = UpstreamCall {
            traceparent: trace.map(|t| t.child()),
            ..ask.into()
        };
        let body = self
            .ask(principal, i, family, &call, &mut |received| {
                reader.feed(received)
            })
            .await
            .map_err(|f| (i, f))?;
        let took = started.elapsed();
        let name = self.backends[i].name();
        let input = UpstreamBody {
            vcenter: name,
            body: &body,
        };
        match reader.finish(input) {
            Ok(parsed) => Ok(Answered {
                index: i,
                body,
                parsed,
                took,
            }),
            Err(e) => {
                warn!(vcenter = %name, error = %Untrusted(&e), "unreadable List Tasks answer");
                self.metrics.upstream_error(name, "malformed");
                Err((i, UpstreamFailure::proxy(name, e.to_vapi())))
            }
        }
    }

    /// One vCenter, asked in `family`: send with the pooled session; on
    /// `unauthenticated` log in again once and retry. A 200 answer's body goes
    /// through `on_body` as it arrives; the body of a success is returned, anything
    /// else is the failure to report.
    pub async fn ask(
        &self,
        principal: &Principal,
        index: usize,
        family: Family,
        call: &UpstreamCall<'_>,
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<Bytes, UpstreamFailure> {
        let backend = &self.backends[index];
        let name = backend.name();
        let mut session = principal.backend_session(backend.id).await;
        let mut retried = false;
        loop {
            let header = session.as_ref().and_then(|s| Some((s, session_header(s)?)));
            let response = match header {
                Some((secret, header)) => {
                    let body = family.upstream_body(call.body, secret.expose());
                    let mut headers = vec![header];
                    if let Some(t) = &call.traceparent {
                        headers.push((http::HeaderName::from_static(TRACEPARENT), t.clone()));
                    }
                    let r = self.send(index, call, body, &headers, on_body).await?;
                    rpc_result(family, r)
                }
                // No session (a re-login failed earlier, or a reload added this
                // vCenter): try to log in first.
                None => UpstreamResponse {
                    status: StatusCode::UNAUTHORIZED,
                    content_type: Some(JSON),
                    body: VapiError::unauthenticated().render(family),
                },
            };
            if response.status == StatusCode::OK {
                return Ok(response.body);
            }
            if response.status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                let stale = session.clone().unwrap_or_else(|| Secret::new(""));
                match self
                    .sessions
                    .relogin(principal, backend, &stale, family)
                    .await?
                {
                    Some(fresh) => {
                        debug!(vcenter = %name, "vCenter session expired; logged in again");
                        session = Some(fresh);
                        continue;
                    }
                    None => return Err(UpstreamFailure::answer(name, response)),
                }
            }
            return Err(UpstreamFailure::answer(name, response));
        }
    }

    async fn send(
        &self,
        index: usize,
        call: &UpstreamCall<'_>,
        body: Option<Bytes>,
        headers: &[(http::HeaderName, HeaderValue)],
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        let upstream = &self.backends[index].upstream;
        let name = upstream.name();
        let started = Instant::now();
        match upstream
            .send_observed(
                call.method.clone(),
                call.path_and_query,
                headers,
                body,
                on_body,
            )
            .await
        {
            Ok(r) => {
                let elapsed = started.elapsed();
                self.metrics
                    .upstream_answer(name, r.status.as_u16(), elapsed);
                debug!(
                    vcenter = %name,
                    status = r.status.as_u16(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    bytes = r.body.len(),
                    "upstream answered"
                );
                Ok(r)
            }
            Err(e) => {
                let kind = match e {
                    TransportError::Connect(_) => "connect",
                    TransportError::Timeout(_) => "timeout",
                    TransportError::Body(_) => "body",
                    TransportError::Request(_) | TransportError::Uri(_) => "request",
                };
                self.metrics.upstream_error(name, kind);
                warn!(vcenter = %name, error = %Untrusted(&e), elapsed_ms = started.elapsed().as_millis() as u64, "upstream failed");
                Err(UpstreamFailure::transport(name, &e))
            }
        }
    }
}

/// A vCenter's answer to a JSON-RPC call, as the REST families would have it: a vAPI
/// error in the result (HTTP 200) becomes that error's status with the error value
/// as the body. An answer that starts as a success does not need reading here.
fn rpc_result(family: Family, r: UpstreamResponse) -> UpstreamResponse {
    if family != Family::JsonRpc || r.status != StatusCode::OK || r.body.starts_with(OUTPUT_HEAD) {
        return r;
    }
    let error = match read_reply(&r.body) {
        Ok(Reply::Error { status, value, .. }) => Some((status, value.get().as_bytes())),
        _ => None,
    };
    match error {
        Some((status, value)) => UpstreamResponse {
            status,
            content_type: Some(JSON),
            body: r.body.slice_ref(value),
        },
        // A success in another member order, or not JSON-RPC at all: reading the
        // body as a whole decides.
        None => r,
    }
}

/// The merged answer's buffer, made once the first answer is in and others are
/// still coming, sized like that answer times the vCenters, with a byte of each page
/// touched: its page faults are paid while the slowest vCenter is awaited rather
/// than after it (without writing the whole buffer, which would take CPU from
/// reading the answers still arriving).
fn prefaulted_buffer(estimate: usize) -> Vec<u8> {
    let estimate = estimate / 8 * 9 + 4096;
    let mut out = Vec::with_capacity(estimate.min(MAX_UPSTREAM_BODY));
    for byte in out.spare_capacity_mut().iter_mut().step_by(4096) {
        byte.write(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_vcenter_task_that_panics_becomes_that_vcenters_503() {
        let mut set = JoinSet::new();
        let mut index_of = HashMap::new();
        let returns =
            set.spawn(async { Err::<Answered, _>((0, UpstreamFailure::with_status("vc1", 404))) });
        index_of.insert(returns.id(), 0);
        let panics = set.spawn(async {
            if std::hint::black_box(true) {
                panic!("a bug while reading");
            }
            Err::<Answered, _>((1, UpstreamFailure::with_status("vc2", 404)))
        });
        index_of.insert(panics.id(), 1);
        let names = ["vc1", "vc2"];
        let mut seen = Vec::new();
        while let Some(joined) = set.join_next_with_id().await {
            match task_result(joined, &index_of, |i| names[i]) {
                Err((i, f)) => seen.push((i, f.vcenter.to_string(), f.into_answer(Family::Rest))),
                Ok(_) => panic!("no task answered"),
            }
        }
        seen.sort_by_key(|s| s.0);
        // The task that returned is unchanged; the one that panicked is a 503 in the
        // client's family naming its vCenter.
        assert_eq!(
            (seen[0].0, seen[0].1.as_str(), seen[0].2.status.as_u16()),
            (0, "vc1", 404)
        );
        let (i, vc, entry) = &seen[1];
        assert_eq!((*i, vc.as_str(), entry.status.as_u16()), (1, "vc2", 503));
        let v: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(v["type"], "com.vmware.vapi.std.errors.service_unavailable");
        assert!(v["value"]["messages"][0]["default_message"]
            .as_str()
            .unwrap()
            .contains("vCenter vc2's answer"));
        assert_eq!(entry.upstream.as_ref().unwrap(), "vc2");
    }
}
