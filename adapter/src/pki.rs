//! Certificates made with `rcgen`: the `--self-signed` serving certificate, and a small CA used by
//! tests and benchmarks to issue serving, front-proxy and client certificates.

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

/// A certificate authority that can issue leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub cert_pem: String,
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
        Ok(Self {
            issuer: Issuer::new(p, key),
            cert_pem: cert.pem(),
        })
    }

    fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: &[&str],
        server: bool,
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
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
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
        self.issue(sans.first().copied().unwrap_or("server"), &[], sans, true)
    }

    /// A client certificate with CN `cn` and organisations `orgs`.
    pub fn client(&self, cn: &str, orgs: &[&str]) -> Result<Pem, rcgen::Error> {
        self.issue(cn, orgs, &[], false)
    }
}
