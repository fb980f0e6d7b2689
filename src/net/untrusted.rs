//! Log field values that come from outside: what a client sent (a user name, a
//! path, a JSON-RPC service name) or what a vCenter answered (error texts).
//!
//! Written with [`Untrusted`], such a value cannot forge a log line (a line feed
//! followed by a fake timestamp and level) or reach an operator's terminal as an
//! escape sequence: every control character (C0, DEL, C1) is written as an escape
//! (`\n`, `\r`, `\t`, `\u{1b}`), in the text and the JSON formats alike. Strings
//! recorded with `?` are safe already (their `Debug` escapes); `%` needs this.

use std::fmt::{self, Write};

/// A value displayed with its control characters escaped.
pub struct Untrusted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

impl<T: fmt::Display> fmt::Debug for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Runs of ordinary characters go out in one write.
        let mut rest = s;
        while let Some(i) = rest.find(char::is_control) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().expect("found at i");
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let forged = "bob\n2026-12-03T00:00:00Z  WARN cache purged\r\x1b[31mred\x07\u{9b}2J\u{7f}";
        assert_eq!(
            Untrusted(forged).to_string(),
            "bob\\n2026-12-03T00:00:00Z  WARN cache purged\\r\\u{1b}[31mred\\u{7}\\u{9b}2J\\u{7f}"
        );
        assert_eq!(
            Untrusted("VSPHERE.LOCAL\\Administrator é ü 日本").to_string(),
            "VSPHERE.LOCAL\\Administrator é ü 日本"
        );
        assert_eq!(Untrusted("tab\there").to_string(), "tab\\there");
        assert_eq!(format!("{:?}", Untrusted("a\nb")), "a\\nb");
    }
}
