//! Combining the answers read: sorting by id, dropping duplicate ids, rendering the
//! merged body in the family asked for.

use super::parse::{IdAt, ParsedBody};
use super::{Duplicate, MergeError, MergeOptions, Merged, UpstreamBody};
use crate::protocol::json::write_json_str;
use crate::protocol::Family;

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

/// [`merge_parsed`](super::merge_parsed), writing the answer into `out` (cleared
/// first). A caller that knows the answer's size early can hand in a buffer it has
/// already touched, so the page faults of a fresh multi-megabyte allocation happen
/// while it waits for the slowest vCenter rather than after.
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
    // that is much. A little slack is kept, since reallocating costs time on the
    // miss path (`benches/RESULTS.md`), and the caller weighs the capacity, not the
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
        // Each kept element is a whole map entry, copied as it came.
        Family::JsonRpc => {
            out.push(b'[');
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(e.info);
            }
            out.push(b']');
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
            Some(id) => write_json_str(out, id),
            None => {
                out.push(b'"');
                out.extend_from_slice(self.id);
                out.push(b'"');
            }
        }
    }
}
