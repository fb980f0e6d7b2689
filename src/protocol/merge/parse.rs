//! Reading one vCenter's whole answer without deserializing the tasks: where each
//! task's id and info sit in the body, sorted by id.

use super::{MergeError, UpstreamBody};
use crate::protocol::Family;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// One vCenter's answer, read: where each task's id and info sit in its body.
///
/// It holds offsets rather than references, so it can be made the moment that body
/// arrives, while other vCenters are still answering, and kept beside the body: the
/// fan-out parses each answer as it lands, and only the last one's parse, the sort
/// and the copy remain after the slowest vCenter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBody {
    pub(super) entries: Vec<Located>,
}

impl ParsedBody {
    /// `entries` of `body`, sorted by id; stable, so that of two equal ids the first
    /// in the body stays first. Sorting each body as it is read leaves the merge
    /// after the slowest vCenter sorted runs to combine, which the standard library's
    /// stable sort does in about one comparison per task.
    pub(super) fn sorted(mut entries: Vec<Located>, body: &[u8]) -> ParsedBody {
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

    /// The task ids, in order; `body` is the body this was read from.
    pub fn ids<'a>(&'a self, body: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter_map(move |l| match &l.id {
            IdAt::Span(r) => std::str::from_utf8(body.get(r.clone())?).ok(),
            IdAt::Decoded(s) => Some(&**s),
        })
    }

    /// Each task's id and its Info's bytes, in order; `body` is the body this was
    /// read from.
    pub fn entries<'a>(&'a self, body: &'a [u8]) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.entries.iter().filter_map(move |l| {
            let id = match &l.id {
                IdAt::Span(r) => std::str::from_utf8(body.get(r.clone())?).ok()?,
                IdAt::Decoded(s) => &**s,
            };
            Some((id, body.get(l.info.clone())?))
        })
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
pub(super) struct Located {
    pub(super) id: IdAt,
    /// The id's first bytes, see [`sort_prefix`]; taken while the body is hot in
    /// the cache from being read.
    pub(super) prefix: u64,
    pub(super) info: Range<usize>,
}

/// The first 8 bytes of `id`, big-endian, zero-padded: comparing two prefixes orders
/// two ids as comparing the ids would, or ties. Sorting by prefix first keeps nearly
/// every comparison inside the sort's own array instead of reading ids from the bodies
/// (measured in `benches/RESULTS.md`).
fn sort_prefix(id: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = id.len().min(8);
    bytes[..n].copy_from_slice(&id[..n]);
    u64::from_be_bytes(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IdAt {
    /// The id's text in the body, between the quotes; it had no escapes.
    Span(Range<usize>),
    /// The id had escapes: here it is decoded.
    Decoded(Box<str>),
}

/// One task borrowed from an upstream body, while parsing.
pub(super) struct Entry<'a> {
    pub(super) id: Cow<'a, str>,
    pub(super) info: &'a RawValue,
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
    pub(super) fn locate(self, body: &[u8]) -> Located {
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

pub(super) struct Id<'de>(pub(super) Cow<'de, str>);

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
            Family::JsonRpc => f.write_str(
                r#"a JSON-RPC List Tasks answer {"jsonrpc":"2.0","id":..,"result":{"output":[map entries]}}"#,
            ),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.family {
            Family::JsonRpc => {
                let mut seen_result = false;
                while let Some(Id(name)) = map.next_key()? {
                    match &*name {
                        "result" if !seen_result => {
                            seen_result = true;
                            map.next_value_seed(RpcResultSeed {
                                out: &mut *self.out,
                            })?;
                        }
                        "jsonrpc" | "id" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            return Err(de::Error::custom(format_args!(
                                "unexpected member {name:?} in a JSON-RPC answer"
                            )))
                        }
                    }
                }
                if !seen_result {
                    return Err(de::Error::custom("member \"result\" is missing"));
                }
            }
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

/// JSON-RPC's `result`: `{"output":[map entries]}`.
struct RpcResultSeed<'o, 'de> {
    out: &'o mut Vec<Entry<'de>>,
}

impl<'de> DeserializeSeed<'de> for RpcResultSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RpcResultSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a JSON-RPC result {"output":[..]}"#)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(Id(name)) = map.next_key()? {
            if name != "output" || seen {
                return Err(de::Error::custom(format_args!(
                    "unexpected member {name:?} in the result (a vAPI error?)"
                )));
            }
            seen = true;
            let elements: Vec<&'de RawValue> = map.next_value()?;
            self.out.reserve(elements.len());
            for element in elements {
                self.out
                    .push(map_entry(element).map_err(de::Error::custom)?);
            }
        }
        if !seen {
            return Err(de::Error::custom("member \"output\" is missing"));
        }
        Ok(())
    }
}

/// One element of a JSON-RPC map, `{"STRUCTURE":{"map-entry":{"key":"<id>",
/// "value":{..}}}}`: the element is the task's "info" (it is copied whole), its key
/// the id.
pub(super) fn map_entry(element: &RawValue) -> Result<Entry<'_>, String> {
    #[derive(serde::Deserialize)]
    struct Element<'a> {
        #[serde(rename = "STRUCTURE", borrow)]
        structure: Named<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(rename = "map-entry", borrow)]
        entry: MapEntry<'a>,
    }
    #[derive(serde::Deserialize)]
    struct MapEntry<'a> {
        #[serde(borrow)]
        key: Cow<'a, str>,
        #[serde(borrow)]
        value: &'a RawValue,
    }
    let e: Element<'_> = serde_json::from_str(element.get())
        .map_err(|e| format!("a list element is not a map entry of task id to info: {e}"))?;
    let id = e.structure.entry.key;
    if !e.structure.entry.value.get().starts_with('{') {
        return Err(format!("the info of task {id:?} is not a typed structure"));
    }
    Ok(Entry { id, info: element })
}

pub(super) struct RestEntrySeed;

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
    use super::sort_prefix;
    use proptest::prelude::*;

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
