//! Serving TLS: certificates from PEM, a rustls `ServerConfig` whose client-certificate
//! verifier accepts the front-proxy CA and the client CA (client certificates optional at the
//! TLS layer, enforced per route), and classification of a connection's verified peer.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

/// Certificate, key or CA problems (start-up errors and reload errors).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file held no usable item.
    #[error("{what}: {msg}")]
    Pem {
        /// Which input.
        what: String,
        /// What was wrong.
        msg: String,
    },
    /// rustls refused the material.
    #[error("{what}: {err}")]
    Rustls {
        /// Which input.
        what: String,
        /// Cause.
        err: rustls::Error,
    },
}

/// The ring provider, used explicitly so no process-wide default is needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            msg: format!("invalid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.into(),
            msg: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: what.into(),
        msg: format!("no usable private key: {e}"),
    })
}

/// Builds a root store from a PEM CA bundle.
pub fn parse_roots(pem: &[u8], what: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in parse_certs(pem, what)? {
        roots.add(c).map_err(|e| TlsError::Rustls {
            what: what.into(),
            err: e,
        })?;
    }
    Ok(Arc::new(roots))
}

/// A verifier for one CA, client certificates optional.
pub fn ca_verifier(
    roots: Arc<RootCertStore>,
    what: &str,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            msg: e.to_string(),
        })
}

/// Accepts a client certificate that any of its CAs verifies; no certificate is fine too.
#[derive(Debug)]
struct AnyCa {
    inner: Vec<Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCa {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no client CA configured".into());
        for v in &self.inner {
            match v.verify_client_cert(end_entity, intermediates, now) {
                Ok(ok) => return Ok(ok),
                Err(e) => last = e,
            }
        }
        Err(last)
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

/// Builds the serving config: `certs`/`key`, client certificates from `client_cas` optional.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: &[Arc<RootCertStore>],
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = if client_cas.is_empty() {
        WebPkiClientVerifier::no_client_auth()
    } else {
        let mut inner = Vec::new();
        let mut hints = Vec::new();
        for roots in client_cas {
            hints.extend(roots.subjects());
            inner.push(ca_verifier(roots.clone(), "client CA")?);
        }
        Arc::new(AnyCa {
            inner,
            hints,
            provider: provider.clone(),
        })
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls {
            what: "TLS versions".into(),
            err: e,
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls {
            what: "serving certificate/key".into(),
            err: e,
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(feature = "server")]
/// Subject CN and O of a DER certificate.
pub fn subject(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subj = cert.subject();
    let cn = subj.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = subj
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

/// Whether `chain` (leaf first) verifies against `v`.
pub fn verifies(v: &dyn ClientCertVerifier, chain: &[CertificateDer<'_>]) -> bool {
    match chain.split_first() {
        Some((leaf, rest)) => v.verify_client_cert(leaf, rest, UnixTime::now()).is_ok(),
        None => false,
    }
}
