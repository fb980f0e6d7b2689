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

mod file;
#[cfg(test)]
mod tests;
mod units;
mod validate;

pub use units::{ByteSize, ByteSizeError, CertFingerprint, FingerprintError};

use crate::auth::AuthMode;
use crate::protocol::Family;
use file::socket_addr;
use http::Uri;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The file it was read from ([`Config::load`]), which a reload reads again;
    /// `None` for configuration text ([`Config::from_toml_str`]).
    pub source: Option<PathBuf>,
    /// `[cluster]`: present when replicas share sessions, answers and fetch locks
    /// through Redis.
    pub cluster: Option<Cluster>,
}

/// `[cluster]`: several replicas sharing sessions, cached answers and the right to
/// fetch, through Redis (or Valkey).
#[derive(Clone)]
pub struct Cluster {
    /// `redis://host:port/db` or `rediss://…` (TLS, verified).
    pub redis: String,
    /// At least 32 bytes shared by every replica: the keys that name and encrypt
    /// what the replicas store come from it.
    pub secret: crate::auth::Secret,
    /// Redis ACL user, and its password (from the environment or a file, never the
    /// configuration).
    pub username: Option<String>,
    pub password: Option<crate::auth::Secret>,
    pub ca_file: Option<PathBuf>,
    /// The CAs of `ca_file` (rediss only); empty: the system's roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Every key and channel name starts with it (the ACL pattern an operator grants).
    pub key_prefix: String,
    pub connect_timeout: Duration,
    /// The most one Redis call may take before the replica carries on without it.
    pub command_timeout: Duration,
    /// The most a fetch lock is held, and waited for, before another replica fetches.
    pub lock_timeout: Duration,
    /// Whether `/readyz` fails while Redis is unreachable.
    pub required: bool,
}

/// The secret and password never shown.
impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("redis", &self.redis)
            .field("username", &self.username)
            .field("ca_file", &self.ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
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
    /// How long a client may take to send a request body, from the end of its
    /// head; past it the request is refused with 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// After SIGTERM, how long connections may take to finish before they are
    /// closed and the vCenter sessions logged out anyway. Zero: at once.
    pub shutdown_grace: Duration,
    /// How long a keep-alive connection may sit with no request in flight.
    pub idle_timeout: Duration,
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
    /// Upper bound on the cache's memory for stored answers (compressed copies
    /// included).
    pub max_memory: ByteSize,
    /// The compressed copies kept of each cached answer of 1 KiB or more, made once
    /// per fetch; empty: none.
    pub compression: Vec<Compression>,
}

/// A compressed copy a cached answer may keep (`cache.compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
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
    /// Resolved at load: the service account's password read, its users file loaded.
    pub mode: AuthMode,
    /// Pooled backend sessions idle this long are closed (vCenter's own idle limit is
    /// 30 minutes by default, so this stays below it).
    pub backend_idle_timeout: Duration,
    /// A client's proxy session idle this long expires.
    pub client_session_idle: Duration,
    /// Passthrough mode: how long a log-in checked against the pooled user's
    /// remembered password digest is trusted before the next log-in asks vCenter
    /// again. Zero: every log-in asks vCenter.
    pub verify_interval: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive string, e.g. `"info,vcproxy=debug"`.
    pub level: String,
    /// One access-log line per request (target `vcproxy::access`, logged whatever
    /// `level` says).
    pub access: bool,
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
    #[cfg(test)]
    fn is_https(&self) -> bool {
        self.base_url.scheme_str() == Some("https")
    }

    /// The host name or address, which validation compares to find a vCenter listed
    /// twice.
    fn host(&self) -> &str {
        self.base_url.host().unwrap_or_default()
    }

    /// `scheme://host[:port]` without a trailing slash.
    pub fn origin(&self) -> String {
        let scheme = self.base_url.scheme_str().unwrap_or("http");
        let authority = self.base_url.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}")
    }

    /// `scheme://host[:port]/rest` or `.../api`.
    #[cfg(test)]
    fn family_base(&self, family: Family) -> String {
        format!("{}/{}", self.origin(), family.as_str())
    }

    /// `scheme://host[:port]/rest`.
    #[cfg(test)]
    fn rest_base(&self) -> String {
        self.family_base(Family::Rest)
    }

    /// `scheme://host[:port]/api`.
    #[cfg(test)]
    fn api_base(&self) -> String {
        self.family_base(Family::Api)
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) on this vCenter.
    #[cfg(test)]
    fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
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
        validate::parse(&text, Some(path), dir)
    }

    /// Parses and validates configuration text. Files it names (secrets, CA bundles,
    /// TLS key pair, users list) are still read; relative paths are relative to the
    /// current directory.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        validate::parse(s, None, None)
    }

    /// The vCenter called `name`.
    #[cfg(test)]
    fn vcenter(&self, name: &str) -> Option<&Vcenter> {
        self.vcenters.iter().find(|v| v.name == name)
    }
}

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
