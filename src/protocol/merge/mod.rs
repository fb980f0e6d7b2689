//! Merge several vCenters' List Tasks answers into one answer, in either family.
//!
//! * `/rest` bodies are `{"value":[{"key":"<id>","value":{Info}}, ...]}`;
//! * `/api` bodies are `{"<id>":{Info}, ...}`.
//!
//! Info objects are never deserialized: each is borrowed from the upstream body as a
//! [`RawValue`](serde_json::value::RawValue) and copied to the output byte for byte,
//! so a client sees exactly what its vCenter sent (nested maps, opaque `result`s and
//! all) and the merge costs one validating scan of the input plus one copy.
//!
//! The output is sorted by task id, so equal inputs give byte-equal outputs whatever
//! order the vCenters answered in. A task id that two vCenters both report (nothing
//! makes ids unique across vCenters) keeps the copy of the vCenter listed first in the
//! configuration; each such collision is reported so it can be logged and counted.

mod parse;
mod render;
mod stream;

pub use parse::{parse_body, ParsedBody};
pub use render::merge_parsed_into;
pub use stream::StreamParser;

use crate::protocol::{ErrorKind, Family, VapiError};

/// vCenter's own cap on List Tasks answers.
pub const VCENTER_MAX_TASKS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// More merged tasks than this is `resource_inaccessible` (404), as one vCenter
    /// answers when over its own limit. `None` returns them all.
    pub max_tasks: Option<usize>,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            max_tasks: Some(VCENTER_MAX_TASKS),
        }
    }
}

/// One vCenter's successful List Tasks body.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamBody<'a> {
    /// The vCenter's configured name, for errors.
    pub vcenter: &'a str,
    pub body: &'a [u8],
}

/// A task id that more than one answer reported; the first vCenter's copy was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub task: String,
    /// Index into the inputs of the vCenter whose copy was kept.
    pub kept: usize,
    /// Index into the inputs of the vCenter whose copy was dropped.
    pub dropped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged body, in the family asked for.
    pub body: Vec<u8>,
    /// How many tasks it holds.
    pub tasks: usize,
    pub duplicates: Vec<Duplicate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A vCenter answered 200 with a body that is not a List Tasks answer.
    #[error("vCenter {vcenter} sent a List Tasks answer that cannot be read: {reason}")]
    Malformed { vcenter: String, reason: String },
    /// More tasks than `max_tasks`.
    #[error("{count} tasks match the filter across all vCenters; the limit is {max}")]
    TooMany { count: usize, max: usize },
}

impl MergeError {
    /// The error the client gets: an unreadable upstream answer is, like a transport
    /// failure, `service_unavailable` naming the vCenter; too many tasks is
    /// `resource_inaccessible`, the error vCenter itself gives past its limit.
    pub fn to_vapi(&self) -> VapiError {
        match self {
            MergeError::Malformed { .. } => VapiError::new(
                ErrorKind::ServiceUnavailable,
                "vcproxy.upstream.malformed",
                self.to_string(),
            ),
            MergeError::TooMany { .. } => VapiError::new(
                ErrorKind::ResourceInaccessible,
                "vcproxy.merge.too_many_tasks",
                format!("{self}; narrow the filter."),
            ),
        }
    }
}

/// Merges `inputs`, all in `family`, into one body in the same family.
pub fn merge(
    family: Family,
    inputs: &[UpstreamBody<'_>],
    opts: &MergeOptions,
) -> Result<Merged, MergeError> {
    let parsed = inputs
        .iter()
        .map(|input| parse_body(family, *input))
        .collect::<Result<Vec<_>, _>>()?;
    merge_parsed(family, inputs, &parsed, opts)
}

/// Merges answers already read with [`parse_body`]; `parsed[i]` belongs to `inputs[i]`.
pub fn merge_parsed(
    family: Family,
    inputs: &[UpstreamBody<'_>],
    parsed: &[ParsedBody],
    opts: &MergeOptions,
) -> Result<Merged, MergeError> {
    merge_parsed_into(family, inputs, parsed, opts, Vec::new())
}
