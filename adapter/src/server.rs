//! Wires a checked [`Config`] to a running server: loads certificates, CAs, the authentication
//! ConfigMap, the token, the state file and the targets; builds the authorizer; binds the HTTPS
//! port (and the optional metrics port); and starts the supervised background tasks: the accept
//! loop ([`crate::accept`]), the file reloader ([`crate::reload`]), the ConfigMap watches
//! ([`crate::watch`], [`crate::targets`]) and the state writer. `/readyz` follows
//! [`crate::lifecycle::Health`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinHandle};

use crate::accept::Acceptor;
use crate::auth::{self, AuthnInputs, Authorizer, Reviewer};
use crate::cli::Cli;
use crate::config::{Config, Serving};
pub use crate::error::Error;
use crate::lifecycle::{Health, Tasks, stopped};
use crate::reload::{Inputs, Reload, Reloader, read, read_opt_string, read_token};
use crate::router::{self, AppState};
use crate::store::now_unix;
use crate::targets::TargetsConfigMap;
pub use crate::targets::{MAX_PUBLISHED_AT_SKEW_S, parse_targets, parse_targets_file};
use crate::watch as cmwatch;

type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// Handler state (store, metrics, health…).
    pub state: AppState,
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    aborts: std::collections::BTreeMap<&'static str, AbortHandle>,
    grace: Duration,
}

impl Running {
    /// Turns not ready, stops accepting, lets connections finish within the shutdown grace,
    /// flushes the state file, and waits (bounded) for the tasks.
    pub async fn shutdown(self) {
        self.state.health.set_stopping();
        let _ = self.stop.send(true);
        let grace = self.grace + Duration::from_secs(1);
        let mut sup = self.supervisor;
        if tokio::time::timeout(grace, &mut sup).await.is_err() {
            for a in self.aborts.values() {
                a.abort();
            }
            let _ = sup.await;
        }
    }

    /// Waits until every background task ends (they end only on shutdown, or by a fault).
    pub async fn wait(&mut self) {
        let _ = (&mut self.supervisor).await;
    }

    /// Names of the supervised background tasks.
    pub fn tasks(&self) -> Vec<&'static str> {
        self.aborts.keys().copied().collect()
    }

    /// Kills background task `name` (fault injection for tests and drills): the supervisor
    /// logs it and `/readyz` fails from then on. False if there is no such task.
    pub fn kill_task(&self, name: &str) -> bool {
        match self.aborts.get(name) {
            Some(a) => {
                a.abort();
                true
            }
            None => false,
        }
    }
}

/// Checks the flags ([`Config::from_cli`]), then [`start_with`].
pub async fn start(cli: Cli) -> Result<Running> {
    start_with(Config::from_cli(cli)?).await
}

/// The serving certificate and key (PEM) the configuration names.
fn serving_pem(serving: &Serving) -> Result<(Vec<u8>, Vec<u8>)> {
    match serving {
        Serving::SelfSigned { hosts, cert_dir } => {
            let p = crate::pki::self_signed(hosts)
                .map_err(|e| Error::Flag(format!("--self-signed-hosts: {e}")))?;
            tracing::warn!(
                ?hosts,
                "serving a self-signed certificate (development only)"
            );
            if let Some(dir) = cert_dir {
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
            Ok((p.cert.into_bytes(), p.key.into_bytes()))
        }
        Serving::Files { cert, key } => Ok((
            read("--tls-cert-file", cert)?,
            read("--tls-private-key-file", key)?,
        )),
    }
}

/// What authentication and authorization start with.
struct AuthSetup {
    reloader: Arc<Reloader>,
    reviewer: Reviewer,
    /// Client for the authentication ConfigMap watch, unless skipped.
    cm_client: Option<kube::Client>,
}

async fn auth_setup(cli: &Cli, serving: &Serving) -> Result<AuthSetup> {
    let (cert_pem, key_pem) = serving_pem(serving)?;
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
    let general = cli.kubeconfig.as_ref();
    let authn_kc = cli.authentication_kubeconfig.as_ref().or(general);
    let authn_client = kube_client(authn_kc, "authentication").await?;
    let authz_kc = cli.authorization_kubeconfig.as_ref().or(general);
    let authz_client = kube_client(authz_kc, "authorization").await?;
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
    Ok(AuthSetup {
        reloader: Arc::new(Reloader::new(inputs, live)),
        reviewer,
        cm_client,
    })
}

/// `--targets-configmap`: reads the ConfigMap once (a start-up error if unusable) and returns
/// the client and loader for its watch.
async fn targets_configmap(
    cli: &Cli,
    state: &AppState,
) -> Result<Option<(kube::Client, String, String, TargetsConfigMap)>> {
    let Some((ns, name)) = &cli.targets_configmap else {
        return Ok(None);
    };
    let client = kube_client(cli.kubeconfig.as_ref(), "--targets-configmap")
        .await?
        .ok_or_else(|| {
            Error::Flag(
                "--targets-configmap needs a cluster: pass --kubeconfig or run in a cluster".into(),
            )
        })?;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    let cm = api
        .get_opt(name)
        .await
        .map_err(|e| Error::Kube(format!("--targets-configmap: cannot read {ns}/{name}: {e}")))?;
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
    Ok(Some((client, ns.clone(), name.clone(), loader)))
}

/// The handler state: authorizer, token, state file and targets file loaded.
fn app_state(
    cli: &Cli,
    reviewer: Reviewer,
    health: Arc<Health>,
) -> Result<(AppState, Option<Vec<u8>>)> {
    let authorizer = Authorizer::new(
        reviewer,
        cli.authorization_always_allow_groups.clone(),
        cli.authorization_webhook_cache_authorized_ttl,
        cli.authorization_webhook_cache_unauthorized_ttl,
    );
    let mut state = AppState::new(authorizer);
    state.health = health;
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
    Ok((state, targets_body))
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|err| Error::Bind { addr, err })?;
    let a = l.local_addr().map_err(|err| Error::Bind { addr, err })?;
    Ok((l, a))
}

/// Loads every input of a checked configuration and starts serving.
pub async fn start_with(config: Config) -> Result<Running> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = config.flags.clone();
    let health = Arc::new(Health::new(config.watch_failure_budget));
    let AuthSetup {
        reloader,
        reviewer,
        cm_client,
    } = auth_setup(&cli, &config.serving).await?;
    let (state, targets_body) = app_state(&cli, reviewer, health.clone())?;
    if cm_client.is_some() {
        state
            .metrics
            .config_loaded("authentication", "ok", true, now_unix());
    }
    let targets_cm = targets_configmap(&cli, &state).await?;
    health.set_config_loaded(true);

    let (listener, addr) = bind(SocketAddr::new(cli.bind_address, cli.secure_port)).await?;
    let metrics = match cli.metrics_port {
        Some(port) => Some(bind(SocketAddr::new(cli.bind_address, port)).await?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|m| m.1);
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Tasks::default();
    tasks.spawn(
        "accept",
        Acceptor {
            listener,
            app: router::router(state.clone()),
            reloader: reloader.clone(),
            metrics: state.metrics.clone(),
            health: health.clone(),
            limits: config.limits,
        }
        .run(stop_rx.clone()),
    );
    if let Some((l, _)) = metrics {
        tasks.spawn("metrics", metrics_server(l, state.clone(), stop_rx.clone()));
    }
    if let (Some(path), Some(notify)) = (cli.state_file.clone(), state.persist.clone()) {
        tasks.spawn(
            "state-file",
            persist_loop(path, notify, state.clone(), stop_rx.clone()),
        );
    }
    if let Some(client) = cm_client {
        let r = reloader.clone();
        let metrics = state.metrics.clone();
        tasks.spawn(
            "authentication-watch",
            cmwatch::configmap(
                client,
                "kube-system".into(),
                auth::AUTH_CONFIGMAP.into(),
                "authentication",
                move |change| r.apply_auth_configmap(change, &metrics),
                health.clone(),
                stop_rx.clone(),
            ),
        );
    }
    if let Some((client, ns, name, loader)) = targets_cm {
        tasks.spawn(
            "targets-watch",
            cmwatch::configmap(
                client,
                ns,
                name,
                "targets",
                move |change| {
                    // Errors are logged and counted inside; the previous targets stay.
                    let _ = loader.apply(change);
                },
                health.clone(),
                stop_rx.clone(),
            ),
        );
    }
    let token = state
        .publish_token
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let grace = config.limits.shutdown_grace;
    let reload = Reload {
        config,
        reloader,
        state: state.clone(),
        targets_body,
        token,
    };
    tasks.spawn("file-reload", reload.run(stop_rx));
    let (supervisor, aborts) = tasks.supervise(health);
    tracing::info!(%addr, metrics = ?metrics_addr, "kis-adapter serving");
    Ok(Running {
        addr,
        metrics_addr,
        state,
        stop,
        supervisor,
        aborts,
        grace,
    })
}

/// Plain-HTTP `/metrics` on `--metrics-port`.
async fn metrics_server(l: TcpListener, s: AppState, mut stop: watch::Receiver<bool>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = s.clone();
            async move { s.metrics.encode(s.store.counts(now_unix())) }
        }),
    );
    if let Err(e) = axum::serve(l, app)
        .with_graceful_shutdown(async move { stopped(&mut stop).await })
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
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
        save(&state, &path);
        if stopping {
            break;
        }
    }
}

fn save(state: &AppState, path: &Path) {
    if let Err(e) = state.store.save(path) {
        tracing::error!(path = %path.display(), error = %e, "cannot write state file");
    }
}
