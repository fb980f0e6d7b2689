//! Get Task: one task's Info, by id, in every protocol.
//!
//! * `/rest`: `GET /rest/cis/tasks/{task}`, options as `spec.return_all` /
//!   `spec.exclude_result` query parameters or a JSON body `{"spec":{..}}` (the SDK in
//!   REST mode sends the body, even `{}`, on the GET);
//! * `/api`: `GET /api/cis/tasks/{task}`, options as `return_all` / `exclude_result`;
//! * JSON-RPC: `com.vmware.cis.tasks` `get`, input `{"task":..,"spec":{..}}`.
//!
//! Every spelling becomes one [`GetTask`]: the family, the task id (decoded) and the
//! options normalized as List Tasks' (unset equals `false`), so the cache keys a
//! question once however it was asked.

use bytes::Bytes;
use http::Method;
use serde_json::{Map, Value};
use std::sync::Arc;

use super::error::VapiError;
use super::filter::{parse_bool, percent_decode, push_encoded, quote, Limits, ResultSpec};
use super::jsonrpc::{self, envelope, typed};
use super::{api, rest, Family};

/// One Get Task question, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GetTask {
    pub family: Family,
    pub task: String,
    pub spec: ResultSpec,
}

/// A Get Task question resolved: its cache key and the request each vCenter is sent.
#[derive(Debug, PartialEq, Eq)]
pub struct ResolvedGet {
    pub family: Family,
    pub task: Arc<str>,
    pub key: Arc<[u8]>,
    pub method: Method,
    pub path_and_query: String,
    /// JSON-RPC: the call up to its session id ([`envelope::call_head`]).
    pub body: Option<Bytes>,
}

/// The task id in a Get Task path (`{tasks path}/{task}`), if `path` is one.
pub(crate) fn task_segment<'p>(tasks_path: &str, path: &'p str) -> Option<&'p str> {
    path.strip_prefix(tasks_path)?
        .strip_prefix('/')
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

impl GetTask {
    /// A REST family's Get Task request: `path` is `{tasks path}/{task}`. (An `/api`
    /// GET carries no body, so a body there is ignored, as vCenter does.)
    pub fn parse(
        family: Family,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<GetTask, VapiError> {
        let tasks = match family {
            Family::Rest => rest::TASKS_PATH,
            Family::Api => api::TASKS_PATH,
            Family::JsonRpc => {
                return Err(VapiError::invalid_argument(
                    "JSON-RPC names the task in the call's input.",
                ))
            }
        };
        let segment = task_segment(tasks, path)
            .ok_or_else(|| VapiError::invalid_argument("The path names no task."))?;
        match family {
            Family::Rest => GetTask::parse_rest(segment, query, body, limits),
            _ => GetTask::parse_api(segment, query),
        }
    }

    /// `GET /rest/cis/tasks/{task}` with its query and body.
    pub fn parse_rest(
        segment: &str,
        query: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<GetTask, VapiError> {
        let task = decode_segment(segment)?;
        let mut spec = query_spec(query, "spec.")?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            if spec != ResultSpec::default() {
                return Err(VapiError::invalid_argument(
                    "The get spec is given both in the query string and in the request body; \
                     send it in one of them.",
                ));
            }
            spec = body_spec(body, limits)?;
        }
        Ok(GetTask::new(Family::Rest, task, spec))
    }

    /// `GET /api/cis/tasks/{task}` with its query.
    pub fn parse_api(segment: &str, query: Option<&str>) -> Result<GetTask, VapiError> {
        let task = decode_segment(segment)?;
        Ok(GetTask::new(Family::Api, task, query_spec(query, "")?))
    }

    /// JSON-RPC `com.vmware.cis.tasks` `get`: its typed input.
    pub fn parse_jsonrpc(input: &str) -> Result<GetTask, VapiError> {
        let mut fields = typed::operation_input(input)?;
        let task = match fields.remove("task") {
            Some(Value::String(t)) if !t.is_empty() => t,
            Some(_) => {
                return Err(VapiError::invalid_argument(
                    "task: must be a non-empty string.",
                ))
            }
            None => {
                return Err(VapiError::invalid_argument(
                    "task: the parameter is required.",
                ))
            }
        };
        let spec = match fields.remove("spec") {
            None => ResultSpec::default(),
            Some(Value::Object(spec)) => spec_fields(spec, "spec.")?,
            Some(_) => {
                return Err(VapiError::invalid_argument(
                    "spec: must be a get_spec structure.",
                ))
            }
        };
        if let Some(name) = fields.keys().next() {
            return Err(VapiError::invalid_argument(format!(
                "{}: not a parameter of com.vmware.cis.tasks get.",
                quote(name)
            )));
        }
        Ok(GetTask::new(Family::JsonRpc, task, spec))
    }

    fn new(family: Family, task: String, mut spec: ResultSpec) -> GetTask {
        spec.normalize();
        GetTask { family, task, spec }
    }

    /// The canonical key: `get`, the family, the options, the task id.
    pub fn key(&self) -> Vec<u8> {
        let flag = |b: Option<bool>| if b == Some(true) { b'1' } else { b'0' };
        let mut out = Vec::with_capacity(16 + self.task.len());
        out.extend_from_slice(b"get\n");
        out.extend_from_slice(self.family.as_str().as_bytes());
        out.push(b'\n');
        out.push(flag(self.spec.return_all));
        out.push(flag(self.spec.exclude_result));
        out.push(b'\n');
        out.extend_from_slice(self.task.as_bytes());
        out
    }

    /// The question resolved: key and upstream request, in the client's family.
    pub fn resolve(&self) -> ResolvedGet {
        let (method, path_and_query, body) = match self.family {
            Family::Rest | Family::Api => {
                let (tasks, prefix) = match self.family {
                    Family::Rest => (rest::TASKS_PATH, "spec."),
                    _ => (api::TASKS_PATH, ""),
                };
                let mut path = format!("{tasks}/");
                push_encoded(&mut path, &self.task);
                let mut sep = '?';
                for (name, set) in [
                    ("return_all", self.spec.return_all),
                    ("exclude_result", self.spec.exclude_result),
                ] {
                    if set == Some(true) {
                        path.push(sep);
                        path.push_str(prefix);
                        path.push_str(name);
                        path.push_str("=true");
                        sep = '&';
                    }
                }
                (Method::GET, path, None)
            }
            Family::JsonRpc => {
                let input = typed::get_input(&self.task, &self.spec);
                let head = envelope::call_head(jsonrpc::TASKS_SERVICE, "get", &input);
                (
                    Method::POST,
                    jsonrpc::PATH.to_owned(),
                    Some(Bytes::from(head)),
                )
            }
        };
        ResolvedGet {
            family: self.family,
            task: self.task.as_str().into(),
            key: self.key().into(),
            method,
            path_and_query,
            body,
        }
    }
}

fn decode_segment(segment: &str) -> Result<String, VapiError> {
    // In a path `+` is itself, not a space.
    let escaped = segment.replace('+', "%2B");
    Ok(percent_decode(&escaped, "task")?.into_owned())
}

/// The options in a query string, each named `prefix` + field.
fn query_spec(query: Option<&str>, prefix: &str) -> Result<ResultSpec, VapiError> {
    let mut spec = ResultSpec::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, k)?;
        let v = percent_decode(v, &k)?;
        let field = match k.strip_prefix(prefix) {
            Some("return_all") => &mut spec.return_all,
            Some("exclude_result") => &mut spec.exclude_result,
            _ => {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter {}: Get Task takes only {prefix}return_all and {prefix}exclude_result.",
                    quote(&k)
                )))
            }
        };
        *field = Some(parse_bool(&v, &k)?);
    }
    Ok(spec)
}

/// `{"spec":{"return_all":..,"exclude_result":..}}`, the SDK's REST-mode body.
fn body_spec(body: &[u8], limits: &Limits) -> Result<ResultSpec, VapiError> {
    if body.len() > limits.max_body_bytes {
        return Err(VapiError::invalid_argument(format!(
            "The request body is {} bytes; the limit is {} bytes.",
            body.len(),
            limits.max_body_bytes
        )));
    }
    let mut top: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        VapiError::invalid_argument(format!("The request body is not a JSON object: {e}"))
    })?;
    let spec = match top.remove("spec") {
        None | Some(Value::Null) => ResultSpec::default(),
        Some(Value::Object(spec)) => spec_fields(spec, "spec.")?,
        Some(_) => return Err(VapiError::invalid_argument("spec: must be an object.")),
    };
    if let Some(name) = top.keys().next() {
        return Err(VapiError::invalid_argument(format!(
            "{}: Get Task's body takes only spec.",
            quote(name)
        )));
    }
    Ok(spec)
}

fn spec_fields(spec: Map<String, Value>, at: &str) -> Result<ResultSpec, VapiError> {
    let mut out = ResultSpec::default();
    for (name, value) in spec {
        let field = match name.as_str() {
            "return_all" => &mut out.return_all,
            "exclude_result" => &mut out.exclude_result,
            _ => {
                return Err(VapiError::invalid_argument(format!(
                    "{at}{}: not a field of the get spec.",
                    quote(&name)
                )))
            }
        };
        *field = match value {
            Value::Bool(b) => Some(b),
            Value::Null => None,
            _ => {
                return Err(VapiError::invalid_argument(format!(
                    "{at}{name}: expected true or false."
                )))
            }
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "52f9f1b0-160a-25fe-fd1e-e7526df80e0d:com.vmware.vcenter.vm";

    #[test]
    fn every_spelling_of_one_question_has_one_key() {
        let l = Limits::default();
        let exclude = ResultSpec {
            return_all: None,
            exclude_result: Some(true),
        };
        let rest_q = GetTask::parse_rest(ID, Some("spec.exclude_result=true"), b"", &l).unwrap();
        let rest_b =
            GetTask::parse_rest(ID, None, br#"{"spec":{"exclude_result":true}}"#, &l).unwrap();
        assert_eq!(rest_q, rest_b);
        assert_eq!(rest_q.spec, exclude);
        let plain = GetTask::parse_rest(ID, None, b"{}", &l).unwrap();
        let falsy = GetTask::parse_rest(ID, Some("spec.exclude_result=false"), b"", &l).unwrap();
        assert_eq!(plain.key(), falsy.key());
        assert_ne!(plain.key(), rest_q.key());
        let api = GetTask::parse_api(ID, Some("exclude_result=true")).unwrap();
        assert_eq!(api.spec, exclude);
        assert_ne!(api.key(), rest_q.key(), "families are cached apart");
        let escaped =
            GetTask::parse_api(&ID.replace(':', "%3A"), Some("exclude_result=true")).unwrap();
        assert_eq!(escaped, api);
        let rpc = GetTask::parse_jsonrpc(&format!(
            r#"{{"STRUCTURE":{{"operation-input":{{"task":"{ID}","spec":{{"OPTIONAL":{{"STRUCTURE":{{"com.vmware.cis.tasks.get_spec":{{"return_all":{{"OPTIONAL":null}},"exclude_result":{{"OPTIONAL":true}}}}}}}}}}}}}}}}"#
        ))
        .unwrap();
        assert_eq!((rpc.task.as_str(), rpc.spec), (ID, exclude));
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let l = Limits::default();
        let e = GetTask::parse_api(ID, Some("exclude_results=true")).unwrap_err();
        assert!(e.message.contains("exclude_results"), "{}", e.message);
        let e = GetTask::parse_rest(ID, Some("spec.exclude_result=maybe"), b"", &l).unwrap_err();
        assert!(e.message.contains("spec.exclude_result"), "{}", e.message);
        let e = GetTask::parse_rest(ID, None, br#"{"spec":{"exclude":true}}"#, &l).unwrap_err();
        assert!(e.message.contains("spec.exclude"), "{}", e.message);
        let e = GetTask::parse_jsonrpc(
            r#"{"STRUCTURE":{"operation-input":{"spec":{"OPTIONAL":null}}}}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("task"), "{}", e.message);
        assert!(GetTask::parse_api("%zz", None).is_err());
    }

    #[test]
    fn upstream_requests_in_each_family() {
        let l = Limits::default();
        let r = GetTask::parse_rest(ID, Some("spec.exclude_result=true"), b"", &l)
            .unwrap()
            .resolve();
        assert_eq!(
            r.path_and_query,
            format!("/rest/cis/tasks/{ID}?spec.exclude_result=true")
        );
        let a = GetTask::parse_api("a%2Fb", None).unwrap().resolve();
        assert_eq!(a.path_and_query, "/api/cis/tasks/a%2Fb");
        assert_eq!(
            task_segment("/api/cis/tasks", "/api/cis/tasks/x"),
            Some("x")
        );
        assert_eq!(task_segment("/api/cis/tasks", "/api/cis/tasks/"), None);
        assert_eq!(task_segment("/api/cis/tasks", "/api/cis/tasks/x/y"), None);
    }
}
