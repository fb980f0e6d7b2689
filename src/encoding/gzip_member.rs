//! Small gzip members written by hand, for the bytes around a stored gzip copy.
//!
//! A gzip stream may be several members one after the other (RFC 1952 §2.2), and
//! the clients that speak JSON-RPC decode such streams whole: urllib3 (the Python
//! SDK's `requests`) starts a new decompressor on each member, Go's `gzip.Reader`
//! is multistream by default, and so are zlib's `gunzip` and flate2's
//! `MultiGzDecoder`. A JSON-RPC answer is therefore sent as three members: the
//! envelope's head (it carries the request's id, so it is made per request), the
//! stored compressed output, and the fixed tail. The head and tail are a few dozen
//! bytes: they go in *stored* deflate blocks (no compression, so no compressor
//! state to set up on the hit path), with their CRC-32.

use bytes::Bytes;

/// Gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A stored deflate block holds at most 65,535 bytes.
const MAX_STORED: usize = 0xffff;

/// `data` as one gzip member of stored (uncompressed) deflate blocks.
pub fn stored_member(data: &[u8]) -> Bytes {
    let blocks = data.len().div_ceil(MAX_STORED).max(1);
    let mut out = Vec::with_capacity(HEADER.len() + data.len() + 5 * blocks + 8);
    out.extend_from_slice(&HEADER);
    let mut chunks = data.chunks(MAX_STORED).peekable();
    if chunks.peek().is_none() {
        // An empty member still needs one (final, empty) block.
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last)); // BFINAL, BTYPE = 00 (stored)
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip_all(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_stored_member_decodes_to_its_data() {
        for data in [
            &b""[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":\"0\",\"result\":{\"output\":",
        ] {
            assert_eq!(gunzip_all(&stored_member(data)), data);
            // A single-member decoder reads it too.
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&stored_member(data)[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
        // Over one stored block's limit.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(gunzip_all(&stored_member(&big)), big);
    }

    #[test]
    fn members_concatenate_into_one_stream() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"[1,2,3]").unwrap();
        let middle = e.finish().unwrap();
        let mut stream = stored_member(b"{\"a\":").to_vec();
        stream.extend_from_slice(&middle);
        stream.extend_from_slice(&stored_member(b"}"));
        assert_eq!(gunzip_all(&stream), b"{\"a\":[1,2,3]}");
    }
}
