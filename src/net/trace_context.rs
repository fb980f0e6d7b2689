//! W3C Trace Context (`traceparent`), so a slow request can be followed from the
//! client through the proxy into vCenter's own logs.
//!
//! The proxy reads the client's `traceparent`, records its trace id in the
//! request's span and access-log line, and sends the vCenters it asks a
//! `traceparent` with the same trace id and flags and a parent id of its own (the
//! proxy is a hop of the trace). A header that does not parse is ignored, as the
//! specification asks; the proxy starts no trace of its own.
//!
//! A cached answer is fetched once for many clients: the vCenters see the trace of
//! the request that caused the fetch.

use http::HeaderValue;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// A trace the client is part of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    flags: u8,
}

impl TraceContext {
    /// The context of a `traceparent` value, or `None` when it is not one:
    /// `version-traceid-parentid-flags`, lower-case hex, ids not all zero, version
    /// `ff` refused; a later version may append fields after a `-`.
    pub fn parse(value: &HeaderValue) -> Option<TraceContext> {
        let v = value.as_bytes();
        if v.len() < 55 || (v.len() > 55 && v[55] != b'-') {
            return None;
        }
        let (version, rest) = (&v[..2], &v[2..55]);
        if rest[0] != b'-' || rest[33] != b'-' || rest[50] != b'-' {
            return None;
        }
        let version = hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && v.len() != 55) {
            return None;
        }
        let trace_id = hex::<16>(&rest[1..33])?;
        let parent_id = hex::<8>(&rest[34..50])?;
        let flags = hex::<1>(&rest[51..53])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceContext { trace_id, flags })
    }

    /// The trace id, 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The `traceparent` to send on: version 00, this trace, a new parent id.
    pub fn child(&self) -> HeaderValue {
        let mut span = [0u8; 8];
        while span == [0; 8] {
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut span).is_err()
            {
                span = [0x5c; 8];
            }
        }
        let text = format!(
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&span),
            self.flags
        );
        HeaderValue::from_str(&text).expect("hex is a valid header value")
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TraceContext({}, {:02x})", self.trace_id(), self.flags)
    }
}

/// `N` bytes from `2N` lower-case hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Option<TraceContext> {
        TraceContext::parse(&HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn the_specification_example_parses_and_the_child_keeps_trace_and_flags() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = t.child();
        let child = child.to_str().unwrap();
        assert_eq!(child.len(), 55);
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(child.ends_with("-01"));
        assert_ne!(&child[36..52], "00f067aa0ba902b7", "a parent id of its own");
        assert_eq!(parse(child), Some(t));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(parse(later).is_some());
    }
}
