//! What one replica stores for the others ([`crate::cluster`]): a cached answer
//! and a client session, as bytes. The cluster layer encrypts them; here they are
//! only laid out.
//!
//! An answer is stored whole, as the fetching replica will send it: status,
//! headers, identity bytes, compressed copies and validators when made, and its
//! fetch time, so another replica serves the same bytes, the same `ETag`, and
//! ages it from the same moment. A layout version leads, so a replica of another
//! version reads a miss rather than garbage.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::answer::Answer;
use crate::encoding::Encoded;

const ANSWER_LAYOUT: u8 = 2;
const SESSION_LAYOUT: u8 = 1;

/// `answer` as bytes for the other replicas.
pub fn encode_answer(answer: &Answer) -> Vec<u8> {
    let fetched = SystemTime::now()
        .checked_sub(answer.age(Instant::now()))
        .unwrap_or(UNIX_EPOCH);
    let millis = fetched
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut w = Writer(Vec::with_capacity(answer.body.len() + 256));
    w.0.push(ANSWER_LAYOUT);
    w.0.extend_from_slice(&answer.status.as_u16().to_be_bytes());
    w.0.push(u8::from(answer.incomplete));
    w.0.extend_from_slice(&millis.to_be_bytes());
    w.field(answer.content_type.as_bytes());
    w.optional(answer.upstream.as_ref().map(HeaderValue::as_bytes));
    w.optional(answer.partial.as_ref().map(HeaderValue::as_bytes));
    w.field(&answer.body);
    match &answer.encoded {
        None => w.0.push(0),
        Some(e) => {
            w.0.push(1);
            w.field(e.etag.as_bytes());
            w.field(e.last_modified.as_bytes());
            w.optional(e.gzip.as_deref());
            w.optional(e.zstd.as_deref());
        }
    }
    w.0
}

/// The answer another replica stored, or `None` if the bytes are not one.
pub fn decode_answer(bytes: &[u8]) -> Option<Answer> {
    let mut r = Reader(bytes);
    if r.byte()? != ANSWER_LAYOUT {
        return None;
    }
    let status = StatusCode::from_u16(u16::from_be_bytes(r.array()?)).ok()?;
    let incomplete = match r.byte()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let fetched = UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(r.array()?));
    let content_type = header(r.field()?)?;
    let upstream = optional_header(r.optional()?)?;
    let partial = optional_header(r.optional()?)?;
    let body = Bytes::copy_from_slice(r.field()?);
    let encoded = match r.byte()? {
        0 => None,
        1 => Some(Encoded {
            etag: header(r.field()?)?,
            last_modified: header(r.field()?)?,
            gzip: r.optional()?.map(Bytes::copy_from_slice),
            zstd: r.optional()?.map(Bytes::copy_from_slice),
        }),
        _ => return None,
    };
    if !r.0.is_empty() {
        return None;
    }
    let age = SystemTime::now()
        .duration_since(fetched)
        .unwrap_or_default();
    let now = Instant::now();
    Some(Answer {
        status,
        content_type,
        upstream,
        partial,
        timing: None,
        spare: 0,
        created: now.checked_sub(age).unwrap_or(now),
        encoded,
        body,
        incomplete,
    })
}

/// A client session as the other replicas need it to serve the same client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The name the session belongs to (the proxy-local user in service-account
    /// mode).
    pub user: String,
    /// Passthrough mode: the user's password, for the replica's own vCenter
    /// sessions. Empty in service-account mode.
    pub password: String,
    pub created: SystemTime,
}

impl SessionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let millis = self
            .created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut w = Writer(Vec::with_capacity(
            self.user.len() + self.password.len() + 24,
        ));
        w.0.push(SESSION_LAYOUT);
        w.0.extend_from_slice(&millis.to_be_bytes());
        w.field(self.user.as_bytes());
        w.field(self.password.as_bytes());
        w.0
    }

    pub fn decode(bytes: &[u8]) -> Option<SessionRecord> {
        let mut r = Reader(bytes);
        if r.byte()? != SESSION_LAYOUT {
            return None;
        }
        let created = UNIX_EPOCH + Duration::from_millis(u64::from_be_bytes(r.array()?));
        let user = String::from_utf8(r.field()?.to_vec()).ok()?;
        let password = String::from_utf8(r.field()?.to_vec()).ok()?;
        r.0.is_empty().then_some(SessionRecord {
            user,
            password,
            created,
        })
    }
}

fn header(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// An absent header, or a present one that must be valid.
fn optional_header(bytes: Option<&[u8]>) -> Option<Option<HeaderValue>> {
    match bytes {
        None => Some(None),
        Some(b) => Some(Some(header(b)?)),
    }
}

/// Length-prefixed fields.
struct Writer(Vec<u8>);

impl Writer {
    fn field(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn optional(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.field(b);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        self.take(len)
    }

    fn optional(&mut self) -> Option<Option<&'a [u8]>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.field()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(encoded: bool) -> Answer {
        let body = Bytes::from(vec![b'x'; 3000]);
        let mut a = Answer {
            upstream: Some(HeaderValue::from_static("vc2")),
            partial: Some(HeaderValue::from_static("vc3")),
            timing: Some(HeaderValue::from_static("vc1;dur=3")),
            incomplete: encoded,
            ..Answer::json(StatusCode::OK, body.clone())
        };
        a.created = Instant::now() - Duration::from_millis(1500);
        if encoded {
            a.encoded = Some(crate::encoding::encode(
                &body,
                SystemTime::now(),
                crate::encoding::Encoders {
                    gzip: true,
                    zstd: true,
                },
            ));
        }
        a
    }

    #[test]
    fn answers_round_trip_with_their_copies_and_age() {
        for encoded in [false, true] {
            let a = sample(encoded);
            let b = decode_answer(&encode_answer(&a)).unwrap();
            assert_eq!(
                (b.status, &b.content_type, &b.body),
                (a.status, &a.content_type, &a.body)
            );
            assert_eq!((&b.upstream, &b.partial), (&a.upstream, &a.partial));
            assert_eq!(b.incomplete, a.incomplete);
            assert_eq!(
                b.timing, None,
                "timing belongs to the fetch's own responses"
            );
            let age = b.age(Instant::now());
            assert!(
                age >= Duration::from_millis(1400) && age < Duration::from_secs(60),
                "{age:?}"
            );
            match (&a.encoded, &b.encoded) {
                (None, None) => {}
                (Some(x), Some(y)) => {
                    assert_eq!((&x.etag, &x.gzip, &x.zstd), (&y.etag, &y.gzip, &y.zstd));
                    assert_eq!(x.last_modified, y.last_modified);
                }
                _ => panic!("copies lost"),
            }
        }
    }

    #[test]
    fn damaged_or_foreign_bytes_are_a_miss() {
        let good = encode_answer(&sample(true));
        for cut in [0, 1, 3, 11, good.len() / 2, good.len() - 1] {
            assert!(decode_answer(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_answer(&longer).is_none());
        let mut other = good;
        other[0] = 9;
        assert!(decode_answer(&other).is_none());
    }

    #[test]
    fn session_records_round_trip() {
        let r = SessionRecord {
            user: "alice@vsphere.local".into(),
            password: "pä55".into(),
            created: UNIX_EPOCH + Duration::from_millis(1_764_000_000_123),
        };
        let bytes = r.encode();
        assert_eq!(SessionRecord::decode(&bytes), Some(r));
        assert_eq!(SessionRecord::decode(&bytes[..bytes.len() - 1]), None);
    }
}
