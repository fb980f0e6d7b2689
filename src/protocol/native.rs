//! vcproxy's own API (`/vcproxy/v1/`): the merged task list with each task's
//! vCenter named, and each vCenter's outcome reported on its own.
//!
//! Target ids (`vm-42`, `domain-c15`) are per vCenter, so a merged vCenter answer
//! cannot say where a task can be acted on; this one can. A vCenter that fails is
//! reported in `vcenters` rather than failing the whole list:
//!
//! ```json
//! {"tasks": [{"vcenter": "vc1", "task": "<id>", "info": {…vCenter's /rest Info…}}, …],
//!  "vcenters": [{"name": "vc1", "ok": true, "tasks": 12},
//!               {"name": "vc2", "ok": false, "status": 503, "error": {…its error body…}}]}
//! ```
//!
//! Tasks come in configuration order of their vCenters, then by id; each Info is
//! the vCenter's bytes as they came.

use super::json::{write_json_str, write_list};
use super::merge::ParsedBody;

/// One vCenter's part of the answer.
pub struct VcenterPart<'a> {
    pub name: &'a str,
    pub outcome: Outcome<'a>,
}

pub enum Outcome<'a> {
    /// Its `/rest` List Tasks answer, as read.
    Answered {
        body: &'a [u8],
        parsed: &'a ParsedBody,
    },
    /// Its failure: the status, and the error body (JSON, or text).
    Failed { status: u16, body: &'a [u8] },
}

/// The native answer for `parts`, in their order.
pub fn render(parts: &[VcenterPart<'_>]) -> Vec<u8> {
    let size: usize = parts
        .iter()
        .map(|p| match p.outcome {
            Outcome::Answered { body, parsed } => body.len() + 48 * parsed.len(),
            Outcome::Failed { body, .. } => body.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(size + 64 * parts.len() + 32);
    out.extend_from_slice(b"{\"tasks\":");
    let tasks = parts.iter().flat_map(|p| match p.outcome {
        Outcome::Answered { body, parsed } => Some(
            parsed
                .entries(body)
                .map(move |(id, info)| (p.name, id, info)),
        ),
        Outcome::Failed { .. } => None,
    });
    write_list(&mut out, tasks.flatten(), |out, (vcenter, id, info)| {
        out.extend_from_slice(b"{\"vcenter\":");
        write_json_str(out, vcenter);
        out.extend_from_slice(b",\"task\":");
        write_json_str(out, id);
        out.extend_from_slice(b",\"info\":");
        out.extend_from_slice(info);
        out.push(b'}');
    });
    out.extend_from_slice(b",\"vcenters\":");
    write_list(&mut out, parts, |out, p| {
        out.extend_from_slice(b"{\"name\":");
        write_json_str(out, p.name);
        match p.outcome {
            Outcome::Answered { parsed, .. } => {
                out.extend_from_slice(
                    format!(",\"ok\":true,\"tasks\":{}}}", parsed.len()).as_bytes(),
                );
            }
            Outcome::Failed { status, body } => {
                out.extend_from_slice(
                    format!(",\"ok\":false,\"status\":{status},\"error\":").as_bytes(),
                );
                if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                    out.extend_from_slice(body);
                } else {
                    write_json_str(out, &String::from_utf8_lossy(body));
                }
                out.push(b'}');
            }
        }
    });
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::merge::parse_body;
    use crate::protocol::merge::UpstreamBody;
    use crate::protocol::Family;

    #[test]
    fn names_each_tasks_vcenter_and_each_vcenters_outcome() {
        let body = br#"{"value":[{"key":"b:svc","value":{"status":"RUNNING"}},{"key":"a:svc","value":{"status":"FAILED","x":"<img>"}}]}"#;
        let parsed = parse_body(
            Family::Rest,
            UpstreamBody {
                vcenter: "vc1",
                body,
            },
        )
        .unwrap();
        let out = render(&[
            VcenterPart {
                name: "vc1",
                outcome: Outcome::Answered {
                    body,
                    parsed: &parsed,
                },
            },
            VcenterPart {
                name: "vc\"2",
                outcome: Outcome::Failed {
                    status: 503,
                    body: br#"{"error_type":"SERVICE_UNAVAILABLE"}"#,
                },
            },
            VcenterPart {
                name: "vc3",
                outcome: Outcome::Failed {
                    status: 500,
                    body: b"<html>oops</html>",
                },
            },
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "tasks": [
                    {"vcenter": "vc1", "task": "a:svc", "info": {"status": "FAILED", "x": "<img>"}},
                    {"vcenter": "vc1", "task": "b:svc", "info": {"status": "RUNNING"}}
                ],
                "vcenters": [
                    {"name": "vc1", "ok": true, "tasks": 2},
                    {"name": "vc\"2", "ok": false, "status": 503, "error": {"error_type": "SERVICE_UNAVAILABLE"}},
                    {"name": "vc3", "ok": false, "status": 500, "error": "<html>oops</html>"}
                ]
            })
        );
    }
}
