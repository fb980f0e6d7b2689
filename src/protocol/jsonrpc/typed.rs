//! Typed values ("data values"): what JSON-RPC wraps every value in, read into the
//! plain JSON the `/api` family uses, and written from the canonical models.
//!
//! Reading unwraps `OPTIONAL` (`null` is an unset field, left out), `STRUCTURE`
//! (the fields of its one named structure), `SECRET` and lists. Unwrapped, a List
//! Tasks input is exactly an `/api` body, so both protocols share one filter parser
//! and one canonical key. Writing produces every optional field, unset ones as
//! `{"OPTIONAL":null}`, as the SDK itself does.

use serde_json::{Map, Value};

use crate::protocol::filter::{ResultSpec, TaskQuery};
use crate::protocol::json::write_json_str;
use crate::protocol::VapiError;

/// An operation's input, `{"STRUCTURE":{"operation-input":{..}}}`, as a plain JSON
/// object of its parameters. Malformed input is `invalid_argument` naming where.
pub fn operation_input(input: &str) -> Result<Map<String, Value>, VapiError> {
    let value: Value = serde_json::from_str(input)
        .map_err(|e| VapiError::invalid_argument(format!("params.input is not JSON: {e}")))?;
    match untype(&value, "input").map_err(VapiError::invalid_argument)? {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err(VapiError::invalid_argument(
            "params.input must be the operation-input structure.",
        )),
    }
}

/// A typed value as plain JSON; `None` for an unset optional. `at` names the value
/// in messages.
pub fn untype(v: &Value, at: &str) -> Result<Option<Value>, String> {
    Ok(Some(match v {
        Value::Object(o) if o.len() == 1 => {
            let (tag, inner) = o.iter().next().expect("one member");
            match tag.as_str() {
                "OPTIONAL" if inner.is_null() => return Ok(None),
                "OPTIONAL" => return untype(inner, at),
                "SECRET" => match inner {
                    Value::String(_) => inner.clone(),
                    _ => return Err(format!("{at}: a SECRET must hold a string")),
                },
                "STRUCTURE" => structure(inner, at)?,
                other => {
                    return Err(format!(
                        "{at}: {other:?} is not a typed value (expected OPTIONAL, STRUCTURE, SECRET or a plain value)"
                    ))
                }
            }
        }
        Value::Object(_) => {
            return Err(format!(
            "{at}: an object must be a typed value ({{\"STRUCTURE\":..}} or {{\"OPTIONAL\":..}})"
        ))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match untype(item, &format!("{at}[{i}]"))? {
                    Some(v) => out.push(v),
                    None => return Err(format!("{at}[{i}]: a list element cannot be unset")),
                }
            }
            Value::Array(out)
        }
        plain => plain.clone(),
    }))
}

/// `{"<name>":{fields}}`: the fields, each unwrapped, unset ones left out.
fn structure(v: &Value, at: &str) -> Result<Value, String> {
    let named = match v {
        Value::Object(o) if o.len() == 1 => o.iter().next().expect("one member"),
        _ => return Err(format!("{at}: a STRUCTURE holds one named structure")),
    };
    let Value::Object(fields) = named.1 else {
        return Err(format!(
            "{at}: the structure {:?} must be an object",
            named.0
        ));
    };
    let mut out = Map::with_capacity(fields.len());
    for (name, value) in fields {
        if let Some(v) = untype(value, &format!("{at}.{name}"))? {
            out.insert(name.clone(), v);
        }
    }
    Ok(Value::Object(out))
}

/// `{"OPTIONAL":<value>}` or `{"OPTIONAL":null}`.
fn optional(out: &mut Vec<u8>, value: Option<impl FnOnce(&mut Vec<u8>)>) {
    out.extend_from_slice(b"{\"OPTIONAL\":");
    match value {
        Some(write) => write(out),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn string_set(out: &mut Vec<u8>, values: &[String]) {
    let write = |out: &mut Vec<u8>| {
        out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, v);
        }
        out.push(b']');
    };
    optional(out, (!values.is_empty()).then_some(write));
}

fn flag(out: &mut Vec<u8>, value: Option<bool>) {
    optional(
        out,
        value.map(|b| {
            move |out: &mut Vec<u8>| out.extend_from_slice(if b { b"true" } else { b"false" })
        }),
    );
}

/// `com.vmware.cis.tasks.get_spec`, optional: unset when neither flag is.
fn get_spec(out: &mut Vec<u8>, spec: &ResultSpec) {
    let set = spec.return_all.is_some() || spec.exclude_result.is_some();
    optional(
        out,
        set.then_some(|out: &mut Vec<u8>| {
            out.extend_from_slice(
                b"{\"STRUCTURE\":{\"com.vmware.cis.tasks.get_spec\":{\"return_all\":",
            );
            flag(out, spec.return_all);
            out.extend_from_slice(b",\"exclude_result\":");
            flag(out, spec.exclude_result);
            out.extend_from_slice(b"}}}");
        }),
    );
}

/// List Tasks' typed input for a canonical query: every field present, in the order
/// the SDK sends them.
pub fn list_input(q: &TaskQuery) -> Vec<u8> {
    let f = &q.filter;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"STRUCTURE\":{\"operation-input\":{\"filter_spec\":");
    optional(
        &mut out,
        Some(|out: &mut Vec<u8>| {
            out.extend_from_slice(
                b"{\"STRUCTURE\":{\"com.vmware.cis.tasks.filter_spec\":{\"tasks\":",
            );
            string_set(out, &f.tasks);
            out.extend_from_slice(b",\"services\":");
            string_set(out, &f.services);
            out.extend_from_slice(b",\"operations\":");
            string_set(out, &f.operations);
            out.extend_from_slice(b",\"status\":");
            string_set(out, &f.status);
            out.extend_from_slice(b",\"targets\":");
            let targets = |out: &mut Vec<u8>| {
                out.push(b'[');
                for (i, t) in f.targets.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(
                        b"{\"STRUCTURE\":{\"com.vmware.vapi.std.dynamic_ID\":{\"type\":",
                    );
                    write_json_str(out, &t.target_type);
                    out.extend_from_slice(b",\"id\":");
                    write_json_str(out, &t.id);
                    out.extend_from_slice(b"}}}");
                }
                out.push(b']');
            };
            optional(out, (!f.targets.is_empty()).then_some(targets));
            out.extend_from_slice(b",\"users\":");
            string_set(out, &f.users);
            out.extend_from_slice(b"}}}");
        }),
    );
    out.extend_from_slice(b",\"result_spec\":");
    get_spec(&mut out, &q.result);
    out.extend_from_slice(b"}}}");
    out
}

/// Get Task's typed input.
pub fn get_input(task: &str, spec: &ResultSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + task.len());
    out.extend_from_slice(b"{\"STRUCTURE\":{\"operation-input\":{\"task\":");
    write_json_str(&mut out, task);
    out.extend_from_slice(b",\"spec\":");
    get_spec(&mut out, spec);
    out.extend_from_slice(b"}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::filter::{parse_json, Limits, Target};

    /// The SDK's list input, as captured.
    const CAPTURED: &str = r#"{"STRUCTURE":{"operation-input":{"filter_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.filter_spec":{"tasks":{"OPTIONAL":null},"services":{"OPTIONAL":["com.vmware.vcenter.vm"]},"operations":{"OPTIONAL":null},"status":{"OPTIONAL":["FAILED"]},"targets":{"OPTIONAL":[{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-42"}}}]},"users":{"OPTIONAL":null}}}}},"result_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.get_spec":{"return_all":{"OPTIONAL":true},"exclude_result":{"OPTIONAL":false}}}}}}}}"#;

    #[test]
    fn the_captured_input_unwraps_to_the_api_body() {
        let plain = Value::Object(operation_input(CAPTURED).unwrap());
        assert_eq!(
            plain,
            serde_json::json!({"filter_spec":{"services":["com.vmware.vcenter.vm"],"status":["FAILED"],
                "targets":[{"type":"VirtualMachine","id":"vm-42"}]},
                "result_spec":{"return_all":true,"exclude_result":false}})
        );
    }

    #[test]
    fn the_canonical_input_reads_back_to_the_same_query() {
        let plain = Value::Object(operation_input(CAPTURED).unwrap()).to_string();
        let q = parse_json(plain.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            q.filter.targets,
            vec![Target {
                target_type: "VirtualMachine".into(),
                id: "vm-42".into()
            }]
        );
        let again = list_input(&q);
        let plain2 = Value::Object(operation_input(std::str::from_utf8(&again).unwrap()).unwrap())
            .to_string();
        assert_eq!(
            parse_json(plain2.as_bytes(), &Limits::default()).unwrap(),
            q
        );
        // Every optional is present, as the SDK sends them.
        let s = String::from_utf8(again).unwrap();
        assert!(s.contains(r#""tasks":{"OPTIONAL":null}"#), "{s}");
        assert!(s.contains(r#""exclude_result":{"OPTIONAL":null}"#), "{s}");
    }

    #[test]
    fn malformed_typed_values_name_where() {
        let e = operation_input(
            r#"{"STRUCTURE":{"operation-input":{"filter_spec":{"services":["a"]}}}}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("input.filter_spec"), "{}", e.message);
        assert!(
            operation_input(r#"{"STRUCTURE":{"operation-input":{"x":[{"OPTIONAL":null}]}}}"#)
                .is_err()
        );
        assert!(operation_input("[]").is_err());
        assert!(operation_input("{").is_err());
    }

    #[test]
    fn get_input_reads_back() {
        let spec = ResultSpec {
            return_all: None,
            exclude_result: Some(true),
        };
        let input = get_input("t:svc", &spec);
        let plain = operation_input(std::str::from_utf8(&input).unwrap()).unwrap();
        assert_eq!(
            Value::Object(plain),
            serde_json::json!({"task":"t:svc","spec":{"exclude_result":true}})
        );
        let none = get_input("t", &ResultSpec::default());
        assert!(none.ends_with(br#""spec":{"OPTIONAL":null}}}}"#));
    }
}
