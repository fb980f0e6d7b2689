//! The local machine: free ports, scratch directories, certificate roots.

/// A port on 127.0.0.1 that was free a moment ago (for a process that must be told
/// its address in advance).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fresh directory under the system's temp dir for one test's files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vcproxy-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A root store holding the certificates in `pem`.
pub fn roots(pem: &str) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    for c in vcproxy::net::tls::certs_from_pem(pem.as_bytes()).unwrap() {
        store.add(c).unwrap();
    }
    store
}
