//! Log injection (issue 16): hostile user names and request fields reach the logs
//! escaped. A test binary of its own: it installs a capturing subscriber, and
//! tracing caches per call site whether anyone listens, which tests running in
//! parallel in one process (with no subscriber) could decide before it is set.

use http::Method;
use vcproxy::Family;
use vcproxy_testkit::{sim_config, Env, LogBuffer, ADMIN};

fn three_static() -> Vec<vcproxy::sim::SimConfig> {
    vec![sim_config(120, 1), sim_config(90, 2), sim_config(60, 3)]
}

/// Hostile user names (a line feed and a forged log line, terminal escapes) in
/// Basic auth and in a JSON-RPC log-in reach the logs escaped: no forged line, no
/// escape character, in the text and the JSON formats.
#[tokio::test(flavor = "current_thread")]
async fn hostile_names_cannot_forge_log_lines_or_reach_a_terminal() {
    const FORGED: &str = "mallory\n2026-12-03T00:00:00.000000Z  WARN FORGED cache purged\r\x1b[2J\x1b]0;owned\x07\u{9b}31m";
    for json in [false, true] {
        let logs = LogBuffer::default();
        let builder = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false);
        let _guard = if json {
            tracing::subscriber::set_default(builder.json().finish())
        } else {
            tracing::subscriber::set_default(builder.finish())
        };
        let env = Env::start(three_static(), "", "").await;
        for family in [Family::Rest, Family::Api] {
            let r = env.http.login(family, FORGED, "x").await;
            assert_eq!(r.status, 401, "{}", r.text());
        }
        let r = env
            .http
            .rpc(
                "com.vmware.cis.session",
                "create",
                serde_json::json!({"STRUCTURE":{"operation-input":{}}}),
                serde_json::json!({"schemeId":"com.vmware.vapi.std.security.user_pass",
                                   "userName": FORGED, "password": "x"}),
                "1",
            )
            .await;
        assert_eq!(r.status, 200);
        // A path and a JSON-RPC service name with a line feed.
        let _ = env
            .http
            .call(Method::GET, "/rest/%0AFORGED%1B", &[], None)
            .await;
        let call = serde_json::json!({"jsonrpc":"2.0","method":"invoke","id":"2",
            "params":{"serviceId":"FORGED\nservice\x1b[31m","operationId":"list",
                      "input":{"STRUCTURE":{"operation-input":{}}},"ctx":{}}});
        let r = env.http.rpc_body(&call, &[]).await;
        assert!(r.text().contains("operation_not_found"), "{}", r.text());
        env.stop().await;
        drop(_guard);

        let text = logs.text();
        assert!(
            text.contains("mallory"),
            "the refused log-ins were logged (json: {json}): {text}"
        );
        for line in text.lines() {
            assert!(
                !line.trim_start().starts_with("2026-12-03T00:00:00.000000Z"),
                "a forged line (json: {json}): {line}"
            );
            if json {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
            }
        }
        for raw in ['\x1b', '\x07', '\u{9b}', '\r'] {
            assert!(
                !text.contains(raw),
                "{raw:?} reached the log (json: {json})"
            );
        }
        assert!(
            text.contains("mallory\\n2026") || text.contains("mallory\\\\n2026"),
            "the line feed shows escaped (json: {json}): {text}"
        );
    }
}

/// `[log] access = true`: one line per request with client, method, path (long
/// query values cut), status, bytes, cache outcome, user and the client's trace
/// id; never the session id or a password. Off: no line.
#[tokio::test(flavor = "current_thread")]
async fn the_access_log_has_one_line_per_request_and_no_secret() {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for access in [true, false] {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(logs.clone())
            .with_ansi(false)
            .json()
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let env = Env::start(three_static(), &format!("[log]\naccess = {access}\n"), "").await;
        let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
        let long = "s".repeat(200);
        let path = format!("/rest/cis/tasks?filter_spec.services={long}");
        for _ in 0..2 {
            let r = env
                .http
                .call(
                    Method::GET,
                    &path,
                    &[("vmware-api-session-id", &sid), ("traceparent", TRACE)],
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        env.stop().await;
        drop(_guard);

        let text = logs.text();
        assert!(!text.contains(&sid), "the session id reached the log");
        assert!(!text.contains(ADMIN.1), "the password reached the log");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["fields"]["message"] == "access")
            .collect();
        if !access {
            assert!(lines.is_empty(), "{lines:?}");
            continue;
        }
        assert_eq!(lines.len(), 3, "a log-in and two lists: {text}");
        let login = &lines[0]["fields"];
        assert_eq!(login["method"], "POST");
        assert_eq!(login["user"], ADMIN.0);
        assert_eq!(login["route"], "login");
        let (miss, hit) = (&lines[1]["fields"], &lines[2]["fields"]);
        for (f, cache) in [(miss, "miss"), (hit, "hit")] {
            assert_eq!(f["cache"], cache, "{f}");
            assert_eq!(f["status"], 200);
            assert_eq!(f["user"], ADMIN.0);
            assert_eq!(f["route"], "list_tasks");
            assert_eq!(f["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(f["client"].as_str().unwrap().starts_with("127.0.0.1:"));
            assert!(f["bytes"].as_u64().unwrap() > 0);
            assert!(f["duration_ms"].as_f64().unwrap() >= 0.0);
            let logged = f["path"].as_str().unwrap();
            assert_eq!(
                logged,
                format!("/rest/cis/tasks?filter_spec.services={}…", "s".repeat(64))
            );
        }
        assert_eq!(lines[2]["level"], "INFO");
    }
}
