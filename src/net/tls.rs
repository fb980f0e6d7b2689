//! rustls helpers shared by the simulator and the proxy.
//!
//! Every config here is built on the *ring* provider explicitly
//! ([`provider`]): relying on a process-wide default provider breaks as soon as
//! a second provider is linked into the binary (rustls then refuses to guess),
//! and tests that build configs on several threads must not race to install one.
//!
//! * [`self_signed`]: a throw-away certificate for the simulator's `--tls` (and for
//!   tests), returned as PEM so that it can be written out and handed to a client
//!   as its only root or pinned by fingerprint.
//! * [`server_config_from_pem`] / [`server_config_from_files`]: a server config
//!   from an operator's PEM certificate chain and key.
//! * [`fingerprint_sha256`]: the `AB:CD:...` SHA-256 fingerprint operators compare
//!   against what `openssl x509 -fingerprint -sha256` prints.
//! * [`CertStore`] / [`rotating_server_config`]: the proxy's listener, whose
//!   certificate a reload replaces without a restart.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::Path;
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading PEM {what}: {source}")]
    Pem {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in the PEM input")]
    NoCertificate,
    #[error("building the rustls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every vcproxy TLS config uses: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A generated self-signed certificate and a server config that serves it.
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Keep it out of logs.
    pub key_pem: String,
    /// The certificate, DER (what [`fingerprint_sha256`] takes).
    pub cert_der: CertificateDer<'static>,
    /// A server config presenting the certificate, offering `h2` and `http/1.1`.
    pub config: Arc<ServerConfig>,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never appears in debug output.
        f.debug_struct("SelfSigned")
            .field("fingerprint", &fingerprint_sha256(&self.cert_der))
            .finish_non_exhaustive()
    }
}

/// Generates an ECDSA P-256 self-signed certificate valid for `names`, each a DNS
/// name (`localhost`) or an IP literal (`127.0.0.1`, `::1`), which become DNS or IP
/// subject alternative names respectively.
///
/// The certificate is not a CA; rustls/webpki clients accept it when it is itself
/// in their root store, which is how the simulator's `--write-cert` output is used.
pub fn self_signed(names: &[&str]) -> Result<SelfSigned, TlsError> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "vcproxy vCenter simulator");
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    let cert_der = cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = server_config(vec![cert_der.clone()], key_der)?;
    Ok(SelfSigned {
        cert_pem,
        key_pem,
        cert_der,
        config,
    })
}

/// A server config from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
        what: "private key",
        source,
    })?;
    server_config(certs, key)
}

/// [`server_config_from_pem`] on the contents of two files.
pub fn server_config_from_files(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            what: "certificate file",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Pem {
        what: "private key file",
        source,
    })?;
    server_config(certs, key)
}

/// Every certificate in a PEM bundle, in order; an error if there is none.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// A server config from a parsed certificate chain (leaf first) and key.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // Offer both protocols; the listener's auto builder serves whichever is chosen.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The listener's certificate and key, replaceable while it serves: a reload
/// stores a new pair, new handshakes present it, and connections already up keep
/// the one they were made with (certificate rotation without a restart).
#[derive(Debug)]
pub struct CertStore(arc_swap::ArcSwap<CertifiedKey>);

impl CertStore {
    /// A store holding `certs` (leaf first) and `key`, checked to belong together.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertStore>, TlsError> {
        Ok(Arc::new(CertStore(arc_swap::ArcSwap::from_pointee(
            certified(certs, key)?,
        ))))
    }

    /// Presents `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.0.store(key);
    }
}

/// A certificate chain (leaf first) and its key, checked to belong together.
pub fn certified(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(CertifiedKey::from_der(certs, key, &provider())?)
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A server config presenting whatever `store` holds at each handshake.
pub fn rotating_server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 fingerprint of a DER certificate as upper-case hex pairs joined by `:`,
/// e.g. `AB:CD:...` (95 characters), the form `openssl x509 -fingerprint` prints.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trips_through_pem() {
        let s = self_signed(&["localhost", "127.0.0.1"]).unwrap();
        assert!(s.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let certs = certs_from_pem(s.cert_pem.as_bytes()).unwrap();
        assert_eq!(certs, vec![s.cert_der.clone()]);
        server_config_from_pem(s.cert_pem.as_bytes(), s.key_pem.as_bytes()).unwrap();
        assert!(!format!("{s:?}").contains("PRIVATE"));
    }

    #[test]
    fn fingerprint_format() {
        let f = fingerprint_sha256(b"");
        assert_eq!(f.len(), 95);
        assert!(f.starts_with("E3:B0:C4:42"));
    }

    #[test]
    fn garbage_pem_is_an_error() {
        assert!(matches!(
            certs_from_pem(b"not pem"),
            Err(TlsError::NoCertificate)
        ));
        assert!(server_config_from_pem(b"", b"").is_err());
    }
}
