//! The one PKI helper of the workspace, made with `rcgen`: the `--self-signed` serving
//! certificate, a CA that issues serving, front-proxy and client certificates, and signing key
//! pairs. The adapter's tests and benchmarks use it in memory; kis-e2e (through
//! `kis-adapter` with `default-features = false, features = ["pki"]`) writes the same
//! certificates to files for kube-apiserver, kube-controller-manager, curl and kubectl. No
//! openssl command is needed in the workspace: kube-apiserver v1.20 reads PKCS#8 EC private keys
//! and PKIX (`PUBLIC KEY`) public keys, which is what [`signing_key`] writes. (deploy/gen-certs.sh
//! keeps openssl for operators without a Rust toolchain.)
//!
//! Keys are ECDSA P-256; certificates use rcgen's default validity.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate with its key, both PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    /// Certificate (PEM).
    pub cert: String,
    /// PKCS#8 private key (PEM).
    pub key: String,
}

/// A self-signed certificate for `hosts` (DNS names or IP addresses).
pub fn self_signed(hosts: &[String]) -> Result<Pem, rcgen::Error> {
    let c = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    Ok(Pem {
        cert: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
    })
}

/// A signing key pair: PKCS#8 private key and PKIX public key, both PEM (e.g. the
/// service-account token signer).
pub fn signing_key() -> Result<Pem, rcgen::Error> {
    let k = KeyPair::generate()?;
    Ok(Pem {
        cert: k.public_key_pem(),
        key: k.serialize_pem(),
    })
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (serverAuth).
    Server,
    /// TLS client (clientAuth).
    Client,
}

/// A certificate authority that can issue leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The CA private key (PKCS#8 PEM), for components that sign with it themselves.
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Result<Self, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(p, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// A leaf with subject CN `cn` (and O = each of `orgs`) and DNS/IP SANs `sans` (IPs are
    /// recognised by parsing).
    pub fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: &[&str],
        usage: Usage,
    ) -> Result<Pem, rcgen::Error> {
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// A serving certificate for `sans` (DNS names or IPs).
    pub fn server(&self, sans: &[&str]) -> Result<Pem, rcgen::Error> {
        self.issue(
            sans.first().copied().unwrap_or("server"),
            &[],
            sans,
            Usage::Server,
        )
    }

    /// A client certificate with CN `cn` and organisations `orgs`.
    pub fn client(&self, cn: &str, orgs: &[&str]) -> Result<Pem, rcgen::Error> {
        self.issue(cn, orgs, &[], Usage::Client)
    }
}
