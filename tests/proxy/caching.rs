//! Caching: one fan-out per question and TTL whatever its spelling, the merged answer,
//! entries per user, the stale windows, `no-cache`, coalescing, Server-Timing.

use crate::common::{self, rest_keys, Env, Http, RestQuery, ADMIN};
use crate::{direct_raw, logged_in, on_lists, svc_body, svc_query, three_static, SVC};
use http::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use vcproxy::protocol::merge::{merge, MergeOptions, UpstreamBody};
use vcproxy::sim::{self, Faults};
use vcproxy::Family;

/// Ten spellings of one question in the /rest family.
fn ten_encodings() -> Vec<RestQuery> {
    common::ten_encodings(SVC)
}

async fn send_encoding(http: &Http, sid: &str, enc: &RestQuery) -> common::Resp {
    http.try_rest_query(sid, enc, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
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

/// A JSON-RPC map of task id to info (`[{"STRUCTURE":{"map-entry":{..}}},..]`).
fn rpc_entries(output: &Value) -> BTreeMap<String, Value> {
    output
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let entry = &e["STRUCTURE"]["map-entry"];
            (
                entry["key"].as_str().unwrap().to_owned(),
                entry["value"].clone(),
            )
        })
        .collect()
}

/// The output value of a JSON-RPC answer with id `"0"`, as sent.
fn rpc_output(body: &[u8]) -> &[u8] {
    body.strip_prefix(br#"{"jsonrpc":"2.0","id":"0","result":{"output":"#)
        .and_then(|b| b.strip_suffix(b"}}"))
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(body)))
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
async fn merged_body_is_the_union_of_every_simulator_in_every_protocol() {
    let env = Env::start(three_static(), "", "").await;
    let rest_query =
        format!("filter_spec.services={SVC}&filter_spec.services=com.vmware.appliance.update");
    let api_body =
        format!(r#"{{"filter_spec":{{"services":["{SVC}","com.vmware.appliance.update"]}}}}"#);
    for family in [Family::Rest, Family::Api, Family::JsonRpc] {
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
                Family::JsonRpc => union.extend(rpc_entries(&v["result"]["output"])),
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
            Family::JsonRpc => rpc_entries(&proxied.json()["result"]["output"]),
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
        // JSON-RPC: the merge is the output value, sent inside the envelope.
        let sent = match family {
            Family::JsonRpc => rpc_output(&proxied.body),
            _ => &proxied.body[..],
        };
        assert_eq!(sent, &expected.body[..], "{family}");
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
    let body = svc_body();
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
