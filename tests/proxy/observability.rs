//! Following a request: the client's W3C `traceparent` continues to the vCenters
//! the proxy asks, with the client's trace id and flags and a parent id of the
//! proxy's own; a cached answer asks nobody.

use super::common::{every_service_query, Env};
use super::three_static;
use http::Method;
use vcproxy::Family;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE_ID}-{CLIENT_PARENT}-{flags}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_trace_continues_to_every_vcenter_asked() {
    let env = Env::start(three_static(), "", "").await;
    let sid = env
        .http
        .session(Family::Api, super::ADMIN.0, super::ADMIN.1)
        .await;
    let path = format!("/rest/cis/tasks?{}", every_service_query());
    let list = |tp: String| {
        let (http, path, sid) = (env.http.clone(), path.clone(), sid.clone());
        async move {
            http.call(
                Method::GET,
                &path,
                &[("vmware-api-session-id", &sid), ("traceparent", &tp)],
                None,
            )
            .await
        }
    };
    let r = list(traceparent("01")).await;
    assert_eq!((r.status.as_u16(), r.cache()), (200, "miss"));
    let mut parents = Vec::new();
    for s in &env.sims {
        let seen = s
            .stats()
            .last_traceparent
            .expect("a traceparent reached vCenter");
        let fields: Vec<&str> = seen.split('-').collect();
        assert_eq!(fields.len(), 4, "{seen}");
        assert_eq!((fields[0], fields[1], fields[3]), ("00", TRACE_ID, "01"));
        assert_ne!(fields[2], CLIENT_PARENT, "the proxy is a hop of its own");
        assert_eq!(fields[2].len(), 16);
        parents.push(fields[2].to_owned());
    }
    parents.dedup();
    assert_eq!(parents.len(), 3, "one parent id per upstream request");

    // A hit asks nobody, so nobody sees the new trace.
    let other = format!("00-{}-{CLIENT_PARENT}-00", "a".repeat(32));
    assert_eq!(list(other.clone()).await.cache(), "hit");
    for s in &env.sims {
        assert!(s.stats().last_traceparent.unwrap().contains(TRACE_ID));
    }

    // Get Task carries it too; a malformed header is ignored, not forwarded.
    let id = env.sims[0].task_ids()[0].clone();
    let get = env
        .http
        .call(
            Method::GET,
            &format!("/api/cis/tasks/{id}"),
            &[("vmware-api-session-id", &sid), ("traceparent", &other)],
            None,
        )
        .await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert!(env.sims[0]
        .stats()
        .last_traceparent
        .unwrap()
        .contains(&"a".repeat(32)));
    let r = env
        .http
        .call(
            Method::GET,
            &path,
            &[
                ("vmware-api-session-id", &sid),
                ("traceparent", "00-zz-not-a-trace"),
                ("cache-control", "no-cache"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!env.sims[1].stats().last_traceparent.unwrap().contains("zz"));
    env.stop().await;
}
