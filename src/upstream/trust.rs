//! How the proxy trusts a vCenter's certificate: system roots, the operator's CA
//! bundle, or one pinned certificate. Verification is never off.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

use super::settings::{UpstreamConfigError, UpstreamSettings};

pub(super) fn client_tls_config(s: &UpstreamSettings) -> Result<ClientConfig, UpstreamConfigError> {
    let provider = crate::net::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| UpstreamConfigError::Tls {
            name: s.name.clone(),
            source,
        })?;
    // hyper-rustls sets ALPN itself (http/1.1 only: enable_http1 below).
    let config = if let Some(pin) = s.pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert { pin, provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if s.ca_certs.is_empty() && s.base_url.starts_with("https:") {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(UpstreamConfigError::NativeRoots {
                    name: s.name.clone(),
                    message: format!(
                        "none found ({:?}); set ca_file or pin_sha256 for this vCenter",
                        found.errors
                    ),
                });
            }
            roots.add_parsable_certificates(found.certs);
        } else {
            roots.add_parsable_certificates(s.ca_certs.iter().cloned());
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Trusts exactly one certificate, by the SHA-256 of its DER encoding. The
/// handshake signature is still verified, so the peer must hold the pinned key.
#[derive(Debug)]
struct PinnedCert {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        // A fingerprint is public: a plain comparison leaks nothing.
        if digest.as_ref() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
