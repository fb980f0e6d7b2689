//! The model's JSON-RPC encoding: task Infos as vAPI typed values ("data values"),
//! byte for byte as the vAPI runtime's own encoder writes them
//! (`JSONRPC-NOTES.md` §3 and §6 in the vSphere notes).
//!
//! * structures are `{"STRUCTURE":{"<canonical name>":{fields}}}`, fields in the
//!   order of the binding's declaration (Info: `progress`, `result`, `description`,
//!   `service`, `operation`, `parent`, `target`, `status`, `cancelable`, `error`,
//!   `start_time`, `end_time`, `user`);
//! * every optional field is present, as `{"OPTIONAL":value}` or, unset,
//!   `{"OPTIONAL":null}`; a message's empty `params` map is unset, as in the REST
//!   families (where it is left out);
//! * maps are arrays of `{"STRUCTURE":{"map-entry":{"key":k,"value":v}}}`;
//! * a failed task's `error` is `{"ERROR":{"com.vmware.vapi.std.errors.error":{..}}}`;
//! * date-times are `YYYY-MM-DDThh:mm:ss.sssZ`.
//!
//! Which fields are set is the model's business ([`super::data`] keeps the
//! per-status rules the SDK enforces); this module writes what it is given.

use super::model::{iso8601, Data, Info, Message, Millis, Param, Progress, Target};
use crate::protocol::json::write_json_str;

/// The List Tasks output: a map of task id to Info, as map entries.
pub(crate) fn task_map<'a>(
    out: &mut Vec<u8>,
    tasks: impl IntoIterator<Item = (&'a str, Info<'a>)>,
    exclude_result: bool,
) {
    out.push(b'[');
    for (i, (id, info)) in tasks.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        map_entry(out, id, |out| self::info(out, &info, exclude_result));
    }
    out.push(b']');
}

/// One `com.vmware.cis.task.info`; `result` is unset when `exclude_result`.
pub(crate) fn info(out: &mut Vec<u8>, info: &Info<'_>, exclude_result: bool) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.cis.task.info\":{\"progress\":");
    optional(out, info.progress.as_ref(), progress);
    out.extend_from_slice(b",\"result\":");
    optional(out, info.result.filter(|_| !exclude_result), data);
    out.extend_from_slice(b",\"description\":");
    message(out, info.description);
    out.extend_from_slice(b",\"service\":");
    write_json_str(out, info.service);
    out.extend_from_slice(b",\"operation\":");
    write_json_str(out, info.operation);
    out.extend_from_slice(b",\"parent\":");
    optional(out, info.parent, write_json_str);
    out.extend_from_slice(b",\"target\":");
    optional(out, info.target, target);
    out.extend_from_slice(b",\"status\":");
    write_json_str(out, info.status.as_str());
    out.extend_from_slice(b",\"cancelable\":");
    boolean(out, info.cancelable);
    out.extend_from_slice(b",\"error\":");
    optional(out, info.error, std_error);
    out.extend_from_slice(b",\"start_time\":");
    optional(out, info.start_time, time);
    out.extend_from_slice(b",\"end_time\":");
    optional(out, info.end_time, time);
    out.extend_from_slice(b",\"user\":");
    optional(out, info.user, write_json_str);
    out.extend_from_slice(b"}}}");
}

/// `{"OPTIONAL":<value>}`, or `{"OPTIONAL":null}` when unset.
fn optional<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    out.extend_from_slice(b"{\"OPTIONAL\":");
    match value {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// `{"STRUCTURE":{"map-entry":{"key":<key>,"value":<value>}}}`.
fn map_entry(out: &mut Vec<u8>, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"map-entry\":{\"key\":");
    write_json_str(out, key);
    out.extend_from_slice(b",\"value\":");
    value(out);
    out.extend_from_slice(b"}}}");
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(i.to_string().as_bytes());
}

fn time(out: &mut Vec<u8>, t: Millis) {
    out.push(b'"');
    out.extend_from_slice(iso8601(t).as_bytes());
    out.push(b'"');
}

/// A `com.vmware.vapi.std.localizable_message`.
fn message(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.vapi.std.localizable_message\":{\"id\":");
    write_json_str(out, &m.id);
    out.extend_from_slice(b",\"default_message\":");
    write_json_str(out, &m.default_message);
    out.extend_from_slice(b",\"args\":[");
    for (i, a) in m.args.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, a);
    }
    out.extend_from_slice(b"],\"params\":");
    let params = Some(&m.params).filter(|p| !p.is_empty());
    optional(out, params, |out, params| {
        out.push(b'[');
        for (i, (k, p)) in params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            map_entry(out, k, |out| param(out, p));
        }
        out.push(b']');
    });
    out.extend_from_slice(b",\"localized\":{\"OPTIONAL\":null}}}}");
}

/// A `com.vmware.vapi.std.localization_param`: all seven fields, one of them set.
fn param(out: &mut Vec<u8>, p: &Param) {
    let (s, dt, i) = match p {
        Param::S(s) => (Some(s.as_str()), None, None),
        Param::Dt(t) => (None, Some(*t), None),
        Param::I(i) => (None, None, Some(*i)),
    };
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.vapi.std.localization_param\":{\"s\":");
    optional(out, s, write_json_str);
    out.extend_from_slice(b",\"dt\":");
    optional(out, dt, time);
    out.extend_from_slice(b",\"i\":");
    optional(out, i, int);
    out.extend_from_slice(
        b",\"d\":{\"OPTIONAL\":null},\"l\":{\"OPTIONAL\":null},\
          \"format\":{\"OPTIONAL\":null},\"precision\":{\"OPTIONAL\":null}}}}",
    );
}

/// A `com.vmware.vapi.std.dynamic_ID`.
fn target(out: &mut Vec<u8>, t: &Target) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.vapi.std.dynamic_ID\":{\"type\":");
    write_json_str(out, t.kind);
    out.extend_from_slice(b",\"id\":");
    write_json_str(out, &t.id);
    out.extend_from_slice(b"}}}");
}

/// A `com.vmware.cis.task.progress`.
fn progress(out: &mut Vec<u8>, p: &Progress) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.cis.task.progress\":{\"total\":");
    int(out, p.total);
    out.extend_from_slice(b",\"completed\":");
    int(out, p.completed);
    out.extend_from_slice(b",\"message\":");
    message(out, &p.message);
    out.extend_from_slice(b"}}}");
}

/// The standard error `error` carrying one message.
fn std_error(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(b"{\"ERROR\":{\"com.vmware.vapi.std.errors.error\":{\"messages\":[");
    message(out, m);
    out.extend_from_slice(
        b"],\"data\":{\"OPTIONAL\":null},\"error_type\":{\"OPTIONAL\":\"ERROR\"}}}}",
    );
}

/// A value of the opaque `result`.
fn data(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::Str(s) => write_json_str(out, s),
        Data::Int(i) => int(out, *i),
        Data::Bool(b) => boolean(out, *b),
        Data::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                data(out, item);
            }
            out.push(b']');
        }
        Data::Struct { name, fields } => {
            out.extend_from_slice(b"{\"STRUCTURE\":{");
            write_json_str(out, name);
            out.extend_from_slice(b":{");
            for (i, (field, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, field);
                out.push(b':');
                data(out, value);
            }
            out.extend_from_slice(b"}}}");
        }
        Data::Map(entries) => {
            out.push(b'[');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                map_entry(out, k, |out| data(out, v));
            }
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::Status;

    /// The captured SDK answer's first task (`JSONRPC-NOTES.md` §6), as the model
    /// holds it: the bytes must be the runtime encoder's.
    #[test]
    fn the_notes_info_is_encoded_byte_for_byte() {
        let description = Message {
            id: "com.vmware.vcenter.vm.power_on".into(),
            default_message: "Power on vm-42".into(),
            args: vec!["vm-42".into()],
            params: vec![
                ("vm".into(), Param::S("vm-42".into())),
                ("n".into(), Param::I(3)),
            ],
        };
        let target = Target {
            kind: "VirtualMachine",
            id: "vm-42".into(),
        };
        let result = Data::Struct {
            name: "dynamic-structure".into(),
            fields: vec![("commit", Data::Int(7)), ("status", Data::Str("OK".into()))],
        };
        let info = Info {
            description: &description,
            service: "com.vmware.vcenter.vm",
            operation: "power_on",
            parent: None,
            target: Some(&target),
            status: Status::Succeeded,
            cancelable: false,
            error: None,
            // 2026-01-15T09:00:00.000Z and 5.25 s later.
            start_time: Some(1_768_467_600_000),
            end_time: Some(1_768_467_605_250),
            user: Some("VSPHERE.LOCAL\\Administrator"),
            progress: Some(Progress {
                total: 100,
                completed: 100,
                message: Message {
                    id: "p".into(),
                    default_message: "done".into(),
                    args: vec![],
                    params: vec![],
                },
            }),
            result: Some(&result),
        };
        let mut out = Vec::new();
        task_map(
            &mut out,
            [(
                "52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm",
                info.clone(),
            )],
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"STRUCTURE":{"map-entry":{"key":"52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm","value":{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":100,"completed":100,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"done","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":{"STRUCTURE":{"dynamic-structure":{"commit":7,"status":"OK"}}}},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vcenter.vm.power_on","default_message":"Power on vm-42","args":["vm-42"],"params":{"OPTIONAL":[{"STRUCTURE":{"map-entry":{"key":"vm","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":"vm-42"},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":null},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}},{"STRUCTURE":{"map-entry":{"key":"n","value":{"STRUCTURE":{"com.vmware.vapi.std.localization_param":{"s":{"OPTIONAL":null},"dt":{"OPTIONAL":null},"i":{"OPTIONAL":3},"d":{"OPTIONAL":null},"l":{"OPTIONAL":null},"format":{"OPTIONAL":null},"precision":{"OPTIONAL":null}}}}}}}]},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"power_on","parent":{"OPTIONAL":null},"target":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}},"status":"SUCCEEDED","cancelable":false,"error":{"OPTIONAL":null},"start_time":{"OPTIONAL":"2026-01-15T09:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T09:00:05.250Z"},"user":{"OPTIONAL":"VSPHERE.LOCAL\\Administrator"}}}}}}}]"#
        );
        let mut out = Vec::new();
        self::info(&mut out, &info, true);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""result":{"OPTIONAL":null}"#), "{s}");
        assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok());
    }

    /// The captured failed task: its `error` and unset fields.
    #[test]
    fn a_failed_tasks_error_is_a_typed_std_error() {
        let description = Message {
            id: "x.failed".into(),
            default_message: "Clone failed".into(),
            args: vec![],
            params: vec![],
        };
        let error = Message {
            id: "e".into(),
            default_message: "disk full".into(),
            args: vec![],
            params: vec![],
        };
        let info = Info {
            description: &description,
            service: "com.vmware.vcenter.vm",
            operation: "clone",
            parent: None,
            target: None,
            status: Status::Failed,
            cancelable: false,
            error: Some(&error),
            start_time: Some(1_768_471_200_000),
            end_time: Some(1_768_471_260_000),
            user: None,
            progress: Some(Progress {
                total: 10,
                completed: 4,
                message: Message {
                    id: "p".into(),
                    default_message: "copying".into(),
                    args: vec![],
                    params: vec![],
                },
            }),
            result: None,
        };
        let mut out = Vec::new();
        self::info(&mut out, &info, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"STRUCTURE":{"com.vmware.cis.task.info":{"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":10,"completed":4,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"p","default_message":"copying","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"result":{"OPTIONAL":null},"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"x.failed","default_message":"Clone failed","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm","operation":"clone","parent":{"OPTIONAL":null},"target":{"OPTIONAL":null},"status":"FAILED","cancelable":false,"error":{"OPTIONAL":{"ERROR":{"com.vmware.vapi.std.errors.error":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"e","default_message":"disk full","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"ERROR"}}}}},"start_time":{"OPTIONAL":"2026-01-15T10:00:00.000Z"},"end_time":{"OPTIONAL":"2026-01-15T10:01:00.000Z"},"user":{"OPTIONAL":null}}}}"#
        );
    }

    #[test]
    fn result_maps_and_dt_params_are_typed() {
        let d = Data::Struct {
            name: "a.result".into(),
            fields: vec![
                (
                    "hosts",
                    Data::Map(vec![("h".into(), Data::List(vec![Data::Bool(true)]))]),
                ),
                ("n", Data::Int(-1)),
            ],
        };
        let mut out = Vec::new();
        data(&mut out, &d);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"STRUCTURE":{"a.result":{"hosts":[{"STRUCTURE":{"map-entry":{"key":"h","value":[true]}}}],"n":-1}}}"#
        );
        let mut out = Vec::new();
        param(&mut out, &Param::Dt(0));
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains(r#""s":{"OPTIONAL":null},"dt":{"OPTIONAL":"1970-01-01T00:00:00.000Z"},"i":{"OPTIONAL":null}"#),
            "{s}"
        );
    }
}
