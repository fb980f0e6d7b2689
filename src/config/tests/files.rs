//! `[auth]` and the files the configuration names: the service account's password and
//! users list, CA bundles, the listener's key pair.

use super::*;

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
        (
            format!("password_env = \"{unset}\""),
            "auth.password_env: environment variable \"VCPROXY_CONFIG_TEST_NEVER_SET\" is not set",
        ),
        (
            format!("password_env = \"{empty_var}\""),
            "auth.password_env: environment variable \"VCPROXY_CONFIG_TEST_EMPTY\" is empty",
        ),
        (
            "password_env = \"\"".to_owned(),
            "auth.password_env: must name an environment variable",
        ),
        (
            "password_file = \"/nonexistent/vcproxy-password\"".to_owned(),
            "auth.password_file: cannot read /nonexistent/vcproxy-password",
        ),
        (
            format!("password_file = {:?}", empty_file.display().to_string()),
            "auth.password_file: ",
        ),
        (
            format!("password_env = \"{unset}\"\npassword_file = \"p\""),
            "auth.password_file: set only one of auth.password_env and auth.password_file",
        ),
        (
            String::new(),
            "auth.password_env: required with auth.mode = \"service_account\"",
        ),
    ];
    for (secret_line, expected) in cases {
        let err = error(&service_account(&dir, &secret_line));
        assert!(err.starts_with(expected), "{secret_line}: {err}");
    }

    let base = |extra: &str| with_section("auth", &format!("mode = \"service_account\"\n{extra}"));
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
fn relative_paths_are_relative_to_the_config_file() {
    let dir = TempDir::new();
    let hash = crate::auth::users::hash_password_with_iterations(
        "pw",
        std::num::NonZeroU32::new(1).unwrap(),
    );
    dir.write("users.toml", format!("[users]\nalice = \"{hash}\"\n"));
    dir.write("password", "in the config's directory\n");
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
    assert_eq!(sa.password.expose(), "in the config's directory");
    assert!(sa.users.verify("alice", "pw"));
}

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

/// `[cluster]` with a secret file of `secret` bytes and `extra` keys.
fn cluster(dir: &TempDir, secret: &[u8], extra: &str) -> String {
    let path = dir.write("cluster.key", secret);
    with_section(
        "cluster",
        &format!(
            "redis = \"redis://127.0.0.1:6379/0\"\nsecret_file = {:?}\n{extra}",
            path.display().to_string()
        ),
    )
}

#[test]
fn cluster_reads_a_binary_secret_and_keeps_it_out_of_debug() {
    let dir = TempDir::new();
    let secret: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37) ^ 0xa5).collect();
    let c = Config::from_toml_str(&cluster(&dir, &secret, "required = true")).unwrap();
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.redis, "redis://127.0.0.1:6379/0");
    assert_eq!(cl.key_prefix, "vcproxy:");
    assert_eq!(cl.command_timeout, Duration::from_millis(250));
    assert!(cl.required);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cl.secret.expose())
        .unwrap();
    assert_eq!(decoded, secret);
    let debug = format!("{c:?}");
    assert!(!debug.contains(cl.secret.expose()), "{debug}");
    // No section: one process, as before.
    assert!(Config::from_toml_str(&with_section("log", ""))
        .unwrap()
        .cluster
        .is_none());
}

#[test]
fn cluster_errors_name_the_key() {
    let dir = TempDir::new();
    let ok = [7u8; 32];
    assert!(error(&cluster(&dir, &[7u8; 31], ""))
        .starts_with("cluster.secret_file: the secret has 31 bytes; at least 32 are needed"));
    assert_eq!(
        error(&cluster(&dir, &ok, "secret_env = \"X\"")),
        "cluster.secret_file: set only one of cluster.secret_env and cluster.secret_file"
    );
    assert_eq!(
        error(&cluster(&dir, &ok, "username = \"vcproxy\"")),
        "cluster.username: a Redis ACL user needs its password: set cluster.password_env or \
         cluster.password_file"
    );
    assert_eq!(
        error(&cluster(&dir, &ok, "ca_file = \"ca.pem\"")),
        "cluster.ca_file: only for rediss:// (TLS) URLs"
    );
    assert_eq!(
        error(&cluster(&dir, &ok, "key_prefix = \"vc*\"")),
        "cluster.key_prefix: must be non-empty printable ASCII without glob characters (* ? [), \
         e.g. \"vcproxy:\""
    );
    assert_eq!(
        error(&cluster(&dir, &ok, "command_timeout = \"0s\"")),
        "cluster.command_timeout: must be greater than zero"
    );
    let with_url = |url: &str| {
        let text = cluster(&dir, &ok, "");
        text.replace("redis://127.0.0.1:6379/0", url)
    };
    assert_eq!(
        error(&with_url("http://127.0.0.1:6379")),
        "cluster.redis: scheme must be redis or rediss (TLS)"
    );
    assert!(error(&with_url("redis://user:pw@127.0.0.1:6379"))
        .starts_with("cluster.redis: must not hold credentials"));
    assert!(error(&with_section("cluster", "redis = \"redis://h\""))
        .starts_with("cluster.secret_file: replicas need a shared secret"));
}
