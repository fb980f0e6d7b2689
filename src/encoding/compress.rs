//! The copies of an answer made once per fetch: gzip and zstd bytes, the entity tag
//! and the fetch time as `Last-Modified`.
//!
//! Runs on tokio's blocking pool after the fetch has answered its waiters, so a
//! miss never waits for it (gzip-6 of a 100-task answer is ~0.5–1 ms, of 1000
//! tasks ~7 ms; zstd-6 is a little faster).

use bytes::Bytes;
use http::HeaderValue;
use std::io::Write;
use std::time::SystemTime;

/// Answers below this size are sent as they are: a compressed copy would save a
/// few hundred bytes at most.
pub const MIN_COMPRESS: usize = 1024;
/// gzip's level: zlib's default, the usual balance (Varnish and nginx use 6 too).
const GZIP_LEVEL: u32 = 6;
/// zstd's level: above the library's default (3), because the copy is made once per
/// fetch: on a 100-task answer zstd-6 is smaller than gzip-6 (10.8 against 11.3 KB)
/// and still faster to make, where zstd-3 is larger (12.4 KB). See
/// `benches/RESULTS.md`.
const ZSTD_LEVEL: i32 = 6;

/// Which compressed copies to make (`[cache] compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoders {
    pub gzip: bool,
    pub zstd: bool,
}

impl Default for Encoders {
    fn default() -> Self {
        Encoders {
            gzip: true,
            zstd: true,
        }
    }
}

/// What a cached success answer carries besides its identity bytes.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `W/"…"`: from the identity bytes (SHA-256, 128 bits, base64url), the same
    /// for every coding; weak because the coded bytes differ.
    pub etag: HeaderValue,
    /// The fetch time, as an HTTP date.
    pub last_modified: HeaderValue,
    pub gzip: Option<Bytes>,
    pub zstd: Option<Bytes>,
}

impl Encoded {
    /// Bytes held beyond the identity body, for the cache's weigher.
    pub fn weight(&self) -> usize {
        self.gzip.as_ref().map_or(0, Bytes::len) + self.zstd.as_ref().map_or(0, Bytes::len) + 96
    }
}

/// The copies and validators of `body`, fetched at `fetched`. A copy that would not
/// be smaller than the identity body is not kept.
pub fn encode(body: &[u8], fetched: SystemTime, encoders: Encoders) -> Encoded {
    let big = body.len() >= MIN_COMPRESS;
    let smaller = |copy: Option<Vec<u8>>| copy.filter(|c| c.len() < body.len()).map(Bytes::from);
    Encoded {
        etag: etag(body),
        last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(fetched))
            .expect("an HTTP date is a valid header value"),
        gzip: smaller((big && encoders.gzip).then(|| gzip(body))),
        zstd: smaller((big && encoders.zstd).then(|| zstd(body)).flatten()),
    }
}

fn etag(body: &[u8]) -> HeaderValue {
    use base64::Engine as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
    HeaderValue::from_str(&format!("W/\"{tag}\"")).expect("base64url is a valid header value")
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing to a Vec cannot fail.
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

fn zstd(body: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::compress(body, ZSTD_LEVEL).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut s = b"{\"value\":[".to_vec();
        for i in 0..n {
            s.extend_from_slice(
                format!("{{\"key\":\"task-{i}\",\"value\":{{\"status\":\"RUNNING\",\"progress\":{i}}}}},")
                    .as_bytes(),
            );
        }
        s.extend_from_slice(b"{}]}");
        s
    }

    #[test]
    fn every_copy_decodes_to_the_identity_body() {
        let body = sample(200);
        let e = encode(&body, SystemTime::UNIX_EPOCH, Encoders::default());
        let gz = e.gzip.as_ref().expect("a gzip copy");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let zs = e.zstd.as_ref().expect("a zstd copy");
        assert_eq!(zstd::stream::decode_all(&zs[..]).unwrap(), body);
        assert!(gz.len() * 4 < body.len() && zs.len() * 4 < body.len());
        assert_eq!(e.last_modified, "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(e.weight() > gz.len() + zs.len());
    }

    #[test]
    fn the_tag_follows_the_identity_bytes_only() {
        let (a, b) = (sample(10), sample(11));
        let now = SystemTime::now();
        let ea = encode(&a, now, Encoders::default());
        assert_eq!(
            ea.etag,
            encode(
                &a,
                SystemTime::UNIX_EPOCH,
                Encoders {
                    gzip: false,
                    zstd: false
                }
            )
            .etag
        );
        assert_ne!(ea.etag, encode(&b, now, Encoders::default()).etag);
        let tag = ea.etag.to_str().unwrap();
        assert!(
            tag.starts_with("W/\"") && tag.ends_with('"') && tag.len() == 26,
            "{tag}"
        );
    }

    #[test]
    fn small_answers_and_disabled_codings_have_no_copies() {
        let e = encode(b"{\"value\":[]}", SystemTime::now(), Encoders::default());
        assert!(e.gzip.is_none() && e.zstd.is_none());
        let e = encode(
            &sample(50),
            SystemTime::now(),
            Encoders {
                gzip: true,
                zstd: false,
            },
        );
        assert!(e.gzip.is_some() && e.zstd.is_none());
    }
}
