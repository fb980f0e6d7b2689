//! Writing JSON text by hand: the one place strings are escaped.

/// Appends `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper is the reference; writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("writing JSON to a Vec cannot fail");
}

/// Appends `[` each item `,`-separated `]`, each written by `write`.
pub(crate) fn write_list<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}
