//! Writing JSON text by hand: the one place strings are escaped.

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper is the reference; writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing JSON to a Vec cannot fail");
}
