//! The file as written: private serde structs that mirror it, and the defaults of the
//! keys it may leave out. Validation turns these into the public types.

use super::{Admin, Auth, ByteSize, Cache, Compression, Log, LogFormat, Merge, OnTooMany};
use crate::auth::AuthMode;
use crate::protocol::Family;
use serde::de::{self, Deserializer, IgnoredAny};
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: FileListen,
    #[serde(default)]
    pub(super) admin: Admin,
    #[serde(default)]
    pub(super) cache: Cache,
    #[serde(default)]
    pub(super) merge: Merge,
    #[serde(default)]
    pub(super) auth: FileAuth,
    #[serde(default)]
    pub(super) log: Log,
    #[serde(default)]
    pub(super) vcenter: Vec<FileVcenter>,
    pub(super) cluster: Option<FileCluster>,
}

/// `[cluster]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCluster {
    pub(super) redis: String,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_env: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    #[serde(default = "default_key_prefix")]
    pub(super) key_prefix: String,
    #[serde(default = "default_redis_connect_timeout", with = "humantime_serde")]
    pub(super) connect_timeout: Duration,
    #[serde(default = "default_redis_command_timeout", with = "humantime_serde")]
    pub(super) command_timeout: Duration,
    #[serde(default = "default_lock_timeout", with = "humantime_serde")]
    pub(super) lock_timeout: Duration,
    #[serde(default)]
    pub(super) required: bool,
}

fn default_key_prefix() -> String {
    "vcproxy:".into()
}
fn default_redis_connect_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_redis_command_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_lock_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListen {
    #[serde(deserialize_with = "socket_addr")]
    pub(super) addr: SocketAddr,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: usize,
    #[serde(default = "default_max_header_bytes")]
    pub(super) max_header_bytes: ByteSize,
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: ByteSize,
    #[serde(default = "default_max_query_bytes")]
    pub(super) max_query_bytes: ByteSize,
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub(super) header_read_timeout: Duration,
    #[serde(default = "default_body_read_timeout", with = "humantime_serde")]
    pub(super) body_read_timeout: Duration,
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub(super) shutdown_grace: Duration,
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub(super) idle_timeout: Duration,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum FileAuthMode {
    #[default]
    Passthrough,
    ServiceAccount,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileAuth {
    pub(super) mode: FileAuthMode,
    #[serde(with = "humantime_serde")]
    pub(super) backend_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) client_session_idle: Duration,
    #[serde(with = "humantime_serde")]
    pub(super) verify_interval: Duration,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) users_file: Option<PathBuf>,
}

impl Default for FileAuth {
    fn default() -> FileAuth {
        let auth = Auth::default();
        FileAuth {
            mode: FileAuthMode::Passthrough,
            backend_idle_timeout: auth.backend_idle_timeout,
            client_session_idle: auth.client_session_idle,
            verify_interval: auth.verify_interval,
            username: None,
            password_env: None,
            password_file: None,
            users_file: None,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum FileFamily {
    Rest,
    Api,
    Jsonrpc,
}

impl From<FileFamily> for Family {
    fn from(f: FileFamily) -> Family {
        match f {
            FileFamily::Rest => Family::Rest,
            FileFamily::Api => Family::Api,
            FileFamily::Jsonrpc => Family::JsonRpc,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileVcenter {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) pin_sha256: Option<String>,
    /// Accepted only to reject it with an explanation rather than "unknown field".
    pub(super) insecure: Option<IgnoredAny>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub(super) connect_timeout: Duration,
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub(super) request_timeout: Duration,
    #[serde(default = "default_families")]
    pub(super) families: Vec<FileFamily>,
    #[serde(default = "default_max_idle_connections")]
    pub(super) max_idle_connections: usize,
}

/// A listen address: an IP address and a port. Host names are refused rather than
/// resolved, so the address the proxy binds is exactly the one written.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(deserializer)?;
    s.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid listen address {s:?}: expected an IP address and port like \
             \"127.0.0.1:8080\" or \"[::]:8080\" (host names are not resolved)"
        ))
    })
}

const DEFAULT_MAX_CONNECTIONS: usize = 4096;
const DEFAULT_MAX_HEADER_BYTES: ByteSize = ByteSize::kib(16);
const DEFAULT_MAX_BODY_BYTES: ByteSize = ByteSize::kib(64);
const DEFAULT_MAX_QUERY_BYTES: ByteSize = ByteSize::kib(64);
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_IDLE_CONNECTIONS: usize = 32;

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
fn default_body_read_timeout() -> Duration {
    DEFAULT_BODY_READ_TIMEOUT
}
fn default_shutdown_grace() -> Duration {
    DEFAULT_SHUTDOWN_GRACE
}
fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_request_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}
fn default_families() -> Vec<FileFamily> {
    vec![FileFamily::Rest, FileFamily::Api, FileFamily::Jsonrpc]
}
fn default_max_idle_connections() -> usize {
    DEFAULT_MAX_IDLE_CONNECTIONS
}

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
            compression: vec![Compression::Gzip, Compression::Zstd],
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
            verify_interval: Duration::from_secs(5 * 60),
        }
    }
}

impl Default for Log {
    fn default() -> Log {
        Log {
            format: LogFormat::Text,
            level: "info".to_owned(),
            access: false,
        }
    }
}
