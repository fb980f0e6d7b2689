//! Loading, defaults and validation: every key, and every error naming its key.

mod files;
mod units;

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
    assert_eq!(config.listen.body_read_timeout, Duration::from_secs(10));
    assert_eq!(config.listen.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.listen.idle_timeout, Duration::from_secs(75));
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
    assert_eq!(config.auth.verify_interval, Duration::from_secs(5 * 60));
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
    assert_eq!(vc.families, [Family::Rest, Family::Api, Family::JsonRpc]);
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
        ("body_read_timeout = \"0s\"", "listen.body_read_timeout"),
        ("idle_timeout = \"0s\"", "listen.idle_timeout"),
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
fn compression_lists_each_coding_once_and_may_be_empty() {
    use crate::config::Compression;
    let c = Config::from_toml_str(&with_section("cache", "")).unwrap();
    assert_eq!(c.cache.compression, [Compression::Gzip, Compression::Zstd]);
    let c = Config::from_toml_str(&with_section("cache", "compression = []")).unwrap();
    assert!(c.cache.compression.is_empty());
    let c = Config::from_toml_str(&with_section("cache", "compression = [\"zstd\"]")).unwrap();
    assert_eq!(c.cache.compression, [Compression::Zstd]);
    let err = error(&with_section("cache", "compression = [\"gzip\", \"gzip\"]"));
    assert!(
        err.starts_with("cache.compression: lists gzip twice"),
        "{err}"
    );
    let err = error(&with_section("cache", "compression = [\"br\"]"));
    // TOML's error shows the offending line, key included.
    assert!(
        err.contains("compression = [\"br\"]") && err.contains("unknown variant `br`"),
        "{err}"
    );
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
    assert!(
        error(&with_section("log", "level = \"  \"")).starts_with("log.level: must not be empty")
    );
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
        "vcenter[0] (name \"vc1\").families: must list at least one of \"rest\" and \"api\" (sessions are made through them)"
    );
    assert_eq!(
        error(&with_vcenter(&format!("{base}families = [\"jsonrpc\"]"))),
        "vcenter[0] (name \"vc1\").families: must list at least one of \"rest\" and \"api\" (sessions are made through them)"
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
