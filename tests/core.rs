//! The wire-format core (filters and merge), through its public API.
//!
//! Pure functions, no network: example-based tests built on the samples in
//! `shared/vsphere/API-NOTES.md`, and property tests for the invariants the cache
//! rests on (equivalent encodings share a key, different meanings do not, encoding
//! round-trips).

use proptest::prelude::*;
use vcproxy::protocol::filter::{
    parse_api, parse_json, parse_query, parse_rest, FilterSpec, Limits, ResultSpec, Target,
    TaskQuery,
};
use vcproxy::{ErrorKind, Family};

fn lim() -> Limits {
    Limits::default()
}

fn rest(q: &str) -> TaskQuery {
    parse_rest(Some(q), b"", &lim()).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn rest_err(q: &str) -> String {
    let e = parse_rest(Some(q), b"", &lim()).expect_err(q);
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{q}");
    assert_eq!(e.status(), 400);
    e.message
}

fn json_err(body: &str) -> String {
    let e = parse_api(Some("action=list"), body.as_bytes(), &lim()).expect_err(body);
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{body}");
    e.message
}

// ----- parsing: the documented encodings ------------------------------------------

#[test]
fn indexed_and_repeated_keys_mean_the_same() {
    let a = rest("filter_spec.services.1=a&filter_spec.services.2=b");
    let b = rest("filter_spec.services=b&filter_spec.services=a");
    assert_eq!(a.filter.services, vec!["a", "b"]);
    assert_eq!(a, b);
    assert_eq!(a.key(), b.key());
}

#[test]
fn targets_status_and_booleans_from_the_query() {
    let q = rest(
        "filter_spec.targets.1.type=VirtualMachine&filter_spec.targets.1.id=vm-42\
         &filter_spec.status=RUNNING&filter_spec.services=s&result_spec.return_all=TRUE\
         &result_spec.exclude_result=False",
    );
    assert_eq!(
        q.filter.targets,
        vec![Target {
            target_type: "VirtualMachine".into(),
            id: "vm-42".into()
        }]
    );
    assert_eq!(q.filter.status, vec!["RUNNING"]);
    assert_eq!(q.result.return_all, Some(true));
    // false means unset
    assert_eq!(q.result.exclude_result, None);
}

#[test]
fn percent_escapes_plus_and_key_order() {
    let a = rest("filter_spec.users=VSPHERE.LOCAL%5CAdministrator&filter_spec.tasks=a%3Ab+c");
    let b = rest("filter_spec.tasks.1=a:b%20c&filter_spec.users.1=VSPHERE.LOCAL\\Administrator");
    assert_eq!(a.filter.tasks, vec!["a:b c"]);
    assert_eq!(a.filter.users, vec!["VSPHERE.LOCAL\\Administrator"]);
    assert_eq!(a.key(), b.key());
}

#[test]
fn escaped_keys_are_decoded_too() {
    let a = rest("filter%5Fspec.services=x");
    assert_eq!(a.filter.services, vec!["x"]);
}

#[test]
fn empty_values_are_skipped_and_empty_lists_equal_unset() {
    let a = rest("filter_spec.services=s&filter_spec.status=&filter_spec.users&&");
    let b = rest("filter_spec.services=s");
    assert_eq!(a, b);
    let j = parse_rest(
        None,
        br#"{"filter_spec":{"services":["s"],"status":[],"users":null},"result_spec":{"return_all":false}}"#,
        &lim(),
    )
    .unwrap();
    assert_eq!(j.key(), b.key());
}

#[test]
fn duplicates_in_lists_do_not_matter() {
    assert_eq!(
        rest("filter_spec.services=a&filter_spec.services=a&filter_spec.services=b").key(),
        rest("filter_spec.services.1=b&filter_spec.services.2=a").key()
    );
}

#[test]
fn python_sdk_json_body_on_a_rest_get_equals_the_query_form() {
    let body = br#"{"filter_spec":{"services":["com.vmware.x"],"status":["SUCCEEDED"]},"result_spec":{"return_all":true}}"#;
    let j = parse_rest(None, body, &lim()).unwrap();
    let q = rest("filter_spec.services.1=com.vmware.x&filter_spec.status.1=SUCCEEDED&result_spec.return_all=true");
    assert_eq!(j, q);
    assert_eq!(j.key(), q.key());
}

#[test]
fn api_body_and_rest_query_share_the_filter_key() {
    let body =
        br#"{"filter_spec": {"tasks": [], "services": ["b","a"], "operations": [], "status": [],
        "targets": [{"type": "HostSystem", "id": "host-9"}], "users": []},
        "result_spec": {"return_all": false, "exclude_result": true}}"#;
    let a = parse_api(Some("action=list"), body, &lim()).unwrap();
    let r = rest("filter_spec.services=a&filter_spec.services=b&filter_spec.targets.1.id=host-9&filter_spec.targets.1.type=HostSystem&result_spec.exclude_result=true");
    assert_eq!(a, r);
    // The canonical key is compact and readable.
    assert_eq!(
        String::from_utf8(a.key()).unwrap(),
        r#"{"filter_spec":{"services":["a","b"],"targets":[{"id":"host-9","type":"HostSystem"}]},"result_spec":{"exclude_result":true}}"#
    );
}

#[test]
fn a_request_knows_its_family_and_families_never_share_a_key() {
    use vcproxy::protocol::filter::ListRequest;
    let rest =
        ListRequest::parse(Family::Rest, Some("filter_spec.services=a"), b"", &lim()).unwrap();
    let api = ListRequest::parse(
        Family::Api,
        Some("action=list"),
        br#"{"filter_spec":{"services":["a"]}}"#,
        &lim(),
    )
    .unwrap();
    assert_eq!((rest.family, api.family), (Family::Rest, Family::Api));
    // The same question...
    assert_eq!(rest.query, api.query);
    // ...but answers of different shapes: never one cache entry.
    assert_ne!(rest.key(), api.key());
    assert_eq!(
        rest.upstream().path_and_query,
        "/rest/cis/tasks?filter_spec.services.1=a"
    );
    assert_eq!(api.upstream().path_and_query, "/api/cis/tasks?action=list");
}

#[test]
fn empty_api_body_is_an_empty_filter() {
    let q = parse_api(Some("action=list"), b"", &lim()).unwrap();
    assert_eq!(q, TaskQuery::default());
    assert_eq!(q.key(), br#"{"filter_spec":{}}"#);
}

// ----- parameters outside the model -------------------------------------------------

#[test]
fn unknown_query_parameters_are_kept_sorted_and_forwarded() {
    let q = rest("zeta=2&filter_spec.services=s&alpha=1&filter_spec.future=x");
    assert_eq!(
        q.extra_params,
        vec![
            ("alpha".to_string(), "1".to_string()),
            ("filter_spec.future".to_string(), "x".to_string()),
            ("zeta".to_string(), "2".to_string()),
        ]
    );
    let plain = rest("filter_spec.services=s");
    assert_ne!(q.key(), plain.key());
    let up = q.upstream(Family::Rest);
    assert_eq!(
        up.path_and_query,
        "/rest/cis/tasks?filter_spec.services.1=s&alpha=1&filter_spec.future=x&zeta=2"
    );
    let api = q.upstream(Family::Api);
    assert_eq!(
        api.path_and_query,
        "/api/cis/tasks?action=list&alpha=1&filter_spec.future=x&zeta=2"
    );
}

#[test]
fn unknown_json_members_are_kept_and_forwarded_in_the_body() {
    let body = br#"{ "filter_spec": {"services": ["s"], "future": {"b": [1, 2], "a": "x y"}},
                     "zz": true, "result_spec": {"later": 5} }"#;
    let q = parse_api(Some("action=list"), body, &lim()).unwrap();
    let members: Vec<(String, &str)> = q
        .extra_members
        .iter()
        .map(|m| (m.path(), m.raw.as_str()))
        .collect();
    assert_eq!(
        members,
        vec![
            ("zz".to_string(), "true"),
            ("filter_spec.future".to_string(), r#"{"b":[1,2],"a":"x y"}"#),
            ("result_spec.later".to_string(), "5"),
        ]
    );
    let body_out = String::from_utf8(q.api_body()).unwrap();
    assert_eq!(
        body_out,
        r#"{"filter_spec":{"future":{"b":[1,2],"a":"x y"},"services":["s"]},"result_spec":{"later":5},"zz":true}"#
    );
    // A /rest upstream request cannot put JSON members in a query: it carries the body.
    let up = q.upstream(Family::Rest);
    assert_eq!(up.method, http::Method::GET);
    assert_eq!(up.path_and_query, "/rest/cis/tasks");
    assert_eq!(up.body.as_deref(), Some(body_out.as_bytes()));
    // And the body parses back to the same query.
    assert_eq!(parse_rest(None, body_out.as_bytes(), &lim()).unwrap(), q);
}

#[test]
fn a_top_level_member_named_like_a_nested_one_stays_where_it_was() {
    // Found by fuzzing: `{"filter_spec.tasks":1}` is a top-level member with a dot in
    // its name, not filter_spec's `tasks`.
    let top = parse_api(None, br#"{"filter_spec.foo":1}"#, &lim()).unwrap();
    let nested = parse_api(None, br#"{"filter_spec":{"foo":1}}"#, &lim()).unwrap();
    assert_ne!(top.key(), nested.key());
    assert_eq!(
        String::from_utf8(top.api_body()).unwrap(),
        r#"{"filter_spec":{},"filter_spec.foo":1}"#
    );
    for body in [
        &br#"{"filter_spec.tasks":1}"#[..],
        br#"{"result_spec.return_all":true}"#,
    ] {
        let q = parse_api(None, body, &lim()).unwrap();
        assert_eq!(q.result.return_all, None);
        assert_eq!(parse_api(None, &q.api_body(), &lim()).unwrap(), q);
    }
}

#[test]
fn empty_strings_go_upstream_in_a_form_that_keeps_them() {
    // Found by fuzzing: an empty value cannot be written in a /rest query (the vAPI
    // runtime skips empty parameters, widening the filter), so the /rest request
    // carries the filter as a JSON body instead.
    for body in [
        &br#"{"filter_spec":{"services":[""]}}"#[..],
        br#"{"filter_spec":{"targets":[{"type":"","id":"vm-1"}]}}"#,
    ] {
        let q = parse_rest(None, body, &lim()).unwrap();
        let up = q.upstream(Family::Rest);
        assert_eq!(up.path_and_query, "/rest/cis/tasks");
        let again = parse_rest(None, up.body.as_deref().unwrap(), &lim()).unwrap();
        assert_eq!(again, q);
    }
}

#[test]
fn action_is_not_a_rest_parameter() {
    // Found by fuzzing: forwarded to /api it would change the operation.
    for q in ["action=x", "action=list&filter_spec.services=a"] {
        let m = rest_err(q);
        assert!(m.contains("action"), "{m}");
    }
}

// ----- bad input -------------------------------------------------------------------

#[test]
fn index_gap_names_the_parameter() {
    let m = rest_err("filter_spec.services.1=a&filter_spec.services.3=b");
    assert!(
        m.contains("filter_spec.services") && m.contains("index 2"),
        "{m}"
    );
    let m = rest_err("filter_spec.services.2=a");
    assert!(m.contains("index 1"), "{m}");
    let m = rest_err("filter_spec.targets.1.type=A&filter_spec.targets.1.id=a&filter_spec.targets.3.type=B&filter_spec.targets.3.id=b");
    assert!(
        m.contains("filter_spec.targets") && m.contains("index 2"),
        "{m}"
    );
}

#[test]
fn huge_index_is_a_gap_not_an_allocation() {
    let m = rest_err("filter_spec.tasks.999999999=a");
    assert!(m.contains("index 1"), "{m}");
    let m = rest_err("filter_spec.tasks.99999999999999999999=a");
    assert!(m.contains("filter_spec.tasks.99999999999999999999"), "{m}");
}

#[test]
fn bad_indexes_are_rejected() {
    for q in [
        "filter_spec.tasks.0=a",
        "filter_spec.tasks.01=a",
        "filter_spec.tasks.-1=a",
        "filter_spec.tasks.x=a",
        "filter_spec.tasks.1.x=a",
        "filter_spec.tasks.=a",
    ] {
        let m = rest_err(q);
        assert!(m.contains("filter_spec.tasks."), "{q}: {m}");
    }
}

#[test]
fn mixing_indexed_and_repeated_keys_is_rejected() {
    let m = rest_err("filter_spec.users.1=a&filter_spec.users=b");
    assert!(m.contains("filter_spec.users"), "{m}");
}

#[test]
fn non_boolean_in_boolean_field() {
    let m = rest_err("result_spec.return_all=yes");
    assert!(
        m.contains("result_spec.return_all") && m.contains("yes"),
        "{m}"
    );
    let m = rest_err("result_spec.exclude_result.1=true");
    assert!(m.contains("result_spec.exclude_result.1"), "{m}");
    let m = json_err(r#"{"result_spec":{"return_all":"true"}}"#);
    assert!(m.contains("result_spec.return_all"), "{m}");
}

#[test]
fn target_with_type_but_no_id() {
    let m = rest_err("filter_spec.targets.1.type=VirtualMachine");
    assert!(m.contains("filter_spec.targets.1.id"), "{m}");
    let m = rest_err("filter_spec.targets.1.id=vm-1");
    assert!(m.contains("filter_spec.targets.1.type"), "{m}");
    let m = json_err(r#"{"filter_spec":{"targets":[{"type":"VirtualMachine"}]}}"#);
    assert!(m.contains("filter_spec.targets[0].id"), "{m}");
    let m = json_err(r#"{"filter_spec":{"targets":[{"type":"A","id":"b","x":1}]}}"#);
    assert!(m.contains("filter_spec.targets[0].x"), "{m}");
    let m = rest_err("filter_spec.targets.type=A");
    assert!(m.contains("filter_spec.targets.type"), "{m}");
    let m = rest_err("filter_spec.targets.1.name=A");
    assert!(m.contains("filter_spec.targets.1.name"), "{m}");
}

#[test]
fn two_values_for_one_scalar() {
    let m = rest_err("result_spec.return_all=true&result_spec.return_all=false");
    assert!(
        m.contains("result_spec.return_all") && m.contains("twice"),
        "{m}"
    );
    // The same value twice is harmless.
    assert_eq!(
        rest("result_spec.return_all=true&result_spec.return_all=TRUE").result,
        ResultSpec {
            return_all: Some(true),
            exclude_result: None
        }
    );
    let m = rest_err("filter_spec.services.1=a&filter_spec.services.1=b");
    assert!(
        m.contains("filter_spec.services.1") && m.contains("twice"),
        "{m}"
    );
    let m = rest_err(
        "filter_spec.targets.1.type=A&filter_spec.targets.1.type=B&filter_spec.targets.1.id=x",
    );
    assert!(m.contains("filter_spec.targets.1.type"), "{m}");
    let m = json_err(r#"{"result_spec":{"return_all":true,"return_all":false}}"#);
    assert!(
        m.contains("result_spec.return_all") && m.contains("twice"),
        "{m}"
    );
    let m = json_err(r#"{"filter_spec":{},"filter_spec":{}}"#);
    assert!(m.contains("filter_spec") && m.contains("twice"), "{m}");
}

#[test]
fn malformed_json_and_wrong_types() {
    let m = json_err(r#"{"filter_spec":{"services":["a",]}"#);
    assert!(m.contains("Invalid JSON"), "{m}");
    let m = json_err(r#"{"filter_spec":{"services":"a"}}"#);
    assert!(m.contains("filter_spec.services"), "{m}");
    let m = json_err(r#"{"filter_spec":{"services":["a", 3]}}"#);
    assert!(m.contains("filter_spec.services[1]"), "{m}");
    let m = json_err(r#"{"filter_spec":[]}"#);
    assert!(m.contains("filter_spec"), "{m}");
    let m = json_err(r#"[1,2]"#);
    assert!(m.contains("filter_spec"), "{m}");
    let m = json_err(r#"{"filter_spec":{}} trailing"#);
    assert!(m.contains("trailing"), "{m}");
    let m = json_err(r#"{"filter_spec":{"targets":[{"type":1,"id":"x"}]}}"#);
    assert!(m.contains("filter_spec.targets[0].type"), "{m}");
}

#[test]
fn bad_percent_escapes_and_invalid_utf8() {
    let m = rest_err("filter_spec.services=a%zz");
    assert!(
        m.contains("filter_spec.services") && m.contains("percent"),
        "{m}"
    );
    let m = rest_err("filter_spec.services=a%4");
    assert!(m.contains("filter_spec.services"), "{m}");
    let m = rest_err("filter_spec.services=%C3%28");
    assert!(
        m.contains("filter_spec.services") && m.contains("UTF-8"),
        "{m}"
    );
    let m = rest_err("bad%zzkey=1");
    assert!(m.contains("bad%zzkey"), "{m}");
    let e = parse_json(b"{\"filter_spec\":{\"services\":[\"\xff\"]}}", &lim()).unwrap_err();
    assert!(e.message.contains("UTF-8"), "{}", e.message);
}

#[test]
fn size_limits_are_enforced_and_configurable() {
    let small = Limits {
        max_query_bytes: 32,
        max_body_bytes: 16,
    };
    let long = "filter_spec.services=".to_string() + &"a".repeat(40);
    let e = parse_rest(Some(&long), b"", &small).unwrap_err();
    assert!(
        e.message.contains("query string") && e.message.contains("32"),
        "{}",
        e.message
    );
    let e = parse_api(None, br#"{"filter_spec":{"services":["abc"]}}"#, &small).unwrap_err();
    assert!(
        e.message.contains("body") && e.message.contains("16"),
        "{}",
        e.message
    );
    // The default is 64 KiB.
    let big = "a".repeat(64 * 1024 + 1);
    assert!(parse_rest(Some(&big), b"", &lim()).is_err());
    assert!(parse_rest(Some(&big[..64 * 1024 - 100]), b"", &lim()).is_ok());
}

#[test]
fn filter_in_both_query_and_body_is_rejected() {
    let e = parse_rest(
        Some("filter_spec.services=a"),
        br#"{"filter_spec":{"services":["a"]}}"#,
        &lim(),
    )
    .unwrap_err();
    assert!(e.message.contains("both"), "{}", e.message);
    let e = parse_api(Some("action=list&filter_spec.services=a"), b"{}", &lim()).unwrap_err();
    assert!(e.message.contains("JSON body"), "{}", e.message);
    let e = parse_api(Some("action=get"), b"{}", &lim()).unwrap_err();
    assert!(e.message.contains("action"), "{}", e.message);
}

#[test]
fn errors_render_in_the_clients_family() {
    let e = parse_rest(Some("result_spec.return_all=maybe"), b"", &lim()).unwrap_err();
    let rest: serde_json::Value = serde_json::from_slice(&e.render(Family::Rest)).unwrap();
    assert_eq!(rest["type"], "com.vmware.vapi.std.errors.invalid_argument");
    let msg = rest["value"]["messages"][0]["default_message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("result_spec.return_all"), "{msg}");
    let api: serde_json::Value = serde_json::from_slice(&e.render(Family::Api)).unwrap();
    assert_eq!(api["error_type"], "INVALID_ARGUMENT");
    assert_eq!(api["messages"][0]["default_message"], msg);
}

// ----- upstream encoding ----------------------------------------------------------

#[test]
fn rest_upstream_uses_the_documented_indexed_form() {
    let q = rest("filter_spec.services=b&filter_spec.services=a&filter_spec.targets.1.type=VirtualMachine&filter_spec.targets.1.id=vm-42&result_spec.return_all=true");
    let up = q.upstream(Family::Rest);
    assert_eq!(up.method, http::Method::GET);
    assert_eq!(up.body, None);
    assert_eq!(
        up.path_and_query,
        "/rest/cis/tasks?filter_spec.services.1=a&filter_spec.services.2=b\
         &filter_spec.targets.1.type=VirtualMachine&filter_spec.targets.1.id=vm-42\
         &result_spec.return_all=true"
    );
    let api = q.upstream(Family::Api);
    assert_eq!(api.method, http::Method::POST);
    assert_eq!(api.path_and_query, "/api/cis/tasks?action=list");
    assert_eq!(
        api.body.as_deref(),
        Some(&br#"{"filter_spec":{"services":["a","b"],"targets":[{"id":"vm-42","type":"VirtualMachine"}]},"result_spec":{"return_all":true}}"#[..])
    );
}

// ----- properties -------------------------------------------------------------------

fn arb_str() -> impl Strategy<Value = String> {
    // Printable text including characters that need escaping in a query and in JSON.
    proptest::string::string_regex("[a-zA-Z0-9 :._~&=+%#\"\\\\/é?-]{1,12}").unwrap()
}

fn arb_list() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(arb_str(), 0..4)
}

prop_compose! {
    fn arb_query()(
        tasks in arb_list(), services in arb_list(), operations in arb_list(),
        status in proptest::collection::vec(
            proptest::sample::select(vec!["PENDING", "RUNNING", "BLOCKED", "SUCCEEDED", "FAILED"])
                .prop_map(String::from), 0..3),
        users in arb_list(),
        targets in proptest::collection::vec((arb_str(), arb_str()), 0..3),
        return_all in proptest::option::of(any::<bool>()),
        exclude_result in proptest::option::of(any::<bool>()),
        extra in proptest::collection::vec(("x_[a-z]{1,5}", arb_str()), 0..2),
    ) -> TaskQuery {
        let mut q = TaskQuery {
            filter: FilterSpec {
                tasks, services, operations, status, users,
                targets: targets.into_iter().map(|(t, i)| Target { target_type: t, id: i }).collect(),
            },
            result: ResultSpec { return_all, exclude_result },
            extra_params: extra,
            extra_members: vec![],
        };
        q.normalize();
        q
    }
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            o.push(b as char);
        } else if b == b' ' {
            o.push('+');
        } else {
            o.push_str(&format!("%{b:02x}"));
        }
    }
    o
}

/// Writes `q` the way a client might: repeated or indexed keys, shuffled order,
/// duplicated values, booleans in odd case, `false` for unset, empty parameters.
fn encode_like_a_client(q: &TaskQuery, style: u64) -> String {
    let mut params: Vec<String> = Vec::new();
    let fields: [(&str, &Vec<String>); 5] = [
        ("tasks", &q.filter.tasks),
        ("services", &q.filter.services),
        ("operations", &q.filter.operations),
        ("status", &q.filter.status),
        ("users", &q.filter.users),
    ];
    for (i, (name, vals)) in fields.iter().enumerate() {
        let mut vals: Vec<&String> = vals.iter().collect();
        if style & (1 << i) != 0 {
            vals.reverse();
        }
        if style & 64 != 0 {
            if let Some(first) = vals.first().copied() {
                vals.push(first);
            }
        }
        let indexed = style & (1 << (i + 8)) != 0;
        for (n, v) in vals.iter().enumerate() {
            if indexed {
                params.push(format!("filter_spec.{name}.{}={}", n + 1, enc(v)));
            } else {
                params.push(format!("filter_spec.{name}={}", enc(v)));
            }
        }
        if style & 128 != 0 {
            params.push(format!("filter_spec.{name}="));
        }
    }
    let mut targets: Vec<&Target> = q.filter.targets.iter().collect();
    if style & 32 != 0 {
        targets.reverse();
    }
    for (n, t) in targets.iter().enumerate() {
        params.push(format!("filter_spec.targets.{}.id={}", n + 1, enc(&t.id)));
        params.push(format!(
            "filter_spec.targets.{}.type={}",
            n + 1,
            enc(&t.target_type)
        ));
    }
    let b = |v: bool| match (v, style & 4096 != 0) {
        (true, true) => "TRUE",
        (true, false) => "true",
        (false, true) => "False",
        (false, false) => "false",
    };
    match q.result.return_all {
        Some(v) => params.push(format!("result_spec.return_all={}", b(v))),
        None if style & 8192 != 0 => params.push("result_spec.return_all=false".into()),
        None => {}
    }
    if let Some(v) = q.result.exclude_result {
        params.push(format!("result_spec.exclude_result={}", b(v)));
    }
    for (k, v) in &q.extra_params {
        params.push(format!("{}={}", enc(k), enc(v)));
    }
    // Deterministic shuffle driven by the style bits.
    let n = params.len();
    if n > 1 {
        let mut seed = style.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            params.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }
    params.join("&")
}

/// Writes `q` as a JSON body, with shuffled lists and member order and optional
/// explicit empties.
fn json_like_a_client(q: &TaskQuery, style: u64) -> String {
    use serde_json::{json, Map, Value};
    let mut fs = Map::new();
    let lists: [(&str, &Vec<String>); 5] = [
        ("tasks", &q.filter.tasks),
        ("services", &q.filter.services),
        ("operations", &q.filter.operations),
        ("status", &q.filter.status),
        ("users", &q.filter.users),
    ];
    for (i, (name, v)) in lists.iter().enumerate() {
        let mut v: Vec<&String> = v.iter().collect();
        if style & (1 << i) != 0 {
            v.reverse();
        }
        if !v.is_empty() || style & 128 != 0 {
            fs.insert(name.to_string(), json!(v));
        }
    }
    if !q.filter.targets.is_empty() {
        fs.insert(
            "targets".into(),
            Value::Array(
                q.filter
                    .targets
                    .iter()
                    .map(|t| json!({"type": t.target_type, "id": t.id}))
                    .collect(),
            ),
        );
    }
    let mut rs = Map::new();
    if let Some(v) = q.result.return_all {
        rs.insert("return_all".into(), json!(v));
    } else if style & 8192 != 0 {
        rs.insert("return_all".into(), json!(false));
    }
    if let Some(v) = q.result.exclude_result {
        rs.insert("exclude_result".into(), json!(v));
    }
    let body = json!({"filter_spec": fs, "result_spec": rs});
    if style & 256 != 0 {
        serde_json::to_string_pretty(&body).unwrap()
    } else {
        body.to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_query_encoding_gives_the_same_key(q in arb_query(), s1 in any::<u64>(), s2 in any::<u64>()) {
        let a = parse_rest(Some(&encode_like_a_client(&q, s1)), b"", &lim()).unwrap();
        let b = parse_rest(Some(&encode_like_a_client(&q, s2)), b"", &lim()).unwrap();
        prop_assert_eq!(&a, &q);
        prop_assert_eq!(a.key(), b.key());
    }

    #[test]
    fn json_encodings_give_the_same_key_as_the_query(q in arb_query(), s in any::<u64>()) {
        let mut q = q;
        q.extra_params.clear();
        let j = parse_rest(None, json_like_a_client(&q, s).as_bytes(), &lim()).unwrap();
        let a = parse_api(Some("action=list"), json_like_a_client(&q, !s).as_bytes(), &lim()).unwrap();
        let r = parse_rest(Some(&encode_like_a_client(&q, s)), b"", &lim()).unwrap();
        prop_assert_eq!(&j, &q);
        prop_assert_eq!(j.key(), r.key());
        prop_assert_eq!(a.key(), r.key());
    }

    #[test]
    fn different_meanings_give_different_keys(a in arb_query(), b in arb_query()) {
        prop_assert_eq!(a == b, a.key() == b.key());
    }

    #[test]
    fn adding_a_value_changes_the_key(q in arb_query(), extra in arb_str(), field in 0usize..6) {
        let mut r = q.clone();
        match field {
            0 => r.filter.tasks.push(extra),
            1 => r.filter.services.push(extra),
            2 => r.filter.operations.push(extra),
            3 => r.filter.status.push(extra),
            4 => r.filter.users.push(extra),
            _ => r.filter.targets.push(Target { target_type: extra.clone(), id: extra }),
        }
        r.normalize();
        prop_assert_eq!(q == r, q.key() == r.key());
    }

    #[test]
    fn parse_of_encode_is_identity(q in arb_query()) {
        let rest_up = q.upstream(Family::Rest);
        let (path, query) = rest_up.path_and_query.split_once('?').unwrap_or((&rest_up.path_and_query, ""));
        prop_assert_eq!(path, "/rest/cis/tasks");
        let back = parse_rest(Some(query), b"", &lim()).unwrap();
        prop_assert_eq!(&back, &q);

        let api_up = q.upstream(Family::Api);
        let (_, query) = api_up.path_and_query.split_once('?').unwrap();
        let back = parse_api(Some(query), api_up.body.as_deref().unwrap(), &lim()).unwrap();
        prop_assert_eq!(&back, &q);
    }

    #[test]
    fn arbitrary_queries_never_panic(s in "[a-z_.0-9%=&+]{0,80}") {
        let _ = parse_query(&s, &lim(), false);
        let _ = parse_rest(Some(&s), s.as_bytes(), &lim());
    }

    #[test]
    fn arbitrary_bodies_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_json(&b, &lim());
    }
}

// ----- merge ------------------------------------------------------------------------

mod merging {
    use vcproxy::protocol::merge::{merge, Duplicate, MergeError, MergeOptions, UpstreamBody};
    use vcproxy::{ErrorKind, Family};

    fn ub<'a>(vcenter: &'a str, body: &'a str) -> UpstreamBody<'a> {
        UpstreamBody {
            vcenter,
            body: body.as_bytes(),
        }
    }

    const INFO_A: &str = r#"{"description":{"args":[],"default_message":"Remediate","id":"x","params":[{"key":"vm","value":{"s":"vm-1"}}]},"service":"s","operation":"o","status":"RUNNING","cancelable":true,"progress":{"total":100,"completed":5,"message":{"args":[],"default_message":"","id":"p"}}}"#;
    const INFO_B: &str =
        r#"{ "service" : "t", "operation": "o", "status":"SUCCEEDED" , "cancelable":false}"#;

    #[test]
    fn rest_bodies_merge_sorted_with_info_bytes_untouched() {
        let vc1 = format!(
            r#"{{"value":[{{"key":"b:svc","value":{INFO_B}}},{{"value":{INFO_A},"key":"a:svc"}}]}}"#
        );
        let vc2 = r#"{"value":[]}"#;
        let vc3 = format!(r#"{{ "value" : [ {{"key":"c:svc","value":{INFO_A}}} ] }}"#);
        let m = merge(
            Family::Rest,
            &[ub("vc1", &vc1), ub("vc2", vc2), ub("vc3", &vc3)],
            &MergeOptions::default(),
        )
        .unwrap();
        let expected = format!(
            r#"{{"value":[{{"key":"a:svc","value":{INFO_A}}},{{"key":"b:svc","value":{INFO_B}}},{{"key":"c:svc","value":{INFO_A}}}]}}"#
        );
        assert_eq!(String::from_utf8(m.body).unwrap(), expected);
        assert_eq!(m.tasks, 3);
        assert!(m.duplicates.is_empty());
    }

    #[test]
    fn api_bodies_merge_sorted_with_info_bytes_untouched() {
        let vc1 = format!(r#"{{"z:1":{INFO_A},"a:1":{INFO_B}}}"#);
        let vc2 = format!(r#"{{"m:1":{INFO_B}}}"#);
        let m = merge(
            Family::Api,
            &[ub("vc1", &vc1), ub("vc2", &vc2)],
            &MergeOptions::default(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(m.body).unwrap(),
            format!(r#"{{"a:1":{INFO_B},"m:1":{INFO_B},"z:1":{INFO_A}}}"#)
        );
        let empty = merge(
            Family::Api,
            &[ub("vc1", "{}"), ub("vc2", " {} ")],
            &MergeOptions::default(),
        )
        .unwrap();
        assert_eq!(empty.body, b"{}");
        let empty = merge(Family::Rest, &[], &MergeOptions::default()).unwrap();
        assert_eq!(empty.body, br#"{"value":[]}"#);
    }

    #[test]
    fn merging_into_a_prepared_buffer_gives_the_same_bytes() {
        use vcproxy::protocol::merge::{merge_parsed_into, parse_body};
        let vc1 = format!(r#"{{"x":{INFO_A},"y":{INFO_B}}}"#);
        let vc2 = format!(r#"{{"w":{INFO_B},"x":{INFO_B}}}"#);
        let inputs = [ub("vc1", &vc1), ub("vc2", &vc2)];
        let parsed: Vec<_> = inputs
            .iter()
            .map(|i| parse_body(Family::Api, *i).unwrap())
            .collect();
        let plain = merge(Family::Api, &inputs, &MergeOptions::default()).unwrap();
        for prepared in [Vec::new(), vec![b'#'; 10], vec![0u8; 1 << 16]] {
            let m = merge_parsed_into(
                Family::Api,
                &inputs,
                &parsed,
                &MergeOptions::default(),
                prepared,
            )
            .unwrap();
            assert_eq!(m, plain);
            // A buffer far larger than the answer is given back, not kept in the cache.
            assert!(m.body.capacity() - m.body.len() <= m.body.len() / 4);
        }
    }

    #[test]
    fn merged_output_is_the_same_whatever_the_input_order() {
        let vc1 = format!(r#"{{"x":{INFO_A},"y":{INFO_B}}}"#);
        let vc2 = format!(r#"{{"w":{INFO_B}}}"#);
        let a = merge(
            Family::Api,
            &[ub("vc1", &vc1), ub("vc2", &vc2)],
            &MergeOptions::default(),
        )
        .unwrap();
        let b = merge(
            Family::Api,
            &[ub("vc2", &vc2), ub("vc1", &vc1)],
            &MergeOptions::default(),
        )
        .unwrap();
        assert_eq!(a.body, b.body);
        // The output is valid JSON holding every task.
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn duplicate_ids_keep_the_first_vcenter_and_are_reported() {
        let vc1 = format!(r#"{{"dup":{INFO_A},"one":{INFO_A}}}"#);
        let vc2 = format!(r#"{{"dup":{INFO_B},"two":{INFO_B}}}"#);
        let vc3 = format!(r#"{{"dup":{INFO_B}}}"#);
        let m = merge(
            Family::Api,
            &[ub("vc1", &vc1), ub("vc2", &vc2), ub("vc3", &vc3)],
            &MergeOptions::default(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(m.body).unwrap(),
            format!(r#"{{"dup":{INFO_A},"one":{INFO_A},"two":{INFO_B}}}"#)
        );
        assert_eq!(
            m.duplicates,
            vec![
                Duplicate {
                    task: "dup".into(),
                    kept: 0,
                    dropped: 1
                },
                Duplicate {
                    task: "dup".into(),
                    kept: 0,
                    dropped: 2
                },
            ]
        );
        // Config order decides, not answer order: with vc2 first, vc2's copy wins.
        let m = merge(
            Family::Api,
            &[ub("vc2", &vc2), ub("vc1", &vc1)],
            &MergeOptions::default(),
        )
        .unwrap();
        assert!(String::from_utf8(m.body)
            .unwrap()
            .starts_with(&format!(r#"{{"dup":{INFO_B}"#)));
    }

    #[test]
    fn escaped_ids_are_sorted_by_their_text_and_stay_valid_json() {
        let vc1 = format!(r#"{{"b\u0041":{INFO_B},"a\"q":{INFO_B}}}"#);
        let m = merge(Family::Api, &[ub("vc1", &vc1)], &MergeOptions::default()).unwrap();
        let text = String::from_utf8(m.body).unwrap();
        assert_eq!(text, format!(r#"{{"a\"q":{INFO_B},"bA":{INFO_B}}}"#));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn more_than_max_tasks_is_resource_inaccessible_unless_configured() {
        let body: String = {
            let items: Vec<String> = (0..1001).map(|i| format!(r#""t{i}":{INFO_B}"#)).collect();
            format!("{{{}}}", items.join(","))
        };
        let err = merge(Family::Api, &[ub("vc1", &body)], &MergeOptions::default()).unwrap_err();
        assert_eq!(
            err,
            MergeError::TooMany {
                count: 1001,
                max: 1000
            }
        );
        let v = err.to_vapi();
        assert_eq!(v.kind, ErrorKind::ResourceInaccessible);
        assert_eq!(v.status(), 404);
        let rendered: serde_json::Value = serde_json::from_slice(&v.render(Family::Rest)).unwrap();
        assert_eq!(
            rendered["type"],
            "com.vmware.vapi.std.errors.resource_inaccessible"
        );
        // Exactly at the limit is fine, and the limit can be lifted.
        let all = merge(
            Family::Api,
            &[ub("vc1", &body)],
            &MergeOptions { max_tasks: None },
        )
        .unwrap();
        assert_eq!(all.tasks, 1001);
        let at = merge(
            Family::Api,
            &[ub("vc1", &body)],
            &MergeOptions {
                max_tasks: Some(1001),
            },
        )
        .unwrap();
        assert_eq!(at.tasks, 1001);
    }

    #[test]
    fn the_limit_counts_merged_tasks_not_duplicates() {
        let a = format!(r#"{{"x":{INFO_B},"y":{INFO_B}}}"#);
        let m = merge(
            Family::Api,
            &[ub("vc1", &a), ub("vc2", &a)],
            &MergeOptions { max_tasks: Some(2) },
        )
        .unwrap();
        assert_eq!(m.tasks, 2);
        assert_eq!(m.duplicates.len(), 2);
    }

    #[test]
    fn malformed_bodies_name_the_vcenter() {
        let cases: &[(Family, &str, &str)] = &[
            (Family::Api, "<html>oops</html>", "expected value"),
            (Family::Api, r#"{"a":{}"#, "EOF"),
            (Family::Api, r#"["a"]"#, "object of task id"),
            (Family::Api, r#"{"a":5}"#, "not a JSON object"),
            (
                Family::Api,
                r#"{"value":[{"key":"a","value":{}}]}"#,
                "not a JSON object",
            ),
            (Family::Rest, r#"{"a:1":{}}"#, "beside"),
            (Family::Rest, r#"{}"#, "missing"),
            (Family::Rest, r#"{"value":{}}"#, "entries"),
            (Family::Rest, r#"{"value":[{"key":"a"}]}"#, "no \"value\""),
            (Family::Rest, r#"{"value":[{"value":{}}]}"#, "no \"key\""),
            (
                Family::Rest,
                r#"{"value":[{"key":1,"value":{}}]}"#,
                "task id",
            ),
            (
                Family::Rest,
                r#"{"value":[{"key":"a","value":{},"x":1}]}"#,
                "unexpected entry member",
            ),
            (Family::Rest, r#"{"value":[]} extra"#, "trailing"),
            (
                Family::JsonRpc,
                r#"{"jsonrpc":"2.0","id":"0","result":{"output":[{"STRUCTURE":{"x":{}}}]}}"#,
                "map entry",
            ),
            (
                Family::JsonRpc,
                r#"{"jsonrpc":"2.0","id":"0","result":{"output":[{"STRUCTURE":{"map-entry":{"key":"a","value":1}}}]}}"#,
                "not a typed structure",
            ),
            (
                Family::JsonRpc,
                r#"{"jsonrpc":"2.0","id":"0","result":{"error":{}}}"#,
                "unexpected member",
            ),
            (Family::JsonRpc, r#"{"jsonrpc":"2.0","id":"0"}"#, "result"),
        ];
        for (family, body, needle) in cases {
            let good = match family {
                Family::Rest => r#"{"value":[]}"#,
                Family::Api => "{}",
                Family::JsonRpc => r#"{"jsonrpc":"2.0","id":"0","result":{"output":[]}}"#,
            };
            let err = match merge(
                *family,
                &[ub("good", good), ub("vc-bad", body)],
                &MergeOptions::default(),
            ) {
                Err(e) => e,
                Ok(m) => panic!("{body}: merged {:?}", String::from_utf8_lossy(&m.body)),
            };
            let text = err.to_string();
            assert!(
                text.contains("vc-bad") && text.contains(needle),
                "{body}: {text}"
            );
            assert_eq!(err.to_vapi().kind, ErrorKind::ServiceUnavailable);
        }
        let e = merge(
            Family::Api,
            &[UpstreamBody {
                vcenter: "v",
                body: b"{\"\xff\":{}}",
            }],
            &MergeOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}

// ----- reading answers as they arrive -----------------------------------------------

mod streaming {
    use proptest::prelude::*;
    use vcproxy::protocol::merge::{
        parse_body, MergeError, ParsedBody, StreamParser, UpstreamBody,
    };
    use vcproxy::Family;

    fn ub(body: &[u8]) -> UpstreamBody<'_> {
        UpstreamBody {
            vcenter: "vc1",
            body,
        }
    }

    /// `body` fed in pieces ending at `cuts` (ascending), then finished.
    fn streamed(family: Family, body: &[u8], cuts: &[usize]) -> Result<ParsedBody, MergeError> {
        let mut reader = StreamParser::new(family);
        for &cut in cuts {
            reader.feed(&body[..cut.min(body.len())]);
        }
        reader.finish(ub(body))
    }

    /// The result `parse_body` gives, for every way of cutting `body` into two
    /// pieces and for one-byte pieces.
    fn check_every_cut(family: Family, body: &str) {
        let body = body.as_bytes();
        let whole = parse_body(family, ub(body));
        for cut in 0..=body.len() {
            assert_eq!(
                streamed(family, body, &[cut]),
                whole,
                "cut at {cut}: {body:?}"
            );
        }
        let bytes: Vec<usize> = (1..=body.len()).collect();
        assert_eq!(streamed(family, body, &bytes), whole, "byte by byte");
    }

    const INFO: &str = r#"{"service":"s","status":"RUNNING","params":[{"key":"vm","value":{"s":"a\"}b"}}],"n":[1,-2.5e3,true,null]}"#;

    #[test]
    fn every_cut_reads_like_the_whole_body() {
        let rest = [
            format!(r#"{{"value":[{{"key":"a","value":{INFO}}},{{"value":{INFO},"key":"b"}}]}}"#),
            format!("  {{ \"value\" :\n[ {{\"key\":\"a\\u0041\",\"value\":{INFO}}} ,\t{{\"key\":\"c\",\"value\":{{}}}} ] }}\r\n"),
            r#"{"value":[]}"#.to_owned(),
            // Shapes the streaming reader leaves to parse_body:
            format!(r#"{{"\u0076alue":[{{"key":"a","value":{INFO}}}]}}"#),
            // ... and malformed answers, whose errors must be parse_body's.
            format!(r#"{{"value":[{{"key":"a","value":{INFO}}},]}}"#),
            format!(r#"{{"value":[{{"key":"a","value":{INFO}}}]}} x"#),
            r#"{"value":[{"key":"a","value":5}]}"#.to_owned(),
            r#"{"value":[{"key":"a"}]}"#.to_owned(),
            r#"{"value":[],"value":[]}"#.to_owned(),
            r#"{"value":[{"key":"a","value":{}}"#.to_owned(),
            "<html>oops</html>".to_owned(),
            String::new(),
        ];
        for body in &rest {
            check_every_cut(Family::Rest, body);
        }
        let api = [
            format!(r#"{{"a":{INFO},"b":{INFO}}}"#),
            format!("\n{{ \"a\\n\" : {INFO} , \"b\":{{}}\n}} "),
            "{}".to_owned(),
            format!(r#"{{"a":{INFO},"b":7}}"#),
            format!(r#"{{"a":{INFO},}}"#),
            format!(r#"{{"a":{INFO}}}}}"#),
            format!(r#"{{"a" {INFO}}}"#),
            r#"["a"]"#.to_owned(),
        ];
        for body in &api {
            check_every_cut(Family::Api, body);
        }
        let entry = |id: &str| {
            format!(
                r#"{{"STRUCTURE":{{"map-entry":{{"key":"{id}","value":{{"STRUCTURE":{{"com.vmware.cis.task.info":{INFO}}}}}}}}}}}"#
            )
        };
        let rpc = [
            format!(
                r#"{{"jsonrpc":"2.0","id":"0","result":{{"output":[{},{}]}}}}"#,
                entry("b"),
                entry("a")
            ),
            format!(
                " {{ \"jsonrpc\" : \"2.0\" ,\n\"id\":\"0\", \"result\" : {{ \"output\" : [ {} ] }} }} ",
                entry("a\\u0041")
            ),
            r#"{"jsonrpc":"2.0","id":"0","result":{"output":[]}}"#.to_owned(),
            // Another member order: left to parse_body, which reads it.
            format!(
                r#"{{"id":"0","result":{{"output":[{}]}},"jsonrpc":"2.0"}}"#,
                entry("a")
            ),
            // Errors and malformed answers, whose errors must be parse_body's.
            r#"{"jsonrpc":"2.0","id":"0","result":{"error":{"ERROR":{}}}}"#.to_owned(),
            format!(
                r#"{{"jsonrpc":"2.0","id":"0","result":{{"output":[{},]}}}}"#,
                entry("a")
            ),
            r#"{"jsonrpc":"2.0","id":"0","result":{"output":[{"STRUCTURE":{"map-entry":{"key":"a"}}}]}}"#
                .to_owned(),
            format!(
                r#"{{"jsonrpc":"2.0","id":"0","result":{{"output":[{}]}}}}}}"#,
                entry("a")
            ),
        ];
        for body in &rpc {
            check_every_cut(Family::JsonRpc, body);
        }
    }

    #[test]
    fn tasks_are_read_before_the_body_is_complete() {
        let tasks: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"key":"task-{i:03}","value":{INFO}}}"#))
            .collect();
        let body = format!(r#"{{"value":[{}]}}"#, tasks.join(","));
        let half = body.len() / 2;
        let mut reader = StreamParser::new(Family::Rest);
        reader.feed(&body.as_bytes()[..half]);
        assert!(
            (45..=50).contains(&reader.tasks_read()),
            "{} tasks read from half the body",
            reader.tasks_read()
        );
        assert!(!reader.gave_up());
        let parsed = reader.finish(ub(body.as_bytes())).unwrap();
        assert_eq!(parsed.len(), 100);
        assert_eq!(Ok(parsed), parse_body(Family::Rest, ub(body.as_bytes())));
    }

    #[test]
    fn json_rpc_tasks_are_read_before_the_body_is_complete() {
        let tasks: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"STRUCTURE":{{"map-entry":{{"key":"task-{i:03}","value":{{"STRUCTURE":{{"com.vmware.cis.task.info":{INFO}}}}}}}}}}}"#))
            .collect();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"0","result":{{"output":[{}]}}}}"#,
            tasks.join(",")
        );
        let mut reader = StreamParser::new(Family::JsonRpc);
        reader.feed(&body.as_bytes()[..body.len() / 2]);
        assert!(
            (45..=50).contains(&reader.tasks_read()),
            "{}",
            reader.tasks_read()
        );
        assert!(!reader.gave_up());
        let parsed = reader.finish(ub(body.as_bytes())).unwrap();
        assert_eq!(parsed.len(), 100);
        assert_eq!(Ok(parsed), parse_body(Family::JsonRpc, ub(body.as_bytes())));
    }

    #[test]
    fn tiny_chunks_do_not_make_the_work_quadratic() {
        // One 1 MB task arriving a byte at a time is still read right. (That it is
        // retried only a logarithmic number of times is counted in merge.rs's own
        // unit test.)
        let big = "x".repeat(1 << 20);
        let body = format!(r#"{{"value":[{{"key":"a","value":{{"s":"{big}"}}}}]}}"#);
        let mut reader = StreamParser::new(Family::Rest);
        for end in 1..=body.len() {
            reader.feed(&body.as_bytes()[..end]);
        }
        assert!(!reader.gave_up());
        // The last attempt may wait for more bytes than there are; finish reads them.
        assert_eq!(reader.finish(ub(body.as_bytes())).unwrap().len(), 1);
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t"), Just("\r\n  ")]
    }

    fn task() -> impl Strategy<Value = (String, String)> {
        (
            "[a-z0-9:\\-]{1,12}|[a-z\"\\\\\u{e9}]{1,4}",
            prop_oneof![
                Just("{}".to_owned()),
                Just(INFO.to_owned()),
                "[a-z0-9 ]{0,20}".prop_map(|s| format!(r#"{{"m":"{s}","k":[{{}}]}}"#)),
            ],
        )
            .prop_map(|(id, info)| (serde_json::to_string(&id).unwrap(), info))
    }

    prop_compose! {
        /// A List Tasks answer with random whitespace, optionally damaged: a byte
        /// replaced, or the end cut off.
        fn answer()(
            rest in any::<bool>(),
            tasks in proptest::collection::vec((task(), ws(), ws()), 0..6),
            pad in (ws(), ws(), ws()),
            damage in proptest::option::weighted(0.3, (any::<prop::sample::Index>(), any::<u8>())),
            cut in proptest::option::weighted(0.1, any::<prop::sample::Index>()),
        ) -> (Family, Vec<u8>) {
            let items: Vec<String> = tasks
                .iter()
                .map(|((id, info), a, b)| {
                    if rest {
                        format!(r#"{a}{{"key":{b}{id},"value":{a}{info}}}{b}"#)
                    } else {
                        format!("{a}{id}{b}:{a}{info}{b}")
                    }
                })
                .collect();
            let (p0, p1, p2) = pad;
            let text = if rest {
                format!(r#"{p0}{{{p1}"value"{p2}:{p0}[{}]{p1}}}{p2}"#, items.join(","))
            } else {
                format!("{p0}{{{}}}{p1}", items.join(","))
            };
            let mut body = text.into_bytes();
            if let Some((at, byte)) = damage {
                if !body.is_empty() {
                    let i = at.index(body.len());
                    body[i] = byte;
                }
            }
            if let Some(at) = cut {
                if !body.is_empty() {
                    body.truncate(at.index(body.len()));
                }
            }
            (if rest { Family::Rest } else { Family::Api }, body)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn streamed_reading_equals_whole_reading(
            (family, body) in answer(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(
                streamed(family, &body, &cuts),
                parse_body(family, ub(&body)),
                "{:?}", String::from_utf8_lossy(&body)
            );
        }
    }
}
