//! Get Task through the proxy: the owning vCenter found (remembered from lists, or
//! asked of every vCenter at once), its answer passed through and named, the
//! answers cached and coalesced per user and question.

use super::*;
use common::basic;
use http::Method;
use std::time::Duration;
use vcproxy::sim::Endpoint;

/// Get Task requests each simulator received in `family`.
fn gets(env: &Env, family: Family) -> Vec<u64> {
    env.sims
        .iter()
        .map(|s| s.stats().requests(Endpoint::TasksGet, family))
        .collect()
}

fn get_path(family: Family, id: &str) -> String {
    match family {
        Family::Rest => format!("/rest/cis/tasks/{id}"),
        _ => format!("/api/cis/tasks/{id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_answers_byte_for_byte_and_is_named() {
    for family in [Family::Rest, Family::Api] {
        let (env, sid) = logged_in("", family).await;
        let id = env.sims[1].task_ids()[3].clone();
        let proxied = env.http.get(&get_path(family, &id), &sid).await;
        assert_eq!(proxied.status, 200, "{}", proxied.text());
        assert_eq!(proxied.header("vcproxy-upstream"), Some("vc2"));
        // Exactly what that vCenter answers itself.
        let direct = Http::for_sim(&env.sims[1]);
        let dsid = direct.session(family, ADMIN.0, ADMIN.1).await;
        let expected = direct.get(&get_path(family, &id), &dsid).await;
        assert_eq!(expected.status, 200);
        assert_eq!(proxied.body, expected.body, "{family}");
        // Unknown owner: every vCenter was asked once (the owner's answer won).
        assert_eq!(gets(&env, family), vec![1, 2, 1], "{family}");
        env.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_task_is_asked_of_its_vcenter_alone() {
    let (env, sid) = logged_in("", Family::Rest).await;
    // The first Get turns owner learning on; the list then teaches every owner.
    let unknown = env.http.get("/rest/cis/tasks/none:x", &sid).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(gets(&env, Family::Rest), vec![1, 1, 1]);
    let listed = env
        .http
        .rest_list(&sid, &common::every_service_query())
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    // Owners are recorded off the list answer's path: ask the third vCenter's tasks,
    // each a new question, until one is asked of it alone (a bounded retry, not a
    // timing assertion); from then on every one is.
    let ids = env.sims[2].task_ids();
    let mut learned_at = None;
    for (n, id) in ids.iter().enumerate().take(40) {
        let before = gets(&env, Family::Rest);
        let r = env.http.get(&format!("/rest/cis/tasks/{id}"), &sid).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("vcproxy-upstream"), Some("vc3"));
        let after = gets(&env, Family::Rest);
        assert_eq!(after[2], before[2] + 1);
        if after[..2] == before[..2] {
            learned_at = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let n = learned_at.expect("the list taught the proxy the owners");
    for id in &ids[n + 1..n + 6] {
        let before = gets(&env, Family::Rest);
        let r = env.http.get(&format!("/rest/cis/tasks/{id}"), &sid).await;
        assert_eq!(r.status, 200);
        let after = gets(&env, Family::Rest);
        assert_eq!(
            (after[0], after[1], after[2]),
            (before[0], before[1], before[2] + 1)
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_waiters_cost_each_vcenter_one_request_per_ttl() {
    let (env, sid) = logged_in("[cache]\nttl = \"30s\"\n", Family::Api).await;
    let id = env.sims[0].task_ids()[0].clone();
    let path = format!("/api/cis/tasks/{id}");
    let round = || {
        let (http, path, sid) = (env.http.clone(), path.clone(), sid.clone());
        async move {
            let waiters = (0..100).map(|_| {
                let (http, path, sid) = (http.clone(), path.clone(), sid.clone());
                tokio::spawn(async move { http.get(&path, &sid).await })
            });
            let mut answers = Vec::new();
            for w in waiters {
                answers.push(w.await.unwrap());
            }
            answers
        }
    };
    let first = round().await;
    assert!(first.iter().all(|r| r.status == 200));
    assert!(first.iter().all(|r| r.body == first[0].body));
    assert_eq!(
        gets(&env, Family::Api),
        vec![1, 1, 1],
        "one lookup for 100 waiters"
    );
    let second = round().await;
    assert!(
        second.iter().all(|r| r.cache() == "hit"),
        "within the TTL: hits"
    );
    assert_eq!(gets(&env, Family::Api), vec![1, 1, 1]);
    // Another user does not share the entry.
    let op = env
        .http
        .session(Family::Api, "operator@vsphere.local", "Operator1!")
        .await;
    let theirs = env.http.get(&path, &op).await;
    assert_ne!(theirs.cache(), "hit");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tasks_and_unreachable_vcenters() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let r = env
        .http
        .get("/rest/cis/tasks/nope:com.vmware.x", &sid)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["type"], "com.vmware.vapi.std.errors.not_found");
    assert_eq!(gets(&env, Family::Rest), vec![1, 1, 1]);
    // One vCenter failing: its 503 decides, since it might hold the task.
    env.sims[1]
        .set_faults(Faults {
            error_rate: 1.0,
            endpoints: vec![Endpoint::TasksGet],
            ..Faults::default()
        })
        .unwrap();
    let r = env
        .http
        .get("/rest/cis/tasks/other:com.vmware.x", &sid)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    // Bad options are refused by the proxy, naming the parameter, unforwarded.
    let before = gets(&env, Family::Rest);
    let r = env
        .http
        .get("/rest/cis/tasks/a:b?spec.bogus=true", &sid)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("spec.bogus"), "{}", r.text());
    assert_eq!(gets(&env, Family::Rest), before);
    // No session: 401, nothing forwarded.
    let r = env.http.get("/rest/cis/tasks/a:b", "nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(gets(&env, Family::Rest), before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_rest_spellings_share_one_entry() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let id = env.sims[0].task_ids()[0].clone();
    let path = format!("/rest/cis/tasks/{id}");
    let headers = [(common::SESSION, sid.as_str())];
    // The SDK in REST mode: a JSON body on the GET, no content type.
    let a = env
        .http
        .call(
            Method::GET,
            &path,
            &headers,
            Some(br#"{"spec":{"exclude_result":true}}"#),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let b = env
        .http
        .get(&format!("{path}?spec.exclude_result=true"), &sid)
        .await;
    assert_eq!((b.status.as_u16(), b.cache()), (200, "hit"));
    assert_eq!(a.body, b.body);
    let plain = env
        .http
        .call(Method::GET, &path, &headers, Some(b"{}"))
        .await;
    assert_eq!(plain.cache(), "miss", "other options are another question");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_rest_session_paths() {
    let env = Env::start(three_static(), "", "").await;
    let auth = basic(ADMIN.0, ADMIN.1);
    let login = env
        .http
        .call(
            Method::POST,
            "/rest/session",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(b""),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text());
    let sid = login.json()["value"].as_str().unwrap().to_owned();
    let me = env.http.get("/rest/session", &sid).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["value"]["user"], ADMIN.0);
    // The same session works on the documented paths and in the other family.
    let listed = env.http.rest_list(&sid, &svc_query()).await;
    assert_eq!(listed.status, 200);
    let out = env
        .http
        .call(
            Method::DELETE,
            "/rest/session",
            &[(common::SESSION, &sid)],
            None,
        )
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(env.http.get("/rest/session", &sid).await.status, 401);
    env.stop().await;
}
