//! Encoding a query for a vCenter: the canonical `/api` JSON body (also the first part
//! of the cache key), the `/rest` indexed query string, and the request to send.

use super::{Parent, ResultSpec, TaskQuery, STRING_FIELDS};
use crate::protocol::json::write_json_str;
use crate::protocol::{api, jsonrpc, rest, Family};

impl TaskQuery {
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
                let mut path = format!("{}?{}", api::TASKS_PATH, api::LIST_QUERY);
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
                    String::from(rest::TASKS_PATH)
                } else {
                    format!("{}?{q}", rest::TASKS_PATH)
                };
                UpstreamRequest {
                    method: http::Method::GET,
                    path_and_query: path,
                    body: None,
                }
            }
            Family::Rest => {
                let mut path = String::from(rest::TASKS_PATH);
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
            // The call up to its session id: each vCenter's session completes it.
            Family::JsonRpc => UpstreamRequest {
                method: http::Method::POST,
                path_and_query: jsonrpc::PATH.to_owned(),
                body: Some(jsonrpc::envelope::call_head(
                    jsonrpc::TASKS_SERVICE,
                    "list",
                    &jsonrpc::typed::list_input(self),
                )),
            },
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

pub(super) fn push_param(q: &mut String, key: &str, value: &str) {
    if !q.is_empty() {
        q.push('&');
    }
    push_encoded(q, key);
    q.push('=');
    push_encoded(q, value);
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:` (task ids are
/// `uuid:service`, and `:` is legal in a query).
pub(crate) fn push_encoded(q: &mut String, s: &str) {
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
