//! Integration tests of the simulator's vAPI JSON-RPC endpoint (`POST /api`), through
//! a real HTTP client, against `shared/vsphere/JSONRPC-NOTES.md` and the SDK's
//! captured calls (`captures/sdk-jsonrpc.txt`, copied below byte for byte).
//!
//! The checks here are the test's own: an order-keeping JSON reader for member
//! order and shapes, an untyper that reads typed values back into `/api` JSON, and
//! a checker of the SDK's per-status field rules. Nothing asserts on time.

use http::Method;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;
use vcproxy::sim::{self, Endpoint, Faults, SimConfig};
use vcproxy::Family;
use vcproxy_testkit::{sim_config, start_sim, typed, Http, Resp, ADMIN, OPERATOR, SESSION};

// ---------------------------------------------------------------------------------
// The SDK's calls as captured (vmware-vcenter 9.1.1.0, create_vsphere_client)
// ---------------------------------------------------------------------------------

/// One captured call: its routing headers, its body and the recorded answer.
struct Captured {
    service: &'static str,
    operation: &'static str,
    opid: &'static str,
    request: &'static str,
    answer: &'static str,
}

/// The session id the recording server handed out, in every later captured call.
const CAPTURED_SESSION: &str = "9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1";
/// The task the captured Get Task calls ask for.
const CAPTURED_TASK: &str = "52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm";

const CAPTURED: [Captured; 8] = [
    Captured {
        service: "com.vmware.cis.session",
        operation: "create",
        opid: "3d65b346-981c-45d9-97d7-e0b964211bb2",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"create","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"3d65b346-981c-45d9-97d7-e0b964211bb2"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.user_pass","userName":"administrator@vsphere.local","password":"VMware1!"}}},"id":"0"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"0","result":{"output":{"SECRET":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}}"#,
    },
    Captured {
        service: "com.vmware.cis.tasks",
        operation: "list",
        opid: "e8b793bf-4eff-4848-8a5d-cede35a5cc2d",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.tasks","operationId":"list","input":{"STRUCTURE":{"operation-input":{"filter_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.filter_spec":{"tasks":{"OPTIONAL":null},"services":{"OPTIONAL":["com.vmware.vcenter.vm"]},"operations":{"OPTIONAL":null},"status":{"OPTIONAL":["FAILED"]},"targets":{"OPTIONAL":[{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}]},"users":{"OPTIONAL":null}}}}},"result_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.get_spec":{"return_all":{"OPTIONAL":true},"exclude_result":{"OPTIONAL":false}}}}}}}},"ctx":{"appCtx":{"opId":"e8b793bf-4eff-4848-8a5d-cede35a5cc2d"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"0"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"0","result":{"output":[{"STRUCTURE":{"map-entry":{"key":"52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm","value":{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":100,"completed":100,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"done","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":{"STRUCTURE":{"dynamic-structure":{"commit":7,"status":"OK"}}}},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vcenter.vm.power_on","default_message":"Power on vm-42","args":["vm-42"],"params":{"OPTIONAL":[{"STRUCTURE":{"map-entry":{"key":"vm","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":"vm-42"},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":null},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}},{"STRUCTURE":{"map-entry":{"key":"n","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":null},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":3},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}}]},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"power_on","parent":{"OPTIONAL":null},"target":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}},"status":"SUCCEEDED","cancelable":false,"error":{"OPTIONAL":null},"start_time":{"OPTIONAL":"2026-01-15T09:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T09:00:05.250Z"},"user":{"OPTIONAL":"VSPHERE.LOCAL\\Administrator"}}}}}}},{"STRUCTURE":{"map-entry":{"key":"77aa0000-0000-0000-0000-000000000001:com.vmware.vcenter.vm","value":{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":10,"completed":4,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"copying","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":null},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"x.failed","default_message":"Clone failed","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"clone","parent":{"OPTIONAL":null},"target":{"OPTIONAL":null},"status":"FAILED","cancelable":false,"error":{"OPTIONAL":{"ERROR":{"com.vmware.vapi.std.errors.error":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"e","default_message":"disk full","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"ERROR"}}}}},"start_time":{"OPTIONAL":"2026-01-15T10:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T10:01:00.000Z"},"user":{"OPTIONAL":null}}}}}}}]}}"#,
    },
    Captured {
        service: "com.vmware.cis.tasks",
        operation: "get",
        opid: "3f00a749-63a1-40cc-9ede-1019c8cac965",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.tasks","operationId":"get","input":{"STRUCTURE":{"operation-input":{"task":"52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm","spec":{"OPTIONAL":null}}}},"ctx":{"appCtx":{"opId":"3f00a749-63a1-40cc-9ede-1019c8cac965"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"1"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"1","result":{"output":{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":100,"completed":100,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"done","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":{"STRUCTURE":{"dynamic-structure":{"commit":7,"status":"OK"}}}},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vcenter.vm.power_on","default_message":"Power on vm-42","args":["vm-42"],"params":{"OPTIONAL":[{"STRUCTURE":{"map-entry":{"key":"vm","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":"vm-42"},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":null},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}},{"STRUCTURE":{"map-entry":{"key":"n","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":null},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":3},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}}]},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"power_on","parent":{"OPTIONAL":null},"target":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}},"status":"SUCCEEDED","cancelable":false,"error":{"OPTIONAL":null},"start_time":{"OPTIONAL":"2026-01-15T09:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T09:00:05.250Z"},"user":{"OPTIONAL":"VSPHERE.LOCAL\\Administrator"}}}}}}"#,
    },
    Captured {
        service: "com.vmware.cis.tasks",
        operation: "get",
        opid: "4f93174f-b585-4374-8803-2fde57cbfafe",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.tasks","operationId":"get","input":{"STRUCTURE":{"operation-input":{"task":"52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm","spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.get_spec":{"return_all":{"OPTIONAL":null},"exclude_result":{"OPTIONAL":true}}}}}}}},"ctx":{"appCtx":{"opId":"4f93174f-b585-4374-8803-2fde57cbfafe"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"2"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"2","result":{"output":{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":100,"completed":100,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"done","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":{"STRUCTURE":{"dynamic-structure":{"commit":7,"status":"OK"}}}},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vcenter.vm.power_on","default_message":"Power on vm-42","args":["vm-42"],"params":{"OPTIONAL":[{"STRUCTURE":{"map-entry":{"key":"vm","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":"vm-42"},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":null},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}},{"STRUCTURE":{"map-entry":{"key":"n","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":null},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":3},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}}]},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"power_on","parent":{"OPTIONAL":null},"target":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}},"status":"SUCCEEDED","cancelable":false,"error":{"OPTIONAL":null},"start_time":{"OPTIONAL":"2026-01-15T09:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T09:00:05.250Z"},"user":{"OPTIONAL":"VSPHERE.LOCAL\\Administrator"}}}}}}"#,
    },
    Captured {
        service: "com.vmware.cis.tasks",
        operation: "get",
        opid: "86640a47-d71d-452e-bae8-4d645c45ce29",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.tasks","operationId":"get","input":{"STRUCTURE":{"operation-input":{"task":"no-such-task:com.vmware.vcenter.vm","spec":{"OPTIONAL":null}}}},"ctx":{"appCtx":{"opId":"86640a47-d71d-452e-bae8-4d645c45ce29"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"3"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"3","result":{"error":{"ERROR":{"com.vmware.vapi.std.errors.not_found":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"rec.not_found","default_message":"The task was not found.","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"NOT_FOUND"}}}}}}"#,
    },
    Captured {
        service: "com.vmware.cis.tasks",
        operation: "list",
        opid: "6be8adb3-b4ec-46d1-9b18-34ae430df5f2",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.tasks","operationId":"list","input":{"STRUCTURE":{"operation-input":{"filter_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.filter_spec":{"tasks":{"OPTIONAL":null},"services":{"OPTIONAL":["com.vmware.vcenter.vm"]},"operations":{"OPTIONAL":null},"status":{"OPTIONAL":null},"targets":{"OPTIONAL":null},"users":{"OPTIONAL":null}}}}},"result_spec":{"OPTIONAL":null}}}},"ctx":{"appCtx":{"opId":"6be8adb3-b4ec-46d1-9b18-34ae430df5f2"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"4"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"4","result":{"error":{"ERROR":{"com.vmware.vapi.std.errors.service_unavailable":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"rec.service_unavailable","default_message":"forced service_unavailable","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"SERVICE_UNAVAILABLE"}}}}}}"#,
    },
    Captured {
        service: "com.vmware.cis.session",
        operation: "get",
        opid: "1c42dede-fbd5-4f88-b48c-855b50bd6576",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"get","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"1c42dede-fbd5-4f88-b48c-855b50bd6576"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"5"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"5","result":{"output":{"STRUCTURE":{"com.vmware.cis.session.info":{"user":"VSPHERE.LOCAL\\Administrator","created_time":"2026-01-15T09:00:00.000Z","last_accessed_time":"2026-01-15T09:05:00.123Z"}}}}}"#,
    },
    Captured {
        service: "com.vmware.cis.session",
        operation: "delete",
        opid: "699052d6-059b-47b3-bfae-7a531fc9dfdd",
        request: r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"delete","input":{"STRUCTURE":{"operation-input":{}}},"ctx":{"appCtx":{"opId":"699052d6-059b-47b3-bfae-7a531fc9dfdd"},"securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":"9a1ee7f63c2d4c1f8e6d8d3b1c0ffee1"}}},"id":"6"}"#,
        answer: r#"{"jsonrpc":"2.0","id":"6","result":{"output":null}}"#,
    },
];

/// Sends a captured call as the SDK sent it: its body (after `subst`, the
/// replacements that point it at this simulator's session and tasks) and its
/// headers.
async fn replay(c: &Http, cap: &Captured, subst: &[(&str, &str)]) -> Resp {
    let mut body = cap.request.to_owned();
    for (from, to) in subst {
        assert!(body.contains(from), "{from} is not in the captured call");
        body = body.replace(from, to);
    }
    let headers = [
        (
            "user-agent",
            "SDK/9.1.1.0 vAPI/9.1.1.0 Python/3.11.7 (Linux; 6.18.44-fc-v1045; x86_64)",
        ),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("vapi-service", cap.service),
        ("vapi-operation", cap.operation),
        ("vapi-ctx-opid", cap.opid),
    ];
    c.call(Method::POST, "/api", &headers, Some(body.as_bytes()))
        .await
}

// ---------------------------------------------------------------------------------
// JSON with its member order (serde_json's Value sorts members)
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<J, E> {
                Ok(J::Num(n.to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(J::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, J>()? {
                    members.push((k, v));
                }
                Ok(J::Obj(members))
            }
        }
        d.deserialize_any(V)
    }
}

fn ordered(text: &str) -> J {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl J {
    fn get(&self, name: &str) -> &J {
        match self {
            J::Obj(members) => members
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no member {name} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    fn keys(&self) -> Vec<&str> {
        match self {
            J::Obj(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => panic!("not an object: {self:?}"),
        }
    }
}

/// Asserts that `a` has the shape of the captured `t`: the same members in the same
/// order, the same type tags and structure names, the same kinds of scalars. An
/// optional may be set in one and unset in the other; the opaque `result` of an Info
/// is only checked to be an optional; every element of an array is held against
/// every element of the captured one.
fn same_shape(a: &J, t: &J, at: &str) {
    match (a, t) {
        (J::Obj(am), J::Obj(tm)) => {
            if let ([(ak, av)], [(tk, tv)]) = (&am[..], &tm[..]) {
                if ak == "OPTIONAL" && tk == "OPTIONAL" {
                    if at.ends_with("com.vmware.cis.task.info.result")
                        || *av == J::Null
                        || *tv == J::Null
                    {
                        return;
                    }
                    return same_shape(av, tv, &format!("{at}?"));
                }
            }
            assert_eq!(a.keys(), t.keys(), "{at}: members");
            for ((k, av), (_, tv)) in am.iter().zip(tm) {
                same_shape(av, tv, &format!("{at}.{k}"));
            }
        }
        (J::Arr(ai), J::Arr(ti)) => {
            for (i, x) in ai.iter().enumerate() {
                for y in ti {
                    same_shape(x, y, &format!("{at}[{i}]"));
                }
            }
        }
        (J::Str(_), J::Str(_))
        | (J::Num(_), J::Num(_))
        | (J::Bool(_), J::Bool(_))
        | (J::Null, J::Null) => {}
        _ => panic!("{at}: {a:?} where the capture has {t:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Calls and answers
// ---------------------------------------------------------------------------------

const TASKS: &str = "com.vmware.cis.tasks";
const SESSIONS: &str = "com.vmware.cis.session";

/// A call's body with the raw JSON id `id`, as the SDK writes it.
fn call_body(service: &str, operation: &str, input: &Value, security: &Value, id: &str) -> String {
    let params = json!({"serviceId": service, "operationId": operation, "input": input,
        "ctx": {"appCtx": {"opId": "sim-jsonrpc-test"}, "securityCtx": security}});
    format!(r#"{{"jsonrpc":"2.0","method":"invoke","params":{params},"id":{id}}}"#)
}

/// `POST /api` with `body` and `extra` headers.
async fn post(c: &Http, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    c.call(Method::POST, "/api", &headers, Some(body.as_bytes()))
        .await
}

/// A call with string id `"1"` in session `sid`.
async fn invoke(c: &Http, service: &str, operation: &str, input: Value, sid: &str) -> Resp {
    let body = call_body(
        service,
        operation,
        &input,
        &Http::rpc_session(sid),
        r#""1""#,
    );
    post(c, &body, &[]).await
}

fn user_pass(user: &str, password: &str) -> Value {
    json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": user, "password": password})
}

/// Asserts the envelope every answer has: HTTP 200, JSON, `jsonrpc`, the raw `id`
/// echoed byte for byte, then `member` (`result` or `error`), in that order.
fn envelope(r: &Resp, id: &str, member: &str) -> J {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"{member}":"#);
    let text = r.text();
    assert!(text.starts_with(&head), "expected {head}…, got {text}");
    let j = ordered(&text);
    assert_eq!(j.keys(), ["jsonrpc", "id", member], "{text}");
    j.get(member).clone()
}

/// The output of a successful answer to the call with raw id `id`.
fn output(r: &Resp, id: &str) -> Value {
    let result = envelope(r, id, "result");
    assert_eq!(result.keys(), ["output"], "{}", r.text());
    r.json()["result"]["output"].clone()
}

/// The vAPI error `name` answered to the call with raw id `id`, checked field by
/// field; returns its message.
fn vapi_error(r: &Resp, id: &str, name: &str) -> String {
    let result = envelope(r, id, "result");
    assert_eq!(result.keys(), ["error"], "{}", r.text());
    let e = result.get("error").get("ERROR");
    let full = format!("com.vmware.vapi.std.errors.{name}");
    assert_eq!(e.keys(), [full.as_str()], "{}", r.text());
    let fields = e.get(&full);
    assert_eq!(fields.keys(), ["messages", "data", "error_type"]);
    let v = r.json()["result"]["error"]["ERROR"][&full].clone();
    assert_eq!(v["data"], json!({"OPTIONAL": null}));
    assert_eq!(v["error_type"], json!({"OPTIONAL": name.to_uppercase()}));
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    check_message(&messages[0], "error.messages[0]");
    messages[0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"]["default_message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A top-level JSON-RPC error with `code`, answered with raw id `id`; its message.
fn protocol_error(r: &Resp, id: &str, code: i64) -> String {
    let error = envelope(r, id, "error");
    assert_eq!(error.keys(), ["code", "message"]);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

/// A log-in through JSON-RPC; the session id.
async fn rpc_login(c: &Http, user: &str, password: &str) -> String {
    let body = call_body(
        SESSIONS,
        "create",
        &typed::empty_input(),
        &user_pass(user, password),
        r#""0""#,
    );
    let out = output(&post(c, &body, &[]).await, r#""0""#);
    assert_eq!(out.as_object().unwrap().len(), 1, "{out}");
    out["SECRET"].as_str().unwrap().to_owned()
}

/// The task ids and typed Infos of a List Tasks output, in its order.
fn entries(output: &Value) -> Vec<(String, Value)> {
    output
        .as_array()
        .unwrap_or_else(|| panic!("not a map-entry array: {output}"))
        .iter()
        .map(|e| {
            let obj = e.as_object().unwrap();
            assert_eq!(obj.len(), 1);
            let entry = e["STRUCTURE"]["map-entry"].as_object().unwrap();
            assert_eq!(entry.len(), 2, "{e}");
            (
                entry["key"].as_str().unwrap().to_owned(),
                entry["value"].clone(),
            )
        })
        .collect()
}

/// Task ids of an `/api` List Tasks body, in the order written.
fn api_ids(body: &str) -> Vec<String> {
    ordered(body)
        .keys()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------
// Typed values read back (the test's own untyper) and the SDK's rules
// ---------------------------------------------------------------------------------

fn is_map_entry(v: &Value) -> bool {
    v.get("STRUCTURE")
        .and_then(|s| s.get("map-entry"))
        .is_some()
}

/// The one member of a tagged object.
fn tagged(v: &Value) -> (&str, &Value) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not a typed value: {v}"));
    assert_eq!(o.len(), 1, "a tag has one member: {v}");
    let (k, inner) = o.iter().next().unwrap();
    (k.as_str(), inner)
}

/// A typed value as `/api` JSON; `None` for an unset optional. Map-entry arrays
/// become objects, structures and errors their fields.
fn untype(v: &Value) -> Option<Value> {
    match v {
        Value::Object(_) => {
            let (tag, inner) = tagged(v);
            match tag {
                "OPTIONAL" if inner.is_null() => None,
                "OPTIONAL" => untype(inner),
                "SECRET" => Some(inner.clone()),
                "STRUCTURE" | "ERROR" => {
                    let (_, fields) = tagged(inner);
                    let fields = fields.as_object().unwrap();
                    Some(Value::Object(
                        fields
                            .iter()
                            .filter_map(|(k, f)| untype(f).map(|u| (k.clone(), u)))
                            .collect(),
                    ))
                }
                other => panic!("unknown tag {other}: {v}"),
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(is_map_entry) => {
            let mut out = Map::new();
            for e in items {
                let entry = &e["STRUCTURE"]["map-entry"];
                let key = entry["key"].as_str().unwrap().to_owned();
                assert!(
                    out.insert(key, untype(&entry["value"]).unwrap()).is_none(),
                    "duplicate key"
                );
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items.iter().map(|i| untype(i).unwrap()).collect(),
        )),
        plain => Some(plain.clone()),
    }
}

/// The fields of `{"STRUCTURE":{name:{..}}}`, checking the name.
fn structure<'v>(v: &'v Value, name: &str, at: &str) -> &'v Map<String, Value> {
    let (tag, inner) = tagged(v);
    assert_eq!(tag, "STRUCTURE", "{at}: {v}");
    let (n, fields) = tagged(inner);
    assert_eq!(n, name, "{at}");
    fields.as_object().unwrap()
}

/// An optional's value, `None` when unset; panics unless `v` is `{"OPTIONAL":..}`
/// (the SDK refuses a bare value where an optional is declared).
fn optional<'v>(v: &'v Value, at: &str) -> Option<&'v Value> {
    let (tag, inner) = tagged(v);
    assert_eq!(tag, "OPTIONAL", "{at}: {v}");
    (!inner.is_null()).then_some(inner)
}

/// `YYYY-MM-DDThh:mm:ss.sssZ`, the runtime's own format.
fn check_time(v: &Value, at: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{at}: {v}"));
    let shape: String = s
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.dddZ", "{at}: {s}");
}

/// A `com.vmware.vapi.std.localizable_message`, every field as declared.
fn check_message(v: &Value, at: &str) {
    let m = structure(v, "com.vmware.vapi.std.localizable_message", at);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    let mut expected = vec!["args", "default_message", "id", "localized", "params"];
    expected.sort();
    assert_eq!(keys, expected, "{at}");
    assert!(m["id"].is_string() && m["default_message"].is_string());
    assert!(m["args"].as_array().unwrap().iter().all(Value::is_string));
    assert!(optional(&m["localized"], at).is_none());
    if let Some(params) = optional(&m["params"], &format!("{at}.params")) {
        let params = params.as_array().unwrap();
        assert!(!params.is_empty(), "{at}: an empty map is unset");
        for p in params {
            let entry = structure(p, "map-entry", at);
            assert!(entry["key"].is_string());
            let lp = structure(
                &entry["value"],
                "com.vmware.vapi.std.localization_param",
                at,
            );
            let names: Vec<&str> = lp.keys().map(String::as_str).collect();
            let mut all = vec!["d", "dt", "format", "i", "l", "precision", "s"];
            all.sort();
            assert_eq!(names, all, "{at}");
            let set: Vec<&str> = lp
                .iter()
                .filter(|(k, f)| optional(f, &format!("{at}.{k}")).is_some())
                .map(|(k, _)| k.as_str())
                .collect();
            assert_eq!(set.len(), 1, "{at}: one value per param: {set:?}");
            if set[0] == "dt" {
                check_time(optional(&lp["dt"], at).unwrap(), at);
            }
        }
    }
}

/// Checks one typed `com.vmware.cis.task.info` as the SDK's converter would:
/// required fields bare, every optional wrapped, each field's type, and the
/// per-status table (`JSONRPC-NOTES.md` §6). Returns the status.
fn check_info(v: &Value, at: &str) -> String {
    let f = structure(v, "com.vmware.cis.task.info", at);
    assert_eq!(f.len(), 13, "{at}: every field present: {v}");
    check_message(&f["description"], &format!("{at}.description"));
    assert!(
        f["service"].is_string() && f["operation"].is_string(),
        "{at}"
    );
    assert!(f["cancelable"].is_boolean(), "{at}");
    let status = f["status"]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: status"));
    let set = |name: &str| optional(&f[name], &format!("{at}.{name}"));
    if let Some(p) = set("progress") {
        let p = structure(p, "com.vmware.cis.task.progress", at);
        assert_eq!(p.len(), 3);
        let (total, completed) = (
            p["total"].as_i64().unwrap(),
            p["completed"].as_i64().unwrap(),
        );
        assert!(
            0 <= completed && completed <= total,
            "{at}: {completed}/{total}"
        );
        check_message(&p["message"], &format!("{at}.progress.message"));
    }
    if let Some(r) = set("result") {
        assert!(untype(r).is_some(), "{at}: result");
    }
    if let Some(p) = set("parent") {
        assert!(p.is_string());
    }
    if let Some(t) = set("target") {
        let t = structure(t, "com.vmware.vapi.std.dynamic_ID", at);
        assert_eq!(t.len(), 2);
        assert!(t["type"].is_string() && t["id"].is_string());
    }
    if let Some(e) = set("error") {
        let (tag, inner) = tagged(e);
        assert_eq!(tag, "ERROR", "{at}");
        let (name, fields) = tagged(inner);
        assert!(name.starts_with("com.vmware.vapi.std.errors."), "{at}");
        for m in fields["messages"].as_array().unwrap() {
            check_message(m, &format!("{at}.error"));
        }
        assert!(optional(&fields["data"], at).is_none());
        assert!(optional(&fields["error_type"], at).is_some());
    }
    for t in ["start_time", "end_time"] {
        if let Some(v) = set(t) {
            check_time(v, &format!("{at}.{t}"));
        }
    }
    if let Some(u) = set("user") {
        assert!(u.is_string());
    }
    let has = |name: &str| set(name).is_some();
    let rule = match status {
        "PENDING" => ["progress", "result", "error", "start_time", "end_time"]
            .iter()
            .all(|f| !has(f)),
        "RUNNING" | "BLOCKED" => {
            has("progress") && has("start_time") && !has("error") && !has("end_time")
        }
        "SUCCEEDED" => has("progress") && has("start_time") && has("end_time") && !has("error"),
        "FAILED" => has("progress") && has("start_time") && has("end_time"),
        other => panic!("{at}: status {other}"),
    };
    assert!(rule, "{at}: {status} breaks the SDK's field rules: {v}");
    status.to_owned()
}

/// Every service the simulator has tasks for, as an `/api` filter.
fn every_service() -> Value {
    json!({"filter_spec": {"services": sim::service_ids()}})
}

fn static_sim(tasks: usize, seed: u64) -> SimConfig {
    SimConfig {
        limits: vcproxy::protocol::filter::Limits {
            max_query_bytes: 1 << 20,
            max_body_bytes: 1 << 20,
        },
        ..sim_config(tasks, seed)
    }
}

/// A task of `sim` whose `/api` Info satisfies `pred`: its id and Info.
async fn find_task(c: &Http, pred: impl Fn(&Value) -> bool) -> (String, Value) {
    c.all_tasks()
        .await
        .into_iter()
        .find(|(_, t)| pred(t))
        .expect("a matching task")
}

// ---------------------------------------------------------------------------------
// 1. The SDK's own calls
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_sdks_captured_calls_get_answers_of_the_captured_shape() {
    let sim = start_sim(static_sim(300, 5)).await;
    let c = Http::for_sim(&sim);
    let [login, list, get, get_excluding, get_unknown, list_services, who, logout] = &CAPTURED;

    // Log-in, byte for byte: the capture's credentials are the simulator's admin.
    let r = replay(&c, login, &[]).await;
    let out = output(&r, r#""0""#);
    same_shape(&ordered(&r.text()), &ordered(login.answer), "login");
    let sid = out["SECRET"].as_str().unwrap().to_owned();
    assert_eq!(sid.len(), CAPTURED_SESSION.len());
    let session = (CAPTURED_SESSION, sid.as_str());

    // List Tasks, the captured filter pointed at a failed task of this simulator:
    // its service, its target.
    let (failed_id, failed) =
        find_task(&c, |t| t["status"] == "FAILED" && t.get("target").is_some()).await;
    let service = failed["service"].as_str().unwrap();
    let (ty, target) = (
        failed["target"]["type"].as_str().unwrap(),
        failed["target"]["id"].as_str().unwrap(),
    );
    let (service, ty, target) = (
        format!("\"{service}\""),
        format!("\"{ty}\""),
        format!("\"{target}\""),
    );
    let subst = [
        session,
        ("\"com.vmware.vcenter.vm\"", service.as_str()),
        ("\"VirtualMachine\"", ty.as_str()),
        ("\"vm-42\"", target.as_str()),
    ];
    let r = replay(&c, list, &subst).await;
    let out = output(&r, r#""0""#);
    let found = entries(&out);
    assert!(found.iter().any(|(id, _)| *id == failed_id), "{}", r.text());
    for (id, info) in &found {
        assert_eq!(check_info(info, id), "FAILED");
    }
    same_shape(&ordered(&r.text()), &ordered(list.answer), "list");

    // The services-only list: every task of the service, succeeded ones with a
    // result among them.
    let r = replay(&c, list_services, &subst[..2]).await;
    let out = output(&r, r#""4""#);
    let statuses: BTreeSet<String> = entries(&out)
        .iter()
        .map(|(id, info)| check_info(info, id))
        .collect();
    assert!(
        statuses.contains("SUCCEEDED") && statuses.len() >= 3,
        "{statuses:?}"
    );
    same_shape(&ordered(&r.text()), &ordered(list.answer), "list");
    // What the capture recorded for it: a vCenter whose task service is down.
    sim.set_faults(Faults {
        error_rate: 1.0,
        endpoints: vec![Endpoint::TasksList],
        ..Faults::default()
    })
    .unwrap();
    let r = replay(&c, list_services, &subst[..2]).await;
    vapi_error(&r, r#""4""#, "service_unavailable");
    same_shape(
        &ordered(&r.text()),
        &ordered(list_services.answer),
        "unavailable",
    );
    sim.set_faults(Faults::default()).unwrap();

    // Get Task, plain and without its result, for a succeeded task.
    let (ok_id, _) = find_task(&c, |t| t["status"] == "SUCCEEDED").await;
    let task = (CAPTURED_TASK, ok_id.as_str());
    let r = replay(&c, get, &[session, task]).await;
    let out = output(&r, r#""1""#);
    assert_eq!(check_info(&out, &ok_id), "SUCCEEDED");
    assert!(optional(&out["STRUCTURE"]["com.vmware.cis.task.info"]["result"], "r").is_some());
    same_shape(&ordered(&r.text()), &ordered(get.answer), "get");
    let r = replay(&c, get_excluding, &[session, task]).await;
    let out = output(&r, r#""2""#);
    assert_eq!(
        out["STRUCTURE"]["com.vmware.cis.task.info"]["result"],
        json!({"OPTIONAL": null})
    );
    same_shape(&ordered(&r.text()), &ordered(get_excluding.answer), "get");

    // An unknown task: not_found.
    let r = replay(&c, get_unknown, &[session]).await;
    vapi_error(&r, r#""3""#, "not_found");
    same_shape(
        &ordered(&r.text()),
        &ordered(get_unknown.answer),
        "not_found",
    );

    // Who am I: all three fields.
    let r = replay(&c, who, &[session]).await;
    let out = output(&r, r#""5""#);
    same_shape(&ordered(&r.text()), &ordered(who.answer), "who");
    let info = structure(&out, "com.vmware.cis.session.info", "who");
    assert_eq!(info["user"], ADMIN.0);
    check_time(&info["created_time"], "created_time");
    check_time(&info["last_accessed_time"], "last_accessed_time");

    // Log-out: the captured answer byte for byte; the session is gone.
    let r = replay(&c, logout, &[session]).await;
    assert_eq!(r.text(), logout.answer);
    let r = replay(&c, who, &[session]).await;
    vapi_error(&r, r#""5""#, "unauthenticated");
    let r = replay(&c, logout, &[session]).await;
    vapi_error(&r, r#""6""#, "unauthenticated");
    sim.shutdown().await;
}

#[tokio::test]
async fn ids_are_echoed_as_the_same_json_value() {
    let sim = start_sim(sim_config(20, 1)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let security = Http::rpc_session(&sid);
    for id in [
        r#""0""#,
        "7",
        r#""7""#,
        "-3",
        "1.5e3",
        r#""a \"quoted\" id""#,
        r#""\u00e9""#,
    ] {
        // Success, vAPI error, protocol error: the id comes back as written.
        let body = call_body(SESSIONS, "get", &typed::empty_input(), &security, id);
        output(&post(&c, &body, &[]).await, id);
        let body = call_body(TASKS, "cancel", &typed::empty_input(), &security, id);
        vapi_error(&post(&c, &body, &[]).await, id, "operation_not_found");
        let body = format!(r#"{{"jsonrpc":"2.0","method":"list","params":{{}},"id":{id}}}"#);
        protocol_error(&post(&c, &body, &[]).await, id, -32601);
    }
    // The numeric id 7 is not the string "7".
    let body = call_body(SESSIONS, "get", &typed::empty_input(), &security, "7");
    let r = post(&c, &body, &[]).await;
    assert!(r
        .text()
        .starts_with(r#"{"jsonrpc":"2.0","id":7,"result":{"output":{"STRUCTURE""#));
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 2. Sessions
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_are_one_store_for_all_three_protocols() {
    let sim = start_sim(sim_config(50, 2)).await;
    let c = Http::for_sim(&sim);
    let filter = every_service();

    // An /api session works in JSON-RPC, and a /rest one.
    for family in [Family::Api, Family::Rest] {
        let sid = c.session(family, ADMIN.0, ADMIN.1).await;
        let out = output(
            &invoke(&c, SESSIONS, "get", typed::empty_input(), &sid).await,
            r#""1""#,
        );
        let info = structure(&out, "com.vmware.cis.session.info", "who");
        assert_eq!(info.len(), 3);
        assert_eq!(info["user"], ADMIN.0);
        let r = c.rpc_list(&sid, &filter).await;
        assert_eq!(entries(&output(&r, r#""0""#)).len(), 50);
    }

    // A JSON-RPC session works in /api and /rest.
    let sid = rpc_login(&c, ADMIN.0, ADMIN.1).await;
    assert_eq!(sid.len(), 32);
    let r = c.api_list(&sid, &filter.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api_ids(&r.text()).len(), 50);
    let r = c
        .call(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=get",
            &[(SESSION, &sid)],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"]["user"], ADMIN.0);

    // Logged out in JSON-RPC: gone for /api too; logged out in /api: gone for
    // JSON-RPC.
    let r = invoke(&c, SESSIONS, "delete", typed::empty_input(), &sid).await;
    assert_eq!(
        r.text(),
        r#"{"jsonrpc":"2.0","id":"1","result":{"output":null}}"#
    );
    assert_eq!(c.get("/api/session", &sid).await.status, 401);
    let api = c.admin().await;
    c.try_logout(Family::Api, &api).await.unwrap();
    let r = invoke(&c, SESSIONS, "get", typed::empty_input(), &api).await;
    vapi_error(&r, r#""1""#, "unauthenticated");
    let st = sim.stats();
    assert_eq!(st.sessions_opened, 4);
    assert_eq!(st.sessions_open, 2);
    // Expiring every session ends JSON-RPC ones too.
    let sid = rpc_login(&c, ADMIN.0, ADMIN.1).await;
    sim.expire_sessions();
    let r = invoke(&c, SESSIONS, "get", typed::empty_input(), &sid).await;
    vapi_error(&r, r#""1""#, "unauthenticated");
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_log_ins_and_missing_sessions_are_unauthenticated_on_http_200() {
    let sim = start_sim(sim_config(20, 3)).await;
    let c = Http::for_sim(&sim);
    let create = |security: Value| {
        call_body(
            SESSIONS,
            "create",
            &typed::empty_input(),
            &security,
            r#""0""#,
        )
    };
    for security in [
        user_pass(ADMIN.0, "wrong"),
        user_pass("nobody@vsphere.local", ADMIN.1),
        user_pass(ADMIN.0, ""),
        json!({"schemeId": "com.vmware.vapi.std.security.saml_bearer_token", "token": "x"}),
        Http::rpc_session("0123456789abcdef0123456789abcdef"),
        json!({}),
    ] {
        let r = post(&c, &create(security.clone()), &[]).await;
        let m = vapi_error(&r, r#""0""#, "unauthenticated");
        assert_eq!(m, "Authentication required.", "{security}");
    }
    // No security context at all.
    let body = r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"com.vmware.cis.session","operationId":"create","input":{"STRUCTURE":{"operation-input":{}}}},"id":"0"}"#;
    vapi_error(&post(&c, body, &[]).await, r#""0""#, "unauthenticated");
    // The session header replaces the credentials, even good ones.
    let sid = c.admin().await;
    let r = post(&c, &create(user_pass(ADMIN.0, ADMIN.1)), &[(SESSION, &sid)]).await;
    vapi_error(&r, r#""0""#, "unauthenticated");
    assert_eq!(sim.stats().sessions_opened, 1);

    // Every session operation and both task operations want a session.
    let get = typed::get_input(&sim.task_ids()[0], None);
    let list = typed::list_input(&every_service());
    for (service, op, input) in [
        (SESSIONS, "get", typed::empty_input()),
        (SESSIONS, "delete", typed::empty_input()),
        (TASKS, "list", list),
        (TASKS, "get", get),
    ] {
        for security in [
            Http::rpc_session("0123456789abcdef0123456789abcdef"),
            json!({}),
            user_pass(ADMIN.0, ADMIN.1),
        ] {
            let body = call_body(service, op, &input, &security, r#""9""#);
            vapi_error(&post(&c, &body, &[]).await, r#""9""#, "unauthenticated");
        }
    }
    // The session is checked before the input.
    let body = call_body(TASKS, "list", &json!({"bogus": 1}), &json!({}), r#""9""#);
    vapi_error(&post(&c, &body, &[]).await, r#""9""#, "unauthenticated");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_session_header_overrides_the_body() {
    let sim = start_sim(sim_config(200, 4)).await;
    let c = Http::for_sim(&sim);
    let admin = rpc_login(&c, ADMIN.0, ADMIN.1).await;
    let operator = rpc_login(&c, OPERATOR.0, OPERATOR.1).await;
    let list = typed::list_input(&every_service());
    let ids = |r: &Resp| -> Vec<String> {
        entries(&output(r, r#""2""#))
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    let call = |sid: &str| call_body(TASKS, "list", &list, &Http::rpc_session(sid), r#""2""#);

    let everything = ids(&post(&c, &call(&admin), &[]).await);
    let visible = ids(&post(&c, &call(&operator), &[]).await);
    assert_eq!(everything.len(), 200);
    assert!(!visible.is_empty() && visible.len() < 200);

    // A bogus session in the body, the operator's in the header: the operator's view.
    let r = post(&c, &call("bogus"), &[(SESSION, &operator)]).await;
    assert_eq!(ids(&r), visible);
    // The admin's in the body, the operator's in the header: still the operator's.
    let r = post(&c, &call(&admin), &[(SESSION, &operator)]).await;
    assert_eq!(ids(&r), visible);
    // The admin's in the body, a dead one in the header: refused.
    let r = post(
        &c,
        &call(&admin),
        &[(SESSION, "0123456789abcdef0123456789abcdef")],
    )
    .await;
    vapi_error(&r, r#""2""#, "unauthenticated");
    // No security context at all, the session in the header (how a proxy may send it).
    let bare = format!(
        r#"{{"jsonrpc":"2.0","method":"invoke","params":{{"serviceId":"{TASKS}","operationId":"list","input":{list}}},"id":"2"}}"#
    );
    assert_eq!(
        ids(&post(&c, &bare, &[(SESSION, &admin)]).await),
        everything
    );
    // Log-out by header logs out the header's session.
    let body = call_body(
        SESSIONS,
        "delete",
        &typed::empty_input(),
        &Http::rpc_session(&admin),
        r#""2""#,
    );
    output(&post(&c, &body, &[(SESSION, &operator)]).await, r#""2""#);
    vapi_error(
        &post(&c, &call(&operator), &[]).await,
        r#""2""#,
        "unauthenticated",
    );
    assert_eq!(ids(&post(&c, &call(&admin), &[]).await), everything);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 3. List Tasks
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn json_rpc_and_api_answer_the_same_filter_with_the_same_tasks() {
    let sim = start_sim(static_sim(400, 6)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let all = c.all_tasks().await;
    let services = sim::service_ids();
    let (with_target, t) = all.iter().find(|(_, t)| t.get("target").is_some()).unwrap();
    let user = all.values().find_map(|t| t["user"].as_str()).unwrap();
    let some_ids: Vec<&String> = all.keys().step_by(7).collect();
    let filters = [
        every_service(),
        json!({"filter_spec": {"services": [services[0], services[3]], "status": ["SUCCEEDED", "FAILED"]}}),
        json!({"filter_spec": {"services": services, "status": ["RUNNING", "BLOCKED", "PENDING"]},
               "result_spec": {"return_all": true}}),
        json!({"filter_spec": {"tasks": some_ids}}),
        json!({"filter_spec": {"tasks": [with_target], "targets": [t["target"]]}}),
        json!({"filter_spec": {"services": services, "users": [user], "operations": ["apply", "scan"]}}),
        json!({"filter_spec": {"services": services}, "result_spec": {"exclude_result": true}}),
        json!({"filter_spec": {"services": ["com.vmware.nothing"]}}),
    ];
    let mut compared = 0;
    for filter in &filters {
        let api = c.api_list(&sid, &filter.to_string()).await;
        assert_eq!(api.status, 200, "{filter}: {}", api.text());
        let api_map = api.json();
        let rpc = c.rpc_list(&sid, filter).await;
        let found = entries(&output(&rpc, r#""0""#));
        // The same tasks in the same order.
        let rpc_ids: Vec<String> = found.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(rpc_ids, api_ids(&api.text()), "{filter}");
        let exclude = filter["result_spec"]["exclude_result"] == true;
        for (id, info) in &found {
            check_info(info, id);
            // Read back, the typed Info is the /api Info, field by field.
            let plain = untype(info).unwrap();
            assert_eq!(&plain, &api_map[id], "{id}");
            let typed_result = &info["STRUCTURE"]["com.vmware.cis.task.info"]["result"];
            if exclude {
                assert_eq!(typed_result, &json!({"OPTIONAL": null}));
            }
            compared += 1;
        }
    }
    assert!(compared > 400, "{compared}");
    // Results are named structures with map entries inside (both map levels).
    let out = output(&c.rpc_list(&sid, &every_service()).await, r#""0""#);
    let (id, info) = entries(&out)
        .into_iter()
        .find(|(_, i)| i["STRUCTURE"]["com.vmware.cis.task.info"]["status"] == "SUCCEEDED")
        .unwrap();
    let result = optional(
        &info["STRUCTURE"]["com.vmware.cis.task.info"]["result"],
        &id,
    )
    .unwrap();
    let service = id.split_once(':').unwrap().1;
    let (name, fields) = tagged(tagged(result).1);
    assert!(
        name.starts_with(service) && name.ends_with("_result"),
        "{name}"
    );
    let details = fields["details"].as_array().unwrap();
    assert!(details.iter().all(is_map_entry));
    let item = &details[0]["STRUCTURE"]["map-entry"]["value"];
    let (item_name, item_fields) = tagged(tagged(item).1);
    assert!(item_name.ends_with("_status"), "{item_name}");
    assert!(item_fields["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(is_map_entry));
    sim.shutdown().await;
}

#[tokio::test]
async fn every_task_obeys_the_sdks_per_status_field_rules() {
    let sim = start_sim(static_sim(2500, 11)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    // Now, and as the tasks move on.
    for advance in [0, 20, 120, 600, 86_400] {
        sim.advance(Duration::from_secs(advance));
        for service in sim::service_ids() {
            let filter = json!({"filter_spec": {"services": [service]}});
            let out = output(&c.rpc_list(&sid, &filter).await, r#""0""#);
            for (id, info) in entries(&out) {
                seen.insert(check_info(&info, &id));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 2500);
    assert_eq!(seen.len(), 5, "{seen:?}");
    // Get Task answers obey them too.
    for id in sim.task_ids().iter().step_by(50) {
        let r = c
            .rpc(
                "com.vmware.cis.tasks",
                "get",
                typed::get_input(id, None),
                Http::rpc_session(&sid),
                "5",
            )
            .await;
        check_info(&output(&r, r#""5""#), id);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn list_errors_are_vapi_errors_on_http_200() {
    let services = sim::service_ids();
    let sim = start_sim(SimConfig {
        tasks: 1500,
        ..static_sim(0, 7)
    })
    .await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let list = |input: Value| call_body(TASKS, "list", &input, &Http::rpc_session(&sid), r#""3""#);

    // Tasks.list() with no arguments, and with empty sets: tasks or services needed.
    let none = json!({"STRUCTURE": {"operation-input": {"filter_spec": {"OPTIONAL": null}, "result_spec": {"OPTIONAL": null}}}});
    let m = vapi_error(
        &post(&c, &list(none), &[]).await,
        r#""3""#,
        "invalid_argument",
    );
    assert!(
        m.contains("filter_spec.tasks") && m.contains("filter_spec.services"),
        "{m}"
    );
    let empty = typed::list_input(
        &json!({"filter_spec": {"tasks": [], "services": [], "status": ["FAILED"]}}),
    );
    vapi_error(
        &post(&c, &list(empty), &[]).await,
        r#""3""#,
        "invalid_argument",
    );

    // Over 1000 visible matches, but not for a user who sees fewer.
    let m = vapi_error(
        &c.rpc_list(&sid, &every_service()).await,
        r#""0""#,
        "resource_inaccessible",
    );
    assert!(m.contains("1000"), "{m}");
    let operator = c.session(Family::Api, OPERATOR.0, OPERATOR.1).await;
    let out = output(&c.rpc_list(&operator, &every_service()).await, r#""0""#);
    let n = entries(&out).len();
    assert!(n > 0 && n < 1000, "{n}");
    // Exactly 1000 named tasks is allowed.
    let ids: Vec<String> = sim.task_ids().into_iter().take(1000).collect();
    let out = output(
        &c.rpc_list(&sid, &json!({"filter_spec": {"tasks": ids}}))
            .await,
        r#""0""#,
    );
    assert_eq!(entries(&out).len(), 1000);

    // Bad values and unknown parameters are named.
    let bad_status =
        typed::list_input(&json!({"filter_spec": {"services": [services[0]], "status": ["DONE"]}}));
    let m = vapi_error(
        &post(&c, &list(bad_status), &[]).await,
        r#""3""#,
        "invalid_argument",
    );
    assert!(m.contains("filter_spec.status"), "{m}");
    let mut extra = typed::list_input(&every_service());
    extra["STRUCTURE"]["operation-input"]["colour"] = json!("red");
    let m = vapi_error(
        &post(&c, &list(extra), &[]).await,
        r#""3""#,
        "invalid_argument",
    );
    assert!(m.contains("colour"), "{m}");
    let untyped =
        json!({"STRUCTURE": {"operation-input": {"filter_spec": {"services": [services[0]]}}}});
    let m = vapi_error(
        &post(&c, &list(untyped), &[]).await,
        r#""3""#,
        "invalid_argument",
    );
    assert!(m.contains("filter_spec"), "{m}");
    let not_input = json!({"filter_spec": {"OPTIONAL": null}});
    vapi_error(
        &post(&c, &list(not_input), &[]).await,
        r#""3""#,
        "invalid_argument",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn memoized_answers_keep_protocols_and_ids_apart() {
    let sim = start_sim(static_sim(100, 8)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let filter = every_service();
    let api1 = c.api_list(&sid, &filter.to_string()).await;
    let input = typed::list_input(&filter);
    let call = |id: &str| call_body(TASKS, "list", &input, &Http::rpc_session(&sid), id);
    let a = post(&c, &call(r#""a""#), &[]).await;
    let b = post(&c, &call("2"), &[]).await;
    let api2 = c.api_list(&sid, &filter.to_string()).await;
    assert_eq!(api1.body, api2.body);
    assert!(api1.text().starts_with('{'));
    let (oa, ob) = (output(&a, r#""a""#), output(&b, "2"));
    assert_eq!(oa, ob);
    assert_eq!(entries(&oa).len(), 100);
    assert_eq!(
        &a.text()[r#"{"jsonrpc":"2.0","id":"a","#.len()..],
        &b.text()[r#"{"jsonrpc":"2.0","id":2,"#.len()..]
    );
    // The memo holds one instant: after an advance, answers are new.
    sim.advance(Duration::from_secs(60));
    let later = output(&post(&c, &call(r#""a""#), &[]).await, r#""a""#);
    assert_ne!(later, oa);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 4. Get Task
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn get_task_in_json_rpc_and_its_errors() {
    let sim = start_sim(static_sim(100, 9)).await;
    let c = Http::for_sim(&sim);
    let admin = c.admin().await;
    let operator = c.session(Family::Api, OPERATOR.0, OPERATOR.1).await;
    let all = c.all_tasks().await;
    let get = |sid: &str, input: Value| {
        call_body(TASKS, "get", &input, &Http::rpc_session(sid), r#""4""#)
    };
    for (id, info) in &all {
        let out = output(
            &post(&c, &get(&admin, typed::get_input(id, None)), &[]).await,
            r#""4""#,
        );
        check_info(&out, id);
        assert_eq!(&untype(&out).unwrap(), info, "{id}");
    }
    // Unknown, and invisible to the caller: not_found.
    let r = post(
        &c,
        &get(
            &admin,
            typed::get_input("no-such-task:com.vmware.vcenter.vm", None),
        ),
        &[],
    )
    .await;
    let m = vapi_error(&r, r#""4""#, "not_found");
    assert!(m.contains("no-such-task"), "{m}");
    let visible: BTreeSet<&str> = sim::service_ids().into_iter().take(2).collect();
    let hidden = all
        .keys()
        .find(|id| !visible.contains(id.split_once(':').unwrap().1))
        .unwrap();
    let r = post(&c, &get(&operator, typed::get_input(hidden, None)), &[]).await;
    vapi_error(&r, r#""4""#, "not_found");
    // Bad input names the parameter.
    let no_task = json!({"STRUCTURE": {"operation-input": {"spec": {"OPTIONAL": null}}}});
    let m = vapi_error(
        &post(&c, &get(&admin, no_task), &[]).await,
        r#""4""#,
        "invalid_argument",
    );
    assert!(m.contains("task"), "{m}");
    let mut extra = typed::get_input(hidden, None);
    extra["STRUCTURE"]["operation-input"]["colour"] = json!("red");
    let m = vapi_error(
        &post(&c, &get(&admin, extra), &[]).await,
        r#""4""#,
        "invalid_argument",
    );
    assert!(m.contains("colour"), "{m}");
    sim.shutdown().await;
}

#[tokio::test]
async fn get_task_honours_exclude_result_in_every_protocol() {
    let sim = start_sim(static_sim(60, 10)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let (id, info) = find_task(&c, |t| t.get("result").is_some()).await;
    let h = [(SESSION, sid.as_str())];
    let has_result = |v: &Value| v.get("result").is_some();

    // /rest: the spec in the query, or as a JSON body on the GET (no Content-Type,
    // as the SDK sends it); `{}` is no spec.
    let rest = |query: &'static str, body: Option<&'static [u8]>| {
        let c = c.clone();
        let path = format!("/rest/cis/tasks/{id}{query}");
        async move { c.call(Method::GET, &path, &h, body).await }
    };
    for (query, body, expected) in [
        ("", None, true),
        ("", Some(&b"{}"[..]), true),
        ("?spec.exclude_result=true", None, false),
        ("?spec.exclude_result=false", None, true),
        ("", Some(&br#"{"spec":{"exclude_result":true}}"#[..]), false),
        (
            "",
            Some(&br#"{"spec":{"exclude_result":false,"return_all":true}}"#[..]),
            true,
        ),
    ] {
        let r = rest(query, body).await;
        assert_eq!(r.status, 200, "{query} {}", r.text());
        let v = r.json()["value"].clone();
        assert_eq!(has_result(&v), expected, "{query} {body:?}");
        assert_eq!(v["status"], info["status"]);
    }
    for (query, body) in [
        ("?spec.exclude_results=true", None),
        ("?spec.exclude_result=maybe", None),
        ("?spec.exclude_result=true", Some(&b"{}"[..])),
        ("", Some(&br#"{"spec":{"exclude":true}}"#[..])),
        ("", Some(&b"[1]"[..])),
    ] {
        let r = rest(query, body).await;
        assert_eq!(r.status, 400, "{query} {body:?}");
        assert_eq!(
            r.json()["type"],
            "com.vmware.vapi.std.errors.invalid_argument"
        );
    }

    // /api: in the query.
    for (query, expected) in [
        ("", true),
        ("?exclude_result=true", false),
        ("?exclude_result=false&return_all=true", true),
    ] {
        let r = c.get(&format!("/api/cis/tasks/{id}{query}"), &sid).await;
        assert_eq!(r.status, 200, "{query}");
        assert_eq!(has_result(&r.json()), expected, "{query}");
        if expected {
            assert_eq!(r.json(), info);
        }
    }
    let r = c
        .get(
            &format!("/api/cis/tasks/{id}?spec.exclude_result=true"),
            &sid,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["messages"][0]["default_message"]
        .as_str()
        .unwrap()
        .contains("spec.exclude_result"));

    // JSON-RPC: the get spec.
    for (spec, expected) in [
        (None, true),
        (Some(json!({"exclude_result": true})), false),
        (Some(json!({"exclude_result": false})), true),
        (Some(json!({"return_all": true})), true),
    ] {
        let r = c
            .rpc(
                TASKS,
                "get",
                typed::get_input(&id, spec.as_ref()),
                Http::rpc_session(&sid),
                "1",
            )
            .await;
        let out = output(&r, r#""1""#);
        let result = &out["STRUCTURE"]["com.vmware.cis.task.info"]["result"];
        assert_eq!(optional(result, "result").is_some(), expected, "{spec:?}");
        let mut plain = untype(&out).unwrap();
        if !expected {
            plain["result"] = info["result"].clone();
        }
        assert_eq!(plain, info);
    }
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 5. Errors of the protocol and of routing
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_services_and_operations_are_operation_not_found() {
    let sim = start_sim(sim_config(20, 1)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    for (service, op, named) in [
        (TASKS, "cancel", "cancel"),
        (SESSIONS, "list", "list"),
        ("com.vmware.vcenter.vm", "list", "com.vmware.vcenter.vm"),
        ("", "", "\"\""),
    ] {
        let r = invoke(&c, service, op, typed::empty_input(), &sid).await;
        let m = vapi_error(&r, r#""1""#, "operation_not_found");
        assert!(m.contains(named), "{m}");
    }
    assert_eq!(sim.stats().requests(Endpoint::Other, Family::JsonRpc), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_that_are_not_invoke_calls_get_protocol_errors() {
    let sim = start_sim(sim_config(20, 1)).await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let input = typed::empty_input();
    let params = json!({"serviceId": SESSIONS, "operationId": "get", "input": input,
        "ctx": {"securityCtx": Http::rpc_session(&sid)}});
    for (body, id, code) in [
        ("{not json".to_owned(), "null", -32700),
        (String::new(), "null", -32700),
        ("[1,2]".to_owned(), "null", -32600),
        (r#""invoke""#.to_owned(), "null", -32600),
        (
            format!(r#"{{"method":"invoke","params":{params},"id":"1"}}"#),
            "null",
            -32600,
        ),
        (
            format!(r#"{{"jsonrpc":"1.0","method":"invoke","params":{params},"id":"1"}}"#),
            "null",
            -32600,
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","method":"invoke","params":{params}}}"#),
            "null",
            -32600,
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","method":"invoke","params":{params},"id":{{}}}}"#),
            "null",
            -32600,
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","params":{params},"id":"1"}}"#),
            "null",
            -32600,
        ),
        (
            format!(r#"{{"jsonrpc":"2.0","method":"get","params":{params},"id":"1"}}"#),
            r#""1""#,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"invoke","id":"1"}"#.to_owned(),
            r#""1""#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"invoke","params":[],"id":7}"#.to_owned(),
            "7",
            -32602,
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","method":"invoke","params":{{"serviceId":"{SESSIONS}","operationId":"get"}},"id":"1"}}"#
            ),
            r#""1""#,
            -32602,
        ),
    ] {
        let r = post(&c, &body, &[]).await;
        let m = protocol_error(&r, id, code);
        assert!(!m.is_empty(), "{body}");
    }
    // Headers that disagree with the body.
    let body = call_body(SESSIONS, "get", &input, &Http::rpc_session(&sid), r#""1""#);
    let r = post(&c, &body, &[("vapi-service", TASKS)]).await;
    protocol_error(&r, r#""1""#, -31001);
    let r = post(
        &c,
        &body,
        &[("vapi-service", SESSIONS), ("vapi-operation", "get")],
    )
    .await;
    output(&r, r#""1""#);
    // A body over the limit is not read: an invalid request.
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"invoke","id":"1","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    protocol_error(&post(&c, &big, &[]).await, "null", -32600);
    // Not JSON-RPC: /api with a query, or another method, is the /api family.
    let r = c
        .call(
            Method::POST,
            "/api?x=1",
            &[(SESSION, &sid)],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_type"], "NOT_FOUND");
    let r = c.call(Method::GET, "/api", &[(SESSION, &sid)], None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_type"], "NOT_FOUND");
    let st = sim.stats();
    assert_eq!(st.requests(Endpoint::Other, Family::JsonRpc), 15);
    assert_eq!(st.requests(Endpoint::SessionGet, Family::JsonRpc), 1);
    assert_eq!(st.requests(Endpoint::Other, Family::Api), 2);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------
// 6. Faults and counts
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn error_rate_is_a_service_unavailable_result_on_http_200_and_http500_stays_a_500() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            endpoints: vec![Endpoint::TasksList],
            ..Faults::default()
        },
        ..sim_config(50, 12)
    })
    .await;
    let c = Http::for_sim(&sim);
    let sid = rpc_login(&c, ADMIN.0, ADMIN.1).await; // log-in is not faulted
    let r = c.rpc_list(&sid, &every_service()).await;
    let m = vapi_error(&r, r#""0""#, "service_unavailable");
    assert!(m.contains("unavailable"), "{m}");
    // Numeric ids too; a protocol error is no List Tasks call, so not faulted.
    let body = call_body(
        TASKS,
        "list",
        &typed::list_input(&every_service()),
        &Http::rpc_session(&sid),
        "42",
    );
    vapi_error(&post(&c, &body, &[]).await, "42", "service_unavailable");
    protocol_error(&post(&c, "{", &[]).await, "null", -32700);
    // Get Task is not in scope.
    let r = c
        .rpc(
            TASKS,
            "get",
            typed::get_input(&sim.task_ids()[0], None),
            Http::rpc_session(&sid),
            "1",
        )
        .await;
    output(&r, r#""1""#);
    assert_eq!(sim.stats().faults.unavailable, 2);

    // Every endpoint, a broken front end: a non-JSON 500, as for the other families.
    sim.set_faults(Faults {
        http500_rate: 1.0,
        ..Faults::default()
    })
    .unwrap();
    let r = c.rpc_list(&sid, &every_service()).await;
    assert_eq!(r.status, 500);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = post(&c, "{", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(sim.stats().faults.http500, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_and_truncation_apply_to_json_rpc() {
    let sim = start_sim(SimConfig {
        faults: Faults {
            latency: Duration::from_millis(200),
            truncate_rate: 1.0,
            endpoints: vec![Endpoint::TasksGet],
            ..Faults::default()
        },
        ..sim_config(20, 13)
    })
    .await;
    let c = Http::for_sim(&sim);
    let sid = c.admin().await;
    let body = call_body(
        TASKS,
        "get",
        &typed::get_input(&sim.task_ids()[0], None),
        &Http::rpc_session(&sid),
        r#""1""#,
    );
    let start = std::time::Instant::now();
    let r = c
        .try_call(
            Method::POST,
            "/api",
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
        .await;
    // A lower bound only; the body is cut short, so reading it fails.
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(r.is_err(), "{r:?}");
    assert_eq!(sim.stats().faults.truncate, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn stats_count_json_rpc_calls_per_operation() {
    let sim = start_sim(sim_config(30, 14)).await;
    let c = Http::for_sim(&sim);
    let sid = rpc_login(&c, ADMIN.0, ADMIN.1).await;
    let bad = call_body(
        SESSIONS,
        "create",
        &typed::empty_input(),
        &user_pass(ADMIN.0, "x"),
        r#""0""#,
    );
    post(&c, &bad, &[]).await;
    for _ in 0..3 {
        c.rpc_list(&sid, &every_service()).await;
    }
    for id in sim.task_ids().iter().take(2) {
        c.rpc(
            TASKS,
            "get",
            typed::get_input(id, None),
            Http::rpc_session(&sid),
            "1",
        )
        .await;
    }
    invoke(&c, SESSIONS, "get", typed::empty_input(), &sid).await;
    invoke(&c, TASKS, "cancel", typed::empty_input(), &sid).await;
    post(&c, "nope", &[]).await;
    invoke(&c, SESSIONS, "delete", typed::empty_input(), &sid).await;
    let api = c.admin().await;
    c.api_list(&api, &every_service().to_string()).await;

    let v = c.stats().await;
    let expected = json!({
        "session_create": {"rest": 0, "api": 1, "jsonrpc": 2},
        "session_get": {"rest": 0, "api": 0, "jsonrpc": 1},
        "session_delete": {"rest": 0, "api": 0, "jsonrpc": 1},
        "tasks_list": {"rest": 0, "api": 1, "jsonrpc": 3},
        "tasks_get": {"rest": 0, "api": 0, "jsonrpc": 2},
        "other": {"rest": 0, "api": 0, "jsonrpc": 2}
    });
    assert_eq!(v["requests"], expected);
    assert_eq!(v["sessions_opened"], 2);
    assert_eq!(v["sessions_open"], 1);
    assert_eq!(v["in_flight"], 0);
    let st = sim.stats();
    assert_eq!(st.requests(Endpoint::TasksList, Family::JsonRpc), 3);
    assert_eq!(st.endpoint_total(Endpoint::TasksList), 4);
    assert_eq!(st.total_requests(), 13);
    sim.shutdown().await;
}
