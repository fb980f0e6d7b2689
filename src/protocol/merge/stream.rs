//! Reading one vCenter's answer while it is still arriving.

use super::parse::{map_entry, parse_body, Entry, Id, Located, ParsedBody, RestEntrySeed};
use super::{MergeError, UpstreamBody};
use crate::protocol::Family;
use serde::de::{self, DeserializeSeed, Deserializer};
use serde_json::value::RawValue;

/// Reads one vCenter's List Tasks answer while it is still arriving.
///
/// Call [`feed`](Self::feed) with everything received so far after each chunk: it
/// reads every task whose bytes are all in, so when the last byte lands only the
/// last chunk's tasks are left to read, instead of the whole answer (measured in
/// `benches/RESULTS.md`).
///
/// It follows the shape vCenter sends, `{"value":[{"key":..,"value":..},..]}`,
/// `{"<id>":{..},..}` or, for JSON-RPC, `{"jsonrpc":"2.0","id":"0","result":
/// {"output":[..]}}` (the member order the vAPI runtime writes) with any whitespace, and reads each task with the same code as
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
    /// Before the opening `{"value":[` (`/rest`), `{` (`/api`) or the JSON-RPC
    /// envelope up to its `output`'s `[`.
    Open,
    /// Inside the list: a task or the list's end comes next; after a task, with a
    /// comma first.
    Tasks { first: bool },
    /// `/rest` and JSON-RPC, after `]`: the closing `}` (JSON-RPC: `}}`) comes next.
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
            Family::Rest | Family::JsonRpc => b']',
            Family::Api => b'}',
        };
        match self.state {
            StreamState::Open => {
                let opening: &[&[u8]] = match self.family {
                    Family::Rest => &[b"{", b"\"value\"", b":", b"["],
                    Family::Api => &[b"{"],
                    Family::JsonRpc => &[
                        b"{",
                        b"\"jsonrpc\"",
                        b":",
                        b"\"2.0\"",
                        b",",
                        b"\"id\"",
                        b":",
                        b"\"0\"",
                        b",",
                        b"\"result\"",
                        b":",
                        b"{",
                        b"\"output\"",
                        b":",
                        b"[",
                    ],
                };
                self.pos = opening
                    .iter()
                    .try_fold(self.pos, |pos, token| expect(buf, pos, token))?;
                self.state = StreamState::Tasks { first: true };
            }
            StreamState::Tasks { first } => {
                let mut pos = skip_ws(buf, self.pos);
                match buf.get(pos) {
                    None => return Err(Stop::NeedMore),
                    Some(&b) if b == close => {
                        self.pos = pos + 1;
                        self.state = match self.family {
                            Family::Rest | Family::JsonRpc => StreamState::CloseObject,
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
                let closing: &[&[u8]] = match self.family {
                    Family::JsonRpc => &[b"}", b"}"],
                    Family::Rest | Family::Api => &[b"}"],
                };
                self.pos = closing
                    .iter()
                    .try_fold(self.pos, |pos, token| expect(buf, pos, token))?;
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
            Family::JsonRpc => {
                let (element, end) = read_value::<&RawValue>(buf, pos)?;
                let entry = map_entry(element).map_err(|_| Stop::GiveUp)?;
                Ok((entry, end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StreamParser;
    use crate::protocol::Family;

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
}
