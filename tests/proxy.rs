//! The proxy end to end: simulated vCenters and the proxy in-process on loopback,
//! a real HTTP client, and the simulators' own counters as the witness of what
//! reached "vCenter".

mod common;

use common::{rest_keys, sim_config, Env, Http, ADMIN};
use http::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use vcproxy::protocol::merge::{merge, MergeOptions, UpstreamBody};
use vcproxy::sim::{self, Faults};
use vcproxy::Family;

const SVC: &str = "com.vmware.esx.settings.clusters.software";

/// `faults`, applied to List Tasks only (logins keep working).
fn on_lists(faults: Faults) -> Faults {
    Faults {
        endpoints: vec![sim::Endpoint::TasksList],
        ..faults
    }
}

/// Three static simulators, the proxy in front (with `extra` configuration), and an
/// administrator's session in `family`.
async fn logged_in(extra: &str, family: Family) -> (Env, String) {
    let env = Env::start(three_static(), extra, "").await;
    let sid = env.http.session(family, ADMIN.0, ADMIN.1).await;
    (env, sid)
}

/// A `/rest` query for one service's tasks.
fn svc_query() -> String {
    format!("filter_spec.services={SVC}")
}

fn three_static() -> Vec<vcproxy::sim::SimConfig> {
    vec![sim_config(120, 1), sim_config(90, 2), sim_config(60, 3)]
}

/// A `/rest` List Tasks query for every service the simulators know.
fn every_service_query() -> String {
    sim::service_ids()
        .iter()
        .map(|s| format!("filter_spec.services={s}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Ten spellings of one question in the /rest family.
fn ten_encodings() -> Vec<(Option<String>, Option<String>)> {
    let q = |s: &str| (Some(s.to_owned()), None);
    let body = |s: &str| (None, Some(s.to_owned()));
    vec![
        q(&format!("filter_spec.services={SVC}&filter_spec.status=RUNNING&filter_spec.status=FAILED")),
        q(&format!("filter_spec.status=FAILED&filter_spec.status=RUNNING&filter_spec.services={SVC}")),
        q(&format!("filter_spec.services.1={SVC}&filter_spec.status.1=RUNNING&filter_spec.status.2=FAILED")),
        q(&format!("filter_spec.status.2=RUNNING&filter_spec.status.1=FAILED&filter_spec.services.1={SVC}")),
        q(&format!(
            "filter_spec.services={}&filter_spec.status=RUNNING&filter_spec.status=FAILED",
            SVC.replace('.', "%2E")
        )),
        q(&format!(
            "filter_spec.services={SVC}&filter_spec.services={SVC}&filter_spec.status=RUNNING&filter_spec.status=FAILED&filter_spec.status=RUNNING"
        )),
        q(&format!(
            "filter_spec.services={SVC}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.return_all=false&filter_spec.users="
        )),
        q(&format!(
            "filter_spec.services={SVC}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.exclude_result=FALSE"
        )),
        body(&format!(r#"{{"filter_spec":{{"services":["{SVC}"],"status":["RUNNING","FAILED"]}}}}"#)),
        body(&format!(
            r#"{{ "result_spec": {{"return_all": false}}, "filter_spec": {{"status": ["FAILED", "RUNNING", "FAILED"], "tasks": [], "services": ["{SVC}"]}} }}"#
        )),
    ]
}

async fn send_encoding(
    http: &Http,
    sid: &str,
    enc: &(Option<String>, Option<String>),
) -> common::Resp {
    let path = match &enc.0 {
        Some(q) => format!("/rest/cis/tasks?{q}"),
        None => "/rest/cis/tasks".to_owned(),
    };
    http.call(
        Method::GET,
        &path,
        &[("vmware-api-session-id", sid)],
        enc.1.as_deref().map(str::as_bytes),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_ten_encodings_one_upstream_request_per_vcenter_per_ttl() {
    let mut sims = three_static();
    for s in &mut sims {
        s.faults.latency = Duration::from_millis(150);
    }
    let env = Env::start(
        sims,
        "[cache]\nttl = \"3s\"\nstale_while_revalidate = \"0s\"",
        "",
    )
    .await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let encodings = ten_encodings();

    let round = || async {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let http = env.http.clone();
            let sid = sid.clone();
            let enc = encodings[i % 10].clone();
            tasks.push(tokio::spawn(async move {
                send_encoding(&http, &sid, &enc).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    };

    let first = round().await;
    assert_eq!(
        env.upstream_lists(),
        vec![1, 1, 1],
        "one fan-out for 200 equivalent requests"
    );
    let body = &first[0].body;
    let mut outcomes = BTreeMap::new();
    for r in &first {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body, body, "every encoding gets the same bytes");
        *outcomes.entry(r.cache().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(outcomes.get("miss"), Some(&1), "{outcomes:?}");
    assert_eq!(outcomes.values().sum::<i32>(), 200);
    assert!(!rest_keys(&first[0].json()).is_empty());

    tokio::time::sleep(Duration::from_millis(3300)).await;
    let second = round().await;
    assert_eq!(
        env.upstream_lists(),
        vec![2, 2, 2],
        "exactly one more fan-out after the TTL"
    );
    assert!(second.iter().all(|r| r.status == 200));
    assert_eq!(second.iter().filter(|r| r.cache() == "miss").count(), 1);
    env.stop().await;
}

/// Logs in to a simulator directly and asks it the same question; it must answer 200.
async fn direct(
    sim: &sim::SimHandle,
    family: Family,
    rest_query: &str,
    api_body: &str,
) -> bytes::Bytes {
    let r = direct_raw(sim, family, rest_query, api_body).await;
    assert_eq!(r.status, 200);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_body_is_the_union_of_every_simulator_in_both_families() {
    let env = Env::start(three_static(), "", "").await;
    let rest_query =
        format!("filter_spec.services={SVC}&filter_spec.services=com.vmware.appliance.update");
    let api_body =
        format!(r#"{{"filter_spec":{{"services":["{SVC}","com.vmware.appliance.update"]}}}}"#);
    for family in [Family::Rest, Family::Api] {
        let sid = env.http.session(family, ADMIN.0, ADMIN.1).await;
        let proxied = env.http.list(family, &sid, &rest_query, &api_body).await;
        assert_eq!(proxied.status, 200);

        let mut directs = Vec::new();
        for s in &env.sims {
            directs.push(direct(s, family, &rest_query, &api_body).await);
        }
        // As data: the union of every simulator's tasks, each Info unchanged.
        let mut union = BTreeMap::new();
        for d in &directs {
            let v: Value = serde_json::from_slice(d).unwrap();
            match family {
                Family::Rest => {
                    for e in v["value"].as_array().unwrap() {
                        union.insert(e["key"].as_str().unwrap().to_owned(), e["value"].clone());
                    }
                }
                Family::Api => {
                    for (k, info) in v.as_object().unwrap() {
                        union.insert(k.clone(), info.clone());
                    }
                }
            }
        }
        let got: BTreeMap<String, Value> = match family {
            Family::Rest => proxied.json()["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["key"].as_str().unwrap().to_owned(), e["value"].clone()))
                .collect(),
            Family::Api => proxied
                .json()
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        assert!(
            union.len() > 10,
            "the filter matches tasks on the simulators"
        );
        assert_eq!(got, union, "{family}");
        // As bytes: exactly the merge of what the vCenters sent.
        let names = ["vc1", "vc2", "vc3"];
        let inputs: Vec<UpstreamBody> = directs
            .iter()
            .zip(names)
            .map(|(b, n)| UpstreamBody {
                vcenter: n,
                body: b,
            })
            .collect();
        let expected = merge(family, &inputs, &MergeOptions::default()).unwrap();
        assert_eq!(&proxied.body[..], &expected.body[..], "{family}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_never_see_each_others_cached_results() {
    let env = Env::start(three_static(), "", "").await;
    let admin = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let operator = env
        .http
        .session(Family::Api, "operator@vsphere.local", "Operator1!")
        .await;
    let visible: Vec<&str> = sim::service_ids().into_iter().take(2).collect();
    let everything: Vec<&str> = sim::service_ids();
    let body = serde_json::json!({"filter_spec": {"services": everything}}).to_string();

    let a = env.http.api_list(&admin, &body).await;
    let o = env.http.api_list(&operator, &body).await;
    assert_eq!((a.status.as_u16(), o.status.as_u16()), (200, 200));
    assert_eq!(
        o.cache(),
        "miss",
        "the operator's question is not answered from the admin's entry"
    );
    let a_tasks = a.json();
    let o_tasks = o.json();
    assert!(o_tasks.as_object().unwrap().len() < a_tasks.as_object().unwrap().len());
    for (_, info) in o_tasks.as_object().unwrap() {
        assert!(
            visible.contains(&info["service"].as_str().unwrap()),
            "operator sees only its services"
        );
    }
    // Each user's next request hits its own entry.
    let a2 = env.http.api_list(&admin, &body).await;
    let o2 = env.http.api_list(&operator, &body).await;
    assert_eq!((a2.cache(), o2.cache()), ("hit", "hit"));
    assert_eq!(a2.body, a.body);
    assert_eq!(o2.body, o.body);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_logins_by_one_user_open_one_backend_session_per_vcenter() {
    let env = Env::start(three_static(), "", "").await;
    let mut logins = Vec::new();
    for i in 0..50 {
        let http = env.http.clone();
        let family = if i % 2 == 0 {
            Family::Rest
        } else {
            Family::Api
        };
        logins.push(tokio::spawn(async move {
            http.session(family, ADMIN.0, ADMIN.1).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for l in logins {
        ids.insert(l.await.unwrap());
    }
    assert_eq!(ids.len(), 50, "each client gets its own proxy session");
    for s in &env.sims {
        let st = s.stats();
        assert_eq!(st.sessions_opened, 1, "one backend session per vCenter");
        assert_eq!(st.sessions_open, 1);
    }
    // A wrong password does not ride on the pool: vCenter refuses it, and its 401
    // passes through in the client's family.
    let r = env.http.login(Family::Rest, ADMIN.0, "wrong").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["type"],
        "com.vmware.vapi.std.errors.unauthenticated"
    );
    assert!(r.header("vcproxy-upstream").is_some());
    for s in &env.sims {
        assert_eq!(
            s.stats().sessions_open,
            1,
            "no session left open by the refused login"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_log_out_and_missing_sessions() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let me = env
        .http
        .call(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=get",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["value"]["user"], ADMIN.0);
    let me = env
        .http
        .call(
            Method::GET,
            "/api/session",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(me.json()["user"], ADMIN.0);

    let out = env
        .http
        .call(
            Method::DELETE,
            "/api/session",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(out.status, 204);
    let r = env
        .http
        .rest_list(&sid, &format!("filter_spec.services={SVC}"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        vcproxy::VapiError::unauthenticated().render(Family::Rest)
    );
    let r = env.http.api_list("not-a-session", "{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_type"], "UNAUTHENTICATED");
    let r = env.http.login(Family::Api, "", "").await;
    assert_eq!(r.status, 401);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_400_naming_the_parameter_and_nothing_goes_upstream() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let before = env.upstream_total();
    let r = env
        .http
        .rest_list(&sid, "filter_spec.services.1=a&filter_spec.services.3=b")
        .await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "com.vmware.vapi.std.errors.invalid_argument");
    assert!(v["value"]["messages"][0]["default_message"]
        .as_str()
        .unwrap()
        .contains("filter_spec.services"));
    let r = env
        .http
        .api_list(&sid, r#"{"filter_spec":{"status":"RUNNING"}}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["messages"][0]["default_message"]
        .as_str()
        .unwrap()
        .contains("filter_spec.status"));
    let big = "x".repeat(70 * 1024);
    let r = env.http.api_list(&sid, &big).await;
    assert_eq!(r.status, 400);
    assert_eq!(env.upstream_total(), before);
    env.stop().await;
}

/// The same request sent to one simulator directly.
async fn direct_raw(
    sim: &sim::SimHandle,
    family: Family,
    rest_query: &str,
    api_body: &str,
) -> common::Resp {
    let http = Http::new(sim.base_url());
    let sid = http.session(family, ADMIN.0, ADMIN.1).await;
    http.list(family, &sid, rest_query, api_body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcenter_errors_pass_through_byte_for_byte_with_precedence() {
    // vc2 holds over 1000 tasks of every service: its List Tasks is 404
    // resource_inaccessible for a broad filter.
    let env = Env::start(
        vec![sim_config(50, 1), sim_config(1500, 2), sim_config(50, 3)],
        "[cache]\nerror_ttl = \"0s\"",
        "",
    )
    .await;
    let broad_q = every_service_query();
    let broad_body =
        serde_json::json!({"filter_spec": {"services": sim::service_ids()}}).to_string();
    for family in [Family::Rest, Family::Api] {
        let sid = env.http.session(family, ADMIN.0, ADMIN.1).await;

        // 404 from vc2 alone.
        let r = env.http.list(family, &sid, &broad_q, &broad_body).await;
        let d = direct_raw(&env.sims[1], family, &broad_q, &broad_body).await;
        assert_eq!(d.status, 404);
        assert_eq!((r.status, &r.body), (d.status, &d.body), "{family}");
        assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));

        // vc1 answers 500 with HTML: 404 still wins (4xx before 5xx).
        env.sims[0]
            .set_faults(on_lists(Faults {
                http500_rate: 1.0,
                ..Faults::default()
            }))
            .unwrap();
        let r = env.http.list(family, &sid, &broad_q, &broad_body).await;
        assert_eq!(
            (r.status.as_u16(), r.header("vcproxy-upstream")),
            (404, Some("vc2"))
        );

        // A filter with neither tasks nor services: every healthy vCenter says 400,
        // which beats vc1's 500; ties go to configuration order (vc2 before vc3).
        let r = env
            .http
            .list(
                family,
                &sid,
                "filter_spec.status=RUNNING",
                r#"{"filter_spec":{"status":["RUNNING"]}}"#,
            )
            .await;
        let d = direct_raw(
            &env.sims[1],
            family,
            "filter_spec.status=RUNNING",
            r#"{"filter_spec":{"status":["RUNNING"]}}"#,
        )
        .await;
        assert_eq!(d.status, 400);
        assert_eq!((r.status, &r.body), (d.status, &d.body));
        assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));

        // Only 5xx: vc1's 500 HTML and vc3's 503; the first in config order passes
        // through, HTML body and all.
        env.sims[2]
            .set_faults(on_lists(Faults {
                error_rate: 1.0,
                ..Faults::default()
            }))
            .unwrap();
        let narrow_q = format!("filter_spec.services={SVC}");
        let narrow_b = format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#);
        let r = env.http.list(family, &sid, &narrow_q, &narrow_b).await;
        let d = direct_raw(&env.sims[0], family, &narrow_q, &narrow_b).await;
        assert_eq!(d.status, 500);
        assert_eq!((r.status, &r.body), (d.status, &d.body));
        assert_eq!(r.header("content-type"), d.header("content-type"));
        assert_eq!(r.header("vcproxy-upstream"), Some("vc1"));

        // With vc1 healthy, vc3's 503 vAPI body passes through byte for byte.
        env.sims[0].set_faults(Faults::default()).unwrap();
        let r = env.http.list(family, &sid, &narrow_q, &narrow_b).await;
        let d = direct_raw(&env.sims[2], family, &narrow_q, &narrow_b).await;
        assert_eq!(d.status, 503);
        assert_eq!((r.status, &r.body), (d.status, &d.body));
        assert_eq!(r.header("vcproxy-upstream"), Some("vc3"));
        env.sims[2].set_faults(Faults::default()).unwrap();
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_vcenter_is_503_within_its_timeout_naming_it() {
    let env = Env::start(three_static(), "", "request_timeout = \"1s\"").await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    env.sims[1]
        .set_faults(on_lists(Faults {
            hang_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let r = env
        .http
        .api_list(
            &sid,
            &format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#),
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    let v = r.json();
    assert_eq!(v["error_type"], "SERVICE_UNAVAILABLE");
    let msg = v["messages"][0]["default_message"].as_str().unwrap();
    assert!(msg.contains("vc2") && msg.contains("1s"), "{msg}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_does_not_cancel_the_fan_out_for_others() {
    let mut sims = three_static();
    for s in &mut sims {
        s.faults.latency = Duration::from_millis(800);
        s.faults.endpoints = vec![sim::Endpoint::TasksList];
    }
    let env = Env::start(sims, "", "").await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let q = svc_query();
    // Client A gives up long before the vCenters answer.
    let a = tokio::time::timeout(Duration::from_millis(150), env.http.rest_list(&sid, &q)).await;
    assert!(a.is_err(), "client A disconnected");
    // Client B asks the same question while A's fan-out is still running.
    let b = env.http.rest_list(&sid, &q).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.cache(), "coalesced", "B joined the fan-out A started");
    assert_eq!(env.upstream_lists(), vec![1, 1, 1]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_within_its_window_and_not_after() {
    let (env, sid) = logged_in(
        "[cache]\nttl = \"1s\"\nstale_while_revalidate = \"2s\"\nstale_if_error = \"0s\"",
        Family::Rest,
    )
    .await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "miss");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = env.http.rest_list(&sid, &q).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.cache(),
        "stale",
        "past the TTL, within the window: stale at once"
    );
    // The background refresh lands; then the entry is fresh again. Requests meanwhile
    // are stale answers that join the one refresh, never new fetches.
    let mut outcome = String::new();
    for _ in 0..200 {
        outcome = env.http.rest_list(&sid, &q).await.cache().to_owned();
        if outcome == "hit" {
            break;
        }
        assert_eq!(outcome, "stale");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outcome, "hit");
    assert_eq!(
        env.upstream_lists(),
        vec![2, 2, 2],
        "one background refresh per vCenter"
    );
    // Past TTL + window: a plain miss, not stale.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "miss");
    assert_eq!(env.upstream_lists(), vec![3, 3, 3]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_answers_within_its_window_and_not_after() {
    let (env, sid) = logged_in("[cache]\nttl = \"1s\"\nstale_while_revalidate = \"0s\"\nstale_if_error = \"2s\"\nerror_ttl = \"0s\"", Family::Api).await;
    let body = format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#);
    let good = env.http.api_list(&sid, &body).await;
    assert_eq!((good.status.as_u16(), good.cache()), (200, "miss"));
    env.sims[1]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(
        (r.status.as_u16(), r.cache()),
        (200, "stale"),
        "vc2 fails: the last good answer"
    );
    assert_eq!(r.body, good.body);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(r.status, 503, "past the window the failure passes through");
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_nothing_is_sent_upstream() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let before = env.upstream_total();
    let cases: &[(Method, &str, &str)] = &[
        (
            Method::GET,
            "/rest/vcenter/vm",
            "com.vmware.vapi.std.errors.not_found",
        ),
        (
            Method::DELETE,
            "/rest/cis/tasks",
            "com.vmware.vapi.std.errors.not_found",
        ),
        (
            Method::GET,
            "/rest/cis/tasks/../../vcenter/vm",
            "com.vmware.vapi.std.errors.not_found",
        ),
        (Method::GET, "/api/vcenter/vm", "NOT_FOUND"),
        (Method::POST, "/api/cis/tasks?action=cancel", "NOT_FOUND"),
        (Method::GET, "/api/cis/tasks", "NOT_FOUND"),
    ];
    for (method, path, error) in cases {
        let r = env
            .http
            .call(
                method.clone(),
                path,
                &[("vmware-api-session-id", &sid)],
                None,
            )
            .await;
        assert_eq!(r.status, 404, "{method} {path}");
        let v = r.json();
        let got = v.get("type").or_else(|| v.get("error_type")).unwrap();
        assert_eq!(got, error, "{method} {path}");
    }
    for path in ["/", "/metrics", "/sdk", "/ui/"] {
        let r = env.http.call(Method::GET, path, &[], None).await;
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(env.upstream_total(), before, "nothing forwarded");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_forces_a_fresh_fan_out() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let q = format!("/rest/cis/tasks?filter_spec.services={SVC}");
    let h = [("vmware-api-session-id", sid.as_str())];
    assert_eq!(
        env.http.call(Method::GET, &q, &h, None).await.cache(),
        "miss"
    );
    assert_eq!(
        env.http.call(Method::GET, &q, &h, None).await.cache(),
        "hit"
    );
    let h2 = [
        ("vmware-api-session-id", sid.as_str()),
        ("cache-control", "no-cache"),
    ];
    assert_eq!(
        env.http.call(Method::GET, &q, &h2, None).await.cache(),
        "miss"
    );
    assert_eq!(env.upstream_lists(), vec![2, 2, 2]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_answer_says_how_long_each_vcenter_and_the_merge_took() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let q = format!("/rest/cis/tasks?filter_spec.services={SVC}");
    let h = [("vmware-api-session-id", sid.as_str())];
    let miss = env.http.call(Method::GET, &q, &h, None).await;
    assert_eq!(miss.cache(), "miss");
    let timing = miss
        .header("server-timing")
        .expect("Server-Timing on a miss");
    // `vcenter;desc=vc1;dur=1.23, ..., merge;dur=0.05`, in configuration order.
    let metrics: Vec<(String, f64)> = timing
        .split(", ")
        .map(|m| {
            let parts: Vec<&str> = m.split(';').collect();
            let dur = parts.last().and_then(|d| d.strip_prefix("dur=")).unwrap();
            let name = match parts.as_slice() {
                ["vcenter", desc, _] => desc.strip_prefix("desc=").unwrap().to_owned(),
                [name, _] => (*name).to_owned(),
                _ => panic!("unexpected metric {m:?} in {timing:?}"),
            };
            (name, dur.parse::<f64>().unwrap())
        })
        .collect();
    let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["vc1", "vc2", "vc3", "merge"], "{timing}");
    assert!(metrics.iter().all(|(_, d)| *d >= 0.0), "{timing}");
    assert!(metrics[..3].iter().all(|(_, d)| *d > 0.0), "{timing}");
    // A hit did not ask anyone: no timings, rather than the old fetch's.
    let hit = env.http.call(Method::GET, &q, &h, None).await;
    assert_eq!(hit.cache(), "hit");
    assert_eq!(hit.header("server-timing"), None);
    // An error passed through from a vCenter carries none either.
    env.sims[1]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let q2 = format!("{q}&filter_spec.status=RUNNING");
    let failed = env.http.call(Method::GET, &q2, &h, None).await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.header("vcproxy-upstream"), Some("vc2"));
    assert_eq!(failed.header("server-timing"), None);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_backend_sessions_are_renewed_once_transparently() {
    let (env, sid) = logged_in(
        "[cache]\nttl = \"1ms\"\nstale_while_revalidate = \"0s\"",
        Family::Rest,
    )
    .await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    for s in &env.sims {
        assert_eq!(s.expire_sessions(), 1);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = env.http.rest_list(&sid, &q).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for s in &env.sims {
        assert_eq!(s.stats().sessions_opened, 2, "one re-login per vCenter");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_mode_merges_what_answered_and_names_the_rest() {
    let (env, sid) = logged_in("[merge]\npartial = true", Family::Api).await;
    env.sims[2]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let body = format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#);
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("vcproxy-partial"), Some("vc3"));
    let expected: usize = [0, 1]
        .iter()
        .map(|&i| {
            let v: Value = serde_json::from_slice(&env.sims[i].tasks_api_json()).unwrap();
            v.as_object()
                .unwrap()
                .values()
                .filter(|t| t["service"] == SVC)
                .count()
        })
        .sum();
    assert_eq!(r.json().as_object().unwrap().len(), expected);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_metrics_health_and_purge() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let q = svc_query();
    env.http.rest_list(&sid, &q).await;
    env.http.rest_list(&sid, &q).await;
    assert_eq!(
        env.admin
            .call(Method::GET, "/healthz", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(
        env.admin
            .call(Method::GET, "/readyz", &[], None)
            .await
            .status,
        200
    );
    let m = env.admin.call(Method::GET, "/metrics", &[], None).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(r#"vcproxy_cache_requests_total{outcome="hit"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_cache_requests_total{outcome="miss"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_backend_sessions_open{vcenter="vc2"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_requests_total{route="list_tasks",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_upstream_latency_seconds_count{vcenter="vc3"}"#),
        "{text}"
    );
    assert!(!text.contains(&sid), "no session id in metrics");
    assert_eq!(
        env.admin
            .call(Method::POST, "/cache/purge", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "miss");
    // The admin API is not on the client listener.
    assert_eq!(
        env.http
            .call(Method::POST, "/cache/purge", &[], None)
            .await
            .status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_logs_out_of_every_vcenter() {
    let env = Env::start(three_static(), "", "").await;
    env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    env.http
        .session(Family::Api, "operator@vsphere.local", "Operator1!")
        .await;
    for s in &env.sims {
        assert_eq!(s.stats().sessions_open, 2);
    }
    let mut env = env;
    env.stop_proxy().await;
    for s in &env.sims {
        assert_eq!(s.stats().sessions_open, 0, "sessions closed at shutdown");
    }
    env.stop().await;
}

fn tls_sims() -> Vec<vcproxy::sim::SimConfig> {
    three_static()
        .into_iter()
        .map(|mut c| {
            c.tls = true;
            c
        })
        .collect()
}

async fn start_sims(configs: Vec<vcproxy::sim::SimConfig>) -> Vec<sim::SimHandle> {
    let mut out = Vec::new();
    for c in configs {
        out.push(sim::start("127.0.0.1:0".parse().unwrap(), c).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_vcenters_are_verified_by_ca_file_or_pinned_fingerprint() {
    let sims = start_sims(tls_sims()).await;
    let dir = common::temp_dir("ca");
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    assert!(urls.iter().all(|u| u.starts_with("https://")));
    // vc1 and vc2 by CA file, vc3 by pin: per-vCenter settings, so write one
    // config by hand.
    let config = common::config(common::LISTEN, &urls, |i| {
        if i < 2 {
            let path = dir.join(format!("vc{i}.pem"));
            std::fs::write(&path, sims[i].cert_pem().unwrap()).unwrap();
            format!("ca_file = {:?}", path.display().to_string())
        } else {
            format!("pin_sha256 = \"{}\"", sims[i].cert_fingerprint().unwrap())
        }
    });
    let env = Env::start_with_config(sims, &config).await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let r = env
        .http
        .api_list(
            &sid,
            &format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.upstream_lists(), vec![1, 1, 1]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_wrongly_pinned_vcenter_is_refused() {
    // Trust comes only from configuration: a self-signed vCenter with neither a CA
    // file nor a pin fails verification (system roots do not hold it).
    let sims = start_sims(vec![tls_sims().remove(0), tls_sims().remove(1)]).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let wrong_pin = sims[0].cert_fingerprint().unwrap();
    let config = common::config(common::LISTEN, &urls, |_| {
        format!("pin_sha256 = \"{wrong_pin}\"")
    });
    let env = Env::start_with_config(sims, &config).await;
    // vc1 is pinned right; vc2 is pinned to vc1's certificate: refused.
    let r = env.http.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    let msg = r.json()["value"]["messages"][0]["default_message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("vc2"), "{msg}");
    assert_eq!(
        env.sims[1].stats().sessions_opened,
        0,
        "no credentials sent to vc2"
    );
    // And the login opened on vc1 was closed again.
    assert_eq!(env.sims[0].stats().sessions_open, 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_end_serves_tls_and_http2() {
    let cert = vcproxy::net::tls::self_signed(&["127.0.0.1", "localhost"]).unwrap();
    let dir = common::temp_dir("front-tls");
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
    let sims = start_sims(three_static()).await;
    let head = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n[admin]\naddr = \"127.0.0.2:0\"\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string()
    );
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let config = common::config(&head, &urls, |_| String::new());
    let env = Env::start_with_config(sims, &config).await;
    let base = format!("https://127.0.0.1:{}", env.addr.port());
    for client in [
        Http::tls(base.clone(), common::roots(&cert.cert_pem)),
        Http::h2(base.clone(), common::roots(&cert.cert_pem)),
    ] {
        let sid = client.session(Family::Rest, ADMIN.0, ADMIN.1).await;
        let r = client
            .rest_list(&sid, &format!("filter_spec.services={SVC}"))
            .await;
        assert_eq!(r.status, 200);
        assert!(!rest_keys(&r.json()).is_empty());
    }
    // Plain HTTP/2 (prior knowledge) on a clear-text listener too.
    let plain = Env::start(three_static(), "", "").await;
    let h2 = Http::h2(plain.http.base.clone(), rustls::RootCertStore::empty());
    let sid = h2.session(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(
        h2.api_list(
            &sid,
            &format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#)
        )
        .await
        .status,
        200
    );
    plain.stop().await;
    env.stop().await;
}

/// Large answers leave the proxy with their head written ahead of the body
/// (src/head_first.rs). Whatever the writes, every client must get the whole answer,
/// byte for byte: HTTP/1.1 and HTTP/2 in clear text, fetched and cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_arrive_whole_over_http1_and_http2() {
    let env = Env::start(three_static(), "", "").await;
    let all = every_service_query();
    let mut expected = std::collections::BTreeSet::new();
    for s in &env.sims {
        let d = direct_raw(s, Family::Rest, &all, "").await;
        assert_eq!(d.status, 200);
        expected.extend(rest_keys(&d.json()));
    }
    let h2 = Http::h2(env.http.base.clone(), rustls::RootCertStore::empty());
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let fetched = env.http.rest_list(&sid, &all).await;
    assert_eq!((fetched.status.as_u16(), fetched.cache()), (200, "miss"));
    assert!(
        fetched.body.len() > 4 * vcproxy::net::head_first::MIN_BODY,
        "{} bytes",
        fetched.body.len()
    );
    let keys = rest_keys(&fetched.json());
    assert_eq!(keys.len(), expected.len());
    assert_eq!(
        keys.into_iter().collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    for client in [&env.http, &h2] {
        let r = client.rest_list(&sid, &all).await;
        assert_eq!((r.status.as_u16(), r.cache()), (200, "hit"));
        assert_eq!(
            r.header("content-length"),
            Some(&*fetched.body.len().to_string())
        );
        assert!(
            r.body == fetched.body,
            "the cached answer differs from the fetched one"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_mode_logs_clients_in_locally_and_shares_one_backend_session() {
    let dir = common::temp_dir("service-account");
    let users = format!(
        "[users]\nalice = \"{}\"\nbob = \"{}\"\n",
        vcproxy::auth::users::hash_password_with_iterations(
            "alice-pw",
            std::num::NonZeroU32::new(10).unwrap()
        ),
        vcproxy::auth::users::hash_password_with_iterations(
            "bob-pw",
            std::num::NonZeroU32::new(10).unwrap()
        ),
    );
    std::fs::write(dir.join("users.toml"), users).unwrap();
    std::fs::write(dir.join("sa-password"), format!("{}\n", ADMIN.1)).unwrap();
    let auth = format!(
        "[auth]\nmode = \"service_account\"\nusername = \"{}\"\npassword_file = {:?}\nusers_file = {:?}\n",
        ADMIN.0,
        dir.join("sa-password").display().to_string(),
        dir.join("users.toml").display().to_string()
    );
    let env = Env::start(three_static(), &auth, "").await;
    let alice = env.http.session(Family::Rest, "alice", "alice-pw").await;
    let bob = env.http.session(Family::Api, "bob", "bob-pw").await;
    assert_eq!(
        env.http.login(Family::Rest, "alice", "bob-pw").await.status,
        401
    );
    assert_eq!(
        env.http.login(Family::Rest, "mallory", "x").await.status,
        401
    );
    for s in &env.sims {
        assert_eq!(
            s.stats().sessions_opened,
            1,
            "one service-account session per vCenter"
        );
    }
    let q = svc_query();
    let a = env.http.rest_list(&alice, &q).await;
    let b = env.http.rest_list(&bob, &q).await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    assert_eq!(a.body, b.body, "both see the service account's view");
    assert_eq!(
        b.cache(),
        "miss",
        "but cache entries are still per client user"
    );
    let me = env
        .http
        .call(
            Method::GET,
            "/api/session",
            &[("vmware-api-session-id", &bob)],
            None,
        )
        .await;
    assert_eq!(me.json()["user"], "bob");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_sessions_close_after_the_timeout() {
    let (env, sid) = logged_in(
        "[auth]\nclient_session_idle = \"300ms\"\nbackend_idle_timeout = \"300ms\"",
        Family::Rest,
    )
    .await;
    assert!(env.sims.iter().all(|s| s.stats().sessions_open == 1));
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if env.sims.iter().all(|s| s.stats().sessions_open == 0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "idle vCenter sessions were logged out");
    let r = env
        .http
        .rest_list(&sid, &format!("filter_spec.services={SVC}"))
        .await;
    assert_eq!(r.status, 401, "the idle client session is gone too");
    // A new login opens new sessions.
    env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(env.sims.iter().all(|s| s.stats().sessions_opened == 2));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_vcenter() {
    let mut sims = start_sims(three_static()).await;
    let dead = sims.pop().unwrap();
    let dead_url = dead.base_url();
    dead.shutdown().await;
    let urls: Vec<String> = sims
        .iter()
        .map(|s| s.base_url())
        .chain([dead_url])
        .collect();
    let config = common::config(common::LISTEN, &urls, |_| "connect_timeout = \"1s\"".into());
    let creds = Some((ADMIN.0.to_owned(), vcproxy::auth::Secret::new(ADMIN.1)));
    let reports = vcproxy::cmd::check::check(&config, creds).await;
    let summary: Vec<(String, bool)> = reports.iter().map(|r| (r.vcenter.clone(), r.ok)).collect();
    assert_eq!(
        summary,
        vec![
            ("vc1".into(), true),
            ("vc2".into(), true),
            ("vc3".into(), false)
        ],
        "{reports:?}"
    );
    assert!(reports[0].detail.contains("login"), "{reports:?}");
    assert!(reports[2].detail.contains("unreachable"), "{reports:?}");
    let bad = Some((ADMIN.0.to_owned(), vcproxy::auth::Secret::new("nope")));
    let reports = vcproxy::cmd::check::check(&config, bad).await;
    assert!(
        !reports[0].ok && reports[0].detail.contains("refused"),
        "{reports:?}"
    );
    for s in &sims {
        assert_eq!(s.stats().sessions_open, 0, "check logs out again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_header_limits_hold() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sims = start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head =
        "[listen]\naddr = \"127.0.0.1:0\"\nmax_connections = 2\nmax_header_bytes = \"16KiB\"\n";
    let config = common::config(head, &urls, |_| String::new());
    let env = Env::start_with_config(sims, &config).await;
    // Two clients hold both connection slots.
    let hold1 = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let hold2 = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is not served while they hold them...
    let third = tokio::time::timeout(
        Duration::from_millis(500),
        env.http.login(Family::Rest, ADMIN.0, ADMIN.1),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection was served past max_connections = 2"
    );
    // ...and is once one of them leaves.
    drop(hold1);
    let r = env.http.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 200);
    drop(hold2);

    // A request head over max_header_bytes is refused with 431.
    let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let big = "a".repeat(20 * 1024);
    s.write_all(
        format!("GET /rest/cis/tasks HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    env.stop().await;
}

/// Collects everything the proxy (and simulators) log, at every level.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One thread, so the test's subscriber sees every task's events.
#[tokio::test(flavor = "current_thread")]
async fn session_ids_and_passwords_never_reach_the_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (env, sid) = logged_in("", Family::Rest).await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "hit");
    for s in &env.sims {
        s.expire_sessions();
    }
    assert_eq!(
        env.http
            .call(
                Method::GET,
                &format!("/rest/cis/tasks?{q}"),
                &[
                    ("vmware-api-session-id", &sid),
                    ("cache-control", "no-cache")
                ],
                None
            )
            .await
            .status,
        200
    );
    assert_eq!(
        env.http
            .login(Family::Api, ADMIN.0, "Wrong-Secret-42")
            .await
            .status,
        401
    );
    env.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("opened vCenter session"),
        "logs were captured: {text}"
    );
    assert!(
        text.contains("list_tasks"),
        "requests are logged with their route"
    );
    for secret in [
        ADMIN.1,
        "Wrong-Secret-42",
        sid.as_str(),
        &common::basic(ADMIN.0, ADMIN.1)[6..],
    ] {
        assert!(!text.contains(secret), "{secret:?} appears in the logs");
    }
}

/// A "vCenter" that logs anyone in and answers List Tasks 200 with an HTML page.
async fn start_html_vcenter() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(vcproxy::net::listener::serve(
        listener,
        None,
        |_| {
            hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let body: &'static [u8] = if req.uri().path() == "/api/session" {
                    br#""fake-session""#
                } else {
                    b"<html>maintenance</html>"
                };
                let status = if req.uri().path() == "/api/session" {
                    201
                } else {
                    200
                };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
                        .unwrap(),
                )
            })
        },
        async move {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_without_a_vcenter_answer_are_503_naming_the_vcenter() {
    let sims = start_sims(three_static()).await;
    let (html, _stop_html) = start_html_vcenter().await;
    let urls = vec![
        sims[0].base_url(),
        sims[1].base_url(),
        format!("http://{html}"),
    ];
    let config = common::config(
        &format!("{}[cache]\nerror_ttl = \"0s\"\n", common::LISTEN),
        &urls,
        |_| String::new(),
    );
    let env = Env::start_with_config(sims, &config).await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let body = format!(r#"{{"filter_spec":{{"services":["{SVC}"]}}}}"#);
    let message = |r: &common::Resp| {
        r.json()["messages"][0]["default_message"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // vc3 answers 200 with a body that is not a List Tasks answer.
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(
        (r.status.as_u16(), r.header("vcproxy-upstream")),
        (503, Some("vc3"))
    );
    assert_eq!(r.json()["error_type"], "SERVICE_UNAVAILABLE");
    assert!(message(&r).contains("vc3"), "{}", message(&r));

    // vc2 closes the connection mid-body: 503 naming vc2 (before vc3 in config order).
    env.sims[1]
        .set_faults(on_lists(Faults {
            truncate_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(
        (r.status.as_u16(), r.header("vcproxy-upstream")),
        (503, Some("vc2"))
    );
    assert!(message(&r).contains("vc2"), "{}", message(&r));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_503_naming_the_vcenter() {
    let mut sims = start_sims(three_static()).await;
    let dead = sims.pop().unwrap();
    let urls: Vec<String> = sims.iter().chain([&dead]).map(|s| s.base_url()).collect();
    dead.shutdown().await;
    let config = common::config(common::LISTEN, &urls, |_| String::new());
    let env = Env::start_with_config(sims, &config).await;
    let r = env.http.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(
        (r.status.as_u16(), r.header("vcproxy-upstream")),
        (503, Some("vc3"))
    );
    let v = r.json();
    assert_eq!(v["type"], "com.vmware.vapi.std.errors.service_unavailable");
    let msg = v["value"]["messages"][0]["default_message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("vc3") && msg.contains("connect"), "{msg}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_puts_three_simulators_behind_the_proxy() {
    let demo = vcproxy::cmd::demo::start(vcproxy::cmd::demo::DemoAddrs {
        proxy: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.2:0".parse().unwrap(),
        first_sim_port: 0,
    })
    .await
    .unwrap();
    assert_eq!(demo.sims.len(), 3);
    assert_eq!(demo.config.vcenters.len(), 3);
    let text = vcproxy::cmd::demo::instructions(
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:9090".parse().unwrap(),
        &demo.sims,
    );
    assert!(
        text.contains("/rest/com/vmware/cis/session")
            && text.contains("/api/cis/tasks?action=list")
    );
    let config = demo.config.clone();
    let env = Env::start_with_config(demo.sims, &config).await;
    let admin = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let operator = env
        .http
        .session(
            Family::Rest,
            vcproxy::cmd::demo::OPERATOR.0,
            vcproxy::cmd::demo::OPERATOR.1,
        )
        .await;
    let all = every_service_query();
    let a = rest_keys(&env.http.rest_list(&admin, &all).await.json());
    let o = rest_keys(&env.http.rest_list(&operator, &all).await.json());
    assert_eq!(a.len(), 450, "200 + 150 + 100 tasks");
    assert!(!o.is_empty() && o.len() < a.len());
    env.stop().await;
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_finishes_requests_in_flight_and_logs_out_on_sigterm() {
    let mut configs = three_static();
    for c in &mut configs {
        c.faults = on_lists(Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        });
    }
    let sims = start_sims(configs).await;
    let (port, admin_port) = (free_port(), free_port());
    let head = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\n[admin]\naddr = \"127.0.0.1:{admin_port}\"\n\
         [log]\nformat = \"json\"\n"
    );
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let mut toml = head;
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[vcenter]]\nname = \"vc{}\"\nurl = \"{url}\"\n",
            i + 1
        ));
    }
    let dir = common::temp_dir("sigterm");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcproxy"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    let mut ready = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "vcproxy serve did not start listening");
    let sid = http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(sims.iter().all(|s| s.stats().sessions_open == 1));

    // A slow List Tasks is in flight when SIGTERM arrives...
    let q = svc_query();
    let in_flight = {
        let http = http.clone();
        let sid = sid.clone();
        tokio::spawn(async move { http.rest_list(&sid, &q).await })
    };
    let mut started = false;
    for _ in 0..200 {
        if sims.iter().all(|s| s.stats().in_flight == 1) {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started, "the request reached every vCenter");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // ...and still gets its answer; then the process exits cleanly, having logged
    // out of every vCenter, and takes no new connections.
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!rest_keys(&r.json()).is_empty());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        sims.iter().all(|s| s.stats().sessions_open == 0),
        "sessions closed"
    );
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    for s in sims {
        s.shutdown().await;
    }
}
