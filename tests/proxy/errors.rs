//! Errors: bad requests, vCenter errors passed through byte for byte, timeouts,
//! refused connections, partial answers.

use crate::common::{self, every_service_query, sim_config, start_sims, Env};
use crate::{direct_raw, logged_in, on_lists, svc_body, three_static, ADMIN, SVC};
use http::Method;
use serde_json::Value;
use std::time::Duration;
use vcproxy::sim::{self, Faults};
use vcproxy::Family;

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
        let narrow_b = svc_body();
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
    let r = env.http.api_list(&sid, &svc_body()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    let v = r.json();
    assert_eq!(v["error_type"], "SERVICE_UNAVAILABLE");
    let msg = v["messages"][0]["default_message"].as_str().unwrap();
    assert!(msg.contains("vc2") && msg.contains("1s"), "{msg}");
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
    for path in ["/", "/metrics", "/sdk", "/uix", "/vcproxy/v2/tasks"] {
        let r = env.http.call(Method::GET, path, &[], None).await;
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(env.upstream_total(), before, "nothing forwarded");
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
    let body = svc_body();
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

/// An answer that leaves a failed vCenter out (a partial merge, a native answer
/// reporting the failure) is kept like an error: fresh for `error_ttl`, not `ttl`,
/// so the failed vCenter is asked again as soon as a failure would be; once it
/// answers, the complete answer is kept for `ttl` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_missing_a_failed_vcenter_lives_like_an_error() {
    let config = "[cache]\nttl = \"1h\"\nerror_ttl = \"100ms\"\n[merge]\npartial = true";
    let (env, sid) = logged_in(config, Family::Rest).await;
    let failing = Faults {
        error_rate: 1.0,
        ..Faults::default()
    };
    env.sims[2].set_faults(on_lists(failing)).unwrap();
    let max_age = |r: &crate::common::Resp| -> u64 {
        let cc = r.header("cache-control").unwrap_or_default().to_owned();
        cc.strip_prefix("private, max-age=")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cache-control {cc:?}"))
    };
    let native = format!("/vcproxy/v1/tasks?{}", every_service_query());
    let h = [("vmware-api-session-id", sid.as_str())];
    let query = every_service_query();
    let list = || env.http.rest_list(&sid, &query);
    let ask_native = || env.http.call(Method::GET, &native, &h, None);

    let r = list().await;
    assert_eq!(
        (r.status.as_u16(), r.header("vcproxy-partial")),
        (200, Some("vc3"))
    );
    assert_eq!(max_age(&r), 0, "fresh for error_ttl, not an hour");
    let n = ask_native().await;
    assert_eq!((n.status.as_u16(), n.cache()), (200, "miss"));
    assert_eq!(n.json()["vcenters"][2]["ok"], false);
    let asked = env.upstream_lists();

    // Past error_ttl both are fetched again: the failed vCenter is asked again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list().await.cache(), "miss");
    assert_eq!(ask_native().await.cache(), "miss");
    let again = env.upstream_lists();
    assert!(
        again.iter().zip(&asked).all(|(a, b)| a > b),
        "every vCenter asked again: {asked:?} -> {again:?}"
    );

    // vc3 is back: the complete answers are kept for the hour.
    env.sims[2].set_faults(on_lists(Faults::default())).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = list().await;
    assert_eq!((r.cache(), r.header("vcproxy-partial")), ("miss", None));
    assert!(max_age(&r) > 3000, "{:?}", r.header("cache-control"));
    assert_eq!(ask_native().await.cache(), "miss");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(list().await.cache(), "hit");
    assert_eq!(ask_native().await.cache(), "hit");
    env.stop().await;
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
    let body = svc_body();
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
