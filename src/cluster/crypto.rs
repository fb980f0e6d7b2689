//! The cluster's keys: everything derived from the shared secret with HKDF-SHA256,
//! key names as HMACs, values sealed with AES-256-GCM.
//!
//! * Answer key names are `HMAC(name_key, generation || key material)`: neither the
//!   user nor the filter shows in Redis, and a new generation names new keys.
//! * Answers are sealed with one AEAD key; session records with a key expanded from
//!   the secret *and the session id*, so a Redis dump (which holds only the
//!   session's handle, `HMAC(handle_key, id)`) cannot open them even with the
//!   secret.
//! * The associated data is the Redis key name, so a value copied under another
//!   key fails authentication.
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext || tag (16)`; the
//! nonce is random per value (96 bits; far below the birthday bound for the number
//! of values a cluster writes under one key).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, Prk, Salt, HKDF_SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The first byte of every sealed value; a later format would use another.
const VERSION: u8 = 1;
const SALT: &[u8] = b"vcproxy cluster v1";
const INFO_NAMES: &[u8] = b"vcproxy/v1 answer key names";
const INFO_ANSWERS: &[u8] = b"vcproxy/v1 answer encryption";
const INFO_HANDLES: &[u8] = b"vcproxy/v1 session handles";
const INFO_SESSION: &[u8] = b"vcproxy/v1 session record\0";

/// A MAC or handle: 32 bytes of HMAC-SHA256.
pub(crate) type Mac = [u8; 32];

/// The keys derived from the cluster secret. Holds no copy of the secret.
pub(crate) struct Keys {
    names: hmac::Key,
    answers: LessSafeKey,
    handles: hmac::Key,
    /// The HKDF pseudo-random key each session's record key is expanded from.
    sessions: Prk,
    rng: SystemRandom,
}

impl Keys {
    /// Derives every sub-key from `secret` (the lead checks it is at least 32 bytes).
    pub(crate) fn derive(secret: &[u8]) -> Keys {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret);
        Keys {
            names: hmac::Key::from(expand(&prk, &[INFO_NAMES], hmac::HMAC_SHA256)),
            answers: LessSafeKey::new(UnboundKey::from(expand(
                &prk,
                &[INFO_ANSWERS],
                &AES_256_GCM,
            ))),
            handles: hmac::Key::from(expand(&prk, &[INFO_HANDLES], hmac::HMAC_SHA256)),
            sessions: prk,
            rng: SystemRandom::new(),
        }
    }

    /// The MAC that names an answer (and its lock) in `generation`.
    pub(crate) fn answer_mac(&self, generation: u64, material: &[u8]) -> Mac {
        let mut ctx = hmac::Context::with_key(&self.names);
        ctx.update(&generation.to_be_bytes());
        ctx.update(material);
        to_mac(ctx.sign())
    }

    /// A session's handle: what Redis and the revocation channel see instead of the id.
    pub(crate) fn session_handle(&self, id: &str) -> Mac {
        to_mac(hmac::sign(&self.handles, id.as_bytes()))
    }

    pub(crate) fn seal_answer(&self, key_name: &[u8], plain: &[u8]) -> Vec<u8> {
        seal(&self.answers, &self.rng, key_name, plain)
    }

    /// `None` when the value fails authentication (tampered, moved, other secret).
    pub(crate) fn open_answer(&self, key_name: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.answers, key_name, sealed)
    }

    pub(crate) fn seal_session(&self, id: &str, key_name: &[u8], plain: &[u8]) -> Vec<u8> {
        seal(&self.session_key(id), &self.rng, key_name, plain)
    }

    /// `None` when the value fails authentication: tampered, moved, other secret, or
    /// not this session's record.
    pub(crate) fn open_session(&self, id: &str, key_name: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.session_key(id), key_name, sealed)
    }

    /// 16 random bytes: a lock's owner token.
    pub(crate) fn token(&self) -> [u8; 16] {
        let mut token = [0u8; 16];
        self.rng
            .fill(&mut token)
            .expect("the system random number generator failed");
        token
    }

    fn session_key(&self, id: &str) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::from(expand(
            &self.sessions,
            &[INFO_SESSION, id.as_bytes()],
            &AES_256_GCM,
        )))
    }
}

fn expand<'a, L: hkdf::KeyType>(prk: &'a Prk, info: &'a [&'a [u8]], len: L) -> hkdf::Okm<'a, L> {
    // `expand` fails only for outputs longer than 255 hash lengths; ours are 32 bytes.
    prk.expand(info, len)
        .expect("HKDF output of 32 bytes is always valid")
}

fn to_mac(tag: hmac::Tag) -> Mac {
    let mut mac = [0u8; 32];
    mac.copy_from_slice(tag.as_ref());
    mac
}

fn seal(key: &LessSafeKey, rng: &SystemRandom, key_name: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .expect("the system random number generator failed");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(key_name),
            &mut out[1 + NONCE_LEN..],
        )
        .expect("AES-GCM sealing cannot fail for values this size");
    out.extend_from_slice(tag.as_ref());
    out
}

fn open(key: &LessSafeKey, key_name: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (&version, rest) = sealed.split_first()?;
    if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ciphertext.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(key_name), &mut buf)
        .ok()?
        .len();
    buf.truncate(plain_len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn answers_open_only_under_their_key_name_and_secret() {
        let keys = Keys::derive(SECRET);
        let sealed = keys.seal_answer(b"vcproxy:a:0:X", b"tasks");
        assert_eq!(
            keys.open_answer(b"vcproxy:a:0:X", &sealed).as_deref(),
            Some(&b"tasks"[..])
        );
        assert_eq!(keys.open_answer(b"vcproxy:a:0:Y", &sealed), None);
        assert_eq!(
            Keys::derive(b"another secret of 32 bytes or more")
                .open_answer(b"vcproxy:a:0:X", &sealed),
            None
        );
        assert!(!sealed.windows(5).any(|w| w == b"tasks"));
        // Fresh nonce per value.
        assert_ne!(sealed, keys.seal_answer(b"vcproxy:a:0:X", b"tasks"));
        for bad in [&[][..], &[1u8][..], &sealed[..sealed.len() - 1]] {
            assert_eq!(keys.open_answer(b"vcproxy:a:0:X", bad), None);
        }
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert_eq!(keys.open_answer(b"vcproxy:a:0:X", &other_version), None);
    }

    #[test]
    fn sessions_open_only_with_their_id() {
        let keys = Keys::derive(SECRET);
        let sealed = keys.seal_session("id-1", b"name", b"record");
        assert_eq!(
            keys.open_session("id-1", b"name", &sealed).as_deref(),
            Some(&b"record"[..])
        );
        assert_eq!(keys.open_session("id-2", b"name", &sealed), None);
        // The answer key is not a session key.
        assert_eq!(keys.open_answer(b"name", &sealed), None);
    }

    #[test]
    fn names_and_handles_are_keyed_and_separated() {
        let keys = Keys::derive(SECRET);
        assert_eq!(keys.answer_mac(0, b"q"), keys.answer_mac(0, b"q"));
        assert_ne!(keys.answer_mac(0, b"q"), keys.answer_mac(1, b"q"));
        assert_eq!(
            keys.session_handle("id"),
            Keys::derive(SECRET).session_handle("id")
        );
        assert_ne!(keys.session_handle("id"), keys.session_handle("id2"));
        assert_ne!(
            keys.session_handle("id"),
            Keys::derive(b"another secret of 32 bytes or more").session_handle("id")
        );
        assert_ne!(keys.token(), keys.token());
    }
}
