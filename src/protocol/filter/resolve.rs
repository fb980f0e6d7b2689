//! A raw List Tasks request resolved into what the proxy needs of it: the cache key
//! and the request every vCenter is sent, from one parse.
//!
//! Clients poll: the same URL, or the same body, every few seconds. Resolutions are
//! memoized by the raw request, so a poll seen before is resolved by one hash
//! lookup, without parsing; that is most of the cache-hit path. Only filters that
//! parsed are remembered, and a resolution is a pure function of the raw form, so a
//! remembered one is always what parsing would give.

use bytes::Bytes;
use http::Method;
use std::sync::Arc;

use super::{Limits, ListRequest};
use crate::protocol::{api, Family, VapiError};

/// One List Tasks question, resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub family: Family,
    /// The canonical key ([`ListRequest::key`]): the same for every spelling of
    /// the question.
    pub key: Arc<[u8]>,
    /// The request each vCenter is sent, in the client's family.
    pub method: Method,
    pub path_and_query: String,
    /// JSON-RPC: the call up to its session id, completed per vCenter by
    /// [`upstream_body`](Resolved::upstream_body).
    pub body: Option<Bytes>,
}

impl From<&ListRequest> for Resolved {
    fn from(request: &ListRequest) -> Resolved {
        let upstream = request.upstream();
        Resolved {
            family: request.family,
            key: request.key().into(),
            method: upstream.method,
            path_and_query: upstream.path_and_query,
            body: upstream.body.map(Bytes::from),
        }
    }
}

impl Resolved {
    /// The body to send a vCenter whose session for this user is `session`: JSON-RPC
    /// carries the session in the call itself.
    pub fn upstream_body(&self, session: &str) -> Option<Bytes> {
        self.family.upstream_body(self.body.as_ref(), session)
    }

    /// Bytes held, for the memo's weigher.
    fn weight(&self) -> usize {
        self.key.len() + self.path_and_query.len() + self.body.as_ref().map_or(0, Bytes::len)
    }
}

/// Turns raw List Tasks requests into [`Resolved`] questions, memoizing plain polls.
pub struct Resolver {
    limits: Limits,
    /// By the query string of a bodyless `/rest` GET.
    rest: moka::sync::Cache<Arc<str>, Arc<Resolved>>,
    /// By the body of an `/api` POST whose query is exactly `action=list`.
    api: moka::sync::Cache<Arc<[u8]>, Arc<Resolved>>,
    /// By a JSON-RPC call's `params.input` (the rest of the call, its id and opId,
    /// changes every time).
    jsonrpc: moka::sync::Cache<Arc<[u8]>, Arc<Resolved>>,
}

impl Resolver {
    /// A resolver parsing within `limits`, whose memo holds at most about
    /// `max_bytes` of raw requests and resolutions.
    pub fn new(limits: Limits, max_bytes: u64) -> Resolver {
        let weigh = |raw: usize, r: &Arc<Resolved>| {
            u32::try_from(raw + r.weight() + 128).unwrap_or(u32::MAX)
        };
        Resolver {
            limits,
            rest: moka::sync::Cache::builder()
                .max_capacity(max_bytes / 3)
                .weigher(move |raw: &Arc<str>, r: &Arc<Resolved>| weigh(raw.len(), r))
                .build(),
            api: moka::sync::Cache::builder()
                .max_capacity(max_bytes / 3)
                .weigher(move |raw: &Arc<[u8]>, r: &Arc<Resolved>| weigh(raw.len(), r))
                .build(),
            jsonrpc: moka::sync::Cache::builder()
                .max_capacity(max_bytes / 3)
                .weigher(move |raw: &Arc<[u8]>, r: &Arc<Resolved>| weigh(raw.len(), r))
                .build(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The question a raw List Tasks request asks (for JSON-RPC, `body` is the
    /// call's `params.input`); malformed input is an `invalid_argument` naming the
    /// parameter.
    pub fn resolve(
        &self,
        family: Family,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Arc<Resolved>, VapiError> {
        let remembered = match Memo::of(family, query, body) {
            Memo::Rest(q) => self.rest.get(q),
            Memo::Api(b) => self.api.get(b),
            Memo::JsonRpc(b) => self.jsonrpc.get(b),
            Memo::No => None,
        };
        if let Some(resolved) = remembered {
            return Ok(resolved);
        }
        let resolved = Arc::new(Resolved::from(&ListRequest::parse(
            family,
            query,
            body,
            &self.limits,
        )?));
        match Memo::of(family, query, body) {
            Memo::Rest(q) => self.rest.insert(q.into(), resolved.clone()),
            Memo::Api(b) => self.api.insert(b.into(), resolved.clone()),
            Memo::JsonRpc(b) => self.jsonrpc.insert(b.into(), resolved.clone()),
            Memo::No => {}
        }
        Ok(resolved)
    }
}

/// Which raw requests are memoized, and by what: the plain polls. Others (a JSON
/// body on a `/rest` GET, extra query parameters on `/api`) are parsed each time.
enum Memo<'a> {
    Rest(&'a str),
    Api(&'a [u8]),
    JsonRpc(&'a [u8]),
    No,
}

impl<'a> Memo<'a> {
    fn of(family: Family, query: Option<&'a str>, body: &'a [u8]) -> Memo<'a> {
        match (family, query) {
            (Family::Rest, q) if body.is_empty() => Memo::Rest(q.unwrap_or("")),
            (Family::Api, Some(api::LIST_QUERY)) => Memo::Api(body),
            (Family::JsonRpc, _) => Memo::JsonRpc(body),
            _ => Memo::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_polls_are_remembered_and_others_parsed_each_time() {
        let r = Resolver::new(Limits::default(), 1 << 20);
        let twice = |family, query: Option<&str>, body: &[u8]| {
            let a = r.resolve(family, query, body).unwrap();
            let b = r.resolve(family, query, body).unwrap();
            assert_eq!(a, b, "one question resolves the same every time");
            Arc::ptr_eq(&a, &b)
        };
        assert!(twice(Family::Rest, Some("filter_spec.tasks=a"), b""));
        assert!(twice(
            Family::Api,
            Some("action=list"),
            br#"{"filter_spec":{"tasks":["a"]}}"#
        ));
        // A body on the GET, or another query on the POST: parsed every time.
        assert!(!twice(
            Family::Rest,
            None,
            br#"{"filter_spec":{"tasks":["a"]}}"#
        ));
        assert!(!twice(
            Family::Api,
            Some("action=list&x=1"),
            br#"{"filter_spec":{"tasks":["a"]}}"#
        ));
    }

    #[test]
    fn spellings_of_one_question_share_its_key_and_upstream_request() {
        let r = Resolver::new(Limits::default(), 1 << 20);
        let a = r
            .resolve(
                Family::Rest,
                Some("filter_spec.tasks=a&filter_spec.tasks=b"),
                b"",
            )
            .unwrap();
        let b = r
            .resolve(
                Family::Rest,
                Some("filter_spec.tasks.1=b&filter_spec.tasks.2=a"),
                b"",
            )
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.method, Method::GET);
        assert!(a
            .path_and_query
            .starts_with(crate::protocol::rest::TASKS_PATH));
    }

    #[test]
    fn bad_input_is_not_remembered() {
        let r = Resolver::new(Limits::default(), 1 << 20);
        for _ in 0..2 {
            let e = r
                .resolve(Family::Rest, Some("filter_spec.tasks.2=a"), b"")
                .unwrap_err();
            assert_eq!(e.kind, crate::protocol::ErrorKind::InvalidArgument);
        }
        assert!(!r.rest.contains_key("filter_spec.tasks.2=a"));
    }
}
