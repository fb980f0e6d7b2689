//! A certificate authority made for one test, and a server certificate it issued.
//!
//! `vcproxy::net::tls::self_signed` gives a leaf that a client trusts as its own root,
//! which rustls accepts. Clients built on OpenSSL (Python's `ssl`, under `requests`
//! and so under VMware's SDK) verify a chain instead, as they do against a real
//! vCenter: a CA certificate they trust, and a server certificate that CA signed for
//! the name they connect to. [`Pki`] is that pair, generated fresh (nothing is read
//! from or trusted on the machine), with the extensions a strict verifier checks:
//! the CA's basic constraints and key usage, the leaf's subject alternative names,
//! server-auth extended key usage and authority key identifier.

use std::path::{Path, PathBuf};

/// A fresh CA and one server certificate it issued, all PEM.
pub struct Pki {
    /// The CA's certificate: what clients are told to trust.
    pub ca_pem: String,
    /// The server certificate (the leaf alone; clients hold the CA).
    pub cert_pem: String,
    /// The server certificate's private key, PKCS#8.
    pub key_pem: String,
}

/// Where [`Pki::write`] put the three PEM files.
pub struct PkiFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new CA, and a certificate from it for `names`, each a DNS name
    /// (`localhost`) or an IP literal (`127.0.0.1`), which become DNS or IP subject
    /// alternative names.
    pub fn new(names: &[&str]) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        };
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.distinguished_name
            .push(DnType::CommonName, "vcproxy test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("server key");
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server certificate parameters");
        leaf.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("vcproxy"),
        );
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf = leaf
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        Pki {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`.
    pub fn write(&self, dir: &Path) -> PkiFiles {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        for (path, pem) in [
            (&files.ca, &self.ca_pem),
            (&files.cert, &self.cert_pem),
            (&files.key, &self.key_pem),
        ] {
            std::fs::write(path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        files
    }

    /// A root store holding the CA alone: a rustls client that trusts exactly it.
    pub fn roots(&self) -> rustls::RootCertStore {
        crate::roots(&self.ca_pem)
    }
}

impl PkiFiles {
    /// The `[listen]` and `[admin]` tables of a proxy configuration serving HTTPS
    /// with this certificate (addresses as in [`crate::LISTEN`]).
    pub fn listen_toml(&self) -> String {
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n[admin]\naddr = \"127.0.0.2:0\"\n",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}
