//! Byte sizes and certificate fingerprints as the file writes them.

use super::*;

#[test]
fn pin_is_normalized_to_upper_case_colon_form() {
    let expected = "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:\
                    01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF";
    let plain = "0123456789abcdef".repeat(4);
    let upper = plain.to_uppercase();
    let colons_lower = expected.to_lowercase();
    for written in [
        plain.as_str(),
        &upper,
        expected,
        &colons_lower,
        &format!(" {plain} "),
    ] {
        let pin: CertFingerprint = written.parse().unwrap();
        assert_eq!(pin.to_string(), expected, "{written}");
        assert_eq!(format!("{pin:?}"), format!("CertFingerprint({expected})"));
    }
    assert!("0123".parse::<CertFingerprint>().is_err());
    assert!(format!("{}:", expected).parse::<CertFingerprint>().is_err());
}

#[test]
fn pin_matches_the_certificate_it_was_taken_from() {
    let a = self_signed("a.example");
    let b = self_signed("b.example");
    let pin = CertFingerprint::of_der(a.cert.der());
    assert!(pin.matches(a.cert.der()));
    assert!(!pin.matches(b.cert.der()));
    let parsed: CertFingerprint = pin
        .to_string()
        .to_lowercase()
        .replace(':', "")
        .parse()
        .unwrap();
    assert_eq!(parsed, pin);
}

#[test]
fn byte_sizes_parse() {
    for (s, n) in [
        ("0", 0),
        ("1024", 1024),
        ("512B", 512),
        ("512 b", 512),
        ("16KiB", 16 << 10),
        ("256MiB", 256 << 20),
        ("256mib", 256 << 20),
        ("1GiB", 1 << 30),
        ("64KB", 64_000),
        ("10MB", 10_000_000),
        ("1GB", 1_000_000_000),
        (" 2 GiB ", 2 << 30),
    ] {
        assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(n)), "{s}");
    }
    for (s, reason) in [
        ("", "expected a whole number"),
        ("MiB", "expected a whole number"),
        ("-1", "expected a whole number"),
        ("1.5GiB", "fractions are not supported"),
        ("10XB", "unknown unit"),
        ("10 TiB", "unknown unit"),
        ("99999999999999999999", "too large"),
        ("17179869184GiB", "too large"),
    ] {
        let err = s.parse::<ByteSize>().unwrap_err().to_string();
        assert!(err.contains(reason), "{s}: {err}");
    }
}

#[test]
fn byte_sizes_display_in_the_largest_exact_unit() {
    assert_eq!(ByteSize::mib(256).to_string(), "256MiB");
    assert_eq!(ByteSize::kib(16).to_string(), "16KiB");
    assert_eq!(ByteSize::gib(1).to_string(), "1GiB");
    assert_eq!(ByteSize(1000).to_string(), "1000B");
    assert_eq!(ByteSize(0).to_string(), "0B");
    assert_eq!(ByteSize::kib(64).as_usize(), 65536);
}
