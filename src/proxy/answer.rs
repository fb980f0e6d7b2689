//! A prepared answer: the exact response a client gets, rendered once.
//!
//! Merged lists, vCenter errors passed through and the proxy's own errors all
//! become an [`Answer`]; the cache stores it as it is, so a hit sends the stored
//! bytes and sets a few headers: nothing is parsed or rendered again. A JSON-RPC
//! answer stores the answer *value* and is sent between a head carrying the
//! request's id and a fixed tail ([`Answer::rpc_response`]).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AGE, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::value::RawValue;
use std::time::{Duration, Instant};

pub use super::body::Body;
use crate::protocol::jsonrpc::envelope::{answer_head, ANSWER_TAIL};
use crate::protocol::{Family, VapiError, JSON};

/// How the answer was obtained: `hit`, `miss`, `coalesced` or `stale`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("vcproxy-cache");
/// The vCenter whose error the answer is.
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("vcproxy-upstream");
/// The vCenters a partial answer leaves out.
pub const PARTIAL_HEADER: HeaderName = HeaderName::from_static("vcproxy-partial");
/// How long each vCenter and the merge took, on the responses a fetch answered.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// A complete, pre-rendered answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: HeaderValue,
    pub body: Bytes,
    /// The vCenter whose error this is, for the `vcproxy-upstream` header.
    pub upstream: Option<HeaderValue>,
    /// The vCenters left out of a partial answer, for the `vcproxy-partial` header.
    pub partial: Option<HeaderValue>,
    /// How long each vCenter and the merge took for this answer, as a
    /// `Server-Timing` value; sent with the responses the fetch itself answered.
    pub timing: Option<HeaderValue>,
    /// Bytes allocated for `body` beyond its length (a merged answer rendered into a
    /// buffer sized ahead of time keeps its slack rather than pay a reallocation
    /// before the client is answered); the cache weighs it like the body.
    pub spare: usize,
    pub created: Instant,
}

impl Answer {
    /// A JSON answer made now.
    pub fn json(status: StatusCode, body: Bytes) -> Answer {
        Answer {
            status,
            content_type: JSON,
            body,
            upstream: None,
            partial: None,
            timing: None,
            spare: 0,
            created: Instant::now(),
        }
    }

    /// The proxy's own error, in `family`'s shape.
    pub fn error(e: &VapiError, family: Family) -> Answer {
        Answer::json(e.status(), e.render(family))
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Time since the answer was fetched, for the `age` header.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// The response: the stored bytes as they are, and, for an answer that went
    /// through the cache, its outcome and age.
    pub fn response(&self, outcome: Option<Outcome>) -> Response<Body> {
        let mut r = Response::new(Body::full(self.body.clone()));
        *r.status_mut() = self.status;
        self.headers(r.headers_mut(), outcome);
        r
    }

    /// The response to JSON-RPC request `id`: HTTP 200 always, the stored value as
    /// the `output` (a success) or the `error` (anything else) of a result carrying
    /// that id. The value is sent as stored, between the head and the tail.
    pub fn rpc_response(&self, id: &RawValue, outcome: Option<Outcome>) -> Response<Body> {
        let head = answer_head(id, !self.is_success());
        let body = Body::parts(head, self.body.clone(), Bytes::from_static(ANSWER_TAIL));
        let mut r = Response::new(body);
        self.headers(r.headers_mut(), outcome);
        r.headers_mut().insert(CONTENT_TYPE, JSON);
        r
    }

    fn headers(&self, h: &mut HeaderMap, outcome: Option<Outcome>) {
        h.insert(CONTENT_TYPE, self.content_type.clone());
        if let Some(outcome) = outcome {
            h.insert(CACHE_HEADER, outcome.header());
            h.insert(AGE, HeaderValue::from(self.age(Instant::now()).as_secs()));
        }
        if let Some(v) = &self.upstream {
            h.insert(UPSTREAM_HEADER, v.clone());
        }
        if let Some(v) = &self.partial {
            h.insert(PARTIAL_HEADER, v.clone());
        }
        // Timings describe the fetch: only the responses it answered carry them.
        if let (Some(v), Some(Outcome::Miss | Outcome::Coalesced)) = (&self.timing, outcome) {
            h.insert(SERVER_TIMING, v.clone());
        }
    }
}

/// How a request was answered, for the `vcproxy-cache` header and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A fresh entry.
    Hit,
    /// This request started the fetch.
    Miss,
    /// Another request's fetch answered this one too.
    Coalesced,
    /// A good entry past its TTL: within stale-while-revalidate, or instead of a failure.
    Stale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Stale => "stale",
        }
    }

    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// A `Server-Timing` value (W3C Server Timing) for a merged answer: each vCenter's
/// time, then the merge's, in milliseconds, e.g.
/// `vcenter;desc=vc1;dur=54.12, vcenter;desc=vc2;dur=55.30, merge;dur=0.33`.
/// Operators see which vCenter held an answer up; the load benchmark compares the
/// proxy's answer with its slowest vCenter's on the same request. vCenter names are
/// tokens (checked when the configuration is read), so they need no quoting.
pub fn server_timing<'a>(
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
