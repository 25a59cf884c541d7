//! A throwaway PKI generated at run time with the `openssl` command: the cluster CA (apiserver
//! serving cert, client certs for users and the controller-manager), the front-proxy CA (the
//! aggregator's client cert), a serving CA for the adapter (the APIService's `caBundle`) and the
//! service-account signing key pair. Keys are P-256; everything is valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// A certificate and its private key on disk (PEM).
#[derive(Debug, Clone)]
pub struct CertKey {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// A certificate authority that can sign leaf certificates.
#[derive(Debug, Clone)]
pub struct Ca {
    /// The CA certificate and key.
    pub pair: CertKey,
    dir: PathBuf,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (serverAuth).
    Server,
    /// TLS client (clientAuth).
    Client,
}

fn openssl(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(|e| Error::Spawn("openssl".into(), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            cmd: format!("openssl {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn path_str(p: &Path) -> Result<&str, Error> {
    p.to_str()
        .ok_or_else(|| Error::Config(format!("path is not UTF-8: {}", p.display())))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::Io(path.to_path_buf(), e))
}

impl Ca {
    /// Creates a self-signed CA named `name` (files `DIR/NAME.crt`, `DIR/NAME.key`).
    pub fn new(dir: &Path, name: &str, common_name: &str) -> Result<Self, Error> {
        let pair = CertKey {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            path_str(&pair.key)?,
            "-out",
            path_str(&pair.cert)?,
            "-days",
            "2",
            "-subj",
            &format!("/CN={common_name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ])?;
        Ok(Self {
            pair,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate as PEM text.
    pub fn cert_pem(&self) -> Result<String, Error> {
        std::fs::read_to_string(&self.pair.cert).map_err(|e| Error::Io(self.pair.cert.clone(), e))
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
        let pair = CertKey {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        let csr = self.dir.join(format!("{name}.csr"));
        let ext = self.dir.join(format!("{name}.ext"));
        let mut subject = format!("/CN={common_name}");
        for o in orgs {
            subject.push_str(&format!("/O={o}"));
        }
        openssl(&[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            path_str(&pair.key)?,
            "-out",
            path_str(&csr)?,
            "-subj",
            &subject,
        ])?;
        let eku = match usage {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
        };
        let mut ext_text = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={eku}\n"
        );
        if !sans.is_empty() {
            let list: Vec<String> = sans
                .iter()
                .map(|s| {
                    if s.parse::<std::net::IpAddr>().is_ok() {
                        format!("IP:{s}")
                    } else {
                        format!("DNS:{s}")
                    }
                })
                .collect();
            ext_text.push_str(&format!("subjectAltName={}\n", list.join(",")));
        }
        write(&ext, &ext_text)?;
        // A random serial per leaf, so that no shared serial file is needed.
        let serial = format!("0x{:016x}{:08x}", rand_u64(), std::process::id());
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr)?,
            "-CA",
            path_str(&self.pair.cert)?,
            "-CAkey",
            path_str(&self.pair.key)?,
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            path_str(&ext)?,
            "-out",
            path_str(&pair.cert)?,
        ])?;
        Ok(pair)
    }
}

/// Enough entropy for certificate serials without a crate: the std hasher's random keys.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
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
        let sa_key = dir.join("sa.key");
        let sa_pub = dir.join("sa.pub");
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            path_str(&sa_key)?,
        ])?;
        openssl(&[
            "pkey",
            "-in",
            path_str(&sa_key)?,
            "-pubout",
            "-out",
            path_str(&sa_pub)?,
        ])?;
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

    fn text(cert: &Path) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn verifies(ca: &Ca, leaf: &CertKey) -> bool {
        Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&ca.pair.cert)
            .arg(&leaf.cert)
            .output()
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn leaves_chain_to_their_own_ca_only_and_carry_the_sans() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path(), &["kis-adapter.kis-system.svc"]).unwrap();
        assert!(verifies(&pki.cluster_ca, &pki.apiserver));
        assert!(verifies(&pki.cluster_ca, &pki.admin));
        assert!(verifies(&pki.front_proxy_ca, &pki.front_proxy_client));
        assert!(verifies(&pki.serving_ca, &pki.adapter_serving));
        // The front-proxy client must not pass as a cluster-CA user, and vice versa.
        assert!(!verifies(&pki.cluster_ca, &pki.front_proxy_client));
        assert!(!verifies(&pki.front_proxy_ca, &pki.admin));

        let adapter = text(&pki.adapter_serving.cert);
        assert!(
            adapter.contains("DNS:kis-adapter.kis-system.svc"),
            "{adapter}"
        );
        assert!(adapter.contains("IP Address:127.0.0.1"), "{adapter}");
        assert!(adapter.contains("TLS Web Server Authentication"));
        let admin = text(&pki.admin.cert);
        assert!(admin.contains("O = system:masters"), "{admin}");
        assert!(admin.contains("CN = kis-admin"), "{admin}");
        assert!(admin.contains("TLS Web Client Authentication"));
        let apiserver = text(&pki.apiserver.cert);
        assert!(
            apiserver.contains("DNS:kubernetes.default.svc"),
            "{apiserver}"
        );
        assert!(
            std::fs::read_to_string(&pki.sa_pub)
                .unwrap()
                .contains("BEGIN PUBLIC KEY")
        );
    }
}
