//! Wires the flags to a running server: loads certificates, CAs and the authentication
//! ConfigMap, builds the authorizer, binds the HTTPS port (and the optional metrics port), and
//! keeps re-reading every input so certificate and CA rotation need no restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{self, AuthnConfig, AuthnInputs, Authorizer, Peer, Reviewer};
use crate::cli::Cli;
use crate::metrics::Metrics;
use crate::router::{self, AppState};
use crate::store::{Source, Target, now_unix};
use crate::tls::{self, TlsError};

/// Start-up failures: each names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag combination or value is wrong.
    #[error("{0}")]
    Flag(String),
    /// A file could not be read.
    #[error("cannot read {flag} {}: {err}", .path.display())]
    Read {
        /// Flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// A certificate, key or CA is unusable.
    #[error("{flag}: {err}")]
    Tls {
        /// Flag or source naming the input.
        flag: &'static str,
        /// Cause.
        err: TlsError,
    },
    /// The kube client could not be configured or the ConfigMap read.
    #[error("{0}")]
    Kube(String),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        err: std::io::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The serving config and authentication settings for new connections.
#[derive(Debug)]
struct Live {
    server_config: Arc<rustls::ServerConfig>,
    authn: Arc<AuthnConfig>,
}

/// Raw inputs; rebuilt into [`Live`] when any changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    flags: AuthnInputs,
    configmap: Option<AuthnInputs>,
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

    fn build(&self) -> Result<Live> {
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

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| Error::Read {
        flag,
        path: path.to_path_buf(),
        err,
    })
}

fn read_opt_string(flag: &'static str, path: Option<&PathBuf>) -> Result<Option<String>> {
    path.map(|p| read(flag, p).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .transpose()
}

fn read_token(path: &Path) -> Result<String> {
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

/// One entry of `--targets-file`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileTarget {
    namespace: String,
    metric: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    value: f64,
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    targets: Vec<FileTarget>,
}

/// Parses a `--targets-file` body into targets published at `now`.
pub fn parse_targets_file(body: &[u8], now: f64) -> Result<Vec<Target>, String> {
    let f: TargetsFile = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    f.targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            router::validate_target(&t.namespace, &t.metric, &t.labels, t.value)
                .map_err(|e| format!("targets[{i}]: {e}"))?;
            Ok(Target {
                namespace: t.namespace,
                metric: t.metric,
                labels: t.labels,
                value: t.value,
                published_unix: now,
                expires_unix: t.ttl_seconds.map(|s| now + s as f64),
                source: Source::File,
            })
        })
        .collect()
}

async fn kube_client(path: Option<&PathBuf>, what: &str) -> Result<Option<kube::Client>> {
    let cfg = match path {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| Error::Kube(format!("{what} kubeconfig {}: {e}", p.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Kube(format!("{what} kubeconfig {}: {e}", p.display())))?
        }
        None => match kube::Config::incluster() {
            Ok(c) => c,
            Err(_) => return Ok(None),
        },
    };
    kube::Client::try_from(cfg)
        .map(Some)
        .map_err(|e| Error::Kube(format!("{what} client: {e}")))
}

/// A running adapter.
#[derive(Debug)]
pub struct Running {
    /// Bound HTTPS address.
    pub addr: SocketAddr,
    /// Bound metrics address, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Handler state (store, metrics…).
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, flushes the state file and waits briefly for the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    }

    /// Waits until every task ends (they end only on shutdown).
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Validates the flags, loads every input and starts serving.
pub async fn start(cli: Cli) -> Result<Running> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_pem, key_pem) = match (
        &cli.tls_cert_file,
        &cli.tls_private_key_file,
        cli.self_signed,
    ) {
        (_, _, true) => {
            let p = crate::pki::self_signed(&cli.self_signed_hosts)
                .map_err(|e| Error::Flag(format!("--self-signed-hosts: {e}")))?;
            tracing::warn!(hosts = ?cli.self_signed_hosts, "serving a self-signed certificate (development only)");
            if let Some(dir) = &cli.cert_dir {
                let write = |name: &str, body: &str| {
                    let path = dir.join(name);
                    std::fs::create_dir_all(dir)
                        .and_then(|_| std::fs::write(&path, body))
                        .map_err(|err| Error::Read {
                            flag: "--cert-dir",
                            path,
                            err,
                        })
                };
                write("apiserver.crt", &p.cert)?;
                write("apiserver.key", &p.key)?;
            }
            (p.cert.into_bytes(), p.key.into_bytes())
        }
        (Some(c), Some(k), false) => (
            read("--tls-cert-file", c)?,
            read("--tls-private-key-file", k)?,
        ),
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err(Error::Flag(
                "--tls-cert-file and --tls-private-key-file must be given together".into(),
            ));
        }
        (None, None, false) => {
            return Err(Error::Flag(
                "no serving certificate: pass --tls-cert-file and --tls-private-key-file, or --self-signed".into(),
            ));
        }
    };
    let flags = AuthnInputs {
        client_ca_pem: read_opt_string("--client-ca-file", cli.client_ca_file.as_ref())?,
        requestheader_ca_pem: read_opt_string(
            "--requestheader-client-ca-file",
            cli.requestheader_client_ca_file.as_ref(),
        )?,
        allowed_names: cli.requestheader_allowed_names.clone(),
        username_headers: cli.requestheader_username_headers.clone(),
        group_headers: cli.requestheader_group_headers.clone(),
        extra_prefixes: cli.requestheader_extra_headers_prefix.clone(),
    };
    let authn_client = kube_client(
        cli.authentication_kubeconfig
            .as_ref()
            .or(cli.kubeconfig.as_ref()),
        "authentication",
    )
    .await?;
    let authz_client = kube_client(
        cli.authorization_kubeconfig
            .as_ref()
            .or(cli.kubeconfig.as_ref()),
        "authorization",
    )
    .await?;
    let cm_client = if cli.authentication_skip_lookup {
        None
    } else {
        authn_client
    };
    let configmap = match &cm_client {
        Some(c) => Some(fetch_configmap_retrying(c).await?),
        None => None,
    };
    let reviewer = if cli.no_delegated_authorization {
        tracing::warn!(
            "--no-delegated-authorization: every authenticated user is allowed (development only)"
        );
        Reviewer::AllowAll
    } else {
        Reviewer::Kube(authz_client.ok_or_else(|| {
            Error::Flag(
                "no kubeconfig for delegated authorization: pass --kubeconfig or --authorization-kubeconfig, run in a cluster, or use --no-delegated-authorization (development only)".into(),
            )
        })?)
    };
    let inputs = Inputs {
        cert_pem,
        key_pem,
        flags,
        configmap,
    };
    let live = inputs.build()?;
    if live.authn.request_header.is_none() && live.authn.client_ca.is_none() {
        tracing::warn!(
            "no client CA and no request-header CA: every API request will be refused with 401"
        );
    }
    let live = Arc::new(RwLock::new(Arc::new(live)));

    let authorizer = Authorizer::new(
        reviewer,
        cli.authorization_always_allow_groups.clone(),
        cli.authorization_webhook_cache_authorized_ttl,
        cli.authorization_webhook_cache_unauthorized_ttl,
    );
    let mut state = AppState::new(authorizer);
    state.always_allow_paths = Arc::new(cli.authorization_always_allow_paths.clone());
    if let Some(p) = &cli.publish_token_file {
        *state
            .publish_token
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(read_token(p)?);
    }
    if let Some(p) = &cli.state_file {
        let n = state.store.load_state(p).map_err(Error::Flag)?;
        tracing::info!(restored = n, path = %p.display(), "state file loaded");
        state.persist = Some(Arc::new(Notify::new()));
    }
    let mut targets_body = None;
    if let Some(p) = &cli.targets_file {
        let body = read("--targets-file", p)?;
        let t = parse_targets_file(&body, now_unix())
            .map_err(|e| Error::Flag(format!("--targets-file {}: {e}", p.display())))?;
        tracing::info!(targets = t.len(), path = %p.display(), "targets file loaded");
        state.store.replace_file_targets(t);
        targets_body = Some(body);
    }
    state.ready.store(true, Ordering::Relaxed);

    let addr = SocketAddr::new(cli.bind_address, cli.secure_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| Error::Bind { addr, err })?;
    let addr = listener
        .local_addr()
        .map_err(|err| Error::Bind { addr, err })?;
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let app = router::router(state.clone());
    tasks.spawn(accept_loop(
        listener,
        app,
        live.clone(),
        state.metrics.clone(),
        stop_rx.clone(),
    ));

    let metrics_addr = match cli.metrics_port {
        Some(port) => {
            let maddr = SocketAddr::new(cli.bind_address, port);
            let l = TcpListener::bind(maddr)
                .await
                .map_err(|err| Error::Bind { addr: maddr, err })?;
            let maddr = l
                .local_addr()
                .map_err(|err| Error::Bind { addr: maddr, err })?;
            let s = state.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let s = s.clone();
                    async move { s.metrics.encode(s.store.counts(now_unix())) }
                }),
            );
            let mut rx = stop_rx.clone();
            tasks.spawn(async move {
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        stopped(&mut rx).await;
                    })
                    .await;
            });
            Some(maddr)
        }
        None => None,
    };

    if let (Some(path), Some(notify)) = (cli.state_file.clone(), state.persist.clone()) {
        tasks.spawn(persist_loop(path, notify, state.clone(), stop_rx.clone()));
    }
    let reload = Reload {
        cli: cli.clone(),
        inputs,
        client: cm_client,
        live,
        state: state.clone(),
        targets_body,
        token: state
            .publish_token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    tasks.spawn(reload.run(stop_rx));
    tracing::info!(%addr, metrics = ?metrics_addr, "kis-adapter serving");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        stop,
        tasks,
    })
}

/// Resolves once the stop flag is set (the watch guard is dropped inside, so callers stay `Send`).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn fetch_configmap_retrying(c: &kube::Client) -> Result<AuthnInputs> {
    let mut last = String::new();
    for _ in 0..10 {
        match auth::fetch_configmap(c).await {
            Ok(i) => return Ok(i),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(Error::Kube(format!(
        "{last} (use --authentication-skip-lookup to rely on flags only)"
    )))
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    live: Arc<RwLock<Arc<Live>>>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, remote) = tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let cur = live.read().unwrap_or_else(|e| e.into_inner()).clone();
        let app = app.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(cur.server_config.clone());
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "rejected: TLS handshake failed");
                        Metrics::count(&metrics.authn_failures, "tls_handshake");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%remote, "rejected: TLS handshake timed out");
                        return;
                    }
                };
            let peer = match stream.get_ref().1.peer_certificates() {
                Some(chain) => cur.authn.classify(chain),
                None => Peer::Anonymous,
            };
            let peer = Arc::new(peer);
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(peer.clone());
                app.clone().oneshot(req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn persist_loop(
    path: PathBuf,
    notify: Arc<Notify>,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = stopped(&mut stop) => true,
            _ = notify.notified() => false,
        };
        if let Err(e) = state.store.save(&path) {
            tracing::error!(path = %path.display(), error = %e, "cannot write state file");
        }
        if stopping {
            break;
        }
    }
}

struct Reload {
    cli: Cli,
    inputs: Inputs,
    client: Option<kube::Client>,
    live: Arc<RwLock<Arc<Live>>>,
    state: AppState,
    targets_body: Option<Vec<u8>>,
    token: Option<String>,
}

impl Reload {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.cli.authentication_config_resync);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = tick.tick() => self.once().await,
            }
        }
    }

    /// Re-reads every input; a bad new input is logged and the previous one kept.
    async fn once(&mut self) {
        let mut next = self.inputs.clone();
        let cli = &self.cli;
        if let (Some(c), Some(k)) = (&cli.tls_cert_file, &cli.tls_private_key_file) {
            match (std::fs::read(c), std::fs::read(k)) {
                (Ok(c), Ok(k)) => {
                    next.cert_pem = c;
                    next.key_pem = k;
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot re-read the serving certificate/key")
                }
            }
        }
        for (flag, path, slot) in [
            (
                "--client-ca-file",
                &cli.client_ca_file,
                &mut next.flags.client_ca_pem,
            ),
            (
                "--requestheader-client-ca-file",
                &cli.requestheader_client_ca_file,
                &mut next.flags.requestheader_ca_pem,
            ),
        ] {
            if let Some(p) = path {
                match std::fs::read(p) {
                    Ok(b) => *slot = Some(String::from_utf8_lossy(&b).into_owned()),
                    Err(e) => tracing::error!(flag, error = %e, "cannot re-read CA file"),
                }
            }
        }
        if let Some(c) = &self.client {
            match auth::fetch_configmap(c).await {
                Ok(i) => next.configmap = Some(i),
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-read the authentication ConfigMap; keeping the previous one")
                }
            }
        }
        if next != self.inputs {
            match next.build() {
                Ok(l) => {
                    *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(l);
                    self.inputs = next;
                    tracing::info!("serving certificate or client CAs changed: reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "new certificate/CA material is unusable; keeping the previous one")
                }
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
