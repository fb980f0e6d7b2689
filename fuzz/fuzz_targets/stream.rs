//! Reading an upstream answer as it arrives (`StreamParser`) against reading it whole
//! (`parse_body`).
//!
//! Input layout: byte 0 picks the family (even: `/rest`, odd: `/api`); byte 1 seeds the
//! chunk sizes; the rest is the body. The body is fed in chunks of 1 to 64 bytes (sizes
//! from a small generator seeded by byte 1), then finished.
//!
//! Invariant: the result equals `parse_body`'s, task for task, or error for error.
//! The one allowed difference is serde_json's nesting limit, which the streaming
//! reader applies per task: `parse_body` may refuse ("recursion limit exceeded") a
//! body the streaming reader reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcproxy::protocol::merge::{parse_body, StreamParser, UpstreamBody};
use vcproxy::Family;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let family = if data[0] % 2 == 0 {
        Family::Rest
    } else {
        Family::Api
    };
    let mut seed = u32::from(data[1]) | 1;
    let body = &data[2..];
    let mut reader = StreamParser::new(family);
    let mut end = 0;
    while end < body.len() {
        // xorshift: chunk sizes 1..=64
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        end = (end + 1 + (seed % 64) as usize).min(body.len());
        reader.feed(&body[..end]);
    }
    let input = UpstreamBody {
        vcenter: "vc1",
        body,
    };
    let streamed = reader.finish(input);
    let whole = parse_body(family, input);
    match (&streamed, &whole) {
        (Ok(_), Err(e)) if e.to_string().contains("recursion limit exceeded") => {}
        _ => assert_eq!(streamed, whole, "body {:?}", String::from_utf8_lossy(body)),
    }
});
