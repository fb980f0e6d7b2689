//! Validation: the file's values checked and turned into the public types, with the
//! files the configuration names (secrets, CA bundles, the listener's key pair, the
//! users list) read on the way.

use super::file::{FileAuth, FileAuthMode, FileCluster, FileConfig, FileListen, FileVcenter};
use super::{
    Admin, Auth, Cache, CertFingerprint, Cluster, Config, ConfigError, Listen, ListenTls, Log,
    Merge, Vcenter,
};
use crate::auth::users::UserList;
use crate::auth::{AuthMode, Secret, ServiceAccount};
use crate::protocol::Family;
use http::Uri;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Parses and validates configuration text. `path` is the file it came from, for parse
/// errors; `dir` is where relative paths in it start.
pub(super) fn parse(
    text: &str,
    path: Option<&Path>,
    dir: Option<&Path>,
) -> Result<Config, ConfigError> {
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
    let cluster = file
        .cluster
        .map(|c| validate_cluster(c, paths))
        .transpose()?;
    Ok(Config {
        listen,
        admin: file.admin,
        cache: file.cache,
        merge: file.merge,
        auth,
        log: file.log,
        vcenters,
        source: path.map(Path::to_path_buf),
        cluster,
    })
}

/// `[cluster]`: the Redis URL, the shared secret (at least 32 bytes), the ACL
/// credentials, TLS trust and timeouts.
fn validate_cluster(file: FileCluster, paths: Paths) -> Result<Cluster, ConfigError> {
    let url: Uri = file
        .redis
        .parse()
        .map_err(|e| invalid("cluster.redis", format!("not a URL: {e}")))?;
    let tls = match url.scheme_str() {
        Some("redis") => false,
        Some("rediss") => true,
        _ => {
            return Err(invalid(
                "cluster.redis",
                "scheme must be redis or rediss (TLS)",
            ))
        }
    };
    if url.host().is_none_or(str::is_empty) {
        return Err(invalid("cluster.redis", "has no host"));
    }
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(
            "cluster.redis",
            "must not hold credentials: set cluster.username and cluster.password_env or cluster.password_file",
        ));
    }
    let secret = match (file.secret_env, file.secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "cluster.secret_file",
                "set only one of cluster.secret_env and cluster.secret_file",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "cluster.secret_file",
                "replicas need a shared secret: set cluster.secret_file (e.g. 32 bytes from /dev/urandom) or cluster.secret_env",
            ))
        }
        (Some(var), None) => {
            let s = read_secret_env("cluster.secret_env", &var)?;
            cluster_secret("cluster.secret_env", s.expose().as_bytes())?
        }
        (None, Some(path)) => {
            let path = paths.resolve(&path);
            let bytes = std::fs::read(&path).map_err(|e| {
                invalid(
                    "cluster.secret_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            cluster_secret("cluster.secret_file", &bytes)?
        }
    };
    let password = match (file.password_env, file.password_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "cluster.password_file",
                "set only one of cluster.password_env and cluster.password_file",
            ))
        }
        (Some(var), None) => Some(read_secret_env("cluster.password_env", &var)?),
        (None, Some(path)) => Some(read_secret_file(
            "cluster.password_file",
            &paths.resolve(&path),
        )?),
        (None, None) => None,
    };
    if file.username.is_some() && password.is_none() {
        return Err(invalid(
            "cluster.username",
            "a Redis ACL user needs its password: set cluster.password_env or cluster.password_file",
        ));
    }
    let ca_file = file.ca_file.map(|p| paths.resolve(&p));
    let ca_certs = match &ca_file {
        Some(_) if !tls => return Err(invalid("cluster.ca_file", "only for rediss:// (TLS) URLs")),
        Some(path) => read_ca_bundle("cluster.ca_file", path)?,
        None => Vec::new(),
    };
    if file.key_prefix.is_empty()
        || !file
            .key_prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'?' && b != b'[')
    {
        return Err(invalid(
            "cluster.key_prefix",
            "must be non-empty printable ASCII without glob characters (* ? [), e.g. \"vcproxy:\"",
        ));
    }
    for (key, value) in [
        ("cluster.connect_timeout", file.connect_timeout),
        ("cluster.command_timeout", file.command_timeout),
        ("cluster.lock_timeout", file.lock_timeout),
    ] {
        if value.is_zero() {
            return Err(invalid(key, "must be greater than zero"));
        }
    }
    Ok(Cluster {
        redis: file.redis,
        secret,
        username: file.username,
        password,
        ca_file,
        ca_certs,
        key_prefix: file.key_prefix,
        connect_timeout: file.connect_timeout,
        command_timeout: file.command_timeout,
        lock_timeout: file.lock_timeout,
        required: file.required,
    })
}

/// The shared secret's bytes, at least 32 of them (one trailing newline of a text
/// file dropped), carried as base64url text so a binary key file works.
fn cluster_secret(key: &str, bytes: &[u8]) -> Result<Secret, ConfigError> {
    use base64::Engine as _;
    let bytes = bytes
        .strip_suffix(b"\n")
        .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
        .unwrap_or(bytes);
    if bytes.len() < 32 {
        return Err(invalid(
            key,
            format!(
                "the secret has {} bytes; at least 32 are needed (e.g. `head -c 32 /dev/urandom`)",
                bytes.len()
            ),
        ));
    }
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
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
    require_positive("listen.body_read_timeout", file.body_read_timeout)?;
    require_positive("listen.idle_timeout", file.idle_timeout)?;
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
        body_read_timeout: file.body_read_timeout,
        shutdown_grace: file.shutdown_grace,
        idle_timeout: file.idle_timeout,
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
    require_nonzero("cache.max_memory", cache.max_memory.0)?;
    for (i, c) in cache.compression.iter().enumerate() {
        if cache.compression[..i].contains(c) {
            return Err(invalid(
                "cache.compression",
                format!("lists {c:?} twice; each of \"gzip\" and \"zstd\" at most once")
                    .to_lowercase(),
            ));
        }
    }
    Ok(())
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
    let (backend_idle_timeout, client_session_idle, verify_interval) = (
        file.backend_idle_timeout,
        file.client_session_idle,
        file.verify_interval,
    );
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
            AuthMode::ServiceAccount(load_service_account(file, paths)?)
        }
    };
    Ok(Auth {
        mode,
        backend_idle_timeout,
        client_session_idle,
        verify_interval,
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
    let password = match (file.password_env, file.password_file) {
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
        (Some(var), None) => read_secret_env("auth.password_env", &var)?,
        (None, Some(path)) => read_secret_file("auth.password_file", &paths.resolve(&path))?,
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
        users: Arc::new(users),
    })
}

fn read_secret_env(key: &str, var: &str) -> Result<Secret, ConfigError> {
    if var.is_empty() {
        return Err(invalid(key, "must name an environment variable"));
    }
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(invalid(
            key,
            format!("environment variable {var:?} is empty"),
        )),
        Ok(value) => Ok(Secret::new(value)),
        Err(std::env::VarError::NotPresent) => Err(invalid(
            key,
            format!("environment variable {var:?} is not set"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(invalid(
            key,
            format!("environment variable {var:?} is not valid UTF-8"),
        )),
    }
}

/// Reads a password file, dropping the one trailing newline editors and `echo` add.
fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let mut value = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
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
    let families: Vec<Family> = file.families.iter().map(|&f| Family::from(f)).collect();
    // Sessions are made through a REST family's session service, whatever the
    // client speaks.
    if !families.iter().any(|f| f.logs_in()) {
        return Err(invalid(
            key("families"),
            "must list at least one of \"rest\" and \"api\" (sessions are made through them)",
        ));
    }
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
