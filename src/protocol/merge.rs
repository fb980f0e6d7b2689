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

use crate::protocol::{ErrorKind, Family, VapiError};
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBody {
    entries: Vec<Located>,
}

impl ParsedBody {
    /// `entries` of `body`, sorted by id; stable, so that of two equal ids the first
    /// in the body stays first. Sorting each body as it is read leaves the merge
    /// after the slowest vCenter sorted runs to combine, which the standard library's
    /// stable sort does in about one comparison per task.
    fn sorted(mut entries: Vec<Located>, body: &[u8]) -> ParsedBody {
        fn id<'a>(l: &'a Located, body: &'a [u8]) -> &'a [u8] {
            match &l.id {
                IdAt::Span(r) => &body[r.clone()],
                IdAt::Decoded(s) => s.as_bytes(),
            }
        }
        entries.sort_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| id(a, body).cmp(id(b, body)))
        });
        ParsedBody { entries }
    }

    /// How many tasks the body holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Located {
    id: IdAt,
    /// The id's first bytes, see [`sort_prefix`]; taken while the body is hot in
    /// the cache from being read.
    prefix: u64,
    info: Range<usize>,
}

/// The first 8 bytes of `id`, big-endian, zero-padded: comparing two prefixes orders
/// two ids as comparing the ids would, or ties. Sorting 3000 tasks by prefix first
/// keeps nearly every comparison inside the sort's own array: comparing the ids
/// themselves reads them from three ~1 MB bodies, and those cache misses made the
/// sort the largest step of a merge (~0.3 ms of ~0.5 ms, measured in the proxy).
fn sort_prefix(id: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id[..n]);
    u64::from_be_bytes(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

    Ok(ParsedBody::sorted(
        entries.into_iter().map(|e| e.locate(input.body)).collect(),
        input.body,
    ))
}

impl Entry<'_> {
    /// Where this task sits in `body`, the buffer it was read from.
    fn locate(self, body: &[u8]) -> Located {
        let base = body.as_ptr() as usize;
        let span = |s: &str| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        Located {
            prefix: sort_prefix(self.id.as_bytes()),
            id: match self.id {
                Cow::Borrowed(s) => IdAt::Span(span(s)),
                Cow::Owned(s) => IdAt::Decoded(s.into_boxed_str()),
            },
            info: span(self.info.get()),
        }
    }
}

/// Reads one vCenter's List Tasks answer while it is still arriving.
///
/// Call [`feed`](Self::feed) with everything received so far after each chunk: it
/// reads every task whose bytes are all in, so when the last byte lands only the
/// last chunk's tasks are left to read, instead of the whole answer. (A 1000-task
/// answer is about 1 MB; reading it whole took ~0.5 ms after the slowest vCenter.)
///
/// It follows the shape vCenter sends, `{"value":[{"key":..,"value":..},..]}` or
/// `{"<id>":{..},..}` with any whitespace, and reads each task with the same code as
/// [`parse_body`]. On anything else (a member name spelled with escapes, a syntax
/// error, bytes after the end) it stops and [`finish`](Self::finish) reads the whole
/// body with [`parse_body`], so the result, or the error, is `parse_body`'s. (One
/// difference: serde_json's nesting limit of 128 counts from each task here, from
/// the body's start there, so a task nested 126 deep is read here and refused there.)
#[derive(Debug)]
pub struct StreamParser {
    family: Family,
    /// The first byte not yet read.
    pos: usize,
    /// Do not try again before the body is this long: a task cut by a chunk's end is
    /// read again from its start, so retries wait until the unread tail has doubled,
    /// which keeps the work linear however small the chunks.
    resume_at: usize,
    state: StreamState,
    entries: Vec<Located>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    /// Before the opening `{"value":[` (`/rest`) or `{` (`/api`).
    Open,
    /// Inside the list: a task or the list's end comes next; after a task, with a
    /// comma first.
    Tasks { first: bool },
    /// `/rest`, after `]`: the closing `}` comes next.
    CloseObject,
    /// The answer is complete; only whitespace may follow.
    Done,
    /// Not the expected shape: [`StreamParser::finish`] reads the whole body.
    GaveUp,
}

/// Why a step could not complete.
enum Stop {
    /// The bytes received so far end inside it: wait for more.
    NeedMore,
    /// Not the expected shape: leave the body to `parse_body`.
    GiveUp,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while pos < buf.len() && is_ws(buf[pos]) {
        pos += 1;
    }
    pos
}

/// `token` at `pos` (after whitespace): the position after it.
fn expect(buf: &[u8], pos: usize, token: &[u8]) -> Result<usize, Stop> {
    let pos = skip_ws(buf, pos);
    let have = &buf[pos..];
    if have.starts_with(token) {
        Ok(pos + token.len())
    } else if token.starts_with(have) {
        Err(Stop::NeedMore)
    } else {
        Err(Stop::GiveUp)
    }
}

/// Reads one self-delimited JSON value of type `T` starting at `pos` (no whitespace
/// before it): the value and the position after it.
fn read_value<'de, T: de::Deserialize<'de>>(
    buf: &'de [u8],
    pos: usize,
) -> Result<(T, usize), Stop> {
    let mut values = serde_json::Deserializer::from_slice(&buf[pos..]).into_iter::<T>();
    match values.next() {
        Some(Ok(value)) => Ok((value, pos + values.byte_offset())),
        Some(Err(e)) if e.is_eof() => Err(Stop::NeedMore),
        Some(Err(_)) => Err(Stop::GiveUp),
        None => Err(Stop::NeedMore),
    }
}

/// A `/rest` list entry, read by [`RestEntrySeed`].
struct RestTask<'de>(Entry<'de>);

impl<'de> de::Deserialize<'de> for RestTask<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RestEntrySeed.deserialize(d).map(RestTask)
    }
}

impl StreamParser {
    pub fn new(family: Family) -> StreamParser {
        StreamParser {
            family,
            pos: 0,
            resume_at: 0,
            state: StreamState::Open,
            entries: Vec::new(),
        }
    }

    /// How many tasks have been read so far (none once it has given up).
    pub fn tasks_read(&self) -> usize {
        self.entries.len()
    }

    /// Whether it stopped reading as the body arrived (the shape was not the
    /// expected one); [`finish`](Self::finish) will read the whole body.
    pub fn gave_up(&self) -> bool {
        self.state == StreamState::GaveUp
    }

    /// Reads what `received` (the whole body so far; each call extends the last)
    /// completes.
    pub fn feed(&mut self, received: &[u8]) {
        if received.len() < self.resume_at {
            return;
        }
        loop {
            match self.step(received) {
                Ok(()) => {}
                Err(Stop::NeedMore) => {
                    let unread = received.len() - self.pos;
                    self.resume_at = received.len() + unread.max(1);
                    return;
                }
                Err(Stop::GiveUp) => {
                    self.state = StreamState::GaveUp;
                    self.entries = Vec::new();
                    return;
                }
            }
            if self.state == StreamState::Done {
                return;
            }
        }
    }

    /// The answer, once `input.body` is complete: what was read as it arrived, or, if
    /// reading it that way gave up, [`parse_body`]'s reading of the whole body.
    pub fn finish(mut self, input: UpstreamBody<'_>) -> Result<ParsedBody, MergeError> {
        self.resume_at = 0;
        self.feed(input.body);
        let complete =
            self.state == StreamState::Done && input.body[self.pos..].iter().all(|&b| is_ws(b));
        if complete {
            Ok(ParsedBody::sorted(self.entries, input.body))
        } else {
            parse_body(self.family, input)
        }
    }

    fn step(&mut self, buf: &[u8]) -> Result<(), Stop> {
        let close = match self.family {
            Family::Rest => b']',
            Family::Api => b'}',
        };
        match self.state {
            StreamState::Open => {
                self.pos = match self.family {
                    Family::Rest => [&b"{"[..], b"\"value\"", b":", b"["]
                        .iter()
                        .try_fold(self.pos, |pos, token| expect(buf, pos, token))?,
                    Family::Api => expect(buf, self.pos, b"{")?,
                };
                self.state = StreamState::Tasks { first: true };
            }
            StreamState::Tasks { first } => {
                let mut pos = skip_ws(buf, self.pos);
                match buf.get(pos) {
                    None => return Err(Stop::NeedMore),
                    Some(&b) if b == close => {
                        self.pos = pos + 1;
                        self.state = match self.family {
                            Family::Rest => StreamState::CloseObject,
                            Family::Api => StreamState::Done,
                        };
                        return Ok(());
                    }
                    Some(_) if !first => pos = skip_ws(buf, expect(buf, pos, b",")?),
                    Some(_) => {}
                }
                if pos == buf.len() {
                    return Err(Stop::NeedMore);
                }
                let (task, end) = self.read_task(buf, pos)?;
                self.entries.push(task.locate(buf));
                self.pos = end;
                self.state = StreamState::Tasks { first: false };
            }
            StreamState::CloseObject => {
                self.pos = expect(buf, self.pos, b"}")?;
                self.state = StreamState::Done;
            }
            StreamState::Done => {}
            StreamState::GaveUp => return Err(Stop::GiveUp),
        }
        Ok(())
    }

    /// One task starting at `pos`: all of it, or nothing.
    fn read_task<'b>(&self, buf: &'b [u8], pos: usize) -> Result<(Entry<'b>, usize), Stop> {
        match self.family {
            Family::Rest => {
                let (RestTask(task), end) = read_value(buf, pos)?;
                Ok((task, end))
            }
            Family::Api => {
                if buf[pos] != b'"' {
                    return Err(Stop::GiveUp);
                }
                let (Id(id), after_id) = read_value(buf, pos)?;
                let colon = expect(buf, after_id, b":")?;
                let start = skip_ws(buf, colon);
                if start == buf.len() {
                    return Err(Stop::NeedMore);
                }
                let (info, end) = read_value::<&RawValue>(buf, start)?;
                if !info.get().starts_with('{') {
                    return Err(Stop::GiveUp);
                }
                Ok((Entry { id, info }, end))
            }
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

/// A task ready to sort and write: its id and info, borrowed from its body.
struct Item<'a> {
    /// [`sort_prefix`] of `id`.
    prefix: u64,
    /// The id's UTF-8 bytes. Kept as bytes so that making an item does not read the
    /// id (byte order is `str` order): the sort reads it only on a prefix tie.
    id: &'a [u8],
    /// The id arrived escaped (this is it decoded), so it must be escaped again when
    /// written.
    escaped: Option<&'a str>,
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
            let (id, escaped) = match &e.id {
                // The span was cut from validated UTF-8 at character boundaries.
                IdAt::Span(r) => (&input.body[r.clone()], None),
                IdAt::Decoded(s) => (s.as_bytes(), Some(&**s)),
            };
            items.push(Item {
                prefix: e.prefix,
                id,
                escaped,
                info: &input.body[e.info.clone()],
                source,
            });
        }
    }

    // Stable: equal ids keep input order, so the first vCenter in config order wins,
    // and within one body the first occurrence wins.
    items.sort_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| a.id.cmp(b.id)));
    let mut duplicates = Vec::new();
    items.dedup_by(|later, kept| {
        let same = later.prefix == kept.prefix && later.id == kept.id;
        if same {
            duplicates.push(Duplicate {
                task: String::from_utf8_lossy(later.id).into_owned(),
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
    // The answer is kept in the cache: give back what the buffer over-reserved when
    // that is much. A little slack is kept: reallocating a multi-megabyte answer
    // took ~50 µs on the miss path, and the caller weighs the capacity, not the
    // length.
    if body.capacity() - body.len() > body.len() / 4 {
        body.shrink_to_fit();
    }
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
        match self.escaped {
            Some(id) => crate::protocol::json::write_str(out, id),
            None => {
                out.push(b'"');
                out.extend_from_slice(self.id);
                out.push(b'"');
            }
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

#[cfg(test)]
mod tests {
    use super::{sort_prefix, StreamParser};
    use crate::protocol::Family;
    use proptest::prelude::*;

    #[test]
    fn a_task_cut_by_many_chunks_is_retried_a_logarithmic_number_of_times() {
        // One 1 MB task arriving a byte at a time. Each retry reads the task again from
        // its start; `resume_at` moves on every retry, so counting its moves counts
        // the retries. Reading again after every byte would be ~10^6 retries.
        let big = "x".repeat(1 << 20);
        let body = format!(r#"{{"value":[{{"key":"a","value":{{"s":"{big}"}}}}]}}"#);
        let mut reader = StreamParser::new(Family::Rest);
        let mut retries = 0;
        for end in 1..=body.len() {
            let before = reader.resume_at;
            reader.feed(&body.as_bytes()[..end]);
            if reader.resume_at != before {
                retries += 1;
            }
        }
        assert!(retries <= 2 * 21 + 10, "{retries} retries for a 1 MB task");
    }

    proptest! {
        /// Ordering by prefix, then by the whole id, is ordering by the id.
        #[test]
        fn prefix_first_orders_like_the_ids(a in "[\\x00-\\x7f\u{e9}\u{1f600}]{0,12}", b in "[\\x00-\\x7f\u{e9}\u{1f600}]{0,12}") {
            let by_prefix = sort_prefix(a.as_bytes())
                .cmp(&sort_prefix(b.as_bytes()))
                .then_with(|| a.cmp(&b));
            prop_assert_eq!(by_prefix, a.cmp(&b));
        }
    }

    #[test]
    fn prefixes_of_ids_sharing_eight_bytes_tie() {
        assert_eq!(sort_prefix(b"abcdefgh-1"), sort_prefix(b"abcdefgh-2"));
        assert!(sort_prefix(b"ab") < sort_prefix(b"ab\x01"));
        assert_eq!(sort_prefix(b"ab"), sort_prefix(b"ab\0"));
        assert_eq!(sort_prefix(b""), 0);
    }
}
