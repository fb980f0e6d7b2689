//! List Tasks filters: parse every encoding clients send, normalize, key, re-encode.
//!
//! Dashboards, scripts and SDKs ask the same question in many spellings: repeated keys
//! or 1-based indexed keys in a `/rest` query string, a JSON body on a `/rest` GET (the
//! official Python SDK), or a JSON body on `POST /api/cis/tasks?action=list`. The
//! cache must see one question, so every spelling is reduced to one canonical
//! [`TaskQuery`] whose [`TaskQuery::key`] is a compact byte string:
//!
//! * list values are sets: sorted, duplicates removed; an empty list is an unset field;
//! * `false` and unset booleans are the same (vCenter documents unset as false);
//! * key order, encoding style, percent-escapes and `+` make no difference;
//! * parameters outside the model are never dropped: they stay (sorted) in the key and
//!   are forwarded verbatim, so vCenter answers them itself.
//!
//! Malformed input is an `invalid_argument` [`VapiError`] naming the parameter; nothing
//! here panics on client input, and nothing allocates in proportion to an index a
//! client wrote.
//!
//! Semantic rules that only vCenter can judge (at least one of `tasks`/`services`,
//! valid status names) are left to vCenter, whose answer passes through unchanged.

mod encode;
mod json_body;
mod query;
mod resolve;

pub(crate) use encode::push_encoded;
pub use encode::UpstreamRequest;
pub use json_body::parse_json;
pub use query::parse_query;
pub(crate) use query::{parse_bool, percent_decode, quote};
pub use resolve::{Resolved, Resolver};

use crate::protocol::{Family, VapiError};
use encode::push_param;

/// Input size limits. Both default to 64 KiB: a filter naming a few hundred tasks fits
/// comfortably, and a client cannot make the proxy buffer megabytes per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_query_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_query_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// A task target: the object an operation created or worked on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub target_type: String,
    pub id: String,
}

/// `Tasks.FilterSpec`. Within a field values are alternatives; across fields all set
/// fields must match. In a normalized spec every list is sorted and deduplicated, and
/// an empty list means "unset".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FilterSpec {
    pub tasks: Vec<String>,
    pub services: Vec<String>,
    pub operations: Vec<String>,
    pub status: Vec<String>,
    pub users: Vec<String>,
    pub targets: Vec<Target>,
}

/// `Tasks.GetSpec` as List Tasks takes it. Unset means false for both fields, so a
/// normalized spec holds `Some(true)` or `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResultSpec {
    pub return_all: Option<bool>,
    pub exclude_result: Option<bool>,
}

/// One List Tasks question, normalized. Equal values ask vCenter the same question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TaskQuery {
    pub filter: FilterSpec,
    pub result: ResultSpec,
    /// Query parameters outside the model, percent-decoded, sorted by key then value.
    /// Forwarded in the upstream query string.
    pub extra_params: Vec<(String, String)>,
    /// JSON members outside the model, sorted. Forwarded in the upstream JSON body.
    pub extra_members: Vec<ExtraMember>,
}

/// The object a JSON member outside the model stood in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parent {
    /// The request body itself.
    Top,
    FilterSpec,
    ResultSpec,
}

/// A JSON member outside the model, kept to be forwarded as the client wrote it.
///
/// Where it stood is a field of its own, not part of a dotted name: a top-level
/// member literally named `"filter_spec.x"` is not `filter_spec`'s member `x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtraMember {
    pub parent: Parent,
    pub name: String,
    /// The value's JSON text, white space outside strings removed.
    pub raw: String,
}

impl ExtraMember {
    /// `name`, `filter_spec.name` or `result_spec.name`, for messages.
    pub fn path(&self) -> String {
        match self.parent {
            Parent::Top => self.name.clone(),
            Parent::FilterSpec => format!("filter_spec.{}", self.name),
            Parent::ResultSpec => format!("result_spec.{}", self.name),
        }
    }
}

/// One List Tasks request: the API family it came in, and its question.
///
/// The family is part of the request, not of the question: the same filter asked in
/// `/rest` and in `/api` gets answers of different shapes, so the two are cached
/// apart ([`ListRequest::key`]) and each is sent upstream in its own family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListRequest {
    pub family: Family,
    pub query: TaskQuery,
}

impl ListRequest {
    /// Parses `GET /rest/cis/tasks` ([`parse_rest`]),
    /// `POST /api/cis/tasks?action=list` ([`parse_api`]) or a JSON-RPC call's typed
    /// input ([`parse_jsonrpc`], `body` is `params.input`), by family.
    pub fn parse(
        family: Family,
        query: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<ListRequest, VapiError> {
        let query = match family {
            Family::Rest => parse_rest(query, body, limits)?,
            Family::Api => parse_api(query, body, limits)?,
            Family::JsonRpc => parse_jsonrpc(body, limits)?,
        };
        Ok(ListRequest { family, query })
    }

    /// The canonical key: the family, then [`TaskQuery::key`].
    pub fn key(&self) -> Vec<u8> {
        let mut out = self.family.as_str().as_bytes().to_vec();
        out.push(b'\n');
        out.extend_from_slice(&self.query.key());
        out
    }

    /// The request to send each vCenter, in the family the client used.
    pub fn upstream(&self) -> UpstreamRequest {
        self.query.upstream(self.family)
    }
}

/// The list fields of `FilterSpec` that hold strings, in their canonical (sorted) order.
const STRING_FIELDS: [&str; 5] = ["operations", "services", "status", "tasks", "users"];

impl FilterSpec {
    fn list_mut(&mut self, field: &str) -> Option<&mut Vec<String>> {
        Some(match field {
            "operations" => &mut self.operations,
            "services" => &mut self.services,
            "status" => &mut self.status,
            "tasks" => &mut self.tasks,
            "users" => &mut self.users,
            _ => return None,
        })
    }

    fn list(&self, field: &str) -> &[String] {
        match field {
            "operations" => &self.operations,
            "services" => &self.services,
            "status" => &self.status,
            "tasks" => &self.tasks,
            "users" => &self.users,
            _ => &[],
        }
    }

    /// Sorts and deduplicates every list.
    pub fn normalize(&mut self) {
        for field in STRING_FIELDS {
            if let Some(list) = self.list_mut(field) {
                list.sort_unstable();
                list.dedup();
            }
        }
        self.targets.sort_unstable();
        self.targets.dedup();
    }

    /// True when no field is set: the filter matches every task.
    pub fn is_empty(&self) -> bool {
        STRING_FIELDS.iter().all(|f| self.list(f).is_empty()) && self.targets.is_empty()
    }
}

impl ResultSpec {
    /// Unset and `false` mean the same; keep only `Some(true)`.
    pub fn normalize(&mut self) {
        if self.return_all != Some(true) {
            self.return_all = None;
        }
        if self.exclude_result != Some(true) {
            self.exclude_result = None;
        }
    }
}

impl TaskQuery {
    /// Brings the query into canonical form; parsers return normalized queries already.
    pub fn normalize(&mut self) {
        self.filter.normalize();
        self.result.normalize();
        self.extra_params.sort();
        self.extra_members.sort();
    }

    /// The canonical cache key: the canonical `/api` body, then, if there are query
    /// parameters outside the model, a newline and their canonical query encoding.
    ///
    /// Two normalized queries have equal keys exactly when they are equal.
    pub fn key(&self) -> Vec<u8> {
        let mut out = self.api_body();
        if !self.extra_params.is_empty() {
            out.push(b'\n');
            let mut q = String::new();
            for (k, v) in &self.extra_params {
                push_param(&mut q, k, v);
            }
            out.extend_from_slice(q.as_bytes());
        }
        out
    }
}

/// What both families start from: the body within its limit, and the query string's
/// parameters (`api`: as `/api` reads them).
fn query_params(
    query: Option<&str>,
    body: &[u8],
    limits: &Limits,
    api: bool,
) -> Result<TaskQuery, VapiError> {
    check_body_size(body, limits)?;
    match query {
        Some(query) => parse_query(query, limits, api),
        None => Ok(TaskQuery::default()),
    }
}

/// `GET /rest/cis/tasks`: the filter in the query string (indexed or repeated keys),
/// or as a JSON body (the Python SDK), whatever the body's content type.
///
/// A request that sets filter parameters in both the query and the body is rejected:
/// which one vCenter would honour is unknown, and guessing would cache a wrong answer.
pub fn parse_rest(
    query: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<TaskQuery, VapiError> {
    let q = query_params(query, body, limits, false)?;
    if !is_blank(body) && has_model_params(&q) {
        return Err(VapiError::invalid_argument(
            "The filter is given both in the query string and in the request body; \
             send it in one of them.",
        ));
    }
    with_body(q, body, limits)
}

/// `POST /api/cis/tasks?action=list`: the filter as a JSON body (empty means `{}`).
/// The `action=list` parameter is consumed; other query parameters are kept as
/// extras and forwarded.
pub fn parse_api(
    query: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<TaskQuery, VapiError> {
    let q = query_params(query, body, limits, true)?;
    if has_model_params(&q) {
        return Err(VapiError::invalid_argument(
            "POST /api/cis/tasks?action=list takes its filter in the JSON body, \
             not in query parameters.",
        ));
    }
    with_body(q, body, limits)
}

/// JSON-RPC `com.vmware.cis.tasks` `list`: the typed input, unwrapped into the
/// `/api` body it is equal to and read as one, so both share the canonical key.
/// Parameters outside the model are refused: their types are unknown, so they
/// could not be sent on typed.
pub fn parse_jsonrpc(input: &[u8], limits: &Limits) -> Result<TaskQuery, VapiError> {
    check_body_size(input, limits)?;
    let input = std::str::from_utf8(input)
        .map_err(|_| VapiError::invalid_argument("params.input is not UTF-8 text."))?;
    let plain = crate::protocol::jsonrpc::typed::operation_input(input)?;
    let q = with_body(
        TaskQuery::default(),
        serde_json::Value::Object(plain).to_string().as_bytes(),
        limits,
    )?;
    if let Some(extra) = q.extra_members.first() {
        return Err(VapiError::invalid_argument(format!(
            "{}: not a parameter of com.vmware.cis.tasks list.",
            query::quote(&extra.path())
        )));
    }
    Ok(q)
}

/// What both families end with: the JSON body's filter, if any, over the query's
/// other parameters, normalized.
fn with_body(mut q: TaskQuery, body: &[u8], limits: &Limits) -> Result<TaskQuery, VapiError> {
    if !is_blank(body) {
        let from_body = parse_json(body, limits)?;
        q.filter = from_body.filter;
        q.result = from_body.result;
        q.extra_members = from_body.extra_members;
    }
    q.normalize();
    Ok(q)
}

fn has_model_params(q: &TaskQuery) -> bool {
    !q.filter.is_empty() || q.result != ResultSpec::default()
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(|b| b.is_ascii_whitespace())
}

fn check_body_size(body: &[u8], limits: &Limits) -> Result<(), VapiError> {
    if body.len() > limits.max_body_bytes {
        return Err(VapiError::invalid_argument(format!(
            "The request body is {} bytes; the limit is {} bytes.",
            body.len(),
            limits.max_body_bytes
        )));
    }
    Ok(())
}
