//! Merge several vCenters' List Tasks answers into one answer, in either family.
//!
//! * `/rest` bodies are `{"value":[{"key":"<id>","value":{Info}}, ...]}`;
//! * `/api` bodies are `{"<id>":{Info}, ...}`.
//!
//! Info objects are never deserialized: each is borrowed from the upstream body as a
//! [`RawValue`] and copied to the output byte for byte, so a client sees exactly what
//! its vCenter sent (nested maps, opaque `result`s and all) and the merge costs one
//! validating scan of the input plus one copy.
//!
//! The output is sorted by task id, so equal inputs give byte-equal outputs whatever
//! order the vCenters answered in. A task id that two vCenters both report (nothing
//! makes ids unique across vCenters) keeps the copy of the vCenter listed first in the
//! configuration; each such collision is reported so it can be logged and counted.

use crate::vapi_error::{ErrorKind, Family, VapiError};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

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

/// One vCenter's answer, read: where each task's id and info sit in its body.
///
/// It holds offsets rather than references, so it can be made the moment that body
/// arrives, while other vCenters are still answering, and kept beside the body: the
/// fan-out parses each answer as it lands, and only the last one's parse, the sort
/// and the copy remain after the slowest vCenter.
#[derive(Debug, Clone, Default)]
pub struct ParsedBody {
    entries: Vec<Located>,
}

impl ParsedBody {
    /// How many tasks the body holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug, Clone)]
struct Located {
    id: IdAt,
    info: Range<usize>,
}

#[derive(Debug, Clone)]
enum IdAt {
    /// The id's text in the body, between the quotes; it had no escapes.
    Span(Range<usize>),
    /// The id had escapes: here it is decoded.
    Decoded(Box<str>),
}

/// One task borrowed from an upstream body, while parsing.
struct Entry<'a> {
    id: Cow<'a, str>,
    info: &'a RawValue,
}

/// Reads one vCenter's List Tasks answer (in `family`) without deserializing tasks.
pub fn parse_body(family: Family, input: UpstreamBody<'_>) -> Result<ParsedBody, MergeError> {
    let malformed = |reason: String| MergeError::Malformed {
        vcenter: input.vcenter.to_owned(),
        reason,
    };
    let text =
        std::str::from_utf8(input.body).map_err(|e| malformed(format!("not UTF-8 ({e})")))?;
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    BodySeed {
        family,
        out: &mut entries,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| malformed(e.to_string()))?;

    let base = text.as_ptr() as usize;
    let span = |s: &str| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    Ok(ParsedBody {
        entries: entries
            .into_iter()
            .map(|e| Located {
                id: match e.id {
                    Cow::Borrowed(s) => IdAt::Span(span(s)),
                    Cow::Owned(s) => IdAt::Decoded(s.into_boxed_str()),
                },
                info: span(e.info.get()),
            })
            .collect(),
    })
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

/// A task ready to sort and write: its id and info, borrowed from its body.
struct Item<'a> {
    id: &'a str,
    /// The id arrived escaped, so it must be escaped again when written.
    escape: bool,
    info: &'a [u8],
    source: usize,
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

/// [`merge_parsed`], writing the answer into `out` (cleared first). A caller that
/// knows the answer's size early can hand in a buffer it has already touched, so the
/// page faults of a fresh multi-megabyte allocation happen while it waits for the
/// slowest vCenter rather than after.
pub fn merge_parsed_into(
    family: Family,
    inputs: &[UpstreamBody<'_>],
    parsed: &[ParsedBody],
    opts: &MergeOptions,
    out: Vec<u8>,
) -> Result<Merged, MergeError> {
    assert_eq!(inputs.len(), parsed.len(), "one parsed body per input");
    let mut items: Vec<Item<'_>> = Vec::with_capacity(parsed.iter().map(ParsedBody::len).sum());
    let mut input_bytes = 0;
    for (source, (input, p)) in inputs.iter().zip(parsed).enumerate() {
        input_bytes += input.body.len();
        for e in &p.entries {
            let (id, escape) = match &e.id {
                // The span was cut from validated UTF-8 at character boundaries.
                IdAt::Span(r) => (
                    std::str::from_utf8(&input.body[r.clone()]).unwrap_or(""),
                    false,
                ),
                IdAt::Decoded(s) => (&**s, true),
            };
            items.push(Item {
                id,
                escape,
                info: &input.body[e.info.clone()],
                source,
            });
        }
    }

    // Stable: equal ids keep input order, so the first vCenter in config order wins,
    // and within one body the first occurrence wins.
    items.sort_by(|a, b| a.id.cmp(b.id));
    let mut duplicates = Vec::new();
    items.dedup_by(|later, kept| {
        let same = later.id == kept.id;
        if same {
            duplicates.push(Duplicate {
                task: later.id.to_owned(),
                kept: kept.source,
                dropped: later.source,
            });
        }
        same
    });

    if let Some(max) = opts.max_tasks {
        if items.len() > max {
            return Err(MergeError::TooMany {
                count: items.len(),
                max,
            });
        }
    }

    let mut body = render(family, &items, input_bytes, out);
    // The answer is kept in the cache: give back what the estimate over-reserved.
    body.shrink_to_fit();
    Ok(Merged {
        body,
        tasks: items.len(),
        duplicates,
    })
}

fn render(family: Family, entries: &[Item<'_>], input_bytes: usize, mut out: Vec<u8>) -> Vec<u8> {
    // The output is never larger than the inputs plus the per-entry wrapping.
    out.clear();
    out.reserve(input_bytes + entries.len() * 24 + 16);
    match family {
        Family::Api => {
            out.push(b'{');
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                e.write_id(&mut out);
                out.push(b':');
                out.extend_from_slice(e.info);
            }
            out.push(b'}');
        }
        Family::Rest => {
            out.extend_from_slice(b"{\"value\":[");
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"key\":");
                e.write_id(&mut out);
                out.extend_from_slice(b",\"value\":");
                out.extend_from_slice(e.info);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
    }
    out
}

impl Item<'_> {
    /// Writes the task id as a JSON string. An id borrowed from its body had no
    /// escapes there, so it needs none here (JSON strings carry `"`, `\\` and control
    /// characters only escaped): copy it. Only ids that arrived escaped go through
    /// the escaper.
    fn write_id(&self, out: &mut Vec<u8>) {
        if self.escape {
            crate::vapi_error::write_json_str(out, self.id);
        } else {
            out.push(b'"');
            out.extend_from_slice(self.id.as_bytes());
            out.push(b'"');
        }
    }
}

// ---------------------------------------------------------------------------------
// Reading upstream bodies without deserializing the tasks
// ---------------------------------------------------------------------------------

/// A task's info must be a JSON object; anything else is not a List Tasks answer.
fn info_object<'de, E: de::Error>(id: &str, info: &'de RawValue) -> Result<&'de RawValue, E> {
    if info.get().starts_with('{') {
        Ok(info)
    } else {
        Err(E::custom(format_args!(
            "the info of task {id:?} is not a JSON object"
        )))
    }
}

struct Id<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Id<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a task id string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Id(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

struct BodySeed<'o, 'de> {
    family: Family,
    out: &'o mut Vec<Entry<'de>>,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.family {
            Family::Rest => {
                f.write_str(r#"a /rest List Tasks answer {"value":[{"key":..,"value":..}]}"#)
            }
            Family::Api => f.write_str("an /api List Tasks answer (an object of task id to info)"),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.family {
            Family::Api => {
                if let Some(n) = map.size_hint() {
                    self.out.reserve(n);
                }
                while let Some(Id(id)) = map.next_key()? {
                    let info = info_object::<A::Error>(&id, map.next_value()?)?;
                    self.out.push(Entry { id, info });
                }
            }
            Family::Rest => {
                let mut seen_value = false;
                while let Some(Id(name)) = map.next_key()? {
                    if name != "value" {
                        return Err(de::Error::custom(format_args!(
                            "unexpected member {name:?} beside \"value\""
                        )));
                    }
                    if std::mem::replace(&mut seen_value, true) {
                        return Err(de::Error::custom("member \"value\" is given twice"));
                    }
                    map.next_value_seed(RestListSeed {
                        out: &mut *self.out,
                    })?;
                }
                if !seen_value {
                    return Err(de::Error::custom("member \"value\" is missing"));
                }
            }
        }
        Ok(())
    }
}

struct RestListSeed<'o, 'de> {
    out: &'o mut Vec<Entry<'de>>,
}

impl<'de> DeserializeSeed<'de> for RestListSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RestListSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of {\"key\", \"value\"} entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element_seed(RestEntrySeed)? {
            self.out.push(entry);
        }
        Ok(())
    }
}

struct RestEntrySeed;

impl<'de> DeserializeSeed<'de> for RestEntrySeed {
    type Value = Entry<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RestEntrySeed {
    type Value = Entry<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a {\"key\": task id, \"value\": info} entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry<'de>, A::Error> {
        let mut id = None;
        let mut info = None;
        while let Some(Id(name)) = map.next_key()? {
            match &*name {
                "key" if id.is_none() => id = Some(map.next_value::<Id>()?.0),
                "value" if info.is_none() => info = Some(map.next_value::<&RawValue>()?),
                "key" | "value" => {
                    return Err(de::Error::custom(format_args!(
                        "entry member {name:?} is given twice"
                    )))
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::custom(format_args!(
                        "unexpected entry member {name:?} beside \"key\" and \"value\""
                    )));
                }
            }
        }
        match (id, info) {
            (Some(id), Some(info)) => Ok(Entry {
                info: info_object::<A::Error>(&id, info)?,
                id,
            }),
            (None, _) => Err(de::Error::custom("an entry has no \"key\"")),
            (_, None) => Err(de::Error::custom("an entry has no \"value\"")),
        }
    }
}
