//! HTTP Basic authentication, as vCenter's session endpoints take it.
//!
//! One implementation for the proxy's login, its logins to vCenters, `check` and the
//! simulator, so they agree on every edge (scheme case, white space, colons in
//! passwords).

use base64::Engine as _;
use http::HeaderValue;

/// `Authorization: Basic base64(user:password)` decoded, if well formed. The password
/// is everything after the first colon, so it may itself hold colons.
pub fn decode(header: Option<&HeaderValue>) -> Option<(String, String)> {
    let value = header?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The `Authorization` header value for `user` and `password`, marked sensitive so
/// that hyper never logs it. `None` if the result is not a valid header value.
pub fn encode(user: &str, password: &str) -> Option<HeaderValue> {
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {credentials}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edges() {
        let h = encode("administrator@vsphere.local", "VMware1!").unwrap();
        assert_eq!(h, "Basic YWRtaW5pc3RyYXRvckB2c3BoZXJlLmxvY2FsOlZNd2FyZTEh");
        assert!(h.is_sensitive());
        assert_eq!(
            decode(Some(&h)),
            Some(("administrator@vsphere.local".into(), "VMware1!".into()))
        );
        let colon = encode("u", "p:q").unwrap();
        assert_eq!(decode(Some(&colon)).unwrap().1, "p:q");
        let lower = HeaderValue::from_static("basic dTpw");
        assert_eq!(decode(Some(&lower)), Some(("u".into(), "p".into())));
        for bad in ["Bearer x", "Basic !!!", "Basic", "Basic dXNlcg=="] {
            assert!(
                decode(Some(&HeaderValue::from_static(bad))).is_none(),
                "{bad}"
            );
        }
        assert!(decode(None).is_none());
    }
}
