//! Wires the flags to a running server: loads certificates, CAs and the authentication
//! ConfigMap, builds the authorizer, binds the HTTPS port (and the optional metrics port), and
//! keeps every input current so certificate and CA rotation need no restart: the files are
//! re-read every `--authentication-config-resync`, the ConfigMaps (authentication, targets) are
//! watched. Every change goes through one [`Reloader`], which rebuilds the rustls verifier and the
//! front-proxy settings together and swaps them in one step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::auth::{self, AuthnConfig, AuthnInputs, Authorizer, Peer, Reviewer};
use crate::cli::Cli;
use crate::metrics::Metrics;
use crate::router::{self, AppState};
use crate::store::{Source, Target, now_unix};
use crate::tls::{self, TlsError};
use crate::watch as cmwatch;

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

/// The current inputs and what was built from them, behind one lock so the file re-read and the
/// ConfigMap watch never interleave. A change is applied to a copy; only a copy that builds is
/// committed, and the built [`Live`] replaces the previous one in a single pointer swap: new
/// handshakes use the new CAs and front-proxy settings together, while existing connections keep
/// the `Live` (and the verified identity) they were accepted with.
#[derive(Debug)]
struct Reloader {
    inputs: Mutex<Inputs>,
    live: Arc<RwLock<Arc<Live>>>,
    /// resourceVersion of the last refused ConfigMap version, so a re-list of the same bad
    /// version is not logged again.
    last_bad: Mutex<Option<String>>,
}

impl Reloader {
    fn new(inputs: Inputs, live: Live) -> Self {
        Self {
            inputs: Mutex::new(inputs),
            live: Arc::new(RwLock::new(Arc::new(live))),
            last_bad: Mutex::new(None),
        }
    }

    /// The configuration new connections get.
    fn current(&self) -> Arc<Live> {
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
    fn apply_auth_configmap(&self, change: cmwatch::Change, metrics: &Metrics) {
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TargetsFile {
    /// When the document was written (RFC 3339); `ttlSeconds` count from here.
    published_at: Option<String>,
    targets: Vec<FileTarget>,
}

/// How far ahead of this replica's clock `publishedAt` may be (clock skew between the writer and
/// the replicas); anything later would stretch a TTL, so it is refused.
pub const MAX_PUBLISHED_AT_SKEW_S: f64 = 60.0;

/// Parses a `--targets-file` body into targets; `ttlSeconds` count from the document's
/// `publishedAt` if present, else from `now` (the time the file was read).
pub fn parse_targets_file(body: &[u8], now: f64) -> Result<Vec<Target>, String> {
    parse_targets(body, now, Source::File)
}

/// Parses a targets document (the `--targets-file` format) from `source`. For
/// [`Source::ConfigMap`] a target with `ttlSeconds` needs the document's `publishedAt`: every
/// replica, and a restarted one, must compute the same expiry, which the time a replica happened
/// to see the ConfigMap would not give.
pub fn parse_targets(body: &[u8], now: f64, source: Source) -> Result<Vec<Target>, String> {
    let f: TargetsFile = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let published = match &f.published_at {
        Some(s) => {
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|e| format!("publishedAt {s:?} is not an RFC 3339 time: {e}"))?;
            let unix = ts.as_millisecond() as f64 / 1000.0;
            if unix > now + MAX_PUBLISHED_AT_SKEW_S {
                return Err(format!(
                    "publishedAt {s:?} is more than {MAX_PUBLISHED_AT_SKEW_S} s in the future"
                ));
            }
            Some(unix)
        }
        None => None,
    };
    f.targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            router::validate_target(&t.namespace, &t.metric, &t.labels, t.value)
                .map_err(|e| format!("targets[{i}]: {e}"))?;
            let at = match (published, source, t.ttl_seconds) {
                (Some(p), _, _) => p,
                (None, Source::ConfigMap, Some(_)) => {
                    return Err(format!(
                        "targets[{i}]: ttlSeconds needs the document's publishedAt (RFC 3339) in a ConfigMap"
                    ));
                }
                (None, _, _) => now,
            };
            if let Some(ttl) = t.ttl_seconds
                && !(1..=router::MAX_TTL_SECONDS).contains(&ttl)
            {
                return Err(format!(
                    "targets[{i}]: ttlSeconds must be 1..={}",
                    router::MAX_TTL_SECONDS
                ));
            }
            Ok(Target {
                namespace: t.namespace,
                metric: t.metric,
                labels: t.labels,
                value: t.value,
                published_unix: at,
                expires_unix: t.ttl_seconds.map(|s| at + s as f64),
                source,
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
    let reloader = Arc::new(Reloader::new(inputs, live));

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
    if cm_client.is_some() {
        state
            .metrics
            .config_loaded("authentication", "ok", true, now_unix());
    }
    let targets_cm = match &cli.targets_configmap {
        Some((ns, name)) => {
            let client = kube_client(cli.kubeconfig.as_ref(), "--targets-configmap")
                .await?
                .ok_or_else(|| {
                    Error::Flag(
                        "--targets-configmap needs a cluster: pass --kubeconfig or run in a cluster"
                            .into(),
                    )
                })?;
            let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
            let cm = api.get_opt(name).await.map_err(|e| {
                Error::Kube(format!("--targets-configmap: cannot read {ns}/{name}: {e}"))
            })?;
            let loader = TargetsConfigMap {
                key: cli.targets_configmap_key.clone(),
                what: format!("{ns}/{name}"),
                state: state.clone(),
                last_body: Mutex::new(None),
                last_bad: Mutex::new(None),
            };
            let change = match cm {
                Some(cm) => cmwatch::Change::Applied(Box::new(cm)),
                None => cmwatch::Change::Gone,
            };
            loader
                .apply(change)
                .map_err(|e| Error::Flag(format!("--targets-configmap {e}")))?;
            Some((client, ns.clone(), name.clone(), loader))
        }
        None => None,
    };
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
        reloader.clone(),
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
    if let Some(client) = cm_client {
        let r = reloader.clone();
        let metrics = state.metrics.clone();
        tasks.spawn(cmwatch::configmap(
            client,
            "kube-system".into(),
            auth::AUTH_CONFIGMAP.into(),
            "authentication",
            move |change| r.apply_auth_configmap(change, &metrics),
            stop_rx.clone(),
        ));
    }
    if let Some((client, ns, name, loader)) = targets_cm {
        tasks.spawn(cmwatch::configmap(
            client,
            ns,
            name,
            "targets",
            move |change| {
                // Errors are logged and counted inside; the previous targets stay.
                let _ = loader.apply(change);
            },
            stop_rx.clone(),
        ));
    }
    let reload = Reload {
        cli: cli.clone(),
        reloader,
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
    reloader: Arc<Reloader>,
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
        // One snapshot per connection: the handshake and the identity classification use the
        // same CAs, and a later swap does not change what this connection was accepted as.
        let cur = reloader.current();
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

/// `--targets-configmap`: turns each watched version into the ConfigMap-sourced targets.
struct TargetsConfigMap {
    key: String,
    what: String,
    state: AppState,
    /// The document in force, to skip identical versions.
    last_body: Mutex<Option<String>>,
    /// resourceVersion of the last refused version (logged once, not again on a re-list).
    last_bad: Mutex<Option<String>>,
}

impl TargetsConfigMap {
    /// Replaces the ConfigMap targets with this version's; a bad version is logged once and the
    /// previous targets stay. A deleted (or absent) ConfigMap holds no targets: reads of its
    /// targets answer 404, which the HPA treats like any failed read (replicas held, never 0).
    fn apply(&self, change: cmwatch::Change) -> std::result::Result<usize, String> {
        const SOURCE: &str = "targets";
        let now = now_unix();
        let metrics = &self.state.metrics;
        let cm = match change {
            cmwatch::Change::Applied(cm) => cm,
            cmwatch::Change::Gone => {
                tracing::warn!(configmap = %self.what, "targets ConfigMap absent: serving no targets from it");
                self.state
                    .store
                    .replace_source_targets(Source::ConfigMap, Vec::new());
                let changed = self
                    .last_body
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .is_some();
                metrics.config_loaded(SOURCE, "deleted", changed, now);
                return Ok(0);
            }
        };
        let rv = cm.metadata.resource_version.clone().unwrap_or_default();
        let body = cm.data.as_ref().and_then(|d| d.get(&self.key));
        let mut last = self.last_body.lock().unwrap_or_else(|e| e.into_inner());
        if body.is_some() && body == last.as_ref() {
            // The same document again (a re-list): nothing to do, and in particular the
            // expiries, fixed by the document's publishedAt, stay as they are.
            metrics.config_loaded(SOURCE, "ok", false, now);
            return Ok(0);
        }
        let parsed = match body {
            Some(body) => parse_targets(body.as_bytes(), now, Source::ConfigMap),
            None => Err(format!("has no key {:?}", self.key)),
        };
        match parsed {
            Ok(t) => {
                let n = t.len();
                self.state
                    .store
                    .replace_source_targets(Source::ConfigMap, t);
                *last = body.cloned();
                tracing::info!(configmap = %self.what, resource_version = %rv, targets = n, "targets ConfigMap loaded");
                metrics.config_loaded(SOURCE, "ok", true, now);
                Ok(n)
            }
            Err(e) => {
                let e = format!("{} (resourceVersion {rv}): {e}", self.what);
                let mut bad = self.last_bad.lock().unwrap_or_else(|e| e.into_inner());
                if bad.as_deref() != Some(rv.as_str()) {
                    tracing::error!(error = %e, "bad targets ConfigMap version; keeping the previous targets");
                    metrics.config_loaded(SOURCE, "error", false, now);
                    *bad = Some(rv);
                }
                Err(e)
            }
        }
    }
}

struct Reload {
    cli: Cli,
    reloader: Arc<Reloader>,
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

    /// Re-reads every file input; a bad new input is logged and the previous one kept. (The
    /// ConfigMaps are watched by their own tasks.)
    async fn once(&mut self) {
        let cli = &self.cli;
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
    use crate::pki::{Ca, Pem};
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

    #[test]
    fn configmap_targets_expire_from_published_at() {
        let now = 1_800_000_000.0;
        let doc = br#"{"publishedAt": "2027-01-15T08:00:00Z",
            "targets": [{"namespace": "prod", "metric": "m", "labels": {"target": "web"}, "value": 3, "ttlSeconds": 60},
                        {"namespace": "prod", "metric": "m", "labels": {"target": "db"}, "value": 2}]}"#;
        let published = 1_800_000_000.0; // 2027-01-15T08:00:00Z
        let t = parse_targets(doc, now, Source::ConfigMap).unwrap();
        assert_eq!(t[0].published_unix, published);
        assert_eq!(t[0].expires_unix, Some(published + 60.0));
        assert_eq!(t[0].source, Source::ConfigMap);
        assert_eq!(t[1].expires_unix, None);
        // The same document read later by another replica gives the same expiry.
        let later = parse_targets(doc, now + 30.0, Source::ConfigMap).unwrap();
        assert_eq!(later[0].expires_unix, t[0].expires_unix);

        // A TTL without publishedAt is refused in a ConfigMap, accepted (from now) in a file.
        let no_at =
            br#"{"targets": [{"namespace": "prod", "metric": "m", "value": 3, "ttlSeconds": 60}]}"#;
        let e = parse_targets(no_at, now, Source::ConfigMap).unwrap_err();
        assert!(e.contains("publishedAt"), "{e}");
        let f = parse_targets(no_at, now, Source::File).unwrap();
        assert_eq!(f[0].expires_unix, Some(now + 60.0));
        // No TTL and no publishedAt is fine anywhere.
        let plain = br#"{"targets": [{"namespace": "prod", "metric": "m", "value": 3}]}"#;
        assert!(parse_targets(plain, now, Source::ConfigMap).is_ok());

        for (bad, why) in [
            (
                r#"{"publishedAt": "2027-01-15T08:05:00Z", "targets": []}"#,
                "future",
            ),
            (r#"{"publishedAt": "yesterday", "targets": []}"#, "RFC 3339"),
            (
                r#"{"publishedAt": "2027-01-15T08:00:00Z", "targets": [{"namespace": "prod", "metric": "m", "value": 3, "ttlSeconds": 0}]}"#,
                "ttlSeconds",
            ),
        ] {
            let e = parse_targets(bad.as_bytes(), now, Source::ConfigMap).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
