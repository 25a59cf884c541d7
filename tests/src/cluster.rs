//! A real Kubernetes control plane on loopback: etcd (Debian's), kube-apiserver,
//! kube-controller-manager and kube-scheduler v1.20.2 (built from Debian's source package by
//! `scripts/kube/build.sh` into `$KIS_CACHE/kube-v1.20.2-1/bin/`). Ports are chosen at run time,
//! the PKI is generated per run, readiness is awaited with bounds, and every process is stopped
//! by PID when the [`ControlPlane`] is dropped, or by the watchdog when the test binary dies.
//!
//! There is no kubelet here: without nodes the scheduler leaves Pods Pending, and a Deployment's
//! `spec.replicas` (set by the HPA controller) is what tests observe. The testbed
//! ([`crate::testbed`]) adds the process kubelet ([`crate::kubelet`]), so Pods run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::kubectl::{Kubectl, UserAuth, write_kubeconfig};
use crate::pki::{FRONT_PROXY_CN, Pki};
use crate::proc::{Supervised, Watchdog, free_port};
use crate::{Error, wait_until};

/// The Kubernetes version the cache holds (see scripts/kube/build.sh).
pub const KUBE_VERSION: &str = "v1.20.2";
/// The cache directory name under `$KIS_CACHE`.
pub const KUBE_CACHE_DIR: &str = "kube-v1.20.2-1";

/// Where the cached Kubernetes binaries live.
#[derive(Debug, Clone)]
pub struct KubeBinaries {
    /// kube-apiserver.
    pub apiserver: PathBuf,
    /// kube-controller-manager.
    pub controller_manager: PathBuf,
    /// kube-scheduler.
    pub scheduler: PathBuf,
    /// Debian's kubectl 1.20.2.
    pub kubectl: PathBuf,
    /// etcd (Debian package etcd-server).
    pub etcd: PathBuf,
}

/// The cache root: `$KIS_CACHE`, else `$HOME/.cache/kis` (the same rule as scripts/lib.sh).
pub fn kis_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("KIS_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/kis")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl KubeBinaries {
    /// Finds the binaries, or fails with a message saying to run `scripts/setup.sh`.
    pub fn locate() -> Result<Self, Error> {
        let bin = kis_cache().join(KUBE_CACHE_DIR).join("bin");
        let need = |name: &str| -> Result<PathBuf, Error> {
            let p = bin.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Missing(format!(
                    "{} not found: the Kubernetes {KUBE_VERSION} binaries are built once per machine by scripts/setup.sh (scripts/kube/build.sh); run `bash scripts/setup.sh` first",
                    p.display()
                )))
            }
        };
        let etcd = which("etcd").ok_or_else(|| {
            Error::Missing(
                "etcd not found on PATH (Debian package etcd-server); run `bash scripts/setup.sh` first"
                    .into(),
            )
        })?;
        Ok(Self {
            apiserver: need("kube-apiserver")?,
            controller_manager: need("kube-controller-manager")?,
            scheduler: need("kube-scheduler")?,
            kubectl: need("kubectl")?,
            etcd,
        })
    }
}

/// Settings for a control plane.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub hpa_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-tolerance` (cluster-wide in v1.20; deploy/v1.20/ asks for 0
    /// so that every published N is reachable).
    pub hpa_tolerance: f64,
    /// DNS names for the adapter's serving certificate (`SERVICE.NAMESPACE.svc`).
    pub adapter_dns: Vec<String>,
    /// Bound on each readiness wait.
    pub ready_timeout: Duration,
    /// Controllers started besides the ones every test needs (e.g. `garbagecollector`, so that
    /// deleting a Deployment removes its Pods, which the testbed wants).
    pub extra_controllers: Vec<String>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            hpa_sync_period: Duration::from_secs(2),
            hpa_tolerance: 0.0,
            adapter_dns: vec!["kis-adapter.kis-system.svc".into()],
            ready_timeout: Duration::from_secs(120),
            extra_controllers: Vec::new(),
        }
    }
}

/// The controllers every control plane runs (`--controllers`).
const CONTROLLERS: &str = "deployment,replicaset,serviceaccount,serviceaccount-token,horizontalpodautoscaling,clusterrole-aggregation";

/// A running etcd + kube-apiserver + kube-controller-manager + kube-scheduler.
#[derive(Debug)]
pub struct ControlPlane {
    /// The run's PKI (certs, keys, CAs).
    pub pki: Pki,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// Debian's kubectl as the admin (`system:masters`).
    pub admin: Kubectl,
    /// Debian's kubectl as a user without any RBAC binding.
    pub nobody: Kubectl,
    /// The binaries in use.
    pub bins: KubeBinaries,
    dir: PathBuf,
    // Stop order: scheduler, controller-manager, apiserver, etcd.
    procs: Mutex<Vec<Supervised>>,
    /// kube-apiserver's flags, for [`ControlPlane::restart_apiserver`].
    api_args: Vec<std::ffi::OsString>,
    watchdog: Watchdog,
    _tempdir: Option<tempfile::TempDir>,
}

/// etcd on loopback: clients on `etcd_url`, the (single) peer on `peer_url`, data under `dir`.
fn etcd_command(bins: &KubeBinaries, dir: &Path, etcd_url: &str, peer_url: &str) -> Command {
    let mut etcd = Command::new(&bins.etcd);
    etcd.arg("--name=kis-e2e")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=kis-e2e={peer_url}"))
        .arg("--logger=zap")
        .arg("--log-outputs=stderr");
    etcd
}

/// kube-apiserver on `127.0.0.1:api_port` with RBAC, client certificates, service-account keys
/// and the front proxy (aggregation) set up from `pki`.
fn apiserver_command(
    bins: &KubeBinaries,
    pki: &Pki,
    dir: &Path,
    etcd_url: &str,
    api_port: u16,
) -> Command {
    let p = |path: &Path| path.display().to_string();
    let mut api = Command::new(&bins.apiserver);
    api.arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={api_port}"))
        .arg("--insecure-port=0")
        .arg(format!(
            "--cert-dir={}",
            dir.join("apiserver-certs").display()
        ))
        .arg(format!("--tls-cert-file={}", p(&pki.apiserver.cert)))
        .arg(format!("--tls-private-key-file={}", p(&pki.apiserver.key)))
        .arg(format!("--client-ca-file={}", p(&pki.cluster_ca.pair.cert)))
        .arg("--authorization-mode=RBAC")
        .arg(format!("--service-account-key-file={}", p(&pki.sa_pub)))
        .arg(format!(
            "--service-account-signing-key-file={}",
            p(&pki.sa_key)
        ))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg("--service-cluster-ip-range=10.96.0.0/16")
        // Loopback may not be published in Endpoints; the tests need no `kubernetes` Service.
        .arg("--endpoint-reconciler-type=none")
        .arg(format!(
            "--requestheader-client-ca-file={}",
            p(&pki.front_proxy_ca.pair.cert)
        ))
        .arg(format!("--requestheader-allowed-names={FRONT_PROXY_CN}"))
        .arg("--requestheader-username-headers=X-Remote-User")
        .arg("--requestheader-group-headers=X-Remote-Group")
        .arg("--requestheader-extra-headers-prefix=X-Remote-Extra-")
        .arg(format!(
            "--proxy-client-cert-file={}",
            p(&pki.front_proxy_client.cert)
        ))
        .arg(format!(
            "--proxy-client-key-file={}",
            p(&pki.front_proxy_client.key)
        ))
        .arg("--profiling=false")
        .arg("--v=1");
    api
}

/// Kubeconfigs for the admin, the unprivileged user and the controller-manager:
/// `(admin, nobody, controller-manager)`.
fn write_kubeconfigs(
    dir: &Path,
    server: &str,
    pki: &Pki,
) -> Result<(PathBuf, PathBuf, PathBuf), Error> {
    let ca = &pki.cluster_ca.pair.cert;
    let admin_cfg = dir.join("admin.kubeconfig");
    write_kubeconfig(
        &admin_cfg,
        server,
        ca,
        &UserAuth::Cert {
            cert: pki.admin.cert.clone(),
            key: pki.admin.key.clone(),
        },
    )?;
    let nobody_cfg = dir.join("nobody.kubeconfig");
    write_kubeconfig(
        &nobody_cfg,
        server,
        ca,
        &UserAuth::Cert {
            cert: pki.nobody.cert.clone(),
            key: pki.nobody.key.clone(),
        },
    )?;
    let kcm_cfg = dir.join("controller-manager.kubeconfig");
    write_kubeconfig(
        &kcm_cfg,
        server,
        ca,
        &UserAuth::Cert {
            cert: pki.controller_manager.cert.clone(),
            key: pki.controller_manager.key.clone(),
        },
    )?;
    Ok((admin_cfg, nobody_cfg, kcm_cfg))
}

/// kube-controller-manager: only the controllers the tests need, each with its own
/// service-account credentials, as in a real cluster.
fn controller_manager_command(
    bins: &KubeBinaries,
    pki: &Pki,
    config: &ControlPlaneConfig,
    kcm_cfg: &Path,
) -> Command {
    let p = |path: &Path| path.display().to_string();
    let ca = &pki.cluster_ca.pair.cert;
    let mut kcm = Command::new(&bins.controller_manager);
    kcm.arg(format!("--kubeconfig={}", p(kcm_cfg)))
        .arg(format!("--controllers={}", controllers(config)))
        .arg("--use-service-account-credentials=true")
        .arg(format!(
            "--service-account-private-key-file={}",
            p(&pki.sa_key)
        ))
        .arg(format!("--root-ca-file={}", p(ca)))
        .arg(format!(
            "--horizontal-pod-autoscaler-sync-period={}s",
            config.hpa_sync_period.as_secs().max(1)
        ))
        .arg(format!(
            "--horizontal-pod-autoscaler-tolerance={}",
            config.hpa_tolerance
        ))
        .arg("--leader-elect=false")
        .arg("--port=0")
        .arg("--secure-port=0")
        .arg("--profiling=false")
        .arg("--v=1");
    kcm
}

impl ControlPlane {
    /// Generates a PKI, starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler,
    /// and waits until the apiserver is ready, the controller-manager has issued service-account
    /// tokens and the scheduler answers its health check.
    /// `KIS_E2E_KEEP=1` keeps the working directory (logs, certs) for inspection.
    pub fn start(config: &ControlPlaneConfig) -> Result<Self, Error> {
        let bins = KubeBinaries::locate()?;
        let tempdir = tempfile::Builder::new()
            .prefix("kis-e2e-")
            .tempdir()
            .map_err(|e| Error::Io(std::env::temp_dir(), e))?;
        let keep = std::env::var("KIS_E2E_KEEP").is_ok_and(|v| v == "1");
        let dir = tempdir.path().to_path_buf();
        let (tempdir, watchdog) = if keep {
            eprintln!("kis-e2e: keeping {}", dir.display());
            let _ = tempdir.keep();
            (None, Watchdog::start(None)?)
        } else {
            let wd = Watchdog::start(Some(&dir))?;
            (Some(tempdir), wd)
        };
        let adapter_dns: Vec<&str> = config.adapter_dns.iter().map(String::as_str).collect();
        let pki = Pki::generate(&dir.join("pki"), &adapter_dns)?;
        let mut procs = Vec::new();

        // etcd
        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = etcd_command(&bins, &dir, &etcd_url, &peer_url);
        let etcd = Supervised::spawn("etcd", etcd, &dir.join("etcd.log"), &watchdog)?;
        procs.push(etcd);
        wait_until("etcd to accept connections", config.ready_timeout, || {
            procs[0].check_running().map_err(|e| e.to_string())?;
            std::net::TcpStream::connect(("127.0.0.1", etcd_port))
                .map(|_| ())
                .map_err(|e| format!("connect: {e}"))
        })?;

        // kube-apiserver
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let api = apiserver_command(&bins, &pki, &dir, &etcd_url, api_port);
        let api_args = api.get_args().map(ToOwned::to_owned).collect();
        procs.push(Supervised::spawn(
            "kube-apiserver",
            api,
            &dir.join("kube-apiserver.log"),
            &watchdog,
        )?);

        // Kubeconfigs: admin, the unprivileged user, the controller-manager.
        let (admin_cfg, nobody_cfg, kcm_cfg) = write_kubeconfigs(&dir, &server, &pki)?;
        let admin = Kubectl::new(&bins.kubectl, &admin_cfg);
        let nobody = Kubectl::new(&bins.kubectl, &nobody_cfg);

        let started = Instant::now();
        wait_until("kube-apiserver /readyz", config.ready_timeout, || {
            procs[1].check_running().map_err(|e| e.to_string())?;
            match admin.run(&["get", "--raw", "/readyz"]) {
                Ok(body) if body.trim() == "ok" => Ok(()),
                Ok(body) => Err(body),
                Err(e) => Err(e.to_string()),
            }
        })
        .map_err(|e| with_log(e, &procs[1]))?;
        tracing::info!(elapsed = ?started.elapsed(), %server, "kube-apiserver ready");

        // kube-controller-manager: only the controllers the tests need, each with its own
        // service-account credentials, as in a real cluster.
        let kcm = controller_manager_command(&bins, &pki, config, &kcm_cfg);
        procs.push(Supervised::spawn(
            "kube-controller-manager",
            kcm,
            &dir.join("kube-controller-manager.log"),
            &watchdog,
        )?);
        wait_until(
            "kube-controller-manager to issue the HPA controller's token",
            config.ready_timeout,
            || {
                procs[2].check_running().map_err(|e| e.to_string())?;
                let sa = admin
                    .json(&[
                        "-n",
                        "kube-system",
                        "get",
                        "serviceaccount",
                        "horizontal-pod-autoscaler",
                    ])
                    .map_err(|e| e.to_string())?;
                match sa["secrets"].as_array() {
                    Some(s) if !s.is_empty() => Ok(()),
                    _ => Err("service account has no token secret yet".into()),
                }
            },
        )
        .map_err(|e| with_log(e, &procs[2]))?;
        tracing::info!(elapsed = ?started.elapsed(), "kube-controller-manager ready");

        let (scheduler, healthz) = start_scheduler(&bins, &pki, &dir, &server, &watchdog)?;
        procs.push(scheduler);
        wait_until("kube-scheduler /healthz", config.ready_timeout, || {
            procs[3].check_running().map_err(|e| e.to_string())?;
            scheduler_healthy(healthz)
        })
        .map_err(|e| with_log(e, &procs[3]))?;
        tracing::info!(elapsed = ?started.elapsed(), "kube-scheduler ready");

        // Stop order is the reverse of start order.
        procs.reverse();
        Ok(Self {
            pki,
            server,
            admin,
            nobody,
            bins,
            dir,
            procs: Mutex::new(procs),
            api_args,
            watchdog,
            _tempdir: tempdir,
        })
    }

    /// The run's working directory (PKI, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The watchdog that also guards processes started next to the control plane (the adapter).
    pub fn watchdog(&self) -> &Watchdog {
        &self.watchdog
    }

    /// PIDs (= process-group ids) of the running control-plane processes.
    pub fn pids(&self) -> Vec<u32> {
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        procs.iter().map(Supervised::pid).collect()
    }

    /// Restarts kube-apiserver as an upgrade or a crash does: SIGTERM (bounded, then SIGKILL),
    /// then the same binary with the same flags and port (log `kube-apiserver.restarted.log`),
    /// and waits (bounded) for `/readyz`. Clients see connection errors meanwhile.
    pub fn restart_apiserver(&self, bound: Duration) -> Result<(), Error> {
        // Index of kube-apiserver in the stop order: scheduler, controller-manager, apiserver, etcd.
        const APISERVER: usize = 2;
        {
            let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
            procs[APISERVER].stop(Duration::from_secs(10));
            let mut cmd = Command::new(&self.bins.apiserver);
            cmd.args(&self.api_args);
            procs[APISERVER] = Supervised::spawn(
                "kube-apiserver",
                cmd,
                &self.dir.join("kube-apiserver.restarted.log"),
                &self.watchdog,
            )?;
        }
        wait_until("the restarted kube-apiserver's /readyz", bound, || {
            self.check_running().map_err(|e| e.to_string())?;
            match self.admin.run(&["get", "--raw", "/readyz"]) {
                Ok(body) if body.trim() == "ok" => Ok(()),
                Ok(body) => Err(body),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Fails with the log tail of the first control-plane process that has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for p in procs.iter_mut() {
            p.check_running()?;
        }
        Ok(())
    }

    /// A kubectl for another kubeconfig (e.g. a service account's).
    pub fn kubectl(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl::new(&self.bins.kubectl, kubeconfig)
    }

    /// Writes a kubeconfig for `auth` against this apiserver and returns its path.
    pub fn write_kubeconfig(&self, name: &str, auth: &UserAuth) -> Result<PathBuf, Error> {
        let path = self.dir.join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &self.server, &self.pki.cluster_ca.pair.cert, auth)?;
        Ok(path)
    }

    /// The bearer token of service account `NS/NAME` (from the Secret the token controller
    /// creates; v1.20 still does that), waiting for it with `timeout`.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        let secret = wait_until(
            &format!("a token for service account {namespace}/{name}"),
            timeout,
            || {
                let sa = self
                    .admin
                    .json(&["-n", namespace, "get", "serviceaccount", name])
                    .map_err(|e| e.to_string())?;
                sa["secrets"]
                    .as_array()
                    .and_then(|s| s.iter().find_map(|x| x["name"].as_str()))
                    .map(str::to_string)
                    .ok_or_else(|| "no token secret yet".to_string())
            },
        )?;
        let value = self
            .admin
            .json(&["-n", namespace, "get", "secret", &secret])?;
        let b64 = value["data"]["token"]
            .as_str()
            .ok_or_else(|| Error::Parse(format!("secret {secret}"), "no data.token".into()))?;
        let out = Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().map(|mut i| i.write_all(b64.as_bytes()));
                c.wait_with_output()
            })
            .map_err(|e| Error::Spawn("base64".into(), e))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops the scheduler, the controller-manager, the apiserver and etcd, in that order.
    pub fn stop(&mut self) {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for p in procs.iter_mut() {
            p.stop(Duration::from_secs(10));
        }
        procs.clear();
        drop(procs);
        self.watchdog.disarm();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `--controllers` list: the fixed set plus `config.extra_controllers`.
fn controllers(config: &ControlPlaneConfig) -> String {
    let mut list = CONTROLLERS.to_string();
    for c in &config.extra_controllers {
        list.push(',');
        list.push_str(c);
    }
    list
}

/// Starts kube-scheduler as `system:kube-scheduler` (the bootstrap RBAC role of that name lets
/// it bind Pods), without leader election, serving only `/healthz` on a free loopback port.
/// Returns the process and that port.
fn start_scheduler(
    bins: &KubeBinaries,
    pki: &Pki,
    dir: &Path,
    server: &str,
    watchdog: &Watchdog,
) -> Result<(Supervised, u16), Error> {
    let cert = pki.cluster_ca.issue(
        "scheduler",
        "system:kube-scheduler",
        &[],
        &[],
        crate::pki::Usage::Client,
    )?;
    let kubeconfig = dir.join("scheduler.kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        server,
        &pki.cluster_ca.pair.cert,
        &UserAuth::Cert {
            cert: cert.cert,
            key: cert.key,
        },
    )?;
    let port = free_port()?;
    let mut cmd = Command::new(&bins.scheduler);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--leader-elect=false")
        .arg("--port=0")
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(format!(
            "--cert-dir={}",
            dir.join("scheduler-certs").display()
        ))
        .arg("--profiling=false")
        .arg("--v=1");
    let proc = Supervised::spawn(
        "kube-scheduler",
        cmd,
        &dir.join("kube-scheduler.log"),
        watchdog,
    )?;
    Ok((proc, port))
}

/// `Ok` when kube-scheduler's `/healthz` on `port` says `ok` (its self-signed serving cert is
/// not verified: the check is only whether it is up).
fn scheduler_healthy(port: u16) -> Result<(), String> {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "5"])
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let body = String::from_utf8_lossy(&out.stdout);
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("healthz: {body:?}"))
    }
}

fn with_log(e: Error, p: &Supervised) -> Error {
    match e {
        Error::Timeout { what, last } => Error::Timeout {
            what,
            last: format!(
                "{last}\n--- last lines of {} ---\n{}",
                p.log().display(),
                p.log_tail(3000)
            ),
        },
        other => other,
    }
}
