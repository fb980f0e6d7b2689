//! Typed values ("data values"): what JSON-RPC wraps every value in, read into the
//! plain JSON the `/api` family uses, and written from the canonical models.
//!
//! Writing is done by the models' own encoders (`filter`, `get_task`) with the
//! helpers here. Reading unwraps `OPTIONAL` (`null` is an unset field, left out), `STRUCTURE`
//! (the fields of its one named structure), `SECRET` and lists. Unwrapped, a List
//! Tasks input is exactly an `/api` body, so both protocols share one filter parser
//! and one canonical key. Writing produces every optional field, unset ones as
//! `{"OPTIONAL":null}`, as the SDK itself does.

use serde_json::{Map, Value};

use crate::protocol::json::{write_json_str, write_list};
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
pub(crate) fn optional(out: &mut Vec<u8>, value: Option<impl FnOnce(&mut Vec<u8>)>) {
    out.extend_from_slice(b"{\"OPTIONAL\":");
    match value {
        Some(write) => write(out),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// An optional set of strings: unset when empty.
pub(crate) fn string_set(out: &mut Vec<u8>, values: &[String]) {
    let write = |out: &mut Vec<u8>| write_list(out, values, |out, v| write_json_str(out, v));
    optional(out, (!values.is_empty()).then_some(write));
}

/// An optional boolean.
pub(crate) fn flag(out: &mut Vec<u8>, value: Option<bool>) {
    optional(
        out,
        value.map(|b| {
            move |out: &mut Vec<u8>| out.extend_from_slice(if b { b"true" } else { b"false" })
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn writers_wrap_optionals() {
        let mut out = Vec::new();
        string_set(&mut out, &[]);
        flag(&mut out, Some(true));
        string_set(&mut out, &["a".to_owned()]);
        assert_eq!(
            out,
            br#"{"OPTIONAL":null}{"OPTIONAL":true}{"OPTIONAL":["a"]}"#
        );
    }
}
