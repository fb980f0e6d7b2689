//! What a client logs in with, and the session id it gets.

use http::header::HeaderValue;

use crate::auth::Secret;

/// 128 random bits, hex: what vCenter's own ids look like.
pub(super) fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the operating system's random generator failed");
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A log-in's user name and password, whichever way the client sent them.
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl Credentials {
    /// Credentials with a user name; `None` for an anonymous one.
    pub fn new(user: String, password: String) -> Option<Credentials> {
        (!user.is_empty()).then(|| Credentials {
            user,
            password: Secret::new(password),
        })
    }

    /// From an `Authorization: Basic` header (the REST families).
    pub fn basic(header: Option<&HeaderValue>) -> Option<Credentials> {
        let (user, password) = crate::auth::basic_auth::decode(header)?;
        Credentials::new(user, password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_need_a_user_name() {
        let h = crate::auth::basic_auth::encode("administrator@vsphere.local", "VMware1!").unwrap();
        let c = Credentials::basic(Some(&h)).unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.expose()),
            ("administrator@vsphere.local", "VMware1!")
        );
        let anonymous = crate::auth::basic_auth::encode("", "x").unwrap();
        assert!(Credentials::basic(Some(&anonymous)).is_none());
        assert!(Credentials::basic(None).is_none());
    }

    #[test]
    fn session_ids_are_128_bit_hex_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
