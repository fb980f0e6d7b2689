//! JSON-RPC typed values, written as the official SDK writes them: the test kit's
//! own encoder, independent of the proxy's, so tests check one against the other.

use serde_json::{json, Map, Value};

fn optional(v: Option<Value>) -> Value {
    json!({ "OPTIONAL": v.unwrap_or(Value::Null) })
}

fn structure(name: &str, fields: Map<String, Value>) -> Value {
    json!({ "STRUCTURE": { name: Value::Object(fields) } })
}

/// List Tasks' typed input for the `/api` body `api_body`
/// (`{"filter_spec":{..},"result_spec":{..}}`): every optional field present,
/// unset ones as `{"OPTIONAL":null}`.
pub fn list_input(api_body: &Value) -> Value {
    let filter = api_body.get("filter_spec").map(|f| {
        let mut fields = Map::new();
        for name in [
            "tasks",
            "services",
            "operations",
            "status",
            "targets",
            "users",
        ] {
            let value = f.get(name).cloned().map(|v| match (name, v) {
                ("targets", Value::Array(ts)) => Value::Array(
                    ts.into_iter()
                        .map(|t| {
                            let Value::Object(t) = t else {
                                panic!("a target object")
                            };
                            structure("com.vmware.vapi.std.dynamic_ID", t)
                        })
                        .collect(),
                ),
                (_, v) => v,
            });
            fields.insert(name.to_owned(), optional(value));
        }
        structure("com.vmware.cis.tasks.filter_spec", fields)
    });
    let result = api_body.get("result_spec").map(get_spec);
    let mut input = Map::new();
    input.insert("filter_spec".into(), optional(filter));
    input.insert("result_spec".into(), optional(result));
    structure("operation-input", input)
}

/// A `com.vmware.cis.tasks.get_spec` from `{"return_all":..,"exclude_result":..}`.
pub fn get_spec(spec: &Value) -> Value {
    let mut fields = Map::new();
    for name in ["return_all", "exclude_result"] {
        fields.insert(name.to_owned(), optional(spec.get(name).cloned()));
    }
    structure("com.vmware.cis.tasks.get_spec", fields)
}

/// Get Task's typed input; `spec` as for [`get_spec`], or `None`.
pub fn get_input(task: &str, spec: Option<&Value>) -> Value {
    let mut input = Map::new();
    input.insert("task".into(), json!(task));
    input.insert("spec".into(), optional(spec.map(get_spec)));
    structure("operation-input", input)
}

/// The input of operations that take none (session create, get, delete).
pub fn empty_input() -> Value {
    structure("operation-input", Map::new())
}
