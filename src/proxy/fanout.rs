//! One List Tasks question, asked of every vCenter at once, answered as one.
//!
//! Each vCenter gets one request in the client's family over its pooled connections,
//! concurrently, so a miss costs the slowest vCenter's latency plus the merge. When
//! every vCenter answers 200 the bodies are merged; otherwise a failing vCenter's own
//! status and body pass through byte for byte, chosen by precedence (400, 401, 403,
//! 404, other 4xx, 5xx; ties in configuration order) and named in `vcproxy-upstream`.
//! Failures with no vCenter answer (refused, reset, timeout, TLS, unreadable body)
//! become `service_unavailable` in the client's family, naming the vCenter.

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tracing::{debug, warn, Instrument};

use crate::auth::Secret;
use crate::protocol::error::{Family, VapiError};
use crate::protocol::filter::ListRequest;
use crate::protocol::merge::{
    merge_parsed_into, MergeOptions, ParsedBody, StreamParser, UpstreamBody,
};
use crate::proxy::cache::{Entry, Fetched};
use crate::proxy::metrics::Metrics;
use crate::proxy::sessions::{Principal, Sessions, SESSION_HEADER};
use crate::upstream::{TransportError, UpstreamResponse};

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Why one vCenter gave no usable answer.
#[derive(Debug, Clone)]
pub enum FailureBody {
    /// The vCenter's own answer: passes through unchanged.
    Answer {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// No answer to pass through: the proxy renders this error in the client's family.
    Proxy(VapiError),
}

#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    pub vcenter: Arc<str>,
    pub body: FailureBody,
}

impl UpstreamFailure {
    pub fn answer(vcenter: &str, response: UpstreamResponse) -> Self {
        UpstreamFailure {
            vcenter: vcenter.into(),
            body: FailureBody::Answer {
                status: response.status,
                content_type: response.content_type,
                body: response.body,
            },
        }
    }

    pub fn transport(vcenter: &str, error: &TransportError) -> Self {
        Self::proxy(
            vcenter,
            VapiError::service_unavailable(format!("vCenter {vcenter} gave no answer: {error}")),
        )
    }

    pub fn proxy(vcenter: &str, error: VapiError) -> Self {
        UpstreamFailure {
            vcenter: vcenter.into(),
            body: FailureBody::Proxy(error),
        }
    }

    pub fn status(&self) -> StatusCode {
        match &self.body {
            FailureBody::Answer { status, .. } => *status,
            FailureBody::Proxy(e) => e.status(),
        }
    }

    /// The response the client gets, in `family` when the proxy renders it.
    pub fn into_entry(self, family: Family) -> Entry {
        let (status, content_type, body) = match self.body {
            FailureBody::Answer {
                status,
                content_type,
                body,
            } => (status, content_type.unwrap_or(JSON), body),
            FailureBody::Proxy(e) => (e.status(), JSON, e.render(family)),
        };
        Entry {
            status,
            content_type,
            body,
            upstream: HeaderValue::from_str(&self.vcenter).ok(),
            partial: None,
            timing: None,
            spare: 0,
            created: Instant::now(),
        }
    }

    /// Sorts the failure for caching: 401 and 403 are about one session and never
    /// shared; 5xx are outages that stale-if-error may cover; the rest are answers.
    pub fn into_fetched(self, family: Family) -> Fetched {
        let status = self.status();
        let entry = self.into_entry(family);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Fetched::Private(entry)
        } else if status.is_server_error() {
            Fetched::Failure(entry)
        } else {
            Fetched::Answer(entry)
        }
    }
}

/// The request every vCenter is sent for one List Tasks question.
struct Ask {
    method: http::Method,
    path: String,
    body: Option<Bytes>,
}

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
            warn!(vcenter = %name, error = %e, "reading the vCenter's answer failed");
            let e = VapiError::service_unavailable(format!(
                "vcproxy failed while reading vCenter {name}'s answer."
            ));
            Err((i, UpstreamFailure::proxy(name, e)))
        }
    }
}

/// A `Server-Timing` value (W3C Server Timing) for a merged answer: each vCenter's
/// time, then the merge's, in milliseconds, e.g.
/// `vcenter;desc=vc1;dur=54.12, vcenter;desc=vc2;dur=55.30, merge;dur=0.33`.
/// Operators see which vCenter held an answer up; the load benchmark compares the
/// proxy's answer with its slowest vCenter's on the same request. vCenter names are
/// tokens (checked when the configuration is read), so they need no quoting.
fn server_timing<'a>(
    vcenters: impl Iterator<Item = (&'a str, Duration)>,
    merge: Duration,
) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut value = String::new();
    for (name, took) in vcenters {
        let _ = write!(value, "vcenter;desc={name};dur={:.2}, ", ms(took));
    }
    let _ = write!(value, "merge;dur={:.2}", ms(merge));
    HeaderValue::from_str(&value).ok()
}

/// Precedence among failures: the client learns first what it can fix itself.
fn rank(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 0,
        401 => 1,
        403 => 2,
        404 => 3,
        402..=499 => 4,
        500..=599 => 5,
        _ => 6,
    }
}

/// The failure to report, from failures in configuration order.
pub fn pick_failure(failures: Vec<UpstreamFailure>) -> Option<UpstreamFailure> {
    // min_by_key keeps the first of equal keys: ties go to configuration order.
    failures.into_iter().min_by_key(|f| rank(f.status()))
}

/// Asks every vCenter and merges.
pub struct Fanout {
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<Metrics>,
    pub merge: MergeOptions,
    /// Merge the vCenters that answered when others failed with 5xx or no answer.
    pub partial: bool,
}

impl Fanout {
    pub async fn list(self: &Arc<Self>, principal: Arc<Principal>, list: &ListRequest) -> Fetched {
        let family = list.family;
        let backends = self.sessions.backends();
        let unserved: Vec<&str> = backends
            .iter()
            .filter(|b| !b.families.is_empty() && !b.families.contains(&family))
            .map(|b| b.upstream.name())
            .collect();
        if !unserved.is_empty() {
            let e = VapiError::not_found(format!(
                "vCenter {} does not serve the /{family} API family; use the other one.",
                unserved.join(", ")
            ));
            return Fetched::Answer(UpstreamFailure::proxy(unserved[0], e).into_entry(family));
        }

        let request = list.upstream();
        let ask = Arc::new(Ask {
            method: request.method,
            path: request.path_and_query,
            body: request.body.map(Bytes::from),
        });
        // One task per vCenter: reading a 1000-task answer is ~0.5 ms of CPU, and in
        // one task the answers of vCenters that land close together would be read
        // one after another; as tasks they are read on all worker threads at once.
        // The set aborts them if this fetch is dropped.
        let mut pending = JoinSet::new();
        let mut index_of = HashMap::with_capacity(backends.len());
        for i in 0..backends.len() {
            let (this, principal, ask) = (Arc::clone(self), principal.clone(), ask.clone());
            let task = async move { this.ask_and_read(&principal, i, family, &ask).await };
            let handle = pending.spawn(task.in_current_span());
            index_of.insert(handle.id(), i);
        }
        let mut results = Vec::with_capacity(backends.len());
        let mut out = Vec::new();
        while let Some(joined) = pending.join_next_with_id().await {
            let r = task_result(joined, &index_of, |i| backends[i].upstream.name());
            if let (Ok(Answered { body, .. }), false) = (&r, pending.is_empty()) {
                if out.capacity() == 0 {
                    // The first answer is in and others are still coming: make the
                    // merged answer's buffer now, sized like this answer times the
                    // vCenters, and touch a byte of each page, so its page faults
                    // are paid while we wait rather than after the slowest vCenter
                    // (without writing the whole buffer, which would take CPU from
                    // reading the answers still arriving).
                    let estimate = body.len().saturating_mul(backends.len()) / 8 * 9 + 4096;
                    out.reserve_exact(estimate.min(crate::upstream::MAX_UPSTREAM_BODY));
                    for byte in out.spare_capacity_mut().iter_mut().step_by(4096) {
                        byte.write(0);
                    }
                }
            }
            results.push(r);
        }
        // Back to configuration order: it decides ties between failures and
        // which copy of a duplicate task is kept.
        results.sort_by_key(|r| match r {
            Ok(Answered { index, .. }) | Err((index, _)) => *index,
        });

        let mut answers = Vec::with_capacity(results.len());
        let mut parsed: Vec<ParsedBody> = Vec::with_capacity(results.len());
        let mut took = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok(a) => {
                    answers.push((a.index, a.body));
                    parsed.push(a.parsed);
                    took.push((a.index, a.took));
                }
                Err((_, f)) => failures.push(f),
            }
        }

        let mut partial = None;
        if !failures.is_empty() {
            let all_outages = failures.iter().all(|f| f.status().is_server_error());
            if !(self.partial && all_outages && !answers.is_empty()) {
                let chosen = pick_failure(failures).expect("failures is not empty");
                return chosen.into_fetched(family);
            }
            let names: Vec<&str> = failures.iter().map(|f| &*f.vcenter).collect();
            warn!(failed = %names.join(","), "answering with a partial merge");
            partial = HeaderValue::from_str(&names.join(",")).ok();
        }

        let inputs: Vec<UpstreamBody<'_>> = answers
            .iter()
            .map(|(i, body)| UpstreamBody {
                vcenter: backends[*i].upstream.name(),
                body,
            })
            .collect();
        let merge_started = Instant::now();
        match merge_parsed_into(family, &inputs, &parsed, &self.merge, out) {
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
                    took.iter().map(|(i, d)| (backends[*i].upstream.name(), *d)),
                    merge_took,
                );
                let spare = merged.body.capacity() - merged.body.len();
                Fetched::Answer(Entry {
                    partial,
                    timing,
                    spare,
                    ..Entry::json(StatusCode::OK, Bytes::from(merged.body))
                })
            }
            // Bodies were read above; what is left to fail is the task limit.
            Err(e) => Fetched::Answer(Entry {
                partial,
                ..Entry::error(&e.to_vapi(), family)
            }),
        }
    }

    /// One vCenter's answer, asked for and read: the body and where its tasks are,
    /// or the failure to report, tagged with the vCenter's index.
    async fn ask_and_read(
        &self,
        principal: &Principal,
        i: usize,
        family: Family,
        ask: &Ask,
    ) -> Result<Answered, (usize, UpstreamFailure)> {
        // Read the answer as it arrives, chunk by chunk, while its own last bytes
        // and slower vCenters are still on the way: after the slowest one's last
        // byte only its last chunk, the merge's sort and its copy remain.
        let mut reader = StreamParser::new(family);
        let started = Instant::now();
        let body = self
            .ask(principal, i, family, ask, &mut reader)
            .await
            .map_err(|f| (i, f))?;
        let took = started.elapsed();
        let name = self.sessions.backends()[i].upstream.name();
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
                warn!(vcenter = %name, error = %e, "unreadable List Tasks answer");
                self.metrics.upstream_error(name, "malformed");
                Err((i, UpstreamFailure::proxy(name, e.to_vapi())))
            }
        }
    }

    /// One vCenter: send with the pooled session; on 401 log in again once and retry.
    /// A 200 answer's body goes through `reader` as it arrives.
    async fn ask(
        &self,
        principal: &Principal,
        index: usize,
        family: Family,
        ask: &Ask,
        reader: &mut StreamParser,
    ) -> Result<Bytes, UpstreamFailure> {
        let upstream = &self.sessions.backends()[index].upstream;
        let name = upstream.name();
        let mut session = principal.backend_session(index).await;
        let mut retried = false;
        loop {
            let session_value = session
                .as_ref()
                .and_then(|s| HeaderValue::from_str(s.expose()).ok());
            let response = match &session_value {
                Some(v) => {
                    let mut v = v.clone();
                    v.set_sensitive(true);
                    self.send(index, ask, &[(SESSION_HEADER, v)], &mut |received| {
                        reader.feed(received)
                    })
                    .await?
                }
                // No session (a re-login failed earlier): try to log in first.
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
                    .relogin(principal, index, &stale, family)
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
        ask: &Ask,
        headers: &[(http::HeaderName, HeaderValue)],
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<UpstreamResponse, UpstreamFailure> {
        let upstream = &self.sessions.backends()[index].upstream;
        let name = upstream.name();
        let started = Instant::now();
        match upstream
            .send_observed(
                ask.method.clone(),
                &ask.path,
                headers,
                ask.body.clone(),
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
                warn!(vcenter = %name, error = %e, elapsed_ms = started.elapsed().as_millis() as u64, "upstream failed");
                Err(UpstreamFailure::transport(name, &e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(vc: &str, status: u16) -> UpstreamFailure {
        UpstreamFailure::answer(
            vc,
            UpstreamResponse {
                status: StatusCode::from_u16(status).unwrap(),
                content_type: None,
                body: Bytes::new(),
            },
        )
    }

    #[test]
    fn precedence_is_400_401_403_404_4xx_5xx_then_config_order() {
        let pick = |list: &[(&str, u16)]| {
            let f = pick_failure(list.iter().map(|(v, s)| failure(v, *s)).collect()).unwrap();
            (f.vcenter.to_string(), f.status().as_u16())
        };
        assert_eq!(
            pick(&[("a", 503), ("b", 400), ("c", 401)]),
            ("b".into(), 400)
        );
        assert_eq!(
            pick(&[("a", 503), ("b", 403), ("c", 401)]),
            ("c".into(), 401)
        );
        assert_eq!(pick(&[("a", 404), ("b", 403)]), ("b".into(), 403));
        assert_eq!(pick(&[("a", 500), ("b", 404)]), ("b".into(), 404));
        assert_eq!(pick(&[("a", 500), ("b", 429)]), ("b".into(), 429));
        assert_eq!(pick(&[("a", 503), ("b", 500)]), ("a".into(), 503));
        assert_eq!(pick(&[("a", 500), ("b", 503)]), ("a".into(), 500));
        assert!(pick_failure(vec![]).is_none());
    }

    #[tokio::test]
    async fn a_vcenter_task_that_panics_becomes_that_vcenters_503() {
        let mut set = JoinSet::new();
        let mut index_of = HashMap::new();
        let returns = set.spawn(async { Err::<Answered, _>((0, failure("vc1", 404))) });
        index_of.insert(returns.id(), 0);
        let panics = set.spawn(async {
            if std::hint::black_box(true) {
                panic!("a bug while reading");
            }
            Err::<Answered, _>((1, failure("vc2", 404)))
        });
        index_of.insert(panics.id(), 1);
        let names = ["vc1", "vc2"];
        let mut seen = Vec::new();
        while let Some(joined) = set.join_next_with_id().await {
            match task_result(joined, &index_of, |i| names[i]) {
                Err((i, f)) => seen.push((i, f.vcenter.to_string(), f.into_entry(Family::Rest))),
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

    #[test]
    fn transport_failures_render_service_unavailable_naming_the_vcenter() {
        let f = UpstreamFailure::transport(
            "vc7",
            &TransportError::Timeout(std::time::Duration::from_secs(2)),
        );
        let e = f.into_entry(Family::Api);
        assert_eq!(e.status, 503);
        let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["error_type"], "SERVICE_UNAVAILABLE");
        assert!(v["messages"][0]["default_message"]
            .as_str()
            .unwrap()
            .contains("vc7"));
        assert_eq!(e.upstream.unwrap(), "vc7");
    }
}
