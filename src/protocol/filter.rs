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

use crate::protocol::error::VapiError;
use crate::protocol::json::write_str as write_json_str;
use crate::protocol::Family;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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
    /// Parses `GET /rest/cis/tasks` ([`parse_rest`]) or
    /// `POST /api/cis/tasks?action=list` ([`parse_api`]), by family.
    pub fn parse(
        family: Family,
        query: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<ListRequest, VapiError> {
        let query = match family {
            Family::Rest => parse_rest(query, body, limits)?,
            Family::Api => parse_api(query, body, limits)?,
        };
        Ok(ListRequest { family, query })
    }

    /// The canonical key: the family, then [`TaskQuery::key`].
    pub fn key(&self) -> Vec<u8> {
        let mut out = match self.family {
            Family::Rest => b"rest\n".to_vec(),
            Family::Api => b"api\n".to_vec(),
        };
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

    /// The JSON body of `POST /api/cis/tasks?action=list` (also what `GET /rest/cis/tasks`
    /// carries when the query has JSON members outside the model). Canonical: fixed
    /// member order, sorted lists, no empty members, no white space.
    pub fn api_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, name: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json_str(out, name);
            out.push(b':');
        };

        // Members are written in sorted order, the model's and the extra ones merged,
        // so the body is canonical JSON whatever mix of members a query has.
        let (top_extra, fs_extra, rs_extra) = self.split_extra_members();
        let mut top: Vec<(&str, Part)> = vec![("filter_spec", Part::Filter)];
        if self.result != ResultSpec::default() || !rs_extra.is_empty() {
            top.push(("result_spec", Part::Result));
        }
        top.extend(top_extra.iter().map(|(k, v)| (*k, Part::Raw(v))));
        top.sort_by(|a, b| a.0.cmp(b.0));

        for (name, part) in top {
            member(&mut out, name);
            match part {
                Part::Filter => self.write_filter_spec(&mut out, &fs_extra),
                Part::Result => self.write_result_spec(&mut out, &rs_extra),
                Part::Raw(v) => out.extend_from_slice(v.as_bytes()),
                Part::List(_) | Part::Targets | Part::Bool(_) => {
                    unreachable!("only filter_spec, result_spec and extras are top-level")
                }
            }
        }
        out.push(b'}');
        out
    }

    fn split_extra_members(&self) -> ExtraSplit<'_> {
        let mut top = Vec::new();
        let mut fs = Vec::new();
        let mut rs = Vec::new();
        for m in &self.extra_members {
            let list = match m.parent {
                Parent::Top => &mut top,
                Parent::FilterSpec => &mut fs,
                Parent::ResultSpec => &mut rs,
            };
            list.push((m.name.as_str(), m.raw.as_str()));
        }
        (top, fs, rs)
    }

    fn write_filter_spec(&self, out: &mut Vec<u8>, extra: &[(&str, &str)]) {
        let mut members: Vec<(&str, Part)> = Vec::with_capacity(8);
        for field in STRING_FIELDS {
            if !self.filter.list(field).is_empty() {
                members.push((field, Part::List(field)));
            }
        }
        if !self.filter.targets.is_empty() {
            members.push(("targets", Part::Targets));
        }
        members.extend(extra.iter().map(|(k, v)| (*k, Part::Raw(v))));
        members.sort_by(|a, b| a.0.cmp(b.0));
        write_object(out, members, |out, part| match part {
            Part::List(field) => {
                out.push(b'[');
                for (i, v) in self.filter.list(field).iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(out, v);
                }
                out.push(b']');
            }
            Part::Targets => {
                out.push(b'[');
                for (i, t) in self.filter.targets.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"id\":");
                    write_json_str(out, &t.id);
                    out.extend_from_slice(b",\"type\":");
                    write_json_str(out, &t.target_type);
                    out.push(b'}');
                }
                out.push(b']');
            }
            Part::Raw(v) => out.extend_from_slice(v.as_bytes()),
            Part::Filter | Part::Result | Part::Bool(_) => unreachable!("not a filter_spec member"),
        });
    }

    fn write_result_spec(&self, out: &mut Vec<u8>, extra: &[(&str, &str)]) {
        let mut members: Vec<(&str, Part)> = Vec::with_capacity(4);
        if let Some(b) = self.result.exclude_result {
            members.push(("exclude_result", Part::Bool(b)));
        }
        if let Some(b) = self.result.return_all {
            members.push(("return_all", Part::Bool(b)));
        }
        members.extend(extra.iter().map(|(k, v)| (*k, Part::Raw(v))));
        members.sort_by(|a, b| a.0.cmp(b.0));
        write_object(out, members, |out, part| match part {
            Part::Bool(true) => out.extend_from_slice(b"true"),
            Part::Bool(false) => out.extend_from_slice(b"false"),
            Part::Raw(v) => out.extend_from_slice(v.as_bytes()),
            _ => unreachable!("not a result_spec member"),
        });
    }

    /// The query string of `GET /rest/cis/tasks` in VMware's documented indexed form
    /// (`filter_spec.services.1=a&filter_spec.services.2=b`), followed by the query
    /// parameters outside the model. Does not include JSON members outside the model:
    /// see [`TaskQuery::upstream`].
    pub fn rest_query(&self) -> String {
        let mut q = String::with_capacity(256);
        for field in STRING_FIELDS {
            for (i, v) in self.filter.list(field).iter().enumerate() {
                push_indexed(&mut q, field, i + 1, None, v);
            }
        }
        for (i, t) in self.filter.targets.iter().enumerate() {
            push_indexed(&mut q, "targets", i + 1, Some("type"), &t.target_type);
            push_indexed(&mut q, "targets", i + 1, Some("id"), &t.id);
        }
        if let Some(b) = self.result.exclude_result {
            push_param(&mut q, "result_spec.exclude_result", bool_str(b));
        }
        if let Some(b) = self.result.return_all {
            push_param(&mut q, "result_spec.return_all", bool_str(b));
        }
        for (k, v) in &self.extra_params {
            push_param(&mut q, k, v);
        }
        q
    }

    /// Whether the `/rest` query form can carry this query exactly: JSON members
    /// outside the model have no query spelling, and an empty string would be an empty
    /// parameter, which the vAPI runtime skips (widening the filter).
    fn query_expresses_it(&self) -> bool {
        self.extra_members.is_empty()
            && STRING_FIELDS
                .iter()
                .all(|f| self.filter.list(f).iter().all(|v| !v.is_empty()))
            && self
                .filter
                .targets
                .iter()
                .all(|t| !t.target_type.is_empty() && !t.id.is_empty())
    }

    /// The request to send one vCenter in `family`.
    ///
    /// * `/api`: `POST /api/cis/tasks?action=list` with the canonical JSON body.
    /// * `/rest`: `GET /rest/cis/tasks?<indexed query>`; when the query form cannot say
    ///   it exactly (JSON members outside the model, empty strings), the filter goes as a
    ///   JSON body on the GET instead, the form the Python SDK uses.
    pub fn upstream(&self, family: Family) -> UpstreamRequest {
        match family {
            Family::Api => {
                let mut path = String::from("/api/cis/tasks?action=list");
                for (k, v) in &self.extra_params {
                    path.push('&');
                    push_encoded(&mut path, k);
                    path.push('=');
                    push_encoded(&mut path, v);
                }
                UpstreamRequest {
                    method: http::Method::POST,
                    path_and_query: path,
                    body: Some(self.api_body()),
                }
            }
            Family::Rest if self.query_expresses_it() => {
                let q = self.rest_query();
                let path = if q.is_empty() {
                    String::from("/rest/cis/tasks")
                } else {
                    format!("/rest/cis/tasks?{q}")
                };
                UpstreamRequest {
                    method: http::Method::GET,
                    path_and_query: path,
                    body: None,
                }
            }
            Family::Rest => {
                let mut path = String::from("/rest/cis/tasks");
                let mut q = String::new();
                for (k, v) in &self.extra_params {
                    push_param(&mut q, k, v);
                }
                if !q.is_empty() {
                    path.push('?');
                    path.push_str(&q);
                }
                UpstreamRequest {
                    method: http::Method::GET,
                    path_and_query: path,
                    body: Some(self.api_body()),
                }
            }
        }
    }
}

type ExtraSplit<'a> = (
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
);

/// What one member of a canonical JSON object holds.
enum Part<'a> {
    Filter,
    Result,
    List(&'static str),
    Targets,
    Bool(bool),
    Raw(&'a str),
}

fn write_object<'a>(
    out: &mut Vec<u8>,
    members: Vec<(&'a str, Part<'a>)>,
    mut value: impl FnMut(&mut Vec<u8>, Part<'a>),
) {
    out.push(b'{');
    for (i, (name, part)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, name);
        out.push(b':');
        value(out, part);
    }
    out.push(b'}');
}

/// One vCenter request, ready to send (the base URL is the upstream's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: http::Method,
    /// Starts with `/rest/` or `/api/`.
    pub path_and_query: String,
    /// JSON, when the request has a body.
    pub body: Option<Vec<u8>>,
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn push_indexed(q: &mut String, field: &str, index: usize, sub: Option<&str>, value: &str) {
    use std::fmt::Write;
    if !q.is_empty() {
        q.push('&');
    }
    let _ = write!(q, "filter_spec.{field}.{index}");
    if let Some(sub) = sub {
        q.push('.');
        q.push_str(sub);
    }
    q.push('=');
    push_encoded(q, value);
}

fn push_param(q: &mut String, key: &str, value: &str) {
    if !q.is_empty() {
        q.push('&');
    }
    push_encoded(q, key);
    q.push('=');
    push_encoded(q, value);
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:` (task ids are
/// `uuid:service`, and `:` is legal in a query).
fn push_encoded(q: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            q.push(b as char);
        } else {
            q.push('%');
            q.push(HEX[(b >> 4) as usize] as char);
            q.push(HEX[(b & 15) as usize] as char);
        }
    }
}

// ---------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------

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
    check_body_size(body, limits)?;
    let mut q = match query {
        Some(query) => parse_query(query, limits, false)?,
        None => TaskQuery::default(),
    };
    if !is_blank(body) {
        if has_model_params(&q) {
            return Err(VapiError::invalid_argument(
                "The filter is given both in the query string and in the request body; \
                 send it in one of them.",
            ));
        }
        let from_body = parse_json(body, limits)?;
        q.filter = from_body.filter;
        q.result = from_body.result;
        q.extra_members = from_body.extra_members;
    }
    q.normalize();
    Ok(q)
}

/// `POST /api/cis/tasks?action=list`: the filter as a JSON body (empty means `{}`).
/// The `action=list` parameter is consumed; other query parameters are kept as
/// extras and forwarded.
pub fn parse_api(
    query: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<TaskQuery, VapiError> {
    check_body_size(body, limits)?;
    let mut q = match query {
        Some(query) => parse_query(query, limits, true)?,
        None => TaskQuery::default(),
    };
    if has_model_params(&q) {
        return Err(VapiError::invalid_argument(
            "POST /api/cis/tasks?action=list takes its filter in the JSON body, \
             not in query parameters.",
        ));
    }
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

/// Shortens client-supplied text quoted in an error message.
fn quote(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

// ---------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------

/// Collects one list field's values as they arrive: repeated keys and indexed keys.
#[derive(Default)]
struct ListAcc<'q> {
    repeated: Vec<Cow<'q, str>>,
    indexed: Vec<(u32, Cow<'q, str>)>,
}

/// One indexed target as its parameters arrive.
struct TargetParts<'q> {
    index: u32,
    target_type: Option<Cow<'q, str>>,
    id: Option<Cow<'q, str>>,
}

#[derive(Default)]
struct TargetAcc<'q> {
    items: Vec<TargetParts<'q>>,
}

/// Parses a `/rest` query string. With `api` set, only `action=list` and extras are
/// expected (the caller rejects model parameters).
pub fn parse_query(query: &str, limits: &Limits, api: bool) -> Result<TaskQuery, VapiError> {
    if query.len() > limits.max_query_bytes {
        return Err(VapiError::invalid_argument(format!(
            "The query string is {} bytes; the limit is {} bytes.",
            query.len(),
            limits.max_query_bytes
        )));
    }
    let mut lists: [ListAcc; 5] = Default::default();
    let mut targets = TargetAcc::default();
    let mut return_all: Option<bool> = None;
    let mut exclude_result: Option<bool> = None;
    let mut out = TaskQuery::default();

    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        // The vAPI runtime skips parameters with an empty value; so do we.
        if raw_value.is_empty() {
            continue;
        }
        let key = percent_decode(raw_key, raw_key)?;
        let value = percent_decode(raw_value, &key)?;
        if value.is_empty() {
            continue;
        }

        if key == "action" {
            if !api {
                // In the /api family `action` selects the operation; forwarded from a
                // /rest query it would change what an /api request asks.
                return Err(VapiError::invalid_argument(
                    "Query parameter action: GET /rest/cis/tasks does not take it \
                     (in the /api family it selects the operation).",
                ));
            }
            if value != "list" {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter action: expected \"list\", got \"{}\".",
                    quote(&value)
                )));
            }
            continue;
        }

        if let Some(rest) = key.strip_prefix("filter_spec.") {
            let (field, tail) = match rest.split_once('.') {
                Some((f, t)) => (f, Some(t)),
                None => (rest, None),
            };
            if let Some(slot) = STRING_FIELDS.iter().position(|f| *f == field) {
                let acc = &mut lists[slot];
                match tail {
                    None => acc.repeated.push(value),
                    Some(idx) => {
                        let i = parse_index(idx, &key)?;
                        set_indexed(&mut acc.indexed, i, value, &key)?;
                    }
                }
                continue;
            }
            if field == "targets" {
                add_target_param(&mut targets, tail, value, &key)?;
                continue;
            }
        } else if let Some(field) = key.strip_prefix("result_spec.") {
            let slot = match field {
                "return_all" => Some(&mut return_all),
                "exclude_result" => Some(&mut exclude_result),
                _ => None,
            };
            if let Some(slot) = slot {
                let b = parse_bool(&value, &key)?;
                match *slot {
                    Some(prev) if prev != b => {
                        return Err(VapiError::invalid_argument(format!(
                            "Query parameter {key} is given twice with different values."
                        )))
                    }
                    _ => *slot = Some(b),
                }
                continue;
            }
            if field.starts_with("return_all.") || field.starts_with("exclude_result.") {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter {}: a boolean takes no index.",
                    quote(&key)
                )));
            }
        }
        out.extra_params
            .push((key.into_owned(), value.into_owned()));
    }

    for (slot, acc) in lists.into_iter().enumerate() {
        let field = STRING_FIELDS[slot];
        let values = finish_list(acc, field)?;
        if let Some(list) = out.filter.list_mut(field) {
            *list = values;
        }
    }
    out.filter.targets = finish_targets(targets)?;
    out.result = ResultSpec {
        return_all,
        exclude_result,
    };
    out.normalize();
    Ok(out)
}

/// A 1-based index as the vAPI decoder takes it: digits only, no sign, no leading zero.
fn parse_index(s: &str, key: &str) -> Result<u32, VapiError> {
    let valid = !s.is_empty()
        && s.len() <= 9
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    if !valid {
        return Err(VapiError::invalid_argument(format!(
            "Query parameter {}: the list index must be a whole number from 1.",
            quote(key)
        )));
    }
    s.parse::<u32>().map_err(|_| {
        VapiError::invalid_argument(format!("Query parameter {}: bad list index.", quote(key)))
    })
}

fn set_indexed<'q>(
    items: &mut Vec<(u32, Cow<'q, str>)>,
    index: u32,
    value: Cow<'q, str>,
    key: &str,
) -> Result<(), VapiError> {
    if let Some((_, prev)) = items.iter().find(|(i, _)| *i == index) {
        if *prev != value {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter {} is given twice with different values.",
                quote(key)
            )));
        }
        return Ok(());
    }
    items.push((index, value));
    Ok(())
}

/// Checks that indexes run 1..=n without a gap, as the vAPI decoder does
/// ("Element with index 2 is expected"), and returns the values.
fn check_indexes<T>(items: &mut [(u32, T)], param: &str) -> Result<(), VapiError> {
    items.sort_unstable_by_key(|(i, _)| *i);
    for (expected, (i, _)) in (1u32..).zip(items.iter()) {
        if *i != expected {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter {param}: element with index {expected} is expected \
                 (indexes start at 1 and have no gaps)."
            )));
        }
    }
    Ok(())
}

fn finish_list(mut acc: ListAcc<'_>, field: &str) -> Result<Vec<String>, VapiError> {
    if !acc.repeated.is_empty() && !acc.indexed.is_empty() {
        return Err(VapiError::invalid_argument(format!(
            "Query parameter filter_spec.{field}: mixes repeated keys and indexed keys; \
             use one form."
        )));
    }
    if !acc.indexed.is_empty() {
        check_indexes(&mut acc.indexed, &format!("filter_spec.{field}"))?;
        return Ok(acc
            .indexed
            .into_iter()
            .map(|(_, v)| v.into_owned())
            .collect());
    }
    Ok(acc.repeated.into_iter().map(Cow::into_owned).collect())
}

fn add_target_param<'q>(
    targets: &mut TargetAcc<'q>,
    tail: Option<&str>,
    value: Cow<'q, str>,
    key: &str,
) -> Result<(), VapiError> {
    let bad = || {
        VapiError::invalid_argument(format!(
            "Query parameter {}: targets are written filter_spec.targets.N.type and \
             filter_spec.targets.N.id, N from 1.",
            quote(key)
        ))
    };
    let (idx, member) = tail.and_then(|t| t.split_once('.')).ok_or_else(bad)?;
    let i = parse_index(idx, key)?;
    let pos = match targets.items.iter().position(|t| t.index == i) {
        Some(p) => p,
        None => {
            targets.items.push(TargetParts {
                index: i,
                target_type: None,
                id: None,
            });
            targets.items.len() - 1
        }
    };
    let item = &mut targets.items[pos];
    let slot = match member {
        "type" => &mut item.target_type,
        "id" => &mut item.id,
        _ => return Err(bad()),
    };
    match slot {
        Some(prev) if *prev != value => Err(VapiError::invalid_argument(format!(
            "Query parameter {} is given twice with different values.",
            quote(key)
        ))),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn finish_targets(mut acc: TargetAcc<'_>) -> Result<Vec<Target>, VapiError> {
    acc.items.sort_unstable_by_key(|t| t.index);
    let mut out = Vec::with_capacity(acc.items.len());
    for (expected, t) in (1u32..).zip(acc.items) {
        let (i, ty, id) = (t.index, t.target_type, t.id);
        if i != expected {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter filter_spec.targets: element with index {expected} is \
                 expected (indexes start at 1 and have no gaps)."
            )));
        }
        match (ty, id) {
            (Some(ty), Some(id)) => out.push(Target {
                target_type: ty.into_owned(),
                id: id.into_owned(),
            }),
            (Some(_), None) => {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter filter_spec.targets.{i}.id is missing: a target needs \
                     both a type and an id."
                )))
            }
            (None, _) => {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter filter_spec.targets.{i}.type is missing: a target needs \
                     both a type and an id."
                )))
            }
        }
    }
    Ok(out)
}

fn parse_bool(value: &str, key: &str) -> Result<bool, VapiError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(VapiError::invalid_argument(format!(
            "Query parameter {}: expected true or false, got \"{}\".",
            quote(key),
            quote(value)
        )))
    }
}

/// Decodes `+` and `%XX`, strictly: a bad escape or bytes that are not UTF-8 are an
/// error naming `param` (form_urlencoded would replace them silently, and a silently
/// changed filter is a wrong answer).
fn percent_decode<'q>(raw: &'q str, param: &str) -> Result<Cow<'q, str>, VapiError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(VapiError::invalid_argument(format!(
                            "Query parameter {}: invalid percent-escape.",
                            quote(param)
                        )))
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| {
        VapiError::invalid_argument(format!(
            "Query parameter {}: percent-escapes do not decode to UTF-8 text.",
            quote(param)
        ))
    })
}

// ---------------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------------

/// Parses `{"filter_spec": {...}, "result_spec": {...}}`. Members outside the model are
/// kept in `extra_members`; a member given twice, a value of the wrong type, a target
/// without an id, or text that is not JSON is an error naming the member.
pub fn parse_json(body: &[u8], limits: &Limits) -> Result<TaskQuery, VapiError> {
    check_body_size(body, limits)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| VapiError::invalid_argument("The request body is not valid UTF-8 text."))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut out = TaskQuery::default();
    let result = ObjectSeed {
        parent: Parent::Top,
        out: &mut out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    result.map_err(|e| VapiError::invalid_argument(format!("Invalid JSON request body: {e}.")))?;
    out.normalize();
    Ok(out)
}

/// Borrows a string from the input where it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Remembers which members of one object were seen, to reject duplicates.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn check<E: de::Error>(&mut self, path: &str) -> Result<(), E> {
        if self.0.iter().any(|p| p == path) {
            return Err(E::custom(format_args!("member {path} is given twice")));
        }
        self.0.push(path.to_owned());
        Ok(())
    }
}

/// Removes white space outside strings, so an extra member's value is forwarded and
/// keyed the same however the client laid it out.
fn minify(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Reads one of the three objects of a List Tasks body (the body itself,
/// `filter_spec`, `result_spec`) into `out`; members outside the model are kept,
/// with the object they stood in.
struct ObjectSeed<'a> {
    parent: Parent,
    out: &'a mut TaskQuery,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.parent {
            // The body must be an object; `filter_spec` and `result_spec` may be null.
            Parent::Top => d.deserialize_map(self),
            Parent::FilterSpec | Parent::ResultSpec => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self.parent {
            Parent::Top => "a JSON object with filter_spec and result_spec",
            Parent::FilterSpec => "an object or null for filter_spec",
            Parent::ResultSpec => "an object or null for result_spec",
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(CowStr(name)) = map.next_key()? {
            let path = match self.parent {
                Parent::Top => name.to_string(),
                Parent::FilterSpec => format!("filter_spec.{name}"),
                Parent::ResultSpec => format!("result_spec.{name}"),
            };
            seen.check(&path)?;
            let out = &mut *self.out;
            match (self.parent, &*name) {
                (Parent::Top, "filter_spec") => map.next_value_seed(ObjectSeed {
                    parent: Parent::FilterSpec,
                    out,
                })?,
                (Parent::Top, "result_spec") => map.next_value_seed(ObjectSeed {
                    parent: Parent::ResultSpec,
                    out,
                })?,
                (Parent::FilterSpec, "targets") => {
                    out.filter.targets = map.next_value_seed(TargetListSeed)?
                }
                (Parent::FilterSpec, field) if out.filter.list_mut(field).is_some() => {
                    let values = map.next_value_seed(StringListSeed { path: &path })?;
                    if let Some(list) = out.filter.list_mut(field) {
                        *list = values;
                    }
                }
                (Parent::ResultSpec, "return_all") => {
                    out.result.return_all = map.next_value_seed(BoolSeed { path: &path })?
                }
                (Parent::ResultSpec, "exclude_result") => {
                    out.result.exclude_result = map.next_value_seed(BoolSeed { path: &path })?
                }
                _ => {
                    let raw: &RawValue = map.next_value()?;
                    out.extra_members.push(ExtraMember {
                        parent: self.parent,
                        name: name.into_owned(),
                        raw: minify(raw.get()),
                    });
                }
            }
        }
        Ok(())
    }
}

struct BoolSeed<'p> {
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for BoolSeed<'_> {
    type Value = Option<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoolSeed<'_> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "true, false or null for {}", self.path)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
        Ok(Some(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }
}

struct StringListSeed<'p> {
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for StringListSeed<'_> {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringListSeed<'_> {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of strings or null for {}", self.path)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(StrSeed {
            path: self.path,
            index: Some(out.len()),
        })? {
            out.push(v);
        }
        Ok(out)
    }
}

struct StrSeed<'p> {
    path: &'p str,
    /// The position in a list, when the string is a list element.
    index: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "a string for {}[{i}]", self.path),
            None => write!(f, "a string for {}", self.path),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

struct TargetListSeed;

impl<'de> DeserializeSeed<'de> for TargetListSeed {
    type Value = Vec<Target>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Target>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TargetListSeed {
    type Value = Vec<Target>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of {type, id} objects or null for filter_spec.targets")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Target>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Target>, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element_seed(TargetSeed { index: out.len() })? {
            out.push(t);
        }
        Ok(out)
    }
}

struct TargetSeed {
    index: usize,
}

impl<'de> DeserializeSeed<'de> for TargetSeed {
    type Value = Target;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Target, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TargetSeed {
    type Value = Target;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a {{type, id}} object for filter_spec.targets[{}]",
            self.index
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
        let i = self.index;
        let mut ty: Option<String> = None;
        let mut id: Option<String> = None;
        while let Some(CowStr(name)) = map.next_key()? {
            let path = format!("filter_spec.targets[{i}].{name}");
            let slot = match &*name {
                "type" => &mut ty,
                "id" => &mut id,
                _ => {
                    // A target is {type, id} in every vCenter release; anything else is
                    // a client bug, and a set of targets cannot carry it canonically.
                    return Err(de::Error::custom(format_args!(
                        "unknown member {path}: a target has only type and id"
                    )));
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "member {path} is given twice"
                )));
            }
            *slot = Some(map.next_value_seed(StrSeed {
                path: &path,
                index: None,
            })?);
        }
        match (ty, id) {
            (Some(target_type), Some(id)) => Ok(Target { target_type, id }),
            (Some(_), None) => Err(de::Error::custom(format_args!(
                "filter_spec.targets[{i}].id is missing: a target needs both a type and an id"
            ))),
            (None, _) => Err(de::Error::custom(format_args!(
                "filter_spec.targets[{i}].type is missing: a target needs both a type and an id"
            ))),
        }
    }
}
