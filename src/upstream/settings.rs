//! How to reach and trust one vCenter, from its configuration.

use rustls::pki_types::CertificateDer;
use std::time::Duration;

/// How to reach and trust one vCenter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    pub name: String,
    /// `scheme://authority`, e.g. `https://vc1.example.com` (no trailing slash).
    pub base_url: String,
    /// Trust these CAs instead of the system roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    pub pin_sha256: Option<[u8; 32]>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_idle_connections: usize,
}

impl From<&crate::config::Vcenter> for UpstreamSettings {
    /// The settings of one configured vCenter.
    fn from(vc: &crate::config::Vcenter) -> UpstreamSettings {
        UpstreamSettings {
            name: vc.name.clone(),
            base_url: vc.origin(),
            ca_certs: vc.ca_certs.clone(),
            pin_sha256: vc.pin_sha256.as_ref().map(|p| *p.as_bytes()),
            connect_timeout: vc.connect_timeout,
            request_timeout: vc.request_timeout,
            max_idle_connections: vc.max_idle_connections,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("vcenter {name}: loading the system's CA certificates: {message}")]
    NativeRoots { name: String, message: String },
    #[error("vcenter {name}: {source}")]
    Tls { name: String, source: rustls::Error },
}
