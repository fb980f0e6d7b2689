//! The proxy-local user list for `auth.mode = "service_account"`.
//!
//! In that mode vcproxy logs in to every vCenter with one service account, so vCenter
//! no longer checks who the client is: the proxy must. It does so against this list,
//! a small TOML file the operator keeps next to the configuration:
//!
//! ```toml
//! [users]
//! alice = "pbkdf2-sha256$100000$<salt, base64>$<hash, base64>"
//! "ops@example.com" = "pbkdf2-sha256$100000$..."   # quote names with '@' or '.'
//! ```
//!
//! Why it looks like this:
//! * Only password *hashes* are stored, made by `vcproxy hash-password` ([`hash_password`]):
//!   PBKDF2-HMAC-SHA256 with a 16-byte random salt, because `ring` (already a
//!   dependency for TLS) provides it with a constant-time [`ring::pbkdf2::verify`].
//! * The iteration count is stored with each hash so it can be raised later without
//!   invalidating existing entries.
//! * [`UserList::verify`] costs the same for an unknown user as for a known one, so the
//!   response time does not tell an attacker which user names exist.
//! * Neither passwords nor hashes ever appear in an error message or in `Debug` output:
//!   a plain-text password written into the file by mistake must not end up in a log.
//!
//! Verifying costs a deliberate few tens of milliseconds of CPU: check a password when a
//! client logs in, not on every request.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// Iterations [`hash_password`] uses: OWASP's 2021 floor for PBKDF2-HMAC-SHA256, about
/// 30-50 ms per check on one core of a current server.
pub const DEFAULT_ITERATIONS: u32 = 100_000;

/// Highest iteration count accepted in a users file: above it a single login attempt
/// would tie up a core for seconds, which is a denial of service, not more safety.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// The scheme tag at the start of every stored hash.
const SCHEME: &str = "pbkdf2-sha256";
const ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
const SALT_LEN: usize = 16;
const MIN_SALT_LEN: usize = 8;
/// PBKDF2-HMAC-SHA256 output length: one SHA-256 block.
const HASH_LEN: usize = 32;

/// Base64 as written by [`hash_password`] (standard alphabet, padded), but tolerant of
/// missing padding when reading, since other tools often drop it.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What can go wrong reading a users file. Messages name the user and the problem,
/// never the hash or a password.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read users file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape. Only the position and toml's
    /// message are kept: toml's usual excerpt of the offending line could show a hash.
    #[error("{}line {line}, column {column}: {message}", in_file(path.as_deref()))]
    Parse {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    /// One entry is unusable.
    #[error("{}user {user:?}: {message}", in_file(path.as_deref()))]
    InvalidUser {
        path: Option<PathBuf>,
        user: String,
        message: String,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// The users file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: BTreeMap<String, String>,
}

/// One stored PBKDF2 hash.
#[derive(Clone)]
struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    /// Parses `pbkdf2-sha256$<iterations>$<salt>$<hash>`. Errors never quote the input:
    /// it may be a plain-text password typed into the wrong place.
    fn parse(s: &str) -> Result<PasswordHash, String> {
        let parts: Vec<&str> = s.split('$').collect();
        let [scheme, iterations, salt, hash] = parts[..] else {
            return Err(format!(
                "not a {SCHEME} hash (expected {SCHEME}$<iterations>$<salt>$<hash>; plain-text \
                 passwords are not accepted: make a hash with `vcproxy hash-password`)"
            ));
        };
        if scheme != SCHEME {
            return Err(format!(
                "unsupported hash scheme (only {SCHEME} is supported; make a hash with \
                 `vcproxy hash-password`)"
            ));
        }
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| "iteration count must be a whole number above zero".to_owned())?;
        if iterations.get() > MAX_ITERATIONS {
            return Err(format!("iteration count must be at most {MAX_ITERATIONS}"));
        }
        let salt = BASE64_LENIENT
            .decode(salt)
            .map_err(|_| "salt is not valid base64".to_owned())?;
        if salt.len() < MIN_SALT_LEN {
            return Err(format!("salt must be at least {MIN_SALT_LEN} bytes"));
        }
        let hash = BASE64_LENIENT
            .decode(hash)
            .map_err(|_| "hash is not valid base64".to_owned())?;
        if hash.len() != HASH_LEN {
            return Err(format!("hash must be {HASH_LEN} bytes (SHA-256)"));
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(ALGORITHM, self.iterations, &self.salt, password, &self.hash).is_ok()
    }
}

/// The proxy-local users and their password hashes, read once at start.
#[derive(Clone)]
pub struct UserList {
    users: BTreeMap<String, PasswordHash>,
    /// Checked against when the user is unknown, so that costs as much as a real check.
    /// Its iteration count is the highest in the file; its hash matches no password.
    dummy: PasswordHash,
}

impl UserList {
    /// Reads and checks a users file (see the module documentation for its format).
    pub fn load(path: impl AsRef<Path>) -> Result<UserList, UsersError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
            path: path.to_owned(),
            source,
        })?;
        UserList::parse(&text, Some(path))
    }

    /// Parses the text of a users file.
    pub fn from_toml_str(s: &str) -> Result<UserList, UsersError> {
        UserList::parse(s, None)
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<UserList, UsersError> {
        let file: UsersFile = toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            UsersError::Parse {
                path: path.map(Path::to_owned),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let mut users = BTreeMap::new();
        for (user, stored) in file.users {
            let invalid = |message: String| UsersError::InvalidUser {
                path: path.map(Path::to_owned),
                user: user.clone(),
                message,
            };
            check_user_name(&user).map_err(|m| invalid(m.to_owned()))?;
            let hash = PasswordHash::parse(&stored).map_err(invalid)?;
            users.insert(user, hash);
        }
        let dummy = PasswordHash {
            iterations: users
                .values()
                .map(|h| h.iterations)
                .max()
                .unwrap_or(NonZeroU32::new(DEFAULT_ITERATIONS).expect("non-zero constant")),
            salt: vec![0; SALT_LEN],
            hash: vec![0; HASH_LEN],
        };
        Ok(UserList { users, dummy })
    }

    /// Whether `password` is `user`'s password. Constant-time in the password, and as
    /// slow for an unknown user as for a known one.
    pub fn verify(&self, user: &str, password: impl AsRef<[u8]>) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password.as_ref()),
            None => {
                std::hint::black_box(self.dummy.verify(password.as_ref()));
                false
            }
        }
    }

    /// Whether the list has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Shows the user names only, never the hashes.
impl fmt::Debug for UserList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserList")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// User names arrive in HTTP Basic credentials, where `:` ends the name (RFC 7617), and
/// appear in logs, where control characters could forge lines.
fn check_user_name(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        Err("user name must not be empty")
    } else if user.contains(':') {
        Err("user name must not contain ':' (HTTP Basic authentication cannot carry it)")
    } else if user.chars().any(char::is_control) {
        Err("user name must not contain control characters")
    } else {
        Ok(())
    }
}

/// 1-based line and column of a byte offset, for parse errors.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Hashes a password for the users file with [`DEFAULT_ITERATIONS`] and a fresh random
/// salt: `pbkdf2-sha256$100000$<salt>$<hash>`. What `vcproxy hash-password` prints.
///
/// # Panics
/// If the operating system's random number generator fails, which on the platforms
/// vcproxy runs on it does not.
pub fn hash_password(password: &str) -> String {
    let iterations = NonZeroU32::new(DEFAULT_ITERATIONS).expect("non-zero constant");
    hash_password_with_iterations(password, iterations)
}

/// [`hash_password`] with a chosen iteration count (tests use a low one to stay fast).
///
/// # Panics
/// As [`hash_password`].
pub fn hash_password_with_iterations(password: &str, iterations: NonZeroU32) -> String {
    let mut salt = [0u8; SALT_LEN];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the system random number generator failed");
    let mut hash = [0u8; HASH_LEN];
    pbkdf2::derive(ALGORITHM, iterations, &salt, password.as_bytes(), &mut hash);
    format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Low enough that a debug-build test stays in the milliseconds.
    fn fast() -> NonZeroU32 {
        NonZeroU32::new(2).unwrap()
    }

    fn users_file(entries: &[(&str, &str)]) -> String {
        let mut s = String::from("[users]\n");
        for (user, hash) in entries {
            s.push_str(&format!("{user:?} = {hash:?}\n"));
        }
        s
    }

    #[test]
    fn hash_has_the_documented_shape() {
        let h = hash_password_with_iterations("secret", fast());
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts.len(), 4, "{h}");
        assert_eq!(parts[0], "pbkdf2-sha256");
        assert_eq!(parts[1], "2");
        assert_eq!(STANDARD.decode(parts[2]).unwrap().len(), SALT_LEN);
        assert_eq!(STANDARD.decode(parts[3]).unwrap().len(), HASH_LEN);
        // A fresh salt each time: the same password never hashes the same way twice.
        assert_ne!(h, hash_password_with_iterations("secret", fast()));
    }

    #[test]
    fn default_hash_uses_default_iterations() {
        // One real-cost hash, to prove the default is what the docs say.
        let h = hash_password("x");
        assert!(h.starts_with("pbkdf2-sha256$100000$"), "{h}");
    }

    #[test]
    fn round_trip_verifies_right_password_only() {
        let text = users_file(&[
            (
                "alice",
                &hash_password_with_iterations("wonderland", fast()),
            ),
            (
                "bob@corp.example",
                &hash_password_with_iterations("builder", fast()),
            ),
        ]);
        let users = UserList::from_toml_str(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "wonderland"));
        assert!(users.verify("bob@corp.example", b"builder"));
        assert!(!users.verify("alice", "builder"));
        assert!(!users.verify("alice", ""));
        assert!(
            !users.verify("Alice", "wonderland"),
            "names are case-sensitive"
        );
        assert!(!users.verify("carol", "wonderland"), "unknown user");
        assert_eq!(
            users.names().collect::<Vec<_>>(),
            ["alice", "bob@corp.example"]
        );
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = std::env::temp_dir().join(format!("vcproxy-users-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("users.toml");
        let hash = hash_password_with_iterations("pw", fast());
        std::fs::write(&good, users_file(&[("alice", &hash)])).unwrap();
        assert!(UserList::load(&good).unwrap().verify("alice", "pw"));

        let bad = dir.join("bad-users.toml");
        std::fs::write(&bad, users_file(&[("alice", "hunter2")])).unwrap();
        let err = UserList::load(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: user \"alice\": ", bad.display())),
            "{err}"
        );

        let missing = dir.join("missing.toml");
        let err = UserList::load(&missing).unwrap_err().to_string();
        assert!(
            err.contains("cannot read users file") && err.contains("missing.toml"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_text_password_is_rejected_without_echoing_it() {
        let err = UserList::from_toml_str(&users_file(&[("alice", "hunter2")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("user \"alice\": not a pbkdf2-sha256 hash"),
            "{err}"
        );
        assert!(err.contains("vcproxy hash-password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        let err = UserList::from_toml_str(&users_file(&[("alice", "bcrypt$1$hunter2$x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported hash scheme"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("bcrypt"), "{err}");
    }

    #[test]
    fn malformed_hashes_name_user_and_problem() {
        let good = hash_password_with_iterations("pw", fast());
        let parts: Vec<&str> = good.split('$').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join("$")
        };
        let cases = [
            (
                with(1, "0"),
                "iteration count must be a whole number above zero",
            ),
            (
                with(1, "many"),
                "iteration count must be a whole number above zero",
            ),
            (
                with(1, "10000001"),
                "iteration count must be at most 10000000",
            ),
            (with(2, "!!!"), "salt is not valid base64"),
            (with(2, "AAAA"), "salt must be at least 8 bytes"),
            (with(3, "!!!"), "hash is not valid base64"),
            (with(3, "AAAA"), "hash must be 32 bytes"),
        ];
        for (hash, expected) in cases {
            let err = UserList::from_toml_str(&users_file(&[("bob", &hash)]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("user \"bob\": "), "{err}");
            assert!(err.contains(expected), "{err} should contain {expected}");
            assert!(!err.contains(parts[3]), "hash leaked: {err}");
        }
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let good = hash_password_with_iterations("pw", fast());
        let unpadded = good.replace('=', "");
        let users = UserList::from_toml_str(&users_file(&[("u", &unpadded)])).unwrap();
        assert!(users.verify("u", "pw"));
    }

    #[test]
    fn bad_user_names_are_rejected() {
        let h = hash_password_with_iterations("pw", fast());
        for (name, expected) in [
            ("", "must not be empty"),
            ("a:b", "must not contain ':'"),
            ("a\nb", "control characters"),
        ] {
            let err = UserList::from_toml_str(&users_file(&[(name, &h)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn parse_errors_give_position_but_not_the_line() {
        let h = hash_password_with_iterations("pw", fast());
        // An unterminated string: toml would normally quote the whole line, hash and all.
        let text = format!("[users]\nalice = \"{h}\n");
        let err = UserList::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("line 2, column "), "{err}");
        assert!(!err.contains(&h[20..]), "hash leaked: {err}");

        let err = UserList::from_toml_str("[user]\nalice = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `user`"), "{err}");
    }

    #[test]
    fn empty_file_is_an_empty_list() {
        assert!(UserList::from_toml_str("").unwrap().is_empty());
        assert!(UserList::from_toml_str("[users]\n").unwrap().is_empty());
    }

    #[test]
    fn debug_shows_names_but_not_hashes() {
        let h = hash_password_with_iterations("pw", fast());
        let users = UserList::from_toml_str(&users_file(&[("alice", &h)])).unwrap();
        let debug = format!("{users:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(
            !debug.contains("pbkdf2") && !debug.contains(&h[20..]),
            "{debug}"
        );
    }

    #[test]
    fn unknown_user_costs_the_highest_iteration_count() {
        let slow = NonZeroU32::new(50).unwrap();
        let text = users_file(&[
            ("a", &hash_password_with_iterations("pw", fast())),
            ("b", &hash_password_with_iterations("pw", slow)),
        ]);
        let users = UserList::from_toml_str(&text).unwrap();
        assert_eq!(users.dummy.iterations, slow);
        assert!(
            !users.dummy.verify(b""),
            "the dummy hash matches no password"
        );
        assert_eq!(
            UserList::from_toml_str("").unwrap().dummy.iterations.get(),
            DEFAULT_ITERATIONS
        );
    }
}
