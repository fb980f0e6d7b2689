//! A prepared answer: the exact response a client gets, rendered once.
//!
//! Merged lists, vCenter errors passed through and the proxy's own errors all
//! become an [`Answer`]; the cache stores it as it is, so a hit sends the stored
//! bytes and sets a few headers: nothing is parsed or rendered again. A JSON-RPC
//! answer stores the answer *value* and is sent between a head carrying the
//! request's id and a fixed tail ([`Answer::rpc_response`]).
//!
//! A cached success answer also carries its compressed copies and validators
//! ([`Encoded`], made once per fetch): a hit picks the copy the client accepts,
//! answers `If-None-Match` with `304 Not Modified`, and compresses nothing.

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, AGE, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{Response, StatusCode};
use serde_json::value::RawValue;
use std::time::{Duration, Instant};

pub use super::body::Body;
use crate::encoding::{stored_member, Accepted, Coding, Encoded, MIN_COMPRESS};
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
    /// Compressed copies and validators, once made (cached success answers only).
    pub encoded: Option<Encoded>,
    /// A success that leaves out vCenters that failed (a partial merge, a native
    /// answer reporting a failure): the cache keeps it like an error, fresh for
    /// `error_ttl` and without stale windows, so those vCenters are asked again
    /// as soon as a failure would be.
    pub incomplete: bool,
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
            encoded: None,
            incomplete: false,
        }
    }

    /// The proxy's own error, in `family`'s shape.
    pub fn error(e: &VapiError, family: Family) -> Answer {
        Answer::json(e.status(), e.render(family))
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Whether the cache keeps the answer as a good one: fresh for `ttl`, then
    /// served stale within its windows. Errors and incomplete answers get
    /// `error_ttl`.
    pub fn keeps_as_good(&self) -> bool {
        self.is_success() && !self.incomplete
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

    /// The response to a request the cache answered, in a REST family: the copy
    /// the request's `Accept-Encoding` picks, or `304 Not Modified` when its
    /// `If-None-Match` names this answer; `fresh_for` is the time left before the
    /// answer is stale (`Cache-Control: max-age`).
    pub fn cached_response(
        &self,
        outcome: Outcome,
        fresh_for: Duration,
        request: &HeaderMap,
    ) -> Response<Body> {
        let encoded = self.encoded.as_ref().filter(|_| self.is_success());
        let not_modified = encoded.is_some_and(|e| if_none_match(request, &e.etag));
        let coding = match encoded {
            Some(e) if !not_modified => Accepted::from_headers(request).choose(
                e.gzip.as_ref().map(Bytes::len),
                e.zstd.as_ref().map(Bytes::len),
            ),
            _ => Coding::Identity,
        };
        let body = match (coding, encoded) {
            _ if not_modified => Bytes::new(),
            (Coding::Gzip, Some(Encoded { gzip: Some(b), .. })) => b.clone(),
            (Coding::Zstd, Some(Encoded { zstd: Some(b), .. })) => b.clone(),
            _ => self.body.clone(),
        };
        let mut r = Response::new(Body::full(body));
        *r.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            self.status
        };
        let h = r.headers_mut();
        // Room for every header below at once, rather than a rehash midway.
        h.reserve(10);
        self.headers(h, Some(outcome));
        if not_modified {
            h.remove(CONTENT_TYPE);
        }
        self.representation_headers(h, coding);
        h.insert(CACHE_CONTROL, cache_control(fresh_for));
        if let Some(e) = encoded {
            h.insert(ETAG, e.etag.clone());
            h.insert(LAST_MODIFIED, e.last_modified.clone());
        }
        r
    }

    /// The response to JSON-RPC request `id`: HTTP 200 always, the stored value as
    /// the `output` (a success) or the `error` (anything else) of a result carrying
    /// that id. The value is sent as stored, between the head and the tail; to a
    /// client that accepts gzip, a stored gzip copy is sent between a gzip member
    /// of the head and one of the tail (one gzip stream of three members).
    pub fn rpc_response(
        &self,
        id: &RawValue,
        outcome: Option<Outcome>,
        accepted: Accepted,
    ) -> Response<Body> {
        let head = answer_head(id, !self.is_success());
        let gzip = self
            .encoded
            .as_ref()
            .filter(|_| self.is_success() && accepted.gzip())
            .and_then(|e| e.gzip.clone());
        let (body, coding) = match gzip {
            Some(gz) => (
                Body::parts(stored_member(&head), gz, rpc_tail_member()),
                Coding::Gzip,
            ),
            None => (
                Body::parts(head, self.body.clone(), Bytes::from_static(ANSWER_TAIL)),
                Coding::Identity,
            ),
        };
        let mut r = Response::new(body);
        let h = r.headers_mut();
        self.headers(h, outcome);
        h.insert(CONTENT_TYPE, JSON);
        if outcome.is_some() {
            self.representation_headers(h, coding);
        }
        r
    }

    /// `Content-Encoding` and, for an answer that may be sent compressed, `Vary`.
    fn representation_headers(&self, h: &mut HeaderMap, coding: Coding) {
        if let Some(token) = coding.token() {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(token));
        }
        if self.is_success() && self.body.len() >= MIN_COMPRESS {
            h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }
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

/// The JSON-RPC answer's fixed tail as a gzip member, made once.
fn rpc_tail_member() -> Bytes {
    static TAIL: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    TAIL.get_or_init(|| stored_member(ANSWER_TAIL)).clone()
}

/// `private`: answers are per user, and a shared cache must not keep them.
fn cache_control(fresh_for: Duration) -> HeaderValue {
    let secs = fresh_for.as_secs();
    // The common values, without formatting on the hit path.
    const PRE: [&str; 6] = [
        "private, max-age=0",
        "private, max-age=1",
        "private, max-age=2",
        "private, max-age=3",
        "private, max-age=4",
        "private, max-age=5",
    ];
    match PRE.get(secs as usize) {
        Some(v) => HeaderValue::from_static(v),
        None => HeaderValue::from_str(&format!("private, max-age={secs}"))
            .expect("digits are a valid header value"),
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2), or is
/// `*` (any current representation).
fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    fn opaque(tag: &[u8]) -> Option<&[u8]> {
        let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
        (tag.len() >= 2 && tag[0] == b'"' && tag[tag.len() - 1] == b'"').then_some(tag)
    }
    let Some(ours) = opaque(etag.as_bytes()) else {
        return false;
    };
    request.get_all(IF_NONE_MATCH).iter().any(|field| {
        let mut rest = field.as_bytes();
        loop {
            rest = rest.trim_ascii_start();
            if rest.is_empty() {
                return false;
            }
            if rest[0] == b'*' {
                return true;
            }
            // One entity-tag: [W/] DQUOTE *etagc DQUOTE (etagc may hold commas).
            let start = if rest.starts_with(b"W/") { 2 } else { 0 };
            if rest.get(start) != Some(&b'"') {
                return false;
            }
            let Some(close) = rest[start + 1..].iter().position(|&b| b == b'"') else {
                return false;
            };
            let end = start + close + 2;
            if opaque(&rest[..end]) == Some(ours) {
                return true;
            }
            rest = rest[end..].trim_ascii_start();
            match rest.first() {
                Some(b',') => rest = &rest[1..],
                _ => return false,
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_NONE_MATCH, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn if_none_match_compares_weakly_and_reads_lists() {
        let tag = HeaderValue::from_static("W/\"abc\"");
        assert!(if_none_match(&request(&["W/\"abc\""]), &tag));
        assert!(if_none_match(&request(&["\"abc\""]), &tag));
        assert!(if_none_match(&request(&["\"x,y\", W/\"abc\""]), &tag));
        assert!(if_none_match(&request(&["\"x\"", "\"abc\""]), &tag));
        assert!(if_none_match(&request(&["*"]), &tag));
        assert!(!if_none_match(&request(&[]), &tag));
        assert!(!if_none_match(&request(&["\"abcd\""]), &tag));
        assert!(!if_none_match(&request(&["abc"]), &tag));
        assert!(!if_none_match(&request(&["\"abc"]), &tag));
        assert!(!if_none_match(&request(&["\"x\" \"abc\""]), &tag));
    }

    #[test]
    fn max_age_is_whole_seconds_left() {
        assert_eq!(
            cache_control(Duration::from_millis(4999)),
            "private, max-age=4"
        );
        assert_eq!(cache_control(Duration::ZERO), "private, max-age=0");
        assert_eq!(
            cache_control(Duration::from_secs(3600)),
            "private, max-age=3600"
        );
    }
}
