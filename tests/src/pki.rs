//! A throwaway PKI for the control plane and the adapter, written to files: the cluster CA
//! (apiserver serving cert, client certs for users and the controller-manager), the front-proxy
//! CA (the aggregator's client cert), a serving CA for the adapter (the APIService's `caBundle`)
//! and the service-account signing key pair. The certificates come from the workspace's one PKI
//! helper, [`kis_adapter::pki`] (rcgen); this module only names them and writes them where the
//! processes read them. No openssl command is involved: kube-apiserver and
//! kube-controller-manager v1.20 read rcgen's PKCS#8 EC keys and PKIX public keys.

use std::path::{Path, PathBuf};

use kis_adapter::pki as rc;
pub use kis_adapter::pki::Usage;

use crate::Error;

/// A certificate and its private key on disk (PEM).
#[derive(Debug, Clone)]
pub struct CertKey {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// A certificate authority that can sign leaf certificates, with its files.
#[derive(Debug, Clone)]
pub struct Ca {
    /// The CA certificate and key.
    pub pair: CertKey,
    dir: PathBuf,
    ca: std::sync::Arc<rc::Ca>,
}

fn pki_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("cannot make {what}: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Io(path.to_path_buf(), e))
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Result<CertKey, Error> {
    let pair = CertKey {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    write(&pair.cert, cert)?;
    write(&pair.key, key)?;
    Ok(pair)
}

impl Ca {
    /// Creates a self-signed CA named `name` (files `DIR/NAME.crt`, `DIR/NAME.key`).
    pub fn new(dir: &Path, name: &str, common_name: &str) -> Result<Self, Error> {
        let ca = rc::Ca::new(common_name).map_err(|e| pki_err(name, e))?;
        let pair = write_pair(dir, name, &ca.cert_pem, &ca.key_pem)?;
        Ok(Self {
            pair,
            dir: dir.to_path_buf(),
            ca: std::sync::Arc::new(ca),
        })
    }

    /// The CA certificate as PEM text.
    pub fn cert_pem(&self) -> Result<String, Error> {
        Ok(self.ca.cert_pem.clone())
    }

    /// Issues a leaf certificate `DIR/NAME.{crt,key}` with subject CN (and O = each of `orgs`),
    /// DNS/IP subject alternative names from `sans` (IPs are recognised by parsing).
    pub fn issue(
        &self,
        name: &str,
        common_name: &str,
        orgs: &[&str],
        sans: &[&str],
        usage: Usage,
    ) -> Result<CertKey, Error> {
        let p = self
            .ca
            .issue(common_name, orgs, sans, usage)
            .map_err(|e| pki_err(name, e))?;
        write_pair(&self.dir, name, &p.cert, &p.key)
    }
}

/// Every certificate and key the control plane and the adapter need.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The cluster CA: apiserver serving cert and client certs.
    pub cluster_ca: Ca,
    /// The front-proxy (request-header) CA.
    pub front_proxy_ca: Ca,
    /// The CA that signs the adapter's serving cert (the APIService `caBundle`).
    pub serving_ca: Ca,
    /// kube-apiserver's serving cert (127.0.0.1, localhost, kubernetes.default.svc).
    pub apiserver: CertKey,
    /// The aggregator's client cert (CN `front-proxy-client`).
    pub front_proxy_client: CertKey,
    /// The admin user (group `system:masters`).
    pub admin: CertKey,
    /// A user without any RBAC binding.
    pub nobody: CertKey,
    /// kube-controller-manager's identity (`system:kube-controller-manager`).
    pub controller_manager: CertKey,
    /// The adapter's serving cert (SANs `SERVICE.NAMESPACE.svc`, localhost, 127.0.0.1).
    pub adapter_serving: CertKey,
    /// A client cert from the front-proxy CA with a CN the apiserver does not allow.
    pub rogue_proxy_client: CertKey,
    /// Service-account token signing key (private, PKCS#8).
    pub sa_key: PathBuf,
    /// Its public half.
    pub sa_pub: PathBuf,
}

/// The CN of the aggregator's client certificate (listed in `--requestheader-allowed-names`).
pub const FRONT_PROXY_CN: &str = "front-proxy-client";
/// The admin user's name.
pub const ADMIN_USER: &str = "kis-admin";
/// The unprivileged user's name.
pub const NOBODY_USER: &str = "kis-nobody";

impl Pki {
    /// Generates everything under `dir`; `adapter_dns` are the adapter Service's DNS names
    /// (e.g. `kis-adapter.kis-system.svc`).
    pub fn generate(dir: &Path, adapter_dns: &[&str]) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let cluster_ca = Ca::new(dir, "cluster-ca", "kis-e2e-cluster-ca")?;
        let front_proxy_ca = Ca::new(dir, "front-proxy-ca", "kis-e2e-front-proxy-ca")?;
        let serving_ca = Ca::new(dir, "serving-ca", "kis-e2e-adapter-serving-ca")?;
        let apiserver = cluster_ca.issue(
            "apiserver",
            "kube-apiserver",
            &[],
            &[
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "10.96.0.1",
            ],
            Usage::Server,
        )?;
        let front_proxy_client = front_proxy_ca.issue(
            "front-proxy-client",
            FRONT_PROXY_CN,
            &[],
            &[],
            Usage::Client,
        )?;
        let rogue_proxy_client =
            front_proxy_ca.issue("rogue-proxy", "not-the-aggregator", &[], &[], Usage::Client)?;
        let admin =
            cluster_ca.issue("admin", ADMIN_USER, &["system:masters"], &[], Usage::Client)?;
        let nobody = cluster_ca.issue("nobody", NOBODY_USER, &[], &[], Usage::Client)?;
        let controller_manager = cluster_ca.issue(
            "controller-manager",
            "system:kube-controller-manager",
            &[],
            &[],
            Usage::Client,
        )?;
        let mut sans: Vec<&str> = adapter_dns.to_vec();
        sans.extend(["localhost", "127.0.0.1"]);
        let adapter_serving =
            serving_ca.issue("adapter-serving", "kis-adapter", &[], &sans, Usage::Server)?;
        let sa = rc::signing_key().map_err(|e| pki_err("the service-account key", e))?;
        let sa_key = dir.join("sa.key");
        let sa_pub = dir.join("sa.pub");
        write(&sa_key, &sa.key)?;
        write(&sa_pub, &sa.cert)?;
        Ok(Self {
            cluster_ca,
            front_proxy_ca,
            serving_ca,
            apiserver,
            front_proxy_client,
            admin,
            nobody,
            controller_manager,
            adapter_serving,
            rogue_proxy_client,
            sa_key,
            sa_pub,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kis_adapter::tls;

    fn verifies(ca: &Ca, leaf: &CertKey) -> bool {
        let roots = tls::parse_roots(ca.cert_pem().unwrap().as_bytes(), "ca").unwrap();
        let v = tls::ca_verifier(roots, "ca").unwrap();
        let chain = tls::parse_certs(&std::fs::read(&leaf.cert).unwrap(), "leaf").unwrap();
        tls::verifies(v.as_ref(), &chain)
    }

    #[test]
    fn leaves_chain_to_their_own_ca_only_and_files_are_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &["kis-adapter.kis-system.svc"]).unwrap();
        assert!(verifies(&pki.cluster_ca, &pki.admin));
        assert!(verifies(&pki.cluster_ca, &pki.controller_manager));
        assert!(verifies(&pki.front_proxy_ca, &pki.front_proxy_client));
        // The front-proxy client must not pass as a cluster-CA user, and vice versa.
        assert!(!verifies(&pki.cluster_ca, &pki.front_proxy_client));
        assert!(!verifies(&pki.front_proxy_ca, &pki.admin));
        for f in [&pki.apiserver, &pki.adapter_serving, &pki.admin] {
            let c = std::fs::read_to_string(&f.cert).unwrap();
            let k = std::fs::read_to_string(&f.key).unwrap();
            assert!(c.starts_with("-----BEGIN CERTIFICATE-----"), "{c}");
            assert!(k.starts_with("-----BEGIN PRIVATE KEY-----"), "{k}");
        }
        let sa_pub = std::fs::read_to_string(&pki.sa_pub).unwrap();
        assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"), "{sa_pub}");
        let sa_key = std::fs::read_to_string(&pki.sa_key).unwrap();
        assert!(sa_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
