//! vcproxy's configuration: one TOML file, read and checked once, at start.
//!
//! Why it is built this way:
//! * A mistake should stop the proxy at start with a message naming the key
//!   (`vcenter[1] (name "vc2").url: scheme must be http or https`), not show up later as a
//!   puzzling failure on some request. So the file is first read into private structs
//!   that mirror it (serde, `deny_unknown_fields`, defaults), then checked and turned into
//!   the public types below, which can only hold valid values: parsed addresses and URLs,
//!   resolved secrets, certificates already read.
//! * The files the configuration names (the service account's password, CA bundles, the
//!   listener's certificate and key, the users list) are read here too, for the same
//!   reason, and so nothing else in the proxy reads configuration from disk.
//! * It is plain data. Nothing here opens a socket or builds a client.
//!
//! Relative paths inside the file are taken relative to the directory of the
//! configuration file ([`Config::load`]) or to the current directory
//! ([`Config::from_toml_str`]), so a configuration works wherever the proxy is started.
//!
//! `proxy.toml` at the top of the repository documents every key with its default.

use crate::auth::users::UserList;
use crate::Family;
use http::Uri;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

// --------------------------------------------------------------------------------------
// The validated configuration
// --------------------------------------------------------------------------------------

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub admin: Admin,
    pub cache: Cache,
    pub merge: Merge,
    pub auth: Auth,
    pub log: Log,
    /// The `[[vcenter]]` entries in file order: at least one, names unique.
    pub vcenters: Vec<Vcenter>,
}

/// `[listen]`: the client-facing listener.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Present when `tls_cert` and `tls_key` are set: then the listener speaks HTTPS.
    pub tls: Option<ListenTls>,
    /// The most client connections served at once.
    pub max_connections: usize,
    /// Limit on a request's header section.
    pub max_header_bytes: ByteSize,
    /// Limit on a request body, which for List Tasks is a filter.
    pub max_body_bytes: ByteSize,
    /// Limit on a request's query string, the other place a filter travels.
    pub max_query_bytes: ByteSize,
    /// How long a client may take to send its headers (slow-loris defence).
    pub header_read_timeout: Duration,
}

/// The listener's certificate chain and private key, read and checked against each
/// other at load.
pub struct ListenTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// End-entity certificate first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// `[admin]`: the operator's listener (metrics, healthz, readyz, cache purge), kept apart
/// from client traffic so it can stay on loopback.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    #[serde(deserialize_with = "socket_addr")]
    pub addr: SocketAddr,
}

/// `[cache]`: how long answers are reused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// How long an answer is fresh. Greater than zero.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// After `ttl`, how long a stale answer may still be served while one request
    /// refreshes it in the background. Zero turns this off.
    #[serde(with = "humantime_serde")]
    pub stale_while_revalidate: Duration,
    /// After `ttl`, how long a stale answer may be served when refreshing it fails.
    /// Zero turns this off.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    /// How long an error answer is reused, so a failing vCenter is not hammered.
    /// Zero turns this off.
    #[serde(with = "humantime_serde")]
    pub error_ttl: Duration,
    /// Upper bound on the cache's memory for stored answers.
    pub max_memory: ByteSize,
}

/// `[merge]`: how answers from several vCenters become one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Merge {
    /// The most tasks one answer may hold; vCenter's own limit is 1000.
    pub max_tasks: usize,
    pub on_too_many: OnTooMany,
    /// Whether to answer with the vCenters that did answer when others failed.
    pub partial: bool,
}

/// What to do when the merged answer would hold more than `merge.max_tasks` tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTooMany {
    /// Answer `resource_inaccessible` (404), as one vCenter does over its limit.
    #[default]
    Error,
    /// Return every task anyway.
    ReturnAll,
}

/// `[auth]`: whose credentials reach the vCenters.
#[derive(Debug, Clone)]
pub struct Auth {
    pub mode: AuthMode,
    /// Pooled backend sessions idle this long are closed (vCenter's own idle limit is
    /// 30 minutes by default, so this stays below it).
    pub backend_idle_timeout: Duration,
    /// A client's proxy session idle this long expires.
    pub client_session_idle: Duration,
}

/// `auth.mode`.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Each client's own credentials log in to every vCenter.
    Passthrough,
    /// One service account logs in to every vCenter; clients are checked against the
    /// proxy-local users list.
    ServiceAccount(Box<ServiceAccount>),
}

impl AuthMode {
    /// The name used in the file: `"passthrough"` or `"service_account"`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::Passthrough => "passthrough",
            AuthMode::ServiceAccount(_) => "service_account",
        }
    }
}

/// The service account and the users allowed to use it, all resolved at load.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub username: String,
    pub password: Secret,
    /// Where the password came from, for log lines like "password from env VAR".
    pub password_source: SecretSource,
    pub users_file: PathBuf,
    pub users: UserList,
}

/// Where a secret was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// A secret string. `Debug` and `Display` print `<redacted>`, so a secret cannot reach a
/// log by accident; [`Secret::expose`] is the one, greppable, way to read it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it (a vCenter login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive string, e.g. `"info,vcproxy=debug"`.
    pub level: String,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One `[[vcenter]]`.
#[derive(Clone)]
pub struct Vcenter {
    /// Unique, `[A-Za-z0-9._-]+`: it appears in response headers and metric labels.
    pub name: String,
    /// `scheme://host[:port]/`, normalized; `/rest` and `/api` go after it.
    pub base_url: Uri,
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file`, to trust instead of the system roots. Empty when
    /// `ca_file` is not set.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The SHA-256 fingerprint of the one certificate to trust (the vCenter's own,
    /// end-entity certificate), instead of any CA. Never set together with `ca_file`.
    pub pin_sha256: Option<CertFingerprint>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The URL families this vCenter serves (before 7.0 U2: only `/rest`). Non-empty,
    /// no duplicates.
    pub families: Vec<Family>,
    /// Idle keep-alive connections kept to this vCenter; zero disables pooling.
    pub max_idle_connections: usize,
}

impl Vcenter {
    pub fn is_https(&self) -> bool {
        self.base_url.scheme_str() == Some("https")
    }

    /// The host name or address, e.g. for TLS server name checks.
    pub fn host(&self) -> &str {
        self.base_url.host().unwrap_or_default()
    }

    /// `scheme://host[:port]` without a trailing slash.
    pub fn origin(&self) -> String {
        let scheme = self.base_url.scheme_str().unwrap_or("http");
        let authority = self.base_url.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}")
    }

    /// `scheme://host[:port]/rest` or `.../api`.
    pub fn family_base(&self, family: Family) -> String {
        format!("{}/{}", self.origin(), family.as_str())
    }

    /// `scheme://host[:port]/rest`.
    pub fn rest_base(&self) -> String {
        self.family_base(Family::Rest)
    }

    /// `scheme://host[:port]/api`.
    pub fn api_base(&self) -> String {
        self.family_base(Family::Api)
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) on this vCenter.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut parts = self.base_url.clone().into_parts();
        parts.path_and_query = Some(path_and_query.parse()?);
        Ok(Uri::from_parts(parts)?)
    }

    /// Whether this vCenter serves `family`.
    pub fn serves(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}

/// Like the derived one, but counts certificates instead of dumping their bytes.
impl fmt::Debug for Vcenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vcenter")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("ca_file", &self.ca_file)
            .field("ca_certs", &self.ca_certs.len())
            .field("pin_sha256", &self.pin_sha256)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("families", &self.families)
            .field("max_idle_connections", &self.max_idle_connections)
            .finish()
    }
}

/// Counts certificates instead of dumping them; the key is never shown.
impl fmt::Debug for ListenTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("cert_chain", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// `PrivateKeyDer` is deliberately not `Clone`; copying it here is explicit.
impl Clone for ListenTls {
    fn clone(&self) -> ListenTls {
        ListenTls {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

// --------------------------------------------------------------------------------------
// Defaults
// --------------------------------------------------------------------------------------

const DEFAULT_MAX_CONNECTIONS: usize = 4096;
const DEFAULT_MAX_HEADER_BYTES: ByteSize = ByteSize::kib(16);
const DEFAULT_MAX_BODY_BYTES: ByteSize = ByteSize::kib(64);
const DEFAULT_MAX_QUERY_BYTES: ByteSize = ByteSize::kib(64);
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 32;

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
        }
    }
}

impl Default for Cache {
    fn default() -> Cache {
        Cache {
            ttl: Duration::from_secs(5),
            stale_while_revalidate: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(60),
            error_ttl: Duration::from_secs(1),
            max_memory: ByteSize::mib(256),
        }
    }
}

impl Default for Merge {
    fn default() -> Merge {
        Merge {
            max_tasks: 1000,
            on_too_many: OnTooMany::Error,
            partial: false,
        }
    }
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            mode: AuthMode::Passthrough,
            backend_idle_timeout: Duration::from_secs(25 * 60),
            client_session_idle: Duration::from_secs(30 * 60),
        }
    }
}

impl Default for Log {
    fn default() -> Log {
        Log {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Listen {
    /// A plain-HTTP listener on `addr` with every other setting at its default.
    pub fn new(addr: SocketAddr) -> Listen {
        Listen {
            addr,
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_query_bytes: DEFAULT_MAX_QUERY_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

// --------------------------------------------------------------------------------------
// Byte sizes and certificate fingerprints
// --------------------------------------------------------------------------------------

/// A number of bytes, written in the file as a plain integer or a string with a unit:
/// `"512B"`, `"16KiB"`, `"256MiB"`, `"1GiB"` (powers of 1024) or `"64KB"`, `"10MB"`,
/// `"1GB"` (powers of 1000). Units ignore case; a space may precede the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n * 1024)
    }

    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }

    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024 * 1024)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The size as a `usize`, saturating (only matters on 32-bit targets).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Why a byte size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid byte size {input:?}: {reason}")]
pub struct ByteSizeError {
    input: String,
    reason: &'static str,
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<ByteSize, ByteSizeError> {
        let fail = |reason| ByteSizeError {
            input: s.to_owned(),
            reason,
        };
        let s = s.trim();
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits);
        if number.is_empty() {
            return Err(fail(
                "expected a whole number, optionally followed by B, KiB, MiB, GiB, KB, MB or GB",
            ));
        }
        if unit.starts_with('.') {
            return Err(fail("fractions are not supported; use a smaller unit"));
        }
        let number: u64 = number.parse().map_err(|_| fail("number is too large"))?;
        let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            _ => return Err(fail("unknown unit; use B, KiB, MiB, GiB, KB, MB or GB")),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| fail("number is too large"))
    }
}

/// The largest binary unit that divides the size exactly, e.g. `256MiB`, `1000B`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n != 0 && n % size == 0 {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size: an integer number of bytes or a string like \"256MiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a byte size cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

/// A certificate's SHA-256 fingerprint. Written in the file as 64 hex digits, in either
/// case, with or without colons between the bytes; shown in the usual upper-case colon
/// form (`AB:CD:...`), as browsers and `openssl x509 -fingerprint -sha256` show it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(cert_der: &[u8]) -> CertFingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        CertFingerprint(bytes)
    }

    /// Whether `cert_der` is the pinned certificate.
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        CertFingerprint::of_der(cert_der) == *self
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FingerprintError(&'static str);

impl FromStr for CertFingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<CertFingerprint, FingerprintError> {
        let s = s.trim();
        let hex = if s.contains(':') {
            let pairs: Vec<&str> = s.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
                return Err(FingerprintError(
                    "with colons, it must be 32 pairs of hex digits like \"AB:CD:...\"",
                ));
            }
            pairs.concat()
        } else {
            s.to_owned()
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FingerprintError(
                "must be a SHA-256 fingerprint: 64 hex digits, colons optional",
            ));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).expect("ASCII hex digits");
            *byte = u8::from_str_radix(pair, 16).expect("checked hex digits");
        }
        Ok(CertFingerprint(bytes))
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

// --------------------------------------------------------------------------------------
// Errors
// --------------------------------------------------------------------------------------

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type. toml's message
    /// names the line and shows it.
    #[error("{}{}", in_file(path.as_deref()), source.to_string().trim_end())]
    Parse {
        path: Option<PathBuf>,
        source: toml::de::Error,
    },
    /// A value that parsed but is not acceptable. `key` is dotted, with the vCenter's
    /// index and name where relevant: `vcenter[1] (name "vc2").url`.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// --------------------------------------------------------------------------------------
// The file as written
// --------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: FileListen,
    #[serde(default)]
    admin: Admin,
    #[serde(default)]
    cache: Cache,
    #[serde(default)]
    merge: Merge,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    log: Log,
    #[serde(default)]
    vcenter: Vec<FileVcenter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListen {
    #[serde(deserialize_with = "socket_addr")]
    addr: SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_header_bytes")]
    max_header_bytes: ByteSize,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: ByteSize,
    #[serde(default = "default_max_query_bytes")]
    max_query_bytes: ByteSize,
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    header_read_timeout: Duration,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FileAuthMode {
    #[default]
    Passthrough,
    ServiceAccount,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileAuth {
    mode: FileAuthMode,
    #[serde(with = "humantime_serde")]
    backend_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    client_session_idle: Duration,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    users_file: Option<PathBuf>,
}

impl Default for FileAuth {
    fn default() -> FileAuth {
        let auth = Auth::default();
        FileAuth {
            mode: FileAuthMode::Passthrough,
            backend_idle_timeout: auth.backend_idle_timeout,
            client_session_idle: auth.client_session_idle,
            username: None,
            password_env: None,
            password_file: None,
            users_file: None,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FileFamily {
    Rest,
    Api,
}

impl From<FileFamily> for Family {
    fn from(f: FileFamily) -> Family {
        match f {
            FileFamily::Rest => Family::Rest,
            FileFamily::Api => Family::Api,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVcenter {
    name: String,
    url: String,
    ca_file: Option<PathBuf>,
    pin_sha256: Option<String>,
    /// Accepted only to reject it with an explanation rather than "unknown field".
    insecure: Option<IgnoredAny>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    connect_timeout: Duration,
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    request_timeout: Duration,
    #[serde(default = "default_families")]
    families: Vec<FileFamily>,
    #[serde(default = "default_max_idle_connections")]
    max_idle_connections: usize,
}

/// A listen address: an IP address and a port. Host names are refused rather than
/// resolved, so the address the proxy binds is exactly the one written.
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(deserializer)?;
    s.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid listen address {s:?}: expected an IP address and port like \
             \"127.0.0.1:8080\" or \"[::]:8080\" (host names are not resolved)"
        ))
    })
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_max_header_bytes() -> ByteSize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_max_body_bytes() -> ByteSize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_query_bytes() -> ByteSize {
    DEFAULT_MAX_QUERY_BYTES
}
fn default_header_read_timeout() -> Duration {
    DEFAULT_HEADER_READ_TIMEOUT
}
fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_request_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}
fn default_families() -> Vec<FileFamily> {
    vec![FileFamily::Rest, FileFamily::Api]
}
fn default_max_idle_connections() -> usize {
    DEFAULT_MAX_IDLE_CONNECTIONS
}

// --------------------------------------------------------------------------------------
// Loading and validation
// --------------------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates the configuration file at `path`, and reads the
    /// files it names. Relative paths in it are relative to its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        Config::parse(&text, Some(path), dir)
    }

    /// Parses and validates configuration text. Files it names (secrets, CA bundles,
    /// TLS key pair, users list) are still read; relative paths are relative to the
    /// current directory.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, None, None)
    }

    /// The vCenter called `name`.
    pub fn vcenter(&self, name: &str) -> Option<&Vcenter> {
        self.vcenters.iter().find(|v| v.name == name)
    }

    fn parse(text: &str, path: Option<&Path>, dir: Option<&Path>) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.map(Path::to_owned),
            source,
        })?;
        let paths = Paths { dir };
        let listen = validate_listen(file.listen, paths)?;
        validate_admin(&file.admin, &listen)?;
        validate_cache(&file.cache)?;
        validate_merge(&file.merge)?;
        let auth = validate_auth(file.auth, paths)?;
        validate_log(&file.log)?;
        let vcenters = validate_vcenters(file.vcenter, paths)?;
        Ok(Config {
            listen,
            admin: file.admin,
            cache: file.cache,
            merge: file.merge,
            auth,
            log: file.log,
            vcenters,
        })
    }
}

/// Resolves relative paths against the configuration file's directory.
#[derive(Clone, Copy)]
struct Paths<'a> {
    dir: Option<&'a Path>,
}

impl Paths<'_> {
    fn resolve(self, path: &Path) -> PathBuf {
        match self.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

fn require_positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(())
}

fn require_nonzero(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(())
}

fn validate_listen(file: FileListen, paths: Paths) -> Result<Listen, ConfigError> {
    require_nonzero("listen.max_connections", file.max_connections as u64)?;
    require_nonzero("listen.max_header_bytes", file.max_header_bytes.0)?;
    require_nonzero("listen.max_body_bytes", file.max_body_bytes.0)?;
    require_nonzero("listen.max_query_bytes", file.max_query_bytes.0)?;
    require_positive("listen.header_read_timeout", file.header_read_timeout)?;
    let tls = match (file.tls_cert, file.tls_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "listen.tls_key",
                "required when listen.tls_cert is set (set both or neither)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "listen.tls_cert",
                "required when listen.tls_key is set (set both or neither)",
            ))
        }
        (Some(cert), Some(key)) => {
            Some(load_listen_tls(paths.resolve(&cert), paths.resolve(&key))?)
        }
    };
    Ok(Listen {
        addr: file.addr,
        tls,
        max_connections: file.max_connections,
        max_header_bytes: file.max_header_bytes,
        max_body_bytes: file.max_body_bytes,
        max_query_bytes: file.max_query_bytes,
        header_read_timeout: file.header_read_timeout,
    })
}

/// Reads the listener's certificate chain and key and checks that they belong together,
/// so a mismatched pair fails at start rather than at the first TLS handshake.
fn load_listen_tls(cert_file: PathBuf, key_file: PathBuf) -> Result<ListenTls, ConfigError> {
    let cert_chain = read_pem_certs("listen.tls_cert", &cert_file)?;
    let key_pem = read_file("listen.tls_key", &key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            "listen.tls_key",
            format!("{}: no usable PEM private key: {e}", key_file.display()),
        )
    })?;
    rustls::sign::CertifiedKey::from_der(
        cert_chain.clone(),
        key.clone_key(),
        &crate::net::tls::provider(),
    )
    .map_err(|e| {
        invalid(
            "listen.tls_key",
            format!(
                "{} does not fit the certificate in {}: {e}",
                key_file.display(),
                cert_file.display()
            ),
        )
    })?;
    Ok(ListenTls {
        cert_file,
        key_file,
        cert_chain,
        key,
    })
}

fn validate_admin(admin: &Admin, listen: &Listen) -> Result<(), ConfigError> {
    if admin.addr == listen.addr && admin.addr.port() != 0 {
        return Err(invalid(
            "admin.addr",
            format!("must differ from listen.addr ({})", listen.addr),
        ));
    }
    Ok(())
}

fn validate_cache(cache: &Cache) -> Result<(), ConfigError> {
    require_positive("cache.ttl", cache.ttl)?;
    require_nonzero("cache.max_memory", cache.max_memory.0)
}

fn validate_merge(merge: &Merge) -> Result<(), ConfigError> {
    require_nonzero("merge.max_tasks", merge.max_tasks as u64)
}

fn validate_log(log: &Log) -> Result<(), ConfigError> {
    if log.level.trim().is_empty() {
        return Err(invalid(
            "log.level",
            "must not be empty (e.g. \"info\" or \"info,vcproxy=debug\")",
        ));
    }
    tracing_subscriber::EnvFilter::try_new(&log.level)
        .map_err(|e| invalid("log.level", format!("not a valid filter directive: {e}")))?;
    Ok(())
}

fn validate_auth(file: FileAuth, paths: Paths) -> Result<Auth, ConfigError> {
    require_positive("auth.backend_idle_timeout", file.backend_idle_timeout)?;
    require_positive("auth.client_session_idle", file.client_session_idle)?;
    let (backend_idle_timeout, client_session_idle) =
        (file.backend_idle_timeout, file.client_session_idle);
    let mode = match file.mode {
        FileAuthMode::Passthrough => {
            let service_account_keys = [
                ("auth.username", file.username.is_some()),
                ("auth.password_env", file.password_env.is_some()),
                ("auth.password_file", file.password_file.is_some()),
                ("auth.users_file", file.users_file.is_some()),
            ];
            if let Some((key, _)) = service_account_keys.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    *key,
                    "only valid with auth.mode = \"service_account\" (the mode is \"passthrough\")",
                ));
            }
            AuthMode::Passthrough
        }
        FileAuthMode::ServiceAccount => {
            AuthMode::ServiceAccount(Box::new(load_service_account(file, paths)?))
        }
    };
    Ok(Auth {
        mode,
        backend_idle_timeout,
        client_session_idle,
    })
}

const NEEDED_FOR_SERVICE_ACCOUNT: &str = "required with auth.mode = \"service_account\"";

fn load_service_account(file: FileAuth, paths: Paths) -> Result<ServiceAccount, ConfigError> {
    let username = file
        .username
        .ok_or_else(|| invalid("auth.username", NEEDED_FOR_SERVICE_ACCOUNT))?;
    if username.trim().is_empty() {
        return Err(invalid("auth.username", "must not be empty"));
    }
    let (password, password_source) = match (file.password_env, file.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "auth.password_file",
                "set only one of auth.password_env and auth.password_file",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "auth.password_env",
                format!(
                    "{NEEDED_FOR_SERVICE_ACCOUNT}: set auth.password_env or auth.password_file \
                     (the password itself never goes in this file)"
                ),
            ))
        }
        (Some(var), None) => (read_secret_env(&var)?, SecretSource::Env(var)),
        (None, Some(path)) => {
            let path = paths.resolve(&path);
            (read_secret_file(&path)?, SecretSource::File(path))
        }
    };
    let users_file = paths.resolve(
        &file
            .users_file
            .ok_or_else(|| invalid("auth.users_file", NEEDED_FOR_SERVICE_ACCOUNT))?,
    );
    let users =
        UserList::load(&users_file).map_err(|e| invalid("auth.users_file", e.to_string()))?;
    if users.is_empty() {
        return Err(invalid(
            "auth.users_file",
            format!(
                "{} lists no users, so nobody could log in (add entries under [users])",
                users_file.display()
            ),
        ));
    }
    Ok(ServiceAccount {
        username,
        password,
        password_source,
        users_file,
        users,
    })
}

fn read_secret_env(var: &str) -> Result<Secret, ConfigError> {
    const KEY: &str = "auth.password_env";
    if var.is_empty() {
        return Err(invalid(KEY, "must name an environment variable"));
    }
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(invalid(
            KEY,
            format!("environment variable {var:?} is empty"),
        )),
        Ok(value) => Ok(Secret(value)),
        Err(std::env::VarError::NotPresent) => Err(invalid(
            KEY,
            format!("environment variable {var:?} is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(invalid(
            KEY,
            format!("environment variable {var:?} is not valid UTF-8"),
        )),
    }
}

/// Reads a password file, dropping the one trailing newline editors and `echo` add.
fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    const KEY: &str = "auth.password_file";
    let mut value = std::fs::read_to_string(path)
        .map_err(|e| invalid(KEY, format!("cannot read {}: {e}", path.display())))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(invalid(KEY, format!("{} is empty", path.display())));
    }
    Ok(Secret(value))
}

fn validate_vcenters(files: Vec<FileVcenter>, paths: Paths) -> Result<Vec<Vcenter>, ConfigError> {
    if files.is_empty() {
        return Err(invalid("vcenter", "at least one [[vcenter]] is required"));
    }
    let mut vcenters: Vec<Vcenter> = Vec::with_capacity(files.len());
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut by_address: HashMap<(String, String, u16), String> = HashMap::new();
    for (index, file) in files.into_iter().enumerate() {
        let at = format!("vcenter[{index}] (name {:?})", file.name);
        let vcenter = validate_vcenter(&at, file, paths)?;
        if let Some(first) = by_name.insert(vcenter.name.clone(), at.clone()) {
            return Err(invalid(
                format!("{at}.name"),
                format!("duplicate: {first} has the same name"),
            ));
        }
        let scheme = vcenter.base_url.scheme_str().unwrap_or_default().to_owned();
        let address = (
            scheme.clone(),
            vcenter.host().to_ascii_lowercase(),
            vcenter
                .base_url
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 }),
        );
        if let Some(first) = by_address.insert(address, at.clone()) {
            return Err(invalid(
                format!("{at}.url"),
                format!("{first} has the same address; its tasks would be counted twice"),
            ));
        }
        vcenters.push(vcenter);
    }
    Ok(vcenters)
}

fn validate_vcenter(at: &str, file: FileVcenter, paths: Paths) -> Result<Vcenter, ConfigError> {
    let key = |name: &str| format!("{at}.{name}");
    validate_vcenter_name(&file.name).map_err(|m| invalid(key("name"), m))?;
    let base_url = parse_base_url(&file.url).map_err(|m| invalid(key("url"), m))?;
    if file.insecure.is_some() {
        return Err(invalid(
            key("insecure"),
            "not supported: certificates are always verified; trust a private CA with \
             ca_file or pin the certificate with pin_sha256",
        ));
    }
    let https = base_url.scheme_str() == Some("https");
    if !https {
        for (name, set) in [
            ("ca_file", file.ca_file.is_some()),
            ("pin_sha256", file.pin_sha256.is_some()),
        ] {
            if set {
                return Err(invalid(key(name), "only valid with an https url"));
            }
        }
    }
    if file.ca_file.is_some() && file.pin_sha256.is_some() {
        return Err(invalid(
            key("pin_sha256"),
            "set ca_file or pin_sha256, not both: a pin trusts exactly one certificate, so \
             the CA bundle would be ignored",
        ));
    }
    let pin_sha256 = file
        .pin_sha256
        .as_deref()
        .map(CertFingerprint::from_str)
        .transpose()
        .map_err(|e| invalid(key("pin_sha256"), e.to_string()))?;
    let ca_file = file.ca_file.map(|p| paths.resolve(&p));
    let ca_certs = match &ca_file {
        Some(path) => read_ca_bundle(&key("ca_file"), path)?,
        None => Vec::new(),
    };
    require_positive(&key("connect_timeout"), file.connect_timeout)?;
    require_positive(&key("request_timeout"), file.request_timeout)?;
    if file.families.is_empty() {
        return Err(invalid(
            key("families"),
            "must list at least one of \"rest\" and \"api\"",
        ));
    }
    let families: Vec<Family> = file.families.iter().map(|&f| Family::from(f)).collect();
    for (i, family) in families.iter().enumerate() {
        if families[..i].contains(family) {
            return Err(invalid(
                key("families"),
                format!("{:?} is listed twice", family.as_str()),
            ));
        }
    }
    Ok(Vcenter {
        name: file.name,
        base_url,
        ca_file,
        ca_certs,
        pin_sha256,
        connect_timeout: file.connect_timeout,
        request_timeout: file.request_timeout,
        families,
        max_idle_connections: file.max_idle_connections,
    })
}

fn validate_vcenter_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(allowed) {
        return Err(
            "may only contain letters, digits, '.', '_' and '-' (it appears in headers and \
             metric labels)",
        );
    }
    Ok(())
}

/// Checks a vCenter's base address and normalizes it to `scheme://authority/`.
fn parse_base_url(raw: &str) -> Result<Uri, String> {
    if raw.contains('#') {
        return Err("must not have a fragment".to_owned());
    }
    let uri: Uri = raw
        .parse()
        .map_err(|e| format!("not a valid URL ({e}): expected e.g. \"https://vc1.example.com\""))?;
    let Some(scheme) = uri.scheme_str() else {
        return Err("must be an absolute URL starting with http:// or https://".to_owned());
    };
    if scheme != "http" && scheme != "https" {
        return Err("scheme must be http or https".to_owned());
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or("host is required")?;
    if authority.as_str().contains('@') {
        return Err(
            "must not contain a user name or password (credentials belong in [auth])".to_owned(),
        );
    }
    let port = authority
        .as_str()
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.contains(']'));
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err("port must be a number from 0 to 65535".to_owned());
    }
    if uri.query().is_some() {
        return Err("must not have a query".to_owned());
    }
    match uri.path() {
        "" | "/" => {}
        path => {
            return Err(format!(
                "path must be empty or \"/\", not {path:?}: vcproxy appends /rest and /api itself"
            ))
        }
    }
    Uri::builder()
        .scheme(scheme)
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| format!("not a valid URL: {e}"))
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// Reads every certificate of a PEM file. At least one is required.
fn read_pem_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read_file(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("{}: not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!(
                "{}: no PEM certificates (\"-----BEGIN CERTIFICATE-----\") found",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// Reads a CA bundle and checks that each certificate can serve as a trust anchor, so
/// the upstream client's root store is known to build from it.
fn read_ca_bundle(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = read_pem_certs(key, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            invalid(
                key,
                format!(
                    "{}: certificate {} of {} is not usable as a CA: {e}",
                    path.display(),
                    i + 1,
                    certs.len()
                ),
            )
        })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CONTRACT: &str = r#"
[listen]
addr = "127.0.0.1:8080"
[cache]
ttl = "5s"                 # humantime string
[[vcenter]]
name = "vc1"
url = "http://127.0.0.1:9001"   # base address; /rest and /api are appended
"#;

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "vcproxy-config-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The error message for `toml`, which must fail to load.
    fn error(toml: &str) -> String {
        match Config::from_toml_str(toml) {
            Ok(_) => panic!("expected an error for:\n{toml}"),
            Err(e) => e.to_string(),
        }
    }

    /// `CONTRACT` with `extra` appended inside the given table (before the vCenter).
    fn with_section(section: &str, body: &str) -> String {
        format!(
            "[listen]\naddr = \"127.0.0.1:8080\"\n[{section}]\n{body}\n\
             [[vcenter]]\nname = \"vc1\"\nurl = \"http://127.0.0.1:9001\"\n"
        )
    }

    /// A config with one vCenter whose entry has `body` after its name.
    fn with_vcenter(body: &str) -> String {
        format!("[listen]\naddr = \"127.0.0.1:8080\"\n[[vcenter]]\nname = \"vc1\"\n{body}\n")
    }

    fn self_signed(name: &str) -> rcgen::CertifiedKey {
        rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap()
    }

    // ---- defaults and the contract

    #[test]
    fn contract_snippet_loads_with_defaults() {
        let config = Config::from_toml_str(CONTRACT).unwrap();
        assert_eq!(config.listen.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(config.listen.tls.is_none());
        assert_eq!(config.listen.max_connections, 4096);
        assert_eq!(config.listen.max_header_bytes, ByteSize(16 * 1024));
        assert_eq!(config.listen.max_body_bytes, ByteSize(64 * 1024));
        assert_eq!(config.listen.max_query_bytes, ByteSize(64 * 1024));
        assert_eq!(config.listen.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.admin.addr, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.cache, Cache::default());
        assert_eq!(config.cache.ttl, Duration::from_secs(5));
        assert_eq!(config.cache.stale_while_revalidate, Duration::from_secs(10));
        assert_eq!(config.cache.stale_if_error, Duration::from_secs(60));
        assert_eq!(config.cache.error_ttl, Duration::from_secs(1));
        assert_eq!(config.cache.max_memory, ByteSize(256 << 20));
        assert_eq!(config.merge.max_tasks, 1000);
        assert_eq!(config.merge.on_too_many, OnTooMany::Error);
        assert!(!config.merge.partial);
        assert!(matches!(config.auth.mode, AuthMode::Passthrough));
        assert_eq!(
            config.auth.backend_idle_timeout,
            Duration::from_secs(25 * 60)
        );
        assert_eq!(
            config.auth.client_session_idle,
            Duration::from_secs(30 * 60)
        );
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");

        assert_eq!(config.vcenters.len(), 1);
        let vc = &config.vcenters[0];
        assert_eq!(vc.name, "vc1");
        assert_eq!(vc.base_url, "http://127.0.0.1:9001/");
        assert!(!vc.is_https());
        assert_eq!(vc.host(), "127.0.0.1");
        assert_eq!(vc.origin(), "http://127.0.0.1:9001");
        assert_eq!(vc.rest_base(), "http://127.0.0.1:9001/rest");
        assert_eq!(vc.api_base(), "http://127.0.0.1:9001/api");
        assert_eq!(
            vc.uri("/api/cis/tasks?action=list").unwrap(),
            "http://127.0.0.1:9001/api/cis/tasks?action=list"
        );
        assert!(vc.ca_file.is_none() && vc.ca_certs.is_empty() && vc.pin_sha256.is_none());
        assert_eq!(vc.connect_timeout, Duration::from_secs(3));
        assert_eq!(vc.request_timeout, Duration::from_secs(30));
        assert_eq!(vc.families, [Family::Rest, Family::Api]);
        assert!(vc.serves(Family::Rest) && vc.serves(Family::Api));
        assert_eq!(vc.max_idle_connections, 32);
        assert!(config.vcenter("vc1").is_some() && config.vcenter("vc2").is_none());
    }

    #[test]
    fn shipped_proxy_toml_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
        let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = config.vcenters.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["vc1", "vc2", "vc3"]);
        let urls: Vec<String> = config.vcenters.iter().map(Vcenter::origin).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:9001",
                "http://127.0.0.1:9002",
                "http://127.0.0.1:9003"
            ]
        );
        // The reference file shows the defaults: loading it must equal not writing them.
        assert_eq!(config.cache, Cache::default());
        assert_eq!(config.merge, Merge::default());
        assert_eq!(config.admin, Admin::default());
        assert_eq!(config.log, Log::default());
    }

    #[test]
    fn every_key_can_be_set() {
        let toml = r#"
[listen]
addr = "0.0.0.0:8443"
max_connections = 10
max_header_bytes = "8KiB"
max_body_bytes = 1000
max_query_bytes = "2 KB"
header_read_timeout = "2s 500ms"
[admin]
addr = "127.0.0.1:9999"
[cache]
ttl = "1m"
stale_while_revalidate = "0s"
stale_if_error = "0s"
error_ttl = "0s"
max_memory = "1GiB"
[merge]
max_tasks = 50
on_too_many = "return_all"
partial = true
[auth]
mode = "passthrough"
backend_idle_timeout = "10m"
client_session_idle = "1h"
[log]
format = "json"
level = "warn,vcproxy=debug"
[[vcenter]]
name = "old-vc.lab_1"
url = "https://vc.example.com:8443"
pin_sha256 = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
connect_timeout = "1s"
request_timeout = "5s"
families = ["rest"]
max_idle_connections = 0
"#;
        let c = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.max_connections, 10);
        assert_eq!(c.listen.max_header_bytes, ByteSize(8192));
        assert_eq!(c.listen.max_body_bytes, ByteSize(1000));
        assert_eq!(c.listen.max_query_bytes, ByteSize(2000));
        assert_eq!(c.listen.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(c.admin.addr.port(), 9999);
        assert_eq!(c.cache.ttl, Duration::from_secs(60));
        assert!(c.cache.stale_while_revalidate.is_zero());
        assert_eq!(c.cache.max_memory, ByteSize::gib(1));
        assert_eq!(c.merge.on_too_many, OnTooMany::ReturnAll);
        assert!(c.merge.partial);
        assert_eq!(c.auth.client_session_idle, Duration::from_secs(3600));
        assert_eq!(c.log.format, LogFormat::Json);
        let vc = &c.vcenters[0];
        assert!(vc.is_https());
        assert_eq!(vc.rest_base(), "https://vc.example.com:8443/rest");
        assert_eq!(vc.families, [Family::Rest]);
        assert!(!vc.serves(Family::Api));
        assert_eq!(vc.max_idle_connections, 0);
        assert!(vc
            .pin_sha256
            .unwrap()
            .to_string()
            .starts_with("AB:CD:EF:01"));
    }

    // ---- parse errors

    #[test]
    fn unknown_key_is_rejected_naming_it() {
        let err = error(&CONTRACT.replace(
            "addr = \"127.0.0.1:8080\"",
            "addr = \"127.0.0.1:8080\"\ntls_crt = \"x.pem\"",
        ));
        assert!(err.contains("unknown field `tls_crt`"), "{err}");

        let err = error(&CONTRACT.replace("ttl = \"5s\"", "ttl = \"5s\"\nttl_max = \"9s\""));
        assert!(err.contains("unknown field `ttl_max`"), "{err}");
        assert!(err.contains("line 6"), "{err}");

        let err = error(&format!("{CONTRACT}\nport = 9001\n"));
        assert!(err.contains("unknown field `port`"), "{err}");

        let err = error(&format!("{CONTRACT}\n[metrics]\nenabled = true\n"));
        assert!(err.contains("unknown field `metrics`"), "{err}");
    }

    #[test]
    fn load_names_the_file_in_errors() {
        let dir = TempDir::new();
        let path = dir.write("proxy.toml", format!("{CONTRACT}\nbogus = 1\n"));
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: TOML parse error", path.display())),
            "{err}"
        );
        assert!(err.contains("unknown field `bogus`"), "{err}");

        let missing = dir.0.join("nope.toml");
        let err = Config::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn wrong_types_are_rejected() {
        let err = error(&CONTRACT.replace("ttl = \"5s\"", "ttl = 5"));
        assert!(err.contains("ttl"), "{err}");
        let err = error(&CONTRACT.replace("ttl = \"5s\"", "ttl = \"5 parsecs\""));
        assert!(err.contains("ttl"), "{err}");
        let err = error(&with_section("cache", "max_memory = \"12XB\""));
        assert!(
            err.contains("invalid byte size \"12XB\": unknown unit"),
            "{err}"
        );
        let err = error(&with_section("cache", "max_memory = -1"));
        assert!(err.contains("cannot be negative"), "{err}");
        let err = error(&with_section("merge", "on_too_many = \"truncate\""));
        assert!(err.contains("unknown variant `truncate`"), "{err}");
        let err = error(&with_vcenter("url = \"http://h\"\nfamilies = [\"soap\"]"));
        assert!(err.contains("unknown variant `soap`"), "{err}");
        let err = error(&CONTRACT.replace("127.0.0.1:8080", "localhost:8080"));
        assert!(err.contains("addr = \"localhost:8080\""), "{err}");
        assert!(err.contains("host names are not resolved"), "{err}");
        let err = error(&with_section("admin", "addr = 9090"));
        assert!(
            err.contains("addr = 9090") && err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn missing_required_keys() {
        let err = error("[[vcenter]]\nname = \"vc1\"\nurl = \"http://h\"\n");
        assert!(err.contains("missing field `listen`"), "{err}");
        let err = error("[listen]\naddr = \"127.0.0.1:8080\"\n");
        assert_eq!(err, "vcenter: at least one [[vcenter]] is required");
        let err = error(&with_vcenter(""));
        assert!(err.contains("missing field `url`"), "{err}");
    }

    // ---- validation errors name their key

    #[test]
    fn zero_values_name_their_key() {
        for (section, body, key) in [
            ("cache", "ttl = \"0s\"", "cache.ttl"),
            ("cache", "max_memory = 0", "cache.max_memory"),
            ("merge", "max_tasks = 0", "merge.max_tasks"),
            (
                "auth",
                "backend_idle_timeout = \"0s\"",
                "auth.backend_idle_timeout",
            ),
            (
                "auth",
                "client_session_idle = \"0s\"",
                "auth.client_session_idle",
            ),
        ] {
            assert_eq!(
                error(&with_section(section, body)),
                format!("{key}: must be greater than zero")
            );
        }
        for (body, key) in [
            ("max_connections = 0", "listen.max_connections"),
            ("max_header_bytes = 0", "listen.max_header_bytes"),
            ("max_body_bytes = \"0KiB\"", "listen.max_body_bytes"),
            ("max_query_bytes = 0", "listen.max_query_bytes"),
            ("header_read_timeout = \"0s\"", "listen.header_read_timeout"),
        ] {
            let toml = CONTRACT.replace(
                "addr = \"127.0.0.1:8080\"",
                &format!("addr = \"127.0.0.1:8080\"\n{body}"),
            );
            assert_eq!(error(&toml), format!("{key}: must be greater than zero"));
        }
        for (body, key) in [
            ("connect_timeout = \"0s\"", "connect_timeout"),
            ("request_timeout = \"0s\"", "request_timeout"),
        ] {
            assert_eq!(
                error(&with_vcenter(&format!("url = \"http://h\"\n{body}"))),
                format!("vcenter[0] (name \"vc1\").{key}: must be greater than zero")
            );
        }
    }

    #[test]
    fn stale_and_error_windows_may_be_zero() {
        let c = Config::from_toml_str(&with_section(
            "cache",
            "stale_while_revalidate = \"0s\"\nstale_if_error = 0\nerror_ttl = \"0ms\"",
        ));
        // humantime-serde wants a string; a bare 0 is a type error naming the key.
        let err = c.unwrap_err().to_string();
        assert!(err.contains("stale_if_error"), "{err}");
        let c = Config::from_toml_str(&with_section(
            "cache",
            "stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\nerror_ttl = \"0ms\"",
        ))
        .unwrap();
        assert!(c.cache.stale_if_error.is_zero() && c.cache.error_ttl.is_zero());
    }

    #[test]
    fn admin_must_not_share_the_client_listener() {
        assert_eq!(
            error(&with_section("admin", "addr = \"127.0.0.1:8080\"")),
            "admin.addr: must differ from listen.addr (127.0.0.1:8080)"
        );
    }

    #[test]
    fn log_level_is_checked() {
        assert!(error(&with_section("log", "level = \"  \""))
            .starts_with("log.level: must not be empty"));
        let err = error(&with_section("log", "level = \"vcproxy=loud\""));
        assert!(
            err.starts_with("log.level: not a valid filter directive"),
            "{err}"
        );
    }

    #[test]
    fn vcenter_url_errors_name_index_name_and_key() {
        let two = |url: &str| {
            format!(
                "[listen]\naddr = \"127.0.0.1:8080\"\n\
                 [[vcenter]]\nname = \"vc1\"\nurl = \"http://127.0.0.1:9001\"\n\
                 [[vcenter]]\nname = \"vc2\"\nurl = \"{url}\"\n"
            )
        };
        for (url, message) in [
            ("ftp://vc2.example.com", "scheme must be http or https"),
            (
                "127.0.0.1:9002",
                "must be an absolute URL starting with http:// or https://",
            ),
            ("vc2.example.com", "must be an absolute URL"),
            (
                "http://127.0.0.1:9002/rest",
                "path must be empty or \"/\", not \"/rest\"",
            ),
            ("http://127.0.0.1:9002/?x=1", "must not have a query"),
            ("http://127.0.0.1:9002/#top", "must not have a fragment"),
            (
                "http://admin:pw@127.0.0.1:9002",
                "must not contain a user name or password",
            ),
            (
                "http://127.0.0.1:99999",
                "port must be a number from 0 to 65535",
            ),
            ("http://127.0.0.1:", "port must be a number from 0 to 65535"),
            ("http:///rest", ""),
            ("not a url", "not a valid URL"),
        ] {
            let err = error(&two(url));
            assert!(
                err.starts_with("vcenter[1] (name \"vc2\").url: ") && err.contains(message),
                "{url}: {err}"
            );
            assert!(!err.contains("pw@"), "credentials echoed: {err}");
        }
        assert_eq!(
            error(&two("ftp://x")),
            "vcenter[1] (name \"vc2\").url: scheme must be http or https"
        );
        // Trailing slash and an explicit path of "/" are fine.
        let c = Config::from_toml_str(&two("HTTP://127.0.0.1:9002/")).unwrap();
        assert_eq!(c.vcenters[1].rest_base(), "http://127.0.0.1:9002/rest");
        let c = Config::from_toml_str(&two("https://[::1]")).unwrap();
        assert_eq!(c.vcenters[1].api_base(), "https://[::1]/api");
        let c = Config::from_toml_str(&two("https://[::1]:8443")).unwrap();
        assert_eq!(c.vcenters[1].origin(), "https://[::1]:8443");
    }

    #[test]
    fn vcenter_names_must_be_valid_and_unique() {
        let err = error(&CONTRACT.replace("\"vc1\"", "\"\""));
        assert_eq!(err, "vcenter[0] (name \"\").name: must not be empty");
        let err = error(&CONTRACT.replace("\"vc1\"", "\"vc 1\""));
        assert!(
            err.starts_with("vcenter[0] (name \"vc 1\").name: may only contain"),
            "{err}"
        );
        let err = error(&format!(
            "{CONTRACT}[[vcenter]]\nname = \"vc1\"\nurl = \"http://127.0.0.1:9002\"\n"
        ));
        assert_eq!(
            err,
            "vcenter[1] (name \"vc1\").name: duplicate: vcenter[0] (name \"vc1\") has the same name"
        );
        let err = error(&format!(
            "{CONTRACT}[[vcenter]]\nname = \"vc2\"\nurl = \"http://127.0.0.1:9001/\"\n"
        ));
        assert!(
            err.starts_with("vcenter[1] (name \"vc2\").url: vcenter[0]"),
            "{err}"
        );
        assert!(err.contains("same address"), "{err}");
    }

    #[test]
    fn families_must_be_nonempty_and_distinct() {
        let base = "url = \"http://h\"\n";
        assert_eq!(
            error(&with_vcenter(&format!("{base}families = []"))),
            "vcenter[0] (name \"vc1\").families: must list at least one of \"rest\" and \"api\""
        );
        assert_eq!(
            error(&with_vcenter(&format!(
                "{base}families = [\"api\", \"api\"]"
            ))),
            "vcenter[0] (name \"vc1\").families: \"api\" is listed twice"
        );
        let c = Config::from_toml_str(&with_vcenter(&format!(
            "{base}families = [\"api\", \"rest\"]"
        )))
        .unwrap();
        assert_eq!(c.vcenters[0].families, [Family::Api, Family::Rest]);
        assert_eq!(
            error(&with_vcenter(&format!(
                "{base}families = [\"api\", \"rest\", \"api\"]"
            ))),
            "vcenter[0] (name \"vc1\").families: \"api\" is listed twice"
        );
    }

    #[test]
    fn tls_only_keys_need_https() {
        assert_eq!(
            error(&with_vcenter("url = \"http://h\"\nca_file = \"ca.pem\"")),
            "vcenter[0] (name \"vc1\").ca_file: only valid with an https url"
        );
        assert_eq!(
            error(&with_vcenter(&format!(
                "url = \"http://h\"\npin_sha256 = \"{}\"",
                "0".repeat(64)
            ))),
            "vcenter[0] (name \"vc1\").pin_sha256: only valid with an https url"
        );
    }

    #[test]
    fn insecure_is_rejected_with_a_reason() {
        let err = error(&with_vcenter("url = \"https://h\"\ninsecure = true"));
        assert!(
            err.starts_with("vcenter[0] (name \"vc1\").insecure: not supported"),
            "{err}"
        );
        assert!(
            err.contains("ca_file") && err.contains("pin_sha256"),
            "{err}"
        );
    }

    #[test]
    fn bad_pin_names_its_key() {
        for pin in [
            "abc",
            &"g".repeat(64),
            "AB:CD",
            &"AB".repeat(32).replacen("AB", "A:B", 1),
        ] {
            let err = error(&with_vcenter(&format!(
                "url = \"https://h\"\npin_sha256 = \"{pin}\""
            )));
            assert!(
                err.starts_with("vcenter[0] (name \"vc1\").pin_sha256: "),
                "{err}"
            );
        }
    }

    // ---- pins and byte sizes

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

    // ---- auth

    #[test]
    fn passthrough_rejects_service_account_keys() {
        for key in [
            "username = \"svc\"",
            "password_env = \"X\"",
            "password_file = \"p\"",
            "users_file = \"u\"",
        ] {
            let name = key.split(' ').next().unwrap();
            assert_eq!(
                error(&with_section("auth", key)),
                format!(
                    "auth.{name}: only valid with auth.mode = \"service_account\" (the mode is \"passthrough\")"
                )
            );
        }
    }

    fn service_account(dir: &TempDir, secret_line: &str) -> String {
        let hash = crate::auth::users::hash_password_with_iterations(
            "pw",
            std::num::NonZeroU32::new(1).unwrap(),
        );
        let users = dir.write("users.toml", format!("[users]\nalice = \"{hash}\"\n"));
        with_section(
            "auth",
            &format!(
                "mode = \"service_account\"\nusername = \"svc@vsphere.local\"\n{secret_line}\n\
                 users_file = {:?}",
                users.display().to_string()
            ),
        )
    }

    #[test]
    fn service_account_reads_password_from_env() {
        let dir = TempDir::new();
        let var = "VCPROXY_CONFIG_TEST_PASSWORD_ENV";
        std::env::set_var(var, "s3cret");
        let c = Config::from_toml_str(&service_account(&dir, &format!("password_env = \"{var}\"")))
            .unwrap();
        let AuthMode::ServiceAccount(sa) = &c.auth.mode else {
            panic!("expected service_account mode")
        };
        assert_eq!(sa.username, "svc@vsphere.local");
        assert_eq!(sa.password.expose(), "s3cret");
        assert_eq!(sa.password_source, SecretSource::Env(var.to_owned()));
        assert!(sa.users.verify("alice", "pw"));
        assert_eq!(c.auth.mode.name(), "service_account");
        // The whole config can be debug-printed without leaking the secret.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("<redacted>"),
            "{debug}"
        );
        assert!(!debug.contains("pbkdf2"), "{debug}");
    }

    #[test]
    fn service_account_reads_password_file_trimming_one_newline() {
        let dir = TempDir::new();
        for (contents, expected) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw\n\n", "pw\n"),
            ("pw", "pw"),
        ] {
            let file = dir.write("password", contents);
            let toml = service_account(
                &dir,
                &format!("password_file = {:?}", file.display().to_string()),
            );
            let c = Config::from_toml_str(&toml).unwrap();
            let AuthMode::ServiceAccount(sa) = &c.auth.mode else {
                panic!("expected service_account mode")
            };
            assert_eq!(sa.password.expose(), expected, "{contents:?}");
            assert_eq!(sa.password_source, SecretSource::File(file));
        }
    }

    #[test]
    fn service_account_errors_name_their_key() {
        let dir = TempDir::new();
        let unset = "VCPROXY_CONFIG_TEST_NEVER_SET";
        std::env::remove_var(unset);
        let empty_var = "VCPROXY_CONFIG_TEST_EMPTY";
        std::env::set_var(empty_var, "");
        let empty_file = dir.write("empty", "\n");
        let cases = [
            (format!("password_env = \"{unset}\""), "auth.password_env: environment variable \"VCPROXY_CONFIG_TEST_NEVER_SET\" is not set"),
            (format!("password_env = \"{empty_var}\""), "auth.password_env: environment variable \"VCPROXY_CONFIG_TEST_EMPTY\" is empty"),
            ("password_env = \"\"".to_owned(), "auth.password_env: must name an environment variable"),
            ("password_file = \"/nonexistent/vcproxy-password\"".to_owned(), "auth.password_file: cannot read /nonexistent/vcproxy-password"),
            (format!("password_file = {:?}", empty_file.display().to_string()), "auth.password_file: "),
            (format!("password_env = \"{unset}\"\npassword_file = \"p\""), "auth.password_file: set only one of auth.password_env and auth.password_file"),
            (String::new(), "auth.password_env: required with auth.mode = \"service_account\""),
        ];
        for (secret_line, expected) in cases {
            let err = error(&service_account(&dir, &secret_line));
            assert!(err.starts_with(expected), "{secret_line}: {err}");
        }

        let base =
            |extra: &str| with_section("auth", &format!("mode = \"service_account\"\n{extra}"));
        assert_eq!(
            error(&base("password_env = \"X\"\nusers_file = \"u\"")),
            "auth.username: required with auth.mode = \"service_account\""
        );
        std::env::set_var("VCPROXY_CONFIG_TEST_PW2", "x");
        assert_eq!(
            error(&base(
                "username = \"svc\"\npassword_env = \"VCPROXY_CONFIG_TEST_PW2\""
            )),
            "auth.users_file: required with auth.mode = \"service_account\""
        );
        let err = error(&base(
            "username = \"svc\"\npassword_env = \"VCPROXY_CONFIG_TEST_PW2\"\nusers_file = \"/nonexistent/users.toml\"",
        ));
        assert!(
            err.starts_with("auth.users_file: cannot read users file /nonexistent/users.toml"),
            "{err}"
        );
        let no_users = dir.write("no-users.toml", "[users]\n");
        let err = error(&base(&format!(
            "username = \"svc\"\npassword_env = \"VCPROXY_CONFIG_TEST_PW2\"\nusers_file = {:?}",
            no_users.display().to_string()
        )));
        assert!(
            err.starts_with("auth.users_file: ") && err.contains("lists no users"),
            "{err}"
        );
        let bad_users = dir.write("bad-users.toml", "[users]\nbob = \"hunter2\"\n");
        let err = error(&base(&format!(
            "username = \"svc\"\npassword_env = \"VCPROXY_CONFIG_TEST_PW2\"\nusers_file = {:?}",
            bad_users.display().to_string()
        )));
        assert!(
            err.starts_with("auth.users_file: ") && err.contains("user \"bob\""),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let dir = TempDir::new();
        let hash = crate::auth::users::hash_password_with_iterations(
            "pw",
            std::num::NonZeroU32::new(1).unwrap(),
        );
        dir.write("users.toml", format!("[users]\nalice = \"{hash}\"\n"));
        dir.write("password", "pw\n");
        let path = dir.write(
            "proxy.toml",
            with_section(
                "auth",
                "mode = \"service_account\"\nusername = \"svc\"\npassword_file = \"password\"\nusers_file = \"users.toml\"",
            ),
        );
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let AuthMode::ServiceAccount(sa) = &c.auth.mode else {
            panic!("expected service_account mode")
        };
        assert_eq!(sa.users_file, dir.0.join("users.toml"));
        assert_eq!(
            sa.password_source,
            SecretSource::File(dir.0.join("password"))
        );
    }

    // ---- certificates

    #[test]
    fn ca_file_is_read_and_kept_as_der() {
        let dir = TempDir::new();
        let (a, b) = (self_signed("a.example"), self_signed("b.example"));
        let bundle = dir.write("ca.pem", format!("{}{}", a.cert.pem(), b.cert.pem()));
        let c = Config::from_toml_str(&with_vcenter(&format!(
            "url = \"https://vc.example\"\nca_file = {:?}",
            bundle.display().to_string(),
        )))
        .unwrap_or_else(|e| panic!("{e}"));
        let vc = &c.vcenters[0];
        assert_eq!(vc.ca_certs.len(), 2);
        assert_eq!(vc.ca_certs[0].as_ref(), a.cert.der().as_ref());
        assert_eq!(vc.ca_certs[1].as_ref(), b.cert.der().as_ref());
        assert_eq!(vc.ca_file.as_deref(), Some(bundle.as_path()));
        assert!(vc.pin_sha256.is_none());
        let debug = format!("{vc:?}");
        assert!(debug.contains("ca_certs: 2"), "{debug}");

        // A pin trusts one certificate outright; a CA bundle beside it would be ignored.
        let err = error(&with_vcenter(&format!(
            "url = \"https://vc.example\"\nca_file = {:?}\npin_sha256 = \"{}\"",
            bundle.display().to_string(),
            CertFingerprint::of_der(a.cert.der())
        )));
        assert!(
            err.starts_with(
                "vcenter[0] (name \"vc1\").pin_sha256: set ca_file or pin_sha256, not both"
            ),
            "{err}"
        );
    }

    #[test]
    fn ca_file_errors_name_their_key() {
        let dir = TempDir::new();
        let empty = dir.write("empty.pem", "no certificates here\n");
        let garbage = dir.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let toml = |path: &Path| {
            with_vcenter(&format!(
                "url = \"https://vc.example\"\nca_file = {:?}",
                path.display().to_string()
            ))
        };
        let key = "vcenter[0] (name \"vc1\").ca_file: ";
        let err = error(&toml(&empty));
        assert!(
            err.starts_with(key) && err.contains("no PEM certificates"),
            "{err}"
        );
        let err = error(&toml(&garbage));
        assert!(
            err.starts_with(key) && err.contains("not usable as a CA"),
            "{err}"
        );
        let err = error(&toml(&dir.0.join("missing.pem")));
        assert!(err.starts_with(key) && err.contains("cannot read"), "{err}");
    }

    #[test]
    fn listen_tls_loads_a_matching_pair() {
        let dir = TempDir::new();
        let pair = self_signed("proxy.example");
        let other = self_signed("other.example");
        let cert = dir.write("cert.pem", pair.cert.pem());
        let key = dir.write("key.pem", pair.key_pair.serialize_pem());
        let other_key = dir.write("other-key.pem", other.key_pair.serialize_pem());
        let toml = |cert: &Path, key: &Path| {
            CONTRACT.replace(
                "addr = \"127.0.0.1:8080\"",
                &format!(
                    "addr = \"127.0.0.1:8443\"\ntls_cert = {:?}\ntls_key = {:?}",
                    cert.display().to_string(),
                    key.display().to_string()
                ),
            )
        };
        let c = Config::from_toml_str(&toml(&cert, &key)).unwrap_or_else(|e| panic!("{e}"));
        let tls = c.listen.tls.as_ref().unwrap();
        assert_eq!(tls.cert_chain.len(), 1);
        assert_eq!(tls.cert_chain[0].as_ref(), pair.cert.der().as_ref());
        let debug = format!("{:?}", c.clone().listen);
        assert!(!debug.contains("PRIVATE"), "{debug}");

        let err = error(&toml(&cert, &other_key));
        assert!(
            err.starts_with("listen.tls_key: ") && err.contains("does not fit"),
            "{err}"
        );
        let err = error(&toml(&cert, &cert));
        assert!(
            err.starts_with("listen.tls_key: ") && err.contains("no usable PEM private key"),
            "{err}"
        );
        let err = error(&toml(&key, &key));
        assert!(
            err.starts_with("listen.tls_cert: ") && err.contains("no PEM certificates"),
            "{err}"
        );

        let only_cert = CONTRACT.replace(
            "addr = \"127.0.0.1:8080\"",
            "addr = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"",
        );
        assert_eq!(
            error(&only_cert),
            "listen.tls_key: required when listen.tls_cert is set (set both or neither)"
        );
        let only_key = CONTRACT.replace(
            "addr = \"127.0.0.1:8080\"",
            "addr = \"127.0.0.1:8443\"\ntls_key = \"k.pem\"",
        );
        assert_eq!(
            error(&only_key),
            "listen.tls_cert: required when listen.tls_key is set (set both or neither)"
        );
    }
}
