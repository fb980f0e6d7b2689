//! `Accept-Encoding` (RFC 9110 §12.5.3): which stored copy a client gets.
//!
//! Read on every hit, so it is a scan of the header's bytes with no allocation.

use http::header::{HeaderMap, ACCEPT_ENCODING};

/// A content coding the proxy can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Zstd,
}

impl Coding {
    /// The `Content-Encoding` token (`None` for identity, which is never sent).
    pub fn token(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Zstd => Some("zstd"),
        }
    }
}

/// What a request's `Accept-Encoding` allows, as q-values in thousandths
/// (0 = not acceptable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    gzip: u16,
    zstd: u16,
    identity: u16,
}

impl Accepted {
    /// No `Accept-Encoding`: any coding is acceptable (RFC 9110), but a client that
    /// does not say so is sent identity, as every server does.
    pub const IDENTITY_ONLY: Accepted = Accepted {
        gzip: 0,
        zstd: 0,
        identity: 1000,
    };

    /// Reads every `Accept-Encoding` field of a request.
    pub fn from_headers(headers: &HeaderMap) -> Accepted {
        let mut fields = headers.get_all(ACCEPT_ENCODING).iter().peekable();
        if fields.peek().is_none() {
            return Accepted::IDENTITY_ONLY;
        }
        let (mut gzip, mut zstd, mut identity, mut star) = (None, None, None, None);
        for field in fields {
            for item in field.as_bytes().split(|&b| b == b',') {
                let mut params = item.split(|&b| b == b';');
                let name = trim(params.next().unwrap_or_default());
                if name.is_empty() {
                    continue;
                }
                let mut q = 1000;
                for p in params {
                    let p = trim(p);
                    if p.len() >= 2 && p[0].eq_ignore_ascii_case(&b'q') && p[1] == b'=' {
                        q = qvalue(trim(&p[2..])).unwrap_or(0);
                    }
                }
                let slot =
                    if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                        &mut gzip
                    } else if name.eq_ignore_ascii_case(b"zstd") {
                        &mut zstd
                    } else if name.eq_ignore_ascii_case(b"identity") {
                        &mut identity
                    } else if name == b"*" {
                        &mut star
                    } else {
                        continue;
                    };
                // A coding listed twice: the higher weight wins.
                *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
            }
        }
        Accepted {
            gzip: gzip.or(star).unwrap_or(0),
            zstd: zstd.or(star).unwrap_or(0),
            // Identity is acceptable unless refused by name or by `*;q=0`; not
            // named, it comes after any coding the client does name.
            identity: identity.or(star.filter(|&q| q == 0)).unwrap_or(1),
        }
    }

    /// The best coding among the copies the answer has (their sizes, `None` where
    /// there is none): the highest weight; on a tie the smaller copy, and a copy
    /// before identity. Identity when nothing acceptable is available (never a
    /// 406).
    pub fn choose(self, gzip: Option<usize>, zstd: Option<usize>) -> Coding {
        let mut best = (self.identity, usize::MAX, Coding::Identity);
        for (q, coding, size) in [
            (self.gzip, Coding::Gzip, gzip),
            (self.zstd, Coding::Zstd, zstd),
        ] {
            let Some(size) = size else { continue };
            if q > 0 && (q > best.0 || (q == best.0 && size < best.1)) {
                best = (q, size, coding);
            }
        }
        best.2
    }

    pub fn gzip(self) -> bool {
        self.gzip > 0
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths;
/// `None` for anything else (then the coding is treated as refused).
fn qvalue(s: &[u8]) -> Option<u16> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accepted(values: &[&'static str]) -> Accepted {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        Accepted::from_headers(&h)
    }

    /// With a zstd copy smaller than the gzip one.
    fn choose(values: &[&'static str]) -> Coding {
        accepted(values).choose(Some(110), Some(100))
    }

    #[test]
    fn clients_as_they_send_it() {
        // python-requests (the SDK), Go's net/http, curl --compressed, browsers.
        assert_eq!(choose(&["gzip, deflate"]), Coding::Gzip);
        assert_eq!(choose(&["gzip"]), Coding::Gzip);
        assert_eq!(choose(&["deflate, gzip, br, zstd"]), Coding::Zstd);
        assert_eq!(choose(&["gzip, deflate, br, zstd"]), Coding::Zstd);
        assert_eq!(choose(&[]), Coding::Identity);
        assert_eq!(choose(&[""]), Coding::Identity);
        assert_eq!(choose(&["br, deflate"]), Coding::Identity);
    }

    #[test]
    fn q_values_decide() {
        assert_eq!(choose(&["gzip;q=1.0, zstd;q=0.5"]), Coding::Gzip);
        assert_eq!(choose(&["gzip;q=0.5, zstd;q=0.8"]), Coding::Zstd);
        assert_eq!(choose(&["gzip;q=0, zstd;q=0"]), Coding::Identity);
        assert_eq!(choose(&["gzip;q=0"]), Coding::Identity);
        assert_eq!(choose(&["zstd ; q=0.001"]), Coding::Zstd);
        // Identity preferred by weight.
        assert_eq!(choose(&["gzip;q=0.5, identity"]), Coding::Identity);
        // Malformed weights refuse the coding rather than guess.
        assert_eq!(choose(&["gzip;q=2"]), Coding::Identity);
        assert_eq!(choose(&["gzip;q=0.1234"]), Coding::Identity);
        assert_eq!(choose(&["gzip;q=abc"]), Coding::Identity);
        // Case and spacing do not matter; x-gzip is gzip.
        assert_eq!(choose(&["  GZIP ;Q=0.9 "]), Coding::Gzip);
        assert_eq!(choose(&["x-gzip"]), Coding::Gzip);
    }

    #[test]
    fn star_and_identity() {
        assert_eq!(choose(&["*"]), Coding::Zstd);
        assert_eq!(choose(&["*;q=0.5, gzip"]), Coding::Gzip);
        assert_eq!(choose(&["*;q=0"]), Coding::Identity);
        assert_eq!(accepted(&["*;q=0"]).identity, 0);
        assert_eq!(choose(&["gzip;q=0, *"]), Coding::Zstd);
        assert_eq!(
            choose(&["identity;q=0"]),
            Coding::Identity,
            "nothing acceptable: identity"
        );
        assert_eq!(choose(&["identity;q=0, gzip;q=0.1"]), Coding::Gzip);
        // Several fields are one list.
        assert_eq!(choose(&["identity;q=0.5", "gzip"]), Coding::Gzip);
    }

    #[test]
    fn only_the_copies_the_answer_has() {
        let a = accepted(&["gzip, zstd"]);
        assert_eq!(a.choose(Some(10), None), Coding::Gzip);
        assert_eq!(a.choose(None, Some(10)), Coding::Zstd);
        assert_eq!(a.choose(None, None), Coding::Identity);
        // Equal weights: the smaller copy.
        assert_eq!(a.choose(Some(10), Some(11)), Coding::Gzip);
        assert_eq!(a.choose(Some(11), Some(10)), Coding::Zstd);
        // Weights first, whatever the sizes.
        assert_eq!(
            accepted(&["gzip;q=0.5, zstd"]).choose(Some(1), Some(100)),
            Coding::Zstd
        );
        assert!(a.gzip() && !Accepted::IDENTITY_ONLY.gzip());
    }
}
