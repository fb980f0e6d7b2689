//! JSON filter bodies: `POST /api/cis/tasks?action=list` and the Python SDK's JSON
//! body on `GET /rest/cis/tasks`.
//!
//! Invariants on every input:
//! * `parse_api(Some("action=list"), data)` and `parse_rest(None, data)` accept the same
//!   inputs, and on success give equal queries with equal keys;
//! * `q.api_body()` is valid JSON, re-parses to a query equal to `q` (equal key), and
//!   is canonical: encoding the re-parsed query gives the same bytes;
//! * the upstream requests in both families re-parse to a query equal to `q`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcproxy::protocol::filter::{parse_api, parse_rest, Limits, TaskQuery};
use vcproxy::Family;

const UNLIMITED: Limits = Limits {
    max_query_bytes: usize::MAX,
    max_body_bytes: usize::MAX,
};

fn query_of<'a>(path_and_query: &'a str, path: &str) -> Option<&'a str> {
    let rest = path_and_query
        .strip_prefix(path)
        .unwrap_or_else(|| panic!("upstream path {path_and_query:?} does not start with {path:?}"));
    match rest.strip_prefix('?') {
        Some(q) => Some(q),
        None => {
            assert!(rest.is_empty(), "junk after the path: {path_and_query:?}");
            None
        }
    }
}

fn check_same(what: &str, original: &TaskQuery, again: &TaskQuery) {
    assert_eq!(again, original, "{what}: re-parsed query differs");
    assert_eq!(again.key(), original.key(), "{what}: re-parsed key differs");
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let api = parse_api(Some("action=list"), data, &limits);
    let rest = parse_rest(None, data, &limits);
    let q = match (api, rest) {
        (Ok(a), Ok(r)) => {
            assert_eq!(
                a.key(),
                r.key(),
                "parse_api and parse_rest disagree on the key"
            );
            assert_eq!(a, r, "parse_api and parse_rest disagree on the query");
            a
        }
        (Err(_), Err(_)) => return,
        (a, r) => panic!("parse_api and parse_rest disagree on acceptance: {a:?} vs {r:?}"),
    };


    let mut n = q.clone();
    n.normalize();
    assert_eq!(n, q, "a parser returned a query that is not normalized");

    // The canonical body: valid JSON, round-trips, and is a fixed point.
    let body = q.api_body();
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        panic!(
            "api_body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let again = parse_api(Some("action=list"), &body, &UNLIMITED).unwrap_or_else(|e| {
        panic!(
            "api_body {:?} does not re-parse: {e:?}",
            String::from_utf8_lossy(&body)
        )
    });
    check_same("api_body", &q, &again);
    assert_eq!(again.api_body(), body, "api_body is not canonical");

    // What is actually sent upstream, in both families.
    let up = q.upstream(Family::Api);
    let up_body = up.body.as_deref().expect("an /api request has a body");
    let again = parse_api(
        query_of(&up.path_and_query, "/api/cis/tasks"),
        up_body,
        &UNLIMITED,
    )
    .unwrap_or_else(|e| panic!("/api upstream does not re-parse: {e:?}"));
    check_same("/api upstream", &q, &again);


    let up = q.upstream(Family::Rest);
    let up_body = up.body.as_deref().unwrap_or(b"");
    let again = parse_rest(
        query_of(&up.path_and_query, "/rest/cis/tasks"),
        up_body,
        &UNLIMITED,
    )
    .unwrap_or_else(|e| {
        panic!(
            "/rest upstream {:?} body {:?} does not re-parse: {e:?}",
            up.path_and_query,
            String::from_utf8_lossy(up_body)
        )
    });
    check_same("/rest upstream", &q, &again);
});
