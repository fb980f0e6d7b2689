//! Integration tests of the vCenter simulator, through a real HTTP client.
//!
//! Every test starts its own simulator in-process on `127.0.0.1:0`. Nothing here
//! asserts on how long something took except as a lower bound (added latency);
//! expiry is tested by sleeping well past a short idle timeout and checking
//! status codes.

use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vcproxy::sim::{self, Endpoint, Faults, SimConfig, UserSpec};
use vcproxy::Family;
use vcproxy_testkit::{rest_keys, start_sim, Http, Resp, ADMIN};

// ---------------------------------------------------------------------------------
// Helpers (the HTTP client and simulator start-up are the test kit's)
// ---------------------------------------------------------------------------------

const REST_SESSION: &str = "/rest/com/vmware/cis/session";

/// The documented unauthenticated errors, byte for byte.
const REST_401: &str = r#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#;
const API_401: &str = r#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}"#;

fn static_config(tasks: usize, seed: u64) -> SimConfig {
    SimConfig {
        tasks,
        seed,
        static_tasks: true,
        ..SimConfig::default()
    }
}

/// Keys of an `/api` list answer `{"<id>": {...}}`.
fn api_keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an /api map: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Two distinct services with tasks in `tasks`.
fn two_services(tasks: &BTreeMap<String, Value>) -> (String, String) {
    let services: BTreeSet<&str> = tasks
        .values()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    let mut it = services.into_iter();
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
    )
}

fn assert_vapi_error(r: &Resp, family: Family, status: u16, name: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/json",
        "{name}"
    );
    let v = r.json();
    match family {
        Family::Rest => {
            assert_eq!(
                v["type"],
                format!("com.vmware.vapi.std.errors.{name}"),
                "{v}"
            );
            let m = &v["value"]["messages"][0];
            assert!(
                m["default_message"].is_string() && m["id"].is_string() && m["args"].is_array()
            );
            assert_eq!(v.as_object().unwrap().len(), 2);
        }
        Family::Api => {
            assert_eq!(v["error_type"], name.to_uppercase(), "{v}");
            let m = &v["messages"][0];
            assert!(
                m["default_message"].is_string() && m["id"].is_string() && m["args"].is_array()
            );
            assert_eq!(v.as_object().unwrap().len(), 2);
        }
        Family::JsonRpc => panic!("JSON-RPC errors are HTTP 200 (tests/sim_jsonrpc.rs)"),
    }
}

fn message_of(r: &Resp) -> String {
    let v = r.json();
    let m = if v.get("error_type").is_some() {
        &v["messages"][0]
    } else {
        &v["value"]["messages"][0]
    };
    m["default_message"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------
// 1. Sessions
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn rest_session_log_in_who_am_i_log_out() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let r = c.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let id = v["value"].as_str().unwrap().to_string();
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let hdr = [("vmware-api-session-id", id.as_str())];
    let who = c
        .call(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=get",
            &hdr,
            None,
        )
        .await;
    assert_eq!(who.status, 200);
    let w = who.json();
    assert_eq!(w["value"]["user"], ADMIN.0);
    assert!(w["value"]["created_time"].as_str().unwrap().ends_with('Z'));
    assert!(w["value"]["last_accessed_time"].is_string());

    let out = c.call(Method::DELETE, REST_SESSION, &hdr, None).await;
    assert_eq!(out.status, 200);
    let again = c
        .call(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=get",
            &hdr,
            None,
        )
        .await;
    assert_eq!(again.status, 401);
    assert_eq!(again.text(), REST_401);
    let out_again = c.call(Method::DELETE, REST_SESSION, &hdr, None).await;
    assert_eq!(out_again.status, 401);
    assert_eq!(out_again.text(), REST_401);
    sim.shutdown().await;
}

#[tokio::test]
async fn api_session_log_in_who_am_i_log_out() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let r = c.login(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 201);
    // A bare JSON string.
    assert!(r.body.starts_with(b"\"") && r.body.ends_with(b"\""));
    let id = r.json().as_str().unwrap().to_string();

    let who = c.get("/api/session", &id).await;
    assert_eq!(who.status, 200);
    let w = who.json();
    assert_eq!(w["user"], ADMIN.0);
    assert!(w.get("value").is_none());

    let hdr = [("vmware-api-session-id", id.as_str())];
    let out = c.call(Method::DELETE, "/api/session", &hdr, None).await;
    assert_eq!(out.status, 204);
    assert!(out.body.is_empty());
    let again = c.get("/api/session", &id).await;
    assert_eq!(again.status, 401);
    assert_eq!(again.text(), API_401);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_and_missing_or_unknown_sessions_are_401_in_each_family() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    for (family, expected) in [(Family::Rest, REST_401), (Family::Api, API_401)] {
        let wrong = c.login(family, ADMIN.0, "nope").await;
        assert_eq!(
            (wrong.status.as_u16(), wrong.text().as_str()),
            (401, expected)
        );
        let nobody = c.login(family, "nobody", ADMIN.1).await;
        assert_eq!(
            (nobody.status.as_u16(), nobody.text().as_str()),
            (401, expected)
        );
        let path = match family {
            Family::Rest => REST_SESSION,
            _ => "/api/session",
        };
        let no_auth = c.call(Method::POST, path, &[], None).await;
        assert_eq!(
            (no_auth.status.as_u16(), no_auth.text().as_str()),
            (401, expected)
        );
        let garbage = c
            .call(Method::POST, path, &[("authorization", "Basic %%%")], None)
            .await;
        assert_eq!(garbage.status, 401);
    }
    // Missing and unknown session ids on every authenticated endpoint.
    let some_id = sim.task_ids()[0].clone();
    let calls: Vec<(Method, String, Family)> = vec![
        (
            Method::GET,
            "/rest/cis/tasks?filter_spec.services=x".into(),
            Family::Rest,
        ),
        (
            Method::POST,
            "/api/cis/tasks?action=list".into(),
            Family::Api,
        ),
        (
            Method::GET,
            format!("/rest/cis/tasks/{some_id}"),
            Family::Rest,
        ),
        (
            Method::GET,
            format!("/api/cis/tasks/{some_id}"),
            Family::Api,
        ),
        (Method::GET, "/api/session".into(), Family::Api),
        (Method::DELETE, "/api/session".into(), Family::Api),
        (
            Method::POST,
            format!("{REST_SESSION}?~action=get"),
            Family::Rest,
        ),
    ];
    for (method, path, family) in calls {
        let expected = if family == Family::Rest {
            REST_401
        } else {
            API_401
        };
        let missing = c
            .call(
                method.clone(),
                &path,
                &[],
                Some(br#"{"filter_spec":{"services":["x"]}}"#),
            )
            .await;
        assert_eq!(
            (missing.status.as_u16(), missing.text().as_str()),
            (401, expected),
            "{path}"
        );
        let unknown = c
            .call(
                method,
                &path,
                &[("vmware-api-session-id", "0123456789abcdef0123456789abcdef")],
                Some(br#"{"filter_spec":{"services":["x"]}}"#),
            )
            .await;
        assert_eq!(
            (unknown.status.as_u16(), unknown.text().as_str()),
            (401, expected),
            "{path}"
        );
    }
    assert_eq!(c.stats().await["sessions_opened"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn sessions_expire_after_the_idle_time() {
    let sim = start_sim(SimConfig {
        session_idle: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    let id = c.admin().await;
    assert_eq!(c.get("/api/session", &id).await.status, 200);
    let stats = c.stats().await;
    assert_eq!(
        (
            stats["sessions_opened"].as_u64(),
            stats["sessions_open"].as_u64()
        ),
        (Some(1), Some(1))
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = c.get("/api/session", &id).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (401, API_401));
    let r = c
        .get(&format!("/rest/cis/tasks/{}", sim.task_ids()[0]), &id)
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (401, REST_401));
    let stats = c.stats().await;
    assert_eq!(
        (
            stats["sessions_opened"].as_u64(),
            stats["sessions_open"].as_u64()
        ),
        (Some(1), Some(0))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn expire_all_sessions_now_through_the_control_api_and_the_handle() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let a = c.admin().await;
    let b = c.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let r = c
        .call(Method::POST, "/_sim/expire-sessions", &[], None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["expired"], 2);
    assert_eq!(c.get("/api/session", &a).await.status, 401);
    assert_eq!(c.get("/api/session", &b).await.status, 401);
    let d = c.admin().await;
    assert_eq!(sim.expire_sessions(), 1);
    assert_eq!(c.get("/api/session", &d).await.status, 401);
    let s = sim.stats();
    assert_eq!((s.sessions_opened, s.sessions_open), (3, 0));
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 2. List Tasks
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn rest_list_indexed_repeated_and_json_body_styles_agree() {
    let sim = start_sim(static_config(300, 5)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let all = c.all_tasks().await;
    let (a, b) = two_services(&all);

    let indexed = c
        .rest_list(
            &s,
            &format!(
                "filter_spec.services.1={a}&filter_spec.services.2={b}\
                 &filter_spec.status.1=SUCCEEDED&filter_spec.status.2=RUNNING"
            ),
        )
        .await;
    assert_eq!(indexed.status, 200, "{}", indexed.text());
    let repeated = c
        .rest_list(
            &s,
            &format!(
                "filter_spec.status=RUNNING&filter_spec.services={b}\
                 &filter_spec.services={a}&filter_spec.status=SUCCEEDED"
            ),
        )
        .await;
    assert_eq!(repeated.status, 200);
    // The Python SDK's form: a JSON body on the GET, without a Content-Type.
    let body = format!(
        r#"{{"filter_spec":{{"services":["{a}","{b}"],"status":["SUCCEEDED","RUNNING"]}},"result_spec":{{"return_all":true}}}}"#
    );
    let json_body = c
        .call(
            Method::GET,
            "/rest/cis/tasks",
            &[("vmware-api-session-id", &s)],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(json_body.status, 200, "{}", json_body.text());
    assert_eq!(indexed.body, repeated.body);
    assert_eq!(indexed.body, json_body.body);

    let v = indexed.json();
    assert_eq!(v.as_object().unwrap().len(), 1, "wrapped in value");
    let keys = rest_keys(&v);
    let expected: Vec<String> = all
        .iter()
        .filter(|(_, t)| t["service"] == a.as_str() || t["service"] == b.as_str())
        .filter(|(_, t)| t["status"] == "SUCCEEDED" || t["status"] == "RUNNING")
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(sorted(keys), expected);
    for e in v["value"].as_array().unwrap() {
        assert_eq!(e.as_object().unwrap().len(), 2);
        assert!(e["value"]["description"].is_object());
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn families_render_maps_differently_and_agree_otherwise() {
    let sim = start_sim(static_config(200, 2)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let all = c.all_tasks().await;
    let services: BTreeSet<&str> = all
        .values()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    let query: String = services
        .iter()
        .map(|s| format!("filter_spec.services={s}"))
        .collect::<Vec<_>>()
        .join("&");
    let rest = c.rest_list(&s, &query).await.json();
    let body = serde_json::json!({ "filter_spec": { "services": services } }).to_string();
    let api_resp = c.api_list(&s, &body).await;
    assert_eq!(api_resp.status, 200);
    let api = api_resp.json();
    assert_eq!(sorted(rest_keys(&rest)), sorted(api_keys(&api)));
    assert_eq!(api_keys(&api).len(), 200);
    // The /api answer is exactly what the simulator holds.
    let api_map: BTreeMap<String, Value> = serde_json::from_value(api.clone()).unwrap();
    assert_eq!(api_map, all);

    let mut saw_result = false;
    let mut saw_error = false;
    for e in rest["value"].as_array().unwrap() {
        let id = e["key"].as_str().unwrap();
        let (r, a) = (&e["value"], &api[id]);
        // Fields without maps render alike.
        for f in [
            "service",
            "operation",
            "status",
            "start_time",
            "end_time",
            "user",
            "target",
            "cancelable",
            "progress",
            "parent",
        ] {
            assert_eq!(r[f], a[f], "{id} {f}");
        }
        // description.params: object in /api, key/value array in /rest.
        let ap = a["description"]["params"].as_object().unwrap();
        let rp = r["description"]["params"].as_array().unwrap();
        assert_eq!(rp.len(), ap.len());
        for kv in rp {
            assert_eq!(kv.as_object().unwrap().len(), 2);
            assert_eq!(&ap[kv["key"].as_str().unwrap()], &kv["value"]);
        }
        if let Some(res) = a.get("result") {
            saw_result = true;
            // A map (details) holding structures with a nested map (notifications).
            let details = res["details"].as_object().unwrap();
            let rdetails = r["result"]["details"].as_array().unwrap();
            assert_eq!(details.len(), rdetails.len());
            for kv in rdetails {
                let item = &details[kv["key"].as_str().unwrap()];
                let notes = item["notifications"].as_object().unwrap();
                let rnotes = kv["value"]["notifications"].as_array().unwrap();
                assert_eq!(notes.len(), rnotes.len());
                assert_eq!(notes["info"], rnotes[0]["value"]);
                assert_eq!(rnotes[0]["key"], "info");
            }
        }
        if let Some(err) = a.get("error") {
            saw_error = true;
            assert_eq!(err["error_type"], "ERROR");
            assert_eq!(r["error"]["type"], "com.vmware.vapi.std.errors.error");
            assert_eq!(
                err["messages"][0]["default_message"],
                r["error"]["value"]["messages"][0]["default_message"]
            );
        }
    }
    assert!(saw_result && saw_error);
    sim.shutdown().await;
}

#[tokio::test]
async fn filters_combine_any_within_a_field_and_all_across_fields() {
    let sim = start_sim(static_config(400, 11)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let all = c.all_tasks().await;
    // tasks alone.
    let ids: Vec<&String> = all.keys().take(3).collect();
    let r = c
        .api_list(
            &s,
            &serde_json::json!({"filter_spec": {"tasks": ids}}).to_string(),
        )
        .await;
    assert_eq!(
        sorted(api_keys(&r.json())),
        ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );

    // services + users + operations + targets, in the indexed query style.
    let sample = all.values().find(|t| t.get("target").is_some()).unwrap();
    let a = sample["service"].as_str().unwrap().to_string();
    let (x, y) = two_services(&all);
    let b = if x == a { y } else { x };
    let (user, op) = (
        sample["user"].as_str().unwrap(),
        sample["operation"].as_str().unwrap(),
    );
    let (ttype, tid) = (
        sample["target"]["type"].as_str().unwrap(),
        sample["target"]["id"].as_str().unwrap(),
    );
    let enc = |s: &str| s.replace('\\', "%5C");
    let q = format!(
        "filter_spec.services.1={a}&filter_spec.services.2={b}&filter_spec.users.1={}\
         &filter_spec.operations.1={op}&filter_spec.targets.1.type={ttype}&filter_spec.targets.1.id={tid}\
         &filter_spec.targets.2.type=VirtualMachine&filter_spec.targets.2.id=vm-999999",
        enc(user)
    );
    let r = c.rest_list(&s, &q).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let expected: Vec<String> = all
        .iter()
        .filter(|(_, t)| t["service"] == a.as_str() || t["service"] == b.as_str())
        .filter(|(_, t)| t["user"] == user && t["operation"] == op)
        .filter(|(_, t)| t["target"]["type"] == ttype && t["target"]["id"] == tid)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(sorted(rest_keys(&r.json())), expected);

    // A target matches on type and id together.
    let r = c
        .rest_list(
            &s,
            &format!("filter_spec.services={a}&filter_spec.targets.1.type=Datastore&filter_spec.targets.1.id={tid}"),
        )
        .await;
    assert_eq!(rest_keys(&r.json()), Vec::<String>::new());

    // Empty values are skipped (vAPI's decoder): services alone decide.
    let r1 = c
        .rest_list(
            &s,
            &format!("filter_spec.services={a}&filter_spec.status=&filter_spec.users="),
        )
        .await;
    let r2 = c.rest_list(&s, &format!("filter_spec.services={a}")).await;
    assert_eq!(r1.status, 200);
    assert_eq!(r1.body, r2.body);
    // An empty list in JSON matches everything too.
    let r3 = c
        .api_list(
            &s,
            &format!(r#"{{"filter_spec":{{"services":["{a}"],"status":[],"users":[]}}}}"#),
        )
        .await;
    assert_eq!(sorted(api_keys(&r3.json())), sorted(rest_keys(&r2.json())));
    sim.shutdown().await;
}

#[tokio::test]
async fn neither_tasks_nor_services_is_400_invalid_argument_in_each_family() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let r = c.rest_list(&s, "filter_spec.status=RUNNING").await;
    assert_vapi_error(&r, Family::Rest, 400, "invalid_argument");
    let r = c.get("/rest/cis/tasks", &s).await;
    assert_vapi_error(&r, Family::Rest, 400, "invalid_argument");
    let r = c.api_list(&s, "{}").await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");
    let r = c
        .api_list(
            &s,
            r#"{"filter_spec":{"tasks":[],"services":[],"status":["FAILED"]}}"#,
        )
        .await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");
    assert!(message_of(&r).contains("filter_spec.tasks"));
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unknown_input_is_400_naming_the_parameter() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let svc = sim::service_ids()[0];

    let r = c
        .rest_list(&s, &format!("filter_spec.services={svc}&colour=red"))
        .await;
    assert_vapi_error(&r, Family::Rest, 400, "invalid_argument");
    assert!(message_of(&r).contains("colour"));

    let r = c
        .api_list(
            &s,
            &format!(r#"{{"filter_spec":{{"services":["{svc}"],"colour":"red"}}}}"#),
        )
        .await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");
    assert!(message_of(&r).contains("filter_spec.colour"));

    let r = c.api_list(&s, r#"{"filter_spec":{"services":["#).await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");
    let r = c
        .api_list(&s, r#"{"filter_spec":{"services":"one"}}"#)
        .await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");

    let r = c
        .rest_list(
            &s,
            &format!("filter_spec.services={svc}&filter_spec.status=DONE"),
        )
        .await;
    assert_vapi_error(&r, Family::Rest, 400, "invalid_argument");
    assert!(message_of(&r).contains("filter_spec.status"));

    // An index gap, as the vAPI decoder rejects it.
    let r = c
        .rest_list(&s, "filter_spec.services.1=a&filter_spec.services.3=b")
        .await;
    assert_vapi_error(&r, Family::Rest, 400, "invalid_argument");

    // A body over the limit (64 KiB).
    let big = format!(
        r#"{{"filter_spec":{{"services":["{}"]}}}}"#,
        "x".repeat(70 * 1024)
    );
    let r = c.api_list(&s, &big).await;
    assert_vapi_error(&r, Family::Api, 400, "invalid_argument");
    sim.shutdown().await;
}

#[tokio::test]
async fn over_1000_visible_matches_is_404_resource_inaccessible_but_not_for_a_narrower_user() {
    let services = sim::service_ids();
    let narrow = services[services.len() - 1].to_string();
    let sim = start_sim(SimConfig {
        tasks: 1500,
        static_tasks: true,
        // Room for a body naming 1000 tasks.
        limits: vcproxy::protocol::filter::Limits {
            max_query_bytes: 1 << 20,
            max_body_bytes: 1 << 20,
        },
        users: vec![
            UserSpec::default_admin(),
            UserSpec::restricted("narrow", "pw", [narrow.clone()]),
        ],
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    let admin = c.admin().await;
    let body = serde_json::json!({"filter_spec": {"services": services}}).to_string();
    let query: String = services
        .iter()
        .enumerate()
        .map(|(i, s)| format!("filter_spec.services.{}={s}", i + 1))
        .collect::<Vec<_>>()
        .join("&");

    let r = c.api_list(&admin, &body).await;
    assert_vapi_error(&r, Family::Api, 404, "resource_inaccessible");
    let r = c.rest_list(&admin, &query).await;
    assert_vapi_error(&r, Family::Rest, 404, "resource_inaccessible");

    // Exactly 1000 is still allowed: name 1000 tasks.
    let ids: Vec<String> = sim.task_ids().into_iter().take(1000).collect();
    let r = c
        .api_list(
            &admin,
            &serde_json::json!({"filter_spec": {"tasks": ids}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(api_keys(&r.json()).len(), 1000);

    // The same question from a user who sees one service: only visible tasks count.
    let n = c.session(Family::Api, "narrow", "pw").await;
    let r = c.api_list(&n, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let all = c.all_tasks().await;
    let expected: Vec<String> = all
        .iter()
        .filter(|(_, t)| t["service"] == narrow.as_str())
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!expected.is_empty() && expected.len() < 1000);
    assert_eq!(sorted(api_keys(&r.json())), expected);
    let r = c.rest_list(&n, &query).await;
    assert_eq!(sorted(rest_keys(&r.json())), expected);
    sim.shutdown().await;
}

#[tokio::test]
async fn two_users_get_different_answers_to_the_same_question() {
    let (a, b) = (sim::service_ids()[0], sim::service_ids()[3]);
    let sim = start_sim(SimConfig {
        static_tasks: true,
        users: vec![
            UserSpec::new("root@x", "pw1"),
            UserSpec::restricted("ops@x", "pw2", [a]),
        ],
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    // The default admin is not configured when users are given.
    assert_eq!(c.login(Family::Api, ADMIN.0, ADMIN.1).await.status, 401);
    let root = c.session(Family::Rest, "root@x", "pw1").await;
    let ops = c.session(Family::Rest, "ops@x", "pw2").await;
    let q = format!("filter_spec.services={a}&filter_spec.services={b}");
    let all = rest_keys(&c.rest_list(&root, &q).await.json());
    let mine = rest_keys(&c.rest_list(&ops, &q).await.json());
    assert!(!mine.is_empty());
    assert!(mine.len() < all.len());
    assert!(mine.iter().all(|id| id.ends_with(&format!(":{a}"))));
    assert!(mine.iter().all(|id| all.contains(id)));

    // Get one task: the restricted user cannot see b's tasks.
    let hidden = all
        .iter()
        .find(|id| id.ends_with(&format!(":{b}")))
        .unwrap();
    let r = c.get(&format!("/api/cis/tasks/{hidden}"), &ops).await;
    assert_vapi_error(&r, Family::Api, 404, "not_found");
    let r = c.get(&format!("/rest/cis/tasks/{hidden}"), &ops).await;
    assert_vapi_error(&r, Family::Rest, 404, "not_found");
    assert_eq!(
        c.get(&format!("/api/cis/tasks/{hidden}"), &root)
            .await
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("/api/cis/tasks/{}", mine[0]), &ops)
            .await
            .status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn exclude_result_drops_result_and_return_all_is_accepted() {
    let sim = start_sim(static_config(200, 3)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let services = sim::service_ids();
    let q: String = services
        .iter()
        .map(|s| format!("filter_spec.services={s}"))
        .collect::<Vec<_>>()
        .join("&");
    let with = c.rest_list(&s, &q).await.json();
    let has_result = |v: &Value| {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["value"].get("result").is_some())
            .count()
    };
    assert!(has_result(&with) > 0);
    let without = c
        .rest_list(
            &s,
            &format!("{q}&result_spec.exclude_result=true&result_spec.return_all=true"),
        )
        .await;
    assert_eq!(without.status, 200);
    let without = without.json();
    assert_eq!(has_result(&without), 0);
    assert_eq!(rest_keys(&with), rest_keys(&without));

    let body = serde_json::json!({
        "filter_spec": {"services": services},
        "result_spec": {"exclude_result": true, "return_all": true}
    })
    .to_string();
    let api = c.api_list(&s, &body).await.json();
    assert_eq!(api_keys(&api).len(), 200);
    assert!(api
        .as_object()
        .unwrap()
        .values()
        .all(|t| t.get("result").is_none()));
    let body = serde_json::json!({
        "filter_spec": {"services": services},
        "result_spec": {"exclude_result": false}
    })
    .to_string();
    let api = c.api_list(&s, &body).await.json();
    assert!(api
        .as_object()
        .unwrap()
        .values()
        .any(|t| t.get("result").is_some()));
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 3. Get one task
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn get_one_task_in_both_families() {
    let sim = start_sim(static_config(50, 8)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let all = c.all_tasks().await;
    let (id, info) = all.iter().find(|(_, t)| t.get("result").is_some()).unwrap();

    let api = c.get(&format!("/api/cis/tasks/{id}"), &s).await;
    assert_eq!(api.status, 200);
    assert_eq!(&api.json(), info);
    let rest = c.get(&format!("/rest/cis/tasks/{id}"), &s).await;
    assert_eq!(rest.status, 200);
    let rv = rest.json();
    assert_eq!(rv.as_object().unwrap().len(), 1);
    assert_eq!(rv["value"]["status"], info["status"]);
    assert!(rv["value"]["result"]["details"].is_array());
    // A percent-encoded colon is the same id.
    let encoded = id.replace(':', "%3A");
    let again = c.get(&format!("/rest/cis/tasks/{encoded}"), &s).await;
    assert_eq!(again.body, rest.body);

    for (family, prefix) in [(Family::Api, "/api"), (Family::Rest, "/rest")] {
        let r = c
            .get(
                &format!("{prefix}/cis/tasks/00000000-0000-4000-8000-000000000000:com.vmware.x"),
                &s,
            )
            .await;
        assert_vapi_error(&r, family, 404, "not_found");
        let r = c.get(&format!("{prefix}/cis/tasks/%ZZ"), &s).await;
        assert_vapi_error(&r, family, 404, "not_found");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_404_in_the_family_shape() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let h = [("vmware-api-session-id", s.as_str())];
    for (method, path, family) in [
        (Method::GET, "/rest/nope", Family::Rest),
        (Method::POST, "/rest/cis/tasks", Family::Rest),
        (Method::GET, "/rest/com/vmware/cis/session", Family::Rest),
        (
            Method::POST,
            "/rest/com/vmware/cis/session?~action=frobnicate",
            Family::Rest,
        ),
        (Method::POST, "/rest/session", Family::Rest),
        (Method::GET, "/api/nope", Family::Api),
        (Method::PUT, "/api/session", Family::Api),
        (Method::GET, "/api/cis/tasks?action=list", Family::Api),
        (Method::POST, "/api/cis/tasks", Family::Api),
        (Method::POST, "/api/cis/tasks?action=get", Family::Api),
    ] {
        let r = c.call(method.clone(), path, &h, None).await;
        assert_vapi_error(&r, family, 404, "not_found");
    }
    let r = c.call(Method::GET, "/elsewhere", &h, None).await;
    assert_eq!(r.status, 404);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let r = c.call(Method::GET, "/_sim/nope", &[], None).await;
    assert_eq!(r.status, 404);
    let r = c.call(Method::DELETE, "/_sim/stats", &[], None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET");
    // Counted as "other" endpoint requests: 10 requests, one log-in.
    let st = sim.stats();
    assert_eq!(st.endpoint_total(Endpoint::Other), 10);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 4. Data
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn data_is_deterministic_per_seed_and_obeys_the_field_rules() {
    let a = start_sim(static_config(300, 42)).await;
    let b = start_sim(static_config(300, 42)).await;
    let other = start_sim(static_config(300, 43)).await;
    let ta = Http::for_sim(&a)
        .call(Method::GET, "/_sim/tasks", &[], None)
        .await;
    let tb = Http::for_sim(&b)
        .call(Method::GET, "/_sim/tasks", &[], None)
        .await;
    assert_eq!(ta.body, tb.body);
    assert_eq!(ta.body, a.tasks_api_json());
    let mine: BTreeMap<String, Value> = serde_json::from_slice(&ta.body).unwrap();
    let theirs = Http::for_sim(&other).all_tasks().await;
    assert_eq!(mine.len(), 300);
    assert!(mine.keys().all(|k| !theirs.contains_key(k)));

    let mut statuses = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut target_types = BTreeSet::new();
    for (id, t) in &mine {
        let (uuid, svc) = id.split_once(':').unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.matches('-').count(), 4);
        assert_eq!(t["service"], svc);
        services.insert(svc.to_string());
        assert!(t["operation"].is_string() && t["cancelable"].is_boolean());
        let d = &t["description"];
        assert!(d["id"].is_string() && d["default_message"].is_string() && d["args"].is_array());
        assert!(d["params"].as_object().is_some_and(|p| !p.is_empty()));
        if let Some(tt) = t.get("target") {
            target_types.insert(tt["type"].as_str().unwrap().to_string());
        }
        let status = t["status"].as_str().unwrap();
        statuses.insert(status.to_string());
        let has = |f: &str| t.get(f).is_some();
        match status {
            "PENDING" => assert!(!has("start_time") && !has("end_time") && !has("progress")),
            "RUNNING" | "BLOCKED" => {
                assert!(has("start_time") && has("progress") && !has("end_time"));
                let p = &t["progress"];
                assert!(p["completed"].as_i64() < p["total"].as_i64());
                assert!(p["message"]["default_message"].is_string());
            }
            "SUCCEEDED" => assert!(has("start_time") && has("end_time") && has("result")),
            "FAILED" => assert!(has("start_time") && has("end_time") && has("error")),
            other => panic!("status {other}"),
        }
        for f in ["start_time", "end_time"] {
            if let Some(ts) = t.get(f) {
                let ts = ts.as_str().unwrap();
                // 2015-01-01T22:13:05.651Z
                assert_eq!(ts.len(), 24, "{ts}");
                assert!(ts.ends_with('Z') && &ts[10..11] == "T" && &ts[19..20] == ".");
            }
        }
    }
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    assert!(services.len() >= 5);
    for ty in ["VirtualMachine", "HostSystem", "ClusterComputeResource"] {
        assert!(target_types.contains(ty), "{ty}");
    }
    a.shutdown().await;
    b.shutdown().await;
    other.shutdown().await;
}

/// Orders statuses along a task's life.
fn stage(status: &Value) -> u8 {
    match status.as_str().unwrap() {
        "PENDING" => 0,
        "RUNNING" | "BLOCKED" => 1,
        _ => 2,
    }
}

#[tokio::test]
async fn tasks_evolve_with_time_unless_static() {
    // Static: nothing changes by itself; an explicit advance moves tasks forward.
    let frozen = start_sim(static_config(200, 1)).await;
    let c = Http::for_sim(&frozen);
    let before = c.all_tasks().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.all_tasks().await, before);
    let r = c
        .call(Method::POST, "/_sim/advance", &[], Some(br#"{"by":"10m"}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = c.all_tasks().await;
    let mut moved = 0;
    for (id, t) in &before {
        let u = &after[id];
        assert!(stage(&u["status"]) >= stage(&t["status"]), "{id}");
        if u["status"] != t["status"] {
            moved += 1;
        }
    }
    assert!(moved > 0);
    frozen.shutdown().await;

    // Evolving: wall-clock time alone changes answers (progress, statuses).
    let live = start_sim(SimConfig {
        tasks: 200,
        seed: 1,
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&live);
    let before = c.all_tasks().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = c.all_tasks().await;
    assert_ne!(after, before);
    for (id, t) in &before {
        let u = &after[id];
        assert!(stage(&u["status"]) >= stage(&t["status"]), "{id}");
        if t["status"] == "RUNNING" && u["status"] == "RUNNING" {
            assert!(u["progress"]["completed"].as_i64() >= t["progress"]["completed"].as_i64());
        }
    }
    live.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 5. Faults and figures
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn stats_count_requests_per_endpoint_and_family_exactly() {
    let sim = start_sim(static_config(50, 1)).await;
    let c = Http::for_sim(&sim);
    let svc = sim::service_ids()[0];
    let id = sim.task_ids()[0].clone();
    let rs = c.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let a1 = c.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let _a2 = c.session(Family::Api, ADMIN.0, ADMIN.1).await;
    c.login(Family::Api, ADMIN.0, "wrong").await;
    for _ in 0..3 {
        c.rest_list(&rs, &format!("filter_spec.services={svc}"))
            .await;
    }
    c.api_list(
        &a1,
        &format!(r#"{{"filter_spec":{{"services":["{svc}"]}}}}"#),
    )
    .await;
    c.get(&format!("/api/cis/tasks/{id}"), &a1).await;
    c.get(&format!("/api/cis/tasks/{id}"), &a1).await;
    c.get(&format!("/rest/cis/tasks/{id}"), &rs).await;
    c.call(
        Method::POST,
        "/rest/com/vmware/cis/session?~action=get",
        &[("vmware-api-session-id", &rs)],
        None,
    )
    .await;
    c.call(
        Method::DELETE,
        "/api/session",
        &[("vmware-api-session-id", &a1)],
        None,
    )
    .await;
    c.call(Method::GET, "/api/nothing-here", &[], None).await;
    // Control requests are not counted.
    c.call(Method::GET, "/_sim/tasks", &[], None).await;
    c.call(Method::GET, "/_sim/faults", &[], None).await;

    let v = c.stats().await;
    let expected = serde_json::json!({
        "requests": {
            "session_create": {"rest": 1, "api": 3, "jsonrpc": 0},
            "session_get": {"rest": 1, "api": 0, "jsonrpc": 0},
            "session_delete": {"rest": 0, "api": 1, "jsonrpc": 0},
            "tasks_list": {"rest": 3, "api": 1, "jsonrpc": 0},
            "tasks_get": {"rest": 1, "api": 2, "jsonrpc": 0},
            "other": {"rest": 0, "api": 1, "jsonrpc": 0}
        },
        "sessions_opened": 3,
        "sessions_open": 2,
        "in_flight": 0,
        "faults": {"unavailable": 0, "http500": 0, "hang": 0, "truncate": 0}
    });
    assert_eq!(v, expected);
    let s = sim.stats();
    assert_eq!(s.requests(Endpoint::TasksList, Family::Rest), 3);
    assert_eq!(s.total_requests(), 14);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            latency: Duration::from_millis(300),
            jitter: Duration::from_millis(50),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    let t = std::time::Instant::now();
    let s = c.admin().await;
    // A lower bound only: noise can only add time.
    assert!(t.elapsed() >= Duration::from_millis(300));
    // The answer itself is unchanged.
    assert_eq!(c.get("/api/session", &s).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn error_rate_gives_503_service_unavailable_in_the_family_and_scopes_to_endpoints() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            endpoints: vec![Endpoint::TasksList, Endpoint::TasksGet],
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await; // log-in is not faulted
    let svc = sim::service_ids()[0];
    let r = c
        .rest_list(&s, &format!("filter_spec.services={svc}"))
        .await;
    assert_vapi_error(&r, Family::Rest, 503, "service_unavailable");
    let r = c
        .api_list(
            &s,
            &format!(r#"{{"filter_spec":{{"services":["{svc}"]}}}}"#),
        )
        .await;
    assert_vapi_error(&r, Family::Api, 503, "service_unavailable");
    // The control API is never faulted; switch the fault off through it.
    let r = c
        .call(
            Method::PUT,
            "/_sim/faults",
            &[("content-type", "application/json")],
            Some(b"{}"),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .rest_list(&s, &format!("filter_spec.services={svc}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.stats().faults.unavailable, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn http500_rate_gives_a_non_json_500() {
    let sim = start_sim(SimConfig::default()).await;
    sim.set_faults(Faults {
        http500_rate: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let c = Http::for_sim(&sim);
    let r = c.login(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 500);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().contains("500"));
    assert_eq!(sim.stats().faults.http500, 1);
    assert_eq!(sim.stats().sessions_opened, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_accepts_and_never_answers_until_shutdown() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    let r = c
        .call(
            Method::PUT,
            "/_sim/faults",
            &[],
            Some(br#"{"hang_rate":1,"endpoints":["tasks_list"]}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.faults().hang_rate, 1.0);

    let hung = {
        let c = c.clone();
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(2),
                c.rest_list(&s, "filter_spec.services=x"),
            )
            .await
        })
    };
    // Wait until the simulator holds the request.
    let mut seen = false;
    for _ in 0..400 {
        let st = sim.stats();
        if st.faults.hang == 1 {
            assert_eq!(st.in_flight, 1);
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the request never reached the simulator");
    // Other endpoints still answer.
    assert_eq!(c.get("/api/session", &s).await.status, 200);
    assert!(hung.await.unwrap().is_err(), "the client must time out");
    // The client hung up, so the request is no longer in flight.
    let mut drained = false;
    for _ in 0..1000 {
        if sim.stats().in_flight == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(drained, "in_flight must drop when the client goes away");

    // A second hanging request is abandoned when the simulator shuts down, and
    // shutdown does not wait for it forever.
    let raw = c.request(
        Method::POST,
        "/api/cis/tasks?action=list",
        &[("vmware-api-session-id", &s)],
        Some(b"{}"),
    );
    let pending = tokio::spawn({
        let c = c.clone();
        async move { c.send(raw).await }
    });
    for _ in 0..400 {
        if sim.stats().faults.hang == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.stats().faults.hang, 2);
    tokio::time::timeout(Duration::from_secs(30), sim.shutdown())
        .await
        .expect("shutdown finishes despite a hanging request");
    assert!(
        pending.await.unwrap().is_err(),
        "no answer, only a closed connection"
    );
}

#[tokio::test]
async fn truncate_sends_part_of_the_body_then_closes() {
    let sim = start_sim(static_config(100, 1)).await;
    let c = Http::for_sim(&sim);
    let s = c.admin().await;
    sim.set_faults(Faults {
        truncate_rate: 1.0,
        endpoints: vec![Endpoint::TasksList],
        ..Faults::default()
    })
    .unwrap();
    let svc = sim::service_ids()[0];
    let resp = c
        .send(c.request(
            Method::GET,
            &format!("/rest/cis/tasks?filter_spec.services={svc}"),
            &[("vmware-api-session-id", &s)],
            None,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let advertised: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(advertised > 100);
    let mut body = resp.into_body();
    let mut got = 0;
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => got += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end in an error");
    assert!(got < advertised);
    assert_eq!(sim.stats().faults.truncate, 1);

    // Without the fault the same request is whole again.
    sim.set_faults(Faults::default()).unwrap();
    let r = c
        .rest_list(&s, &format!("filter_spec.services={svc}"))
        .await;
    assert_eq!(r.body.len(), advertised);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_control_api_reads_and_validates_faults() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::for_sim(&sim);
    let put = |body: &'static str| {
        let c = c.clone();
        async move {
            c.call(Method::PUT, "/_sim/faults", &[], Some(body.as_bytes()))
                .await
        }
    };
    let r = put(r#"{"latency":"5ms","jitter":"1ms","error_rate":0.25,"http500_rate":0.5,"truncate_rate":0.1,"endpoints":["session_get"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = c.call(Method::GET, "/_sim/faults", &[], None).await.json();
    assert_eq!(got["latency"], "5ms");
    assert_eq!(got["error_rate"], 0.25);
    assert_eq!(got["endpoints"], serde_json::json!(["session_get"]));
    assert_eq!(sim.faults().http500_rate, 0.5);
    for bad in [
        r#"{"error_rate":2}"#,
        r#"{"hang_rate":-1}"#,
        r#"{"colour":"red"}"#,
        r#"{"latency":"soon"}"#,
        r#"{"endpoints":["nope"]}"#,
        "not json",
    ] {
        let r = put(bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    // Rejected updates leave the faults as they were.
    assert_eq!(sim.faults().error_rate, 0.25);
    assert!(sim
        .set_faults(Faults {
            truncate_rate: 1.5,
            ..Faults::default()
        })
        .is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            latency: Duration::from_millis(400),
            endpoints: vec![Endpoint::SessionCreate],
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let c = Http::for_sim(&sim);
    let addr = sim.addr();
    let login = tokio::spawn({
        let c = c.clone();
        async move { c.login(Family::Api, ADMIN.0, ADMIN.1).await }
    });
    for _ in 0..400 {
        if sim.stats().in_flight == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sim.stats().in_flight, 1);
    sim.shutdown().await;
    assert_eq!(login.await.unwrap().status, 201);
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------------
// 6. HTTP and HTTPS
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn tls_with_the_written_certificate_as_the_only_root() {
    let sim = start_sim(SimConfig {
        tls: true,
        static_tasks: true,
        ..SimConfig::default()
    })
    .await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let pem = sim.cert_pem().unwrap().to_string();
    let path = std::env::temp_dir().join(format!("vcproxy-sim-test-{}.pem", std::process::id()));
    std::fs::write(&path, &pem).unwrap();
    let read_back = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let certs = vcproxy::net::tls::certs_from_pem(&read_back).unwrap();
    assert_eq!(
        vcproxy::net::tls::fingerprint_sha256(&certs[0]),
        sim.cert_fingerprint().unwrap()
    );
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).unwrap();
    }

    // HTTP/1.1 and HTTP/2 (ALPN) both work.
    for h2 in [false, true] {
        let c = if h2 {
            Http::h2(sim.base_url(), roots.clone())
        } else {
            Http::tls(sim.base_url(), roots.clone())
        };
        let s = c.admin().await;
        let r = c
            .rest_list(
                &s,
                &format!("filter_spec.services={}", sim::service_ids()[0]),
            )
            .await;
        assert_eq!(r.status, 200);
        let expected = if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(r.version, expected);
    }

    // A client that does not trust the certificate cannot talk to it.
    let untrusting = Http::tls(sim.base_url(), rustls::RootCertStore::empty());
    let req = untrusting.request(Method::POST, "/api/session", &[], None);
    assert!(untrusting.send(req).await.is_err());
    // Nor can a plain-HTTP client.
    let plain = Http::new(sim.base_url().replace("https://", "http://"));
    let req = plain.request(Method::POST, "/api/session", &[], None);
    let plain_result = tokio::time::timeout(Duration::from_secs(10), plain.send(req)).await;
    assert!(!matches!(plain_result, Ok(Ok(ref r)) if r.status().is_success()));
    sim.shutdown().await;
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge() {
    let sim = start_sim(SimConfig::default()).await;
    let c = Http::h2(sim.base_url(), rustls::RootCertStore::empty());
    let r = c.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_2);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------

#[test]
fn sim_help_documents_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcproxy"))
        .args(["sim", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--tasks",
        "--seed",
        "--static",
        "--user",
        "--session-idle",
        "--tls",
        "--write-cert",
        "--tls-name",
        "--latency",
        "--jitter",
        "--error-rate",
        "--http500-rate",
        "--hang-rate",
        "--truncate-rate",
        "--fault-endpoint",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing from:\n{help}"));
        // Each flag has a description on its line or the next.
        let i = help.lines().position(|l| l == line).unwrap();
        let text = format!("{line} {}", help.lines().nth(i + 1).unwrap_or(""));
        assert!(
            text.split_whitespace().count() > 3,
            "{flag} undocumented: {text}"
        );
    }
}

#[cfg(unix)]
#[test]
fn the_cli_serves_https_writes_its_certificate_and_stops_on_sigterm() {
    use std::io::BufRead;
    let cert = std::env::temp_dir().join(format!("vcproxy-sim-cli-{}.pem", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcproxy"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--tasks",
            "20",
            "--static",
            "--tls",
        ])
        .arg("--write-cert")
        .arg(&cert)
        .args(["--user", "cli:secret:com.vmware.appliance.update"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read the banner on a thread, so that a silent child fails the test instead of
    // hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.contains("control:");
        banner.push(line);
        if done {
            break;
        }
    }
    let stop = |child: &mut std::process::Child| {
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap()
    };
    let text = banner.join("\n");
    let Some(base) = banner
        .first()
        .and_then(|l| l.strip_prefix("vcproxy sim listening on "))
        .map(str::to_string)
    else {
        stop(&mut child);
        panic!("no banner: {text}");
    };
    assert!(base.starts_with("https://127.0.0.1:"), "{text}");
    assert!(
        text.contains("cli (tasks of com.vmware.appliance.update)"),
        "{text}"
    );
    assert!(text.contains("SHA-256"), "{text}");
    assert!(!text.contains("secret"));

    let pem = std::fs::read(&cert).unwrap();
    let _ = std::fs::remove_file(&cert);
    let mut roots = rustls::RootCertStore::empty();
    for c in vcproxy::net::tls::certs_from_pem(&pem).unwrap() {
        roots.add(c).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = rt.block_on(async {
        let c = Http::tls(base, roots);
        let s = c.session(Family::Api, "cli", "secret").await;
        let r = c
            .rest_list(&s, "filter_spec.services=com.vmware.appliance.update")
            .await;
        assert_eq!(r.status, 200);
        rest_keys(&r.json())
    });
    assert!(keys
        .iter()
        .all(|k| k.ends_with(":com.vmware.appliance.update")));
    drop(rt);

    let status = stop(&mut child);
    assert!(status.success(), "{status:?}");
}
