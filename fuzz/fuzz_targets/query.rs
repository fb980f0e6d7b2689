//! `GET /rest/cis/tasks?<query>`: any UTF-8 query string.
//!
//! Invariants on every accepted query `q`:
//! * `q` is already normalized, and its key is deterministic;
//! * the `/rest` upstream request re-parses (with `parse_rest`) to a query equal to
//!   `q` with an equal key: parse(encode(x)) == x;
//! * the `/api` upstream request (query after `?` plus JSON body) re-parses with
//!   `parse_api` to a query equal to `q` with an equal key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcproxy::protocol::filter::{parse_api, parse_rest, Limits, TaskQuery};
use vcproxy::Family;

/// Re-encoding may legitimately grow a query (percent-escapes triple a byte), so the
/// round trip is judged without the size limits the first parse applied.
const UNLIMITED: Limits = Limits {
    max_query_bytes: usize::MAX,
    max_body_bytes: usize::MAX,
};

fn split(path_and_query: &str, path: &str) -> Option<String> {
    let rest = path_and_query
        .strip_prefix(path)
        .unwrap_or_else(|| panic!("upstream path {path_and_query:?} does not start with {path:?}"));
    match rest.strip_prefix('?') {
        Some(q) => Some(q.to_owned()),
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
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = parse_rest(Some(s), b"", &Limits::default()) else {
        return;
    };

    let mut n = q.clone();
    n.normalize();
    assert_eq!(n, q, "parse_rest returned a query that is not normalized");
    assert_eq!(q.key(), q.clone().key());

    // /rest upstream: GET with the indexed query (no JSON members can come from a query).
    let up = q.upstream(Family::Rest);
    assert_eq!(up.method, "GET");
    assert!(
        up.body.is_none(),
        "a query-only filter must go upstream without a body"
    );
    let qs = split(&up.path_and_query, "/rest/cis/tasks");
    assert_eq!(qs.as_deref().unwrap_or(""), q.rest_query());
    let again = parse_rest(qs.as_deref(), b"", &UNLIMITED).unwrap_or_else(|e| {
        panic!(
            "/rest upstream {:?} does not re-parse: {e:?}",
            up.path_and_query
        )
    });
    check_same("/rest upstream", &q, &again);


    // /api upstream: POST with action=list plus the extras, and the canonical JSON body.
    let up = q.upstream(Family::Api);
    assert_eq!(up.method, "POST");
    let body = up.body.as_deref().expect("an /api request has a body");
    let qs = split(&up.path_and_query, "/api/cis/tasks");
    let again = parse_api(qs.as_deref(), body, &UNLIMITED).unwrap_or_else(|e| {
        panic!(
            "/api upstream {:?} body {:?} does not re-parse: {e:?}",
            up.path_and_query,
            String::from_utf8_lossy(body)
        )
    });
    check_same("/api upstream", &q, &again);
});
