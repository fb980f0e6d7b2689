//! JSON-RPC on `POST /api`, as the official SDK speaks it: sessions shared with the
//! REST families, List Tasks forwarded in JSON-RPC and merged entry by entry, Get
//! Task, every answer HTTP 200 with the request's id, errors as vAPI errors.

use super::*;
use common::typed::{empty_input, get_input, list_input};
use common::Resp;
use http::Method;
use serde_json::{json, Value};
use vcproxy::sim::Endpoint;

const TASKS: &str = "com.vmware.cis.tasks";
const SESSION_SVC: &str = "com.vmware.cis.session";

fn user_pass(user: &str, password: &str) -> Value {
    json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": user, "password": password})
}

/// The answer's `result.output`, checking the envelope: HTTP 200, JSON-RPC 2.0, the
/// request's id echoed as the same JSON value.
fn output(r: &Resp, id: &Value) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(&v["id"], id, "{v}");
    assert!(v["result"].get("error").is_none(), "{v}");
    v["result"]["output"].clone()
}

/// The vAPI error name of an answer, checking the envelope.
fn error_name(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let e = v["result"]["error"]["ERROR"]
        .as_object()
        .unwrap_or_else(|| panic!("not a vAPI error: {v}"));
    e.keys().next().unwrap().clone()
}

async fn rpc_login(http: &Http, user: &str, password: &str) -> Resp {
    http.rpc(
        SESSION_SVC,
        "create",
        empty_input(),
        user_pass(user, password),
        "0",
    )
    .await
}

async fn rpc_session(http: &Http) -> String {
    let r = rpc_login(http, ADMIN.0, ADMIN.1).await;
    output(&r, &json!("0"))["SECRET"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn svc_filter() -> Value {
    json!({"filter_spec": {"services": [SVC], "status": ["SUCCEEDED", "FAILED", "RUNNING"]}})
}

fn keys(output: &Value) -> Vec<String> {
    output
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["STRUCTURE"]["map-entry"]["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_calls_from_log_in_to_log_out() {
    let env = Env::start(three_static(), "", "").await;
    let sid = rpc_session(&env.http).await;
    let security = Http::rpc_session(&sid);
    // Who am I.
    let me = env
        .http
        .rpc(SESSION_SVC, "get", empty_input(), security.clone(), "5")
        .await;
    let info = output(&me, &json!("5"));
    assert_eq!(
        info["STRUCTURE"]["com.vmware.cis.session.info"]["user"],
        ADMIN.0
    );
    // List: the merged map entries, sorted by task id.
    let r = env.http.rpc_list(&sid, &svc_filter()).await;
    let listed = keys(&output(&r, &json!("0")));
    assert!(listed.len() > 10);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    // Get, with the id a number: echoed as a number.
    let id = &listed[3];
    let body = json!({"jsonrpc":"2.0","method":"invoke","params":{"serviceId":TASKS,"operationId":"get",
        "input":get_input(id, None),"ctx":{"securityCtx":security}},"id":7});
    let r = env
        .http
        .call(
            Method::POST,
            "/api",
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
        .await;
    let task = output(&r, &json!(7));
    assert!(
        task["STRUCTURE"]["com.vmware.cis.task.info"].is_object(),
        "{task}"
    );
    assert!(r.header("vcproxy-upstream").is_some());
    // Unknown task: not_found.
    let r = env
        .http
        .rpc(
            TASKS,
            "get",
            get_input("no:such", None),
            security.clone(),
            "8",
        )
        .await;
    assert_eq!(error_name(&r), "com.vmware.vapi.std.errors.not_found");
    // Log out: void; the session is gone.
    let r = env
        .http
        .rpc(SESSION_SVC, "delete", empty_input(), security.clone(), "9")
        .await;
    assert_eq!(output(&r, &json!("9")), Value::Null);
    let r = env.http.rpc_list(&sid, &svc_filter()).await;
    assert_eq!(error_name(&r), "com.vmware.vapi.std.errors.unauthenticated");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_one_namespace_across_protocols() {
    let env = Env::start(three_static(), "", "").await;
    let api_sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let r = env.http.rpc_list(&api_sid, &svc_filter()).await;
    let from_rpc = keys(&output(&r, &json!("0")));
    let rpc_sid = rpc_session(&env.http).await;
    let r = env.http.api_list(&rpc_sid, &svc_filter().to_string()).await;
    assert_eq!(r.status, 200);
    let from_api: Vec<String> = r.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(from_rpc, from_api, "the same tasks in both protocols");
    // A header session overrides the body's.
    let r = env
        .http
        .call(
            Method::POST,
            "/api",
            &[("content-type", "application/json"), (common::SESSION, &rpc_sid)],
            Some(
                json!({"jsonrpc":"2.0","method":"invoke","params":{"serviceId":TASKS,"operationId":"list",
                    "input":list_input(&svc_filter()),"ctx":{"securityCtx":Http::rpc_session("bogus")}},"id":"1"})
                .to_string()
                .as_bytes(),
            ),
        )
        .await;
    assert_eq!(keys(&output(&r, &json!("1"))), from_rpc);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_per_filter_whatever_set_order_and_id() {
    let env = Env::start(three_static(), "[cache]\nttl = \"30s\"\n", "").await;
    let sid = rpc_session(&env.http).await;
    let a = env.http.rpc_list(&sid, &svc_filter()).await;
    let reordered = json!({"filter_spec": {"status": ["RUNNING", "FAILED", "SUCCEEDED", "FAILED"], "services": [SVC]},
        "result_spec": {"return_all": false}});
    let input = list_input(&reordered);
    let b = env
        .http
        .rpc(TASKS, "list", input, Http::rpc_session(&sid), "42")
        .await;
    assert_eq!((a.cache(), b.cache()), ("miss", "hit"));
    assert_eq!(output(&a, &json!("0")), output(&b, &json!("42")));
    // The stored value is sent as stored: only the envelope's id differs.
    let strip = |r: &Resp, id: &str| {
        let t = r.text();
        t.replacen(&format!(r#""id":{id}"#), r#""id":_"#, 1)
    };
    assert_eq!(strip(&a, "\"0\""), strip(&b, "\"42\""));
    assert_eq!(env.upstream_lists(), vec![1, 1, 1]);
    // Each vCenter was asked in JSON-RPC.
    for s in &env.sims {
        assert_eq!(s.stats().requests(Endpoint::TasksList, Family::JsonRpc), 1);
    }
    // The same filter in /api is another entry (another answer shape).
    let api_sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let c = env.http.api_list(&api_sid, &svc_filter().to_string()).await;
    assert_eq!(c.cache(), "miss");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_vapi_errors_on_http_200() {
    let env = Env::start(
        vec![sim_config(600, 1), sim_config(600, 2), sim_config(600, 3)],
        "",
        "",
    )
    .await;
    // Bad password: unauthenticated, from the vCenters' refusal.
    let r = rpc_login(&env.http, ADMIN.0, "wrong").await;
    assert_eq!(error_name(&r), "com.vmware.vapi.std.errors.unauthenticated");
    // No credentials at all.
    let r = env
        .http
        .rpc(SESSION_SVC, "create", empty_input(), json!({}), "0")
        .await;
    assert_eq!(error_name(&r), "com.vmware.vapi.std.errors.unauthenticated");
    let sid = rpc_session(&env.http).await;
    let security = Http::rpc_session(&sid);
    // No filter: the vCenters' invalid_argument passes through.
    let r = env
        .http
        .rpc(TASKS, "list", list_input(&json!({})), security.clone(), "1")
        .await;
    assert_eq!(
        error_name(&r),
        "com.vmware.vapi.std.errors.invalid_argument"
    );
    // Over 1000 merged tasks: resource_inaccessible.
    let all: Vec<&str> = sim::service_ids();
    let r = env
        .http
        .rpc_list(&sid, &json!({"filter_spec": {"services": all}}))
        .await;
    assert_eq!(
        error_name(&r),
        "com.vmware.vapi.std.errors.resource_inaccessible"
    );
    // A parameter the operation does not have: invalid_argument naming it.
    let mut bad = list_input(&svc_filter());
    bad["STRUCTURE"]["operation-input"]["bogus"] = json!({"OPTIONAL": true});
    let r = env
        .http
        .rpc(TASKS, "list", bad, security.clone(), "2")
        .await;
    assert_eq!(
        error_name(&r),
        "com.vmware.vapi.std.errors.invalid_argument"
    );
    assert!(r.text().contains("bogus"), "{}", r.text());
    // An operation the proxy does not serve: operation_not_found, nothing forwarded.
    let before: Vec<u64> = env
        .sims
        .iter()
        .map(|s| s.stats().total_requests())
        .collect();
    let r = env
        .http
        .rpc(
            "com.vmware.vcenter.vm",
            "list",
            empty_input(),
            security.clone(),
            "3",
        )
        .await;
    assert_eq!(
        error_name(&r),
        "com.vmware.vapi.std.errors.operation_not_found"
    );
    let after: Vec<u64> = env
        .sims
        .iter()
        .map(|s| s.stats().total_requests())
        .collect();
    assert_eq!(before, after);
    // A vCenter down: service_unavailable.
    env.sims[2]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let r = env.http.rpc_list(&sid, &svc_filter()).await;
    assert_eq!(
        error_name(&r),
        "com.vmware.vapi.std.errors.service_unavailable"
    );
    assert_eq!(r.header("vcproxy-upstream"), Some("vc3"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_json_rpc_get_protocol_errors() {
    let env = Env::start(three_static(), "", "").await;
    let send = |body: &'static [u8]| {
        let http = env.http.clone();
        async move {
            let r = http
                .call(
                    Method::POST,
                    "/api",
                    &[("content-type", "application/json")],
                    Some(body),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        }
    };
    let v = send(b"{not json").await;
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32700), &Value::Null)
    );
    let v = send(br#"{"jsonrpc":"2.0","method":"invoke","params":{}}"#).await;
    assert_eq!(v["error"]["code"], -32600);
    let v = send(br#"{"jsonrpc":"2.0","method":"call","id":"4"}"#).await;
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32601), &json!("4"))
    );
    let v = send(br#"{"jsonrpc":"2.0","method":"invoke","id":5,"params":{"serviceId":"x"}}"#).await;
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32602), &json!(5))
    );
    // The SDK's headers must agree with the body.
    let r = env
        .http
        .call(
            Method::POST,
            "/api",
            &[("vapi-service", "com.vmware.cis.session")],
            Some(json!({"jsonrpc":"2.0","method":"invoke","params":{"serviceId":TASKS,"operationId":"list","input":list_input(&svc_filter())},"id":"6"}).to_string().as_bytes()),
        )
        .await;
    assert_eq!(r.json()["error"]["code"], -31001);
    // POST /api with a query is not JSON-RPC: the /api family's 404.
    let r = env
        .http
        .call(Method::POST, "/api?x=1", &[], Some(b"{}"))
        .await;
    assert_eq!(r.status, 404);
    env.stop().await;
}
