//! Keeps the serving certificate, the client CAs, the front-proxy settings, the publish token
//! and the targets file current without a restart. The files are re-read every
//! `--authentication-config-resync` by [`Reload`]; the authentication ConfigMap is watched and
//! applied through [`Reloader::apply_auth_configmap`]. Every change goes through one
//! [`Reloader`], which rebuilds the rustls verifier and the front-proxy settings together and
//! swaps them in one step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::auth::{self, AuthnConfig, AuthnInputs};
use crate::config::Config;
use crate::error::Error;
use crate::lifecycle::stopped;
use crate::metrics::Metrics;
use crate::router::AppState;
use crate::store::now_unix;
use crate::targets::parse_targets_file;
use crate::tls;
use crate::watch as cmwatch;

type Result<T, E = Error> = std::result::Result<T, E>;

/// The serving config and authentication settings for new connections.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    pub(crate) authn: Arc<AuthnConfig>,
}

/// Raw inputs; rebuilt into [`Live`] when any changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inputs {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    pub(crate) flags: AuthnInputs,
    pub(crate) configmap: Option<AuthnInputs>,
}

impl Inputs {
    /// Flags win over the ConfigMap, per CA, as in Go's delegating authenticator.
    fn effective(&self) -> AuthnInputs {
        let mut e = self.flags.clone();
        if let Some(cm) = &self.configmap {
            if e.client_ca_pem.is_none() {
                e.client_ca_pem = cm.client_ca_pem.clone();
            }
            if e.requestheader_ca_pem.is_none() && cm.requestheader_ca_pem.is_some() {
                e.requestheader_ca_pem = cm.requestheader_ca_pem.clone();
                e.allowed_names = cm.allowed_names.clone();
                e.username_headers = cm.username_headers.clone();
                e.group_headers = cm.group_headers.clone();
                e.extra_prefixes = cm.extra_prefixes.clone();
            }
        }
        e
    }

    pub(crate) fn build(&self) -> Result<Live> {
        let certs =
            tls::parse_certs(&self.cert_pem, "serving certificate").map_err(|err| Error::Tls {
                flag: "--tls-cert-file",
                err,
            })?;
        let key = tls::parse_key(&self.key_pem, "serving key").map_err(|err| Error::Tls {
            flag: "--tls-private-key-file",
            err,
        })?;
        let authn = self.effective().build().map_err(|err| Error::Tls {
            flag: "client/request-header CA",
            err,
        })?;
        let server_config =
            tls::server_config(certs, key, &authn.all_roots()).map_err(|err| Error::Tls {
                flag: "--tls-cert-file/--tls-private-key-file",
                err,
            })?;
        Ok(Live {
            server_config: Arc::new(server_config),
            authn: Arc::new(authn),
        })
    }
}

/// The current inputs and what was built from them, behind one lock so the file re-read and the
/// ConfigMap watch never interleave. A change is applied to a copy; only a copy that builds is
/// committed, and the built [`Live`] replaces the previous one in a single pointer swap: new
/// handshakes use the new CAs and front-proxy settings together, while existing connections keep
/// the `Live` (and the verified identity) they were accepted with.
#[derive(Debug)]
pub(crate) struct Reloader {
    inputs: Mutex<Inputs>,
    live: Arc<RwLock<Arc<Live>>>,
    /// resourceVersion of the last refused ConfigMap version, so a re-list of the same bad
    /// version is not logged again.
    last_bad: Mutex<Option<String>>,
}

impl Reloader {
    pub(crate) fn new(inputs: Inputs, live: Live) -> Self {
        Self {
            inputs: Mutex::new(inputs),
            live: Arc::new(RwLock::new(Arc::new(live))),
            last_bad: Mutex::new(None),
        }
    }

    /// The configuration new connections get.
    pub(crate) fn current(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `change` to a copy of the inputs. `Ok(true)`: rebuilt and swapped in;
    /// `Ok(false)`: nothing changed; `Err`: the new inputs do not build and the previous ones
    /// stay in force.
    fn update(&self, change: impl FnOnce(&mut Inputs)) -> Result<bool> {
        let mut cur = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = cur.clone();
        change(&mut next);
        if next == *cur {
            return Ok(false);
        }
        let live = next.build()?;
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
        *cur = next;
        Ok(true)
    }

    /// Applies one watched version of the extension-apiserver-authentication ConfigMap.
    pub(crate) fn apply_auth_configmap(&self, change: cmwatch::Change, metrics: &Metrics) {
        const SOURCE: &str = "authentication";
        let cm = match change {
            cmwatch::Change::Applied(cm) => cm,
            cmwatch::Change::Gone => {
                // kube-apiserver recreates it; until then the last good CAs keep working.
                tracing::warn!(
                    "kube-system/{} is gone; keeping the previous authentication configuration",
                    auth::AUTH_CONFIGMAP
                );
                metrics.config_loaded(SOURCE, "deleted", false, now_unix());
                return;
            }
        };
        let rv = cm.metadata.resource_version.clone().unwrap_or_default();
        let result = AuthnInputs::from_configmap(&cm.data.unwrap_or_default())
            .map_err(Error::Kube)
            .and_then(|a| self.update(|i| i.configmap = Some(a)));
        match result {
            Ok(changed) => {
                if changed {
                    tracing::info!(resource_version = %rv, "authentication ConfigMap changed: client CA and front-proxy settings reloaded");
                } else {
                    tracing::debug!(resource_version = %rv, "authentication ConfigMap version without effective change");
                }
                metrics.config_loaded(SOURCE, "ok", changed, now_unix());
            }
            Err(e) => {
                let mut last = self.last_bad.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() != Some(rv.as_str()) {
                    tracing::error!(resource_version = %rv, error = %e, "unusable authentication ConfigMap version; keeping the previous configuration");
                    metrics.config_loaded(SOURCE, "error", false, now_unix());
                    *last = Some(rv);
                }
            }
        }
    }
}

pub(crate) fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| Error::Read {
        flag,
        path: path.to_path_buf(),
        err,
    })
}

pub(crate) fn read_opt_string(
    flag: &'static str,
    path: Option<&PathBuf>,
) -> Result<Option<String>> {
    path.map(|p| read(flag, p).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .transpose()
}

pub(crate) fn read_token(path: &Path) -> Result<String> {
    let t = String::from_utf8_lossy(&read("--publish-token-file", path)?)
        .trim()
        .to_string();
    if t.is_empty() {
        return Err(Error::Flag(format!(
            "--publish-token-file {} is empty",
            path.display()
        )));
    }
    Ok(t)
}

/// The file re-reader task.
pub(crate) struct Reload {
    pub(crate) config: Config,
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) state: AppState,
    pub(crate) targets_body: Option<Vec<u8>>,
    pub(crate) token: Option<String>,
}

impl Reload {
    /// Re-reads the files every resync period until `stop`.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.resync);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = tick.tick() => self.once().await,
            }
        }
    }

    /// Re-reads every file input; a bad new input is logged and the previous one kept. (The
    /// ConfigMaps are watched by their own tasks.)
    async fn once(&mut self) {
        let cli = &self.config.flags;
        let mut cert_key = None;
        if let (Some(c), Some(k)) = (&cli.tls_cert_file, &cli.tls_private_key_file) {
            match (std::fs::read(c), std::fs::read(k)) {
                (Ok(c), Ok(k)) => cert_key = Some((c, k)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot re-read the serving certificate/key")
                }
            }
        }
        let mut cas = Vec::new();
        for (i, (flag, path)) in [
            ("--client-ca-file", &cli.client_ca_file),
            (
                "--requestheader-client-ca-file",
                &cli.requestheader_client_ca_file,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(p) = path {
                match std::fs::read(p) {
                    Ok(b) => cas.push((i, String::from_utf8_lossy(&b).into_owned())),
                    Err(e) => tracing::error!(flag, error = %e, "cannot re-read CA file"),
                }
            }
        }
        let result = self.reloader.update(|next| {
            if let Some((c, k)) = cert_key {
                next.cert_pem = c;
                next.key_pem = k;
            }
            for (i, pem) in cas {
                if i == 0 {
                    next.flags.client_ca_pem = Some(pem);
                } else {
                    next.flags.requestheader_ca_pem = Some(pem);
                }
            }
        });
        match result {
            Ok(true) => tracing::info!("serving certificate or client CA files changed: reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "new certificate/CA material is unusable; keeping the previous one")
            }
        }
        if let Some(p) = &cli.publish_token_file {
            match read_token(p) {
                Ok(t) if Some(&t) != self.token.as_ref() => {
                    *self
                        .state
                        .publish_token
                        .write()
                        .unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
                    self.token = Some(t);
                    tracing::info!("publish token reloaded");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-read the publish token; keeping the previous one")
                }
            }
        }
        if let Some(p) = &cli.targets_file {
            match std::fs::read(p) {
                Ok(b) if Some(&b) != self.targets_body.as_ref() => {
                    match parse_targets_file(&b, now_unix()) {
                        Ok(t) => {
                            tracing::info!(targets = t.len(), "targets file reloaded");
                            self.state.store.replace_file_targets(t);
                            self.targets_body = Some(b);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "bad targets file; keeping the previous targets")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot re-read the targets file"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Peer;
    use crate::pki::{Ca, Pem};
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn der(p: &Pem) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        tls::parse_certs(p.cert.as_bytes(), "test").unwrap()
    }

    fn auth_cm(client_ca: &str, front_proxy_ca: &str, rv: &str) -> ConfigMap {
        let data = [
            ("client-ca-file", client_ca.to_string()),
            ("requestheader-client-ca-file", front_proxy_ca.to_string()),
            ("requestheader-allowed-names", r#"["proxy"]"#.into()),
            (
                "requestheader-username-headers",
                r#"["X-Remote-User"]"#.into(),
            ),
            (
                "requestheader-group-headers",
                r#"["X-Remote-Group"]"#.into(),
            ),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#.into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ConfigMap {
            metadata: ObjectMeta {
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }
    }

    /// An in-memory TLS handshake of a client presenting `id` against `live`'s server config.
    fn handshake(live: &Live, server_ca: &Ca, id: &Pem) -> bool {
        let roots = tls::parse_roots(server_ca.cert_pem.as_bytes(), "ca").unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(der(id), tls::parse_key(id.key.as_bytes(), "k").unwrap())
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        let mut s = rustls::ServerConnection::new(live.server_config.clone()).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                let mut r = &buf[..];
                while !r.is_empty() {
                    s.read_tls(&mut r).unwrap();
                }
                if s.process_new_packets().is_err() {
                    return false;
                }
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                let mut r = &buf[..];
                while !r.is_empty() {
                    c.read_tls(&mut r).unwrap();
                }
                if c.process_new_packets().is_err() {
                    return false;
                }
            }
            if !s.is_handshaking() && !c.is_handshaking() {
                return s.peer_certificates().is_some();
            }
        }
        false
    }

    struct Fixture {
        server_ca: Ca,
        reloader: Reloader,
        metrics: Metrics,
        client_ca: Ca,
        proxy_ca: Ca,
    }

    fn fixture() -> Fixture {
        let server_ca = Ca::new("server").unwrap();
        let server = server_ca.server(&["localhost"]).unwrap();
        let client_ca = Ca::new("client-ca").unwrap();
        let proxy_ca = Ca::new("proxy-ca").unwrap();
        let inputs = Inputs {
            cert_pem: server.cert.into_bytes(),
            key_pem: server.key.into_bytes(),
            flags: AuthnInputs::default(),
            configmap: Some(
                AuthnInputs::from_configmap(
                    &auth_cm(&client_ca.cert_pem, &proxy_ca.cert_pem, "1")
                        .data
                        .unwrap(),
                )
                .unwrap(),
            ),
        };
        let live = inputs.build().unwrap();
        Fixture {
            server_ca,
            reloader: Reloader::new(inputs, live),
            metrics: Metrics::new(),
            client_ca,
            proxy_ca,
        }
    }

    fn is_user(p: &Peer, name: &str) -> bool {
        matches!(p, Peer::User(u) if u.name == name)
    }

    #[test]
    fn a_new_configmap_version_swaps_verifier_and_front_proxy_together() {
        let f = fixture();
        let alice = f.client_ca.client("alice", &[]).unwrap();
        let old_proxy = f.proxy_ca.client("proxy", &[]).unwrap();
        let before = f.reloader.current();
        assert!(is_user(&before.authn.classify(&der(&alice)), "alice"));
        assert!(matches!(
            before.authn.classify(&der(&old_proxy)),
            Peer::FrontProxy(_)
        ));

        // Rotation: a bundle of the old and a new client CA, and a new front-proxy CA.
        let new_client_ca = Ca::new("client-ca-2").unwrap();
        let bob = new_client_ca.client("bob", &[]).unwrap();
        let new_proxy_ca = Ca::new("proxy-ca-2").unwrap();
        let new_proxy = new_proxy_ca.client("proxy", &[]).unwrap();
        let bundle = format!("{}{}", f.client_ca.cert_pem, new_client_ca.cert_pem);
        f.reloader.apply_auth_configmap(
            cmwatch::Change::Applied(Box::new(auth_cm(&bundle, &new_proxy_ca.cert_pem, "2"))),
            &f.metrics,
        );
        let after = f.reloader.current();
        assert!(!Arc::ptr_eq(&before, &after), "a new Live was swapped in");
        assert!(is_user(&after.authn.classify(&der(&alice)), "alice"));
        assert!(is_user(&after.authn.classify(&der(&bob)), "bob"));
        assert!(matches!(
            after.authn.classify(&der(&new_proxy)),
            Peer::FrontProxy(_)
        ));
        assert!(matches!(
            after.authn.classify(&der(&old_proxy)),
            Peer::Refused(_)
        ));
        // The TLS verifier of the new config accepts bob at the handshake; the old one did not.
        let verifier = |l: &Live| handshake(l, &f.server_ca, &bob);
        assert!(verifier(&after));
        assert!(!verifier(&before));
        // A connection accepted before the swap keeps the configuration it was accepted with.
        assert!(matches!(
            before.authn.classify(&der(&old_proxy)),
            Peer::FrontProxy(_)
        ));

        // Removing the CA again revokes bob for new connections.
        f.reloader.apply_auth_configmap(
            cmwatch::Change::Applied(Box::new(auth_cm(
                &f.client_ca.cert_pem,
                &new_proxy_ca.cert_pem,
                "3",
            ))),
            &f.metrics,
        );
        assert!(matches!(
            f.reloader.current().authn.classify(&der(&bob)),
            Peer::Refused(_)
        ));
        let text = f.metrics.encode(Default::default());
        assert!(
            text.contains(r#"kis_adapter_config_generation{source="authentication"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn a_bad_version_keeps_the_previous_configuration() {
        let f = fixture();
        let before = f.reloader.current();
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        f.reloader.apply_auth_configmap(
            cmwatch::Change::Applied(Box::new(auth_cm(garbage, &f.proxy_ca.cert_pem, "2"))),
            &f.metrics,
        );
        assert!(Arc::ptr_eq(&before, &f.reloader.current()));
        let mut bad_list = auth_cm(&f.client_ca.cert_pem, &f.proxy_ca.cert_pem, "3");
        bad_list
            .data
            .as_mut()
            .unwrap()
            .insert("requestheader-allowed-names".into(), "not json".into());
        f.reloader.apply_auth_configmap(
            cmwatch::Change::Applied(Box::new(bad_list.clone())),
            &f.metrics,
        );
        // The same bad version again (a re-list) is not logged or counted twice.
        f.reloader
            .apply_auth_configmap(cmwatch::Change::Applied(Box::new(bad_list)), &f.metrics);
        // Deletion keeps it too (kube-apiserver recreates the ConfigMap).
        f.reloader
            .apply_auth_configmap(cmwatch::Change::Gone, &f.metrics);
        assert!(Arc::ptr_eq(&before, &f.reloader.current()));
        let text = f.metrics.encode(Default::default());
        assert!(
            text.contains(
                r#"kis_adapter_config_loads_total{source="authentication",result="error"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kis_adapter_config_loads_total{source="authentication",result="deleted"} 1"#
            ),
            "{text}"
        );
        assert!(
            !text.contains(r#"kis_adapter_config_generation{source="authentication"}"#),
            "no successful load yet: {text}"
        );
    }

    #[test]
    fn an_identical_version_is_not_rebuilt() {
        let f = fixture();
        let before = f.reloader.current();
        f.reloader.apply_auth_configmap(
            cmwatch::Change::Applied(Box::new(auth_cm(
                &f.client_ca.cert_pem,
                &f.proxy_ca.cert_pem,
                "9",
            ))),
            &f.metrics,
        );
        assert!(Arc::ptr_eq(&before, &f.reloader.current()));
        let text = f.metrics.encode(Default::default());
        assert!(
            text.contains(
                r#"kis_adapter_config_loads_total{source="authentication",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            !text.contains(r#"kis_adapter_config_generation{source="authentication"}"#),
            "nothing changed: {text}"
        );
    }
}
