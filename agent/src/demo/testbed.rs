//! The testbed the demo runs on, driven through the `kis-e2e testbed up|down` binary (not the
//! kis-e2e library: that would put the whole test harness, its kubelet and PKI code, into the
//! product binary), plus the few kubectl calls that put the serving Deployment into a known state,
//! a replica sampler, and the guards that stop by PID what the demo started, even on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::live::apiserver::{self, DeploymentRef};

/// The serving namespace and the GPU pool's Deployment, HPA and model (deploy/serving/, deploy/v1.20/).
pub const NS: &str = "kis-serving";
/// The GPU pool's Deployment (and HPA) name.
pub const GPU_DEPLOYMENT: &str = "triton-gpu";
/// The CPU pool's Deployment, held at 0 (the shipped policy's scenario has no CPU pool).
pub const CPU_DEPLOYMENT: &str = "triton-cpu";
/// The emulated GPU model the testbed's `triton-gpu` Pods load.
pub const GPU_MODEL: &str = "emulated-gpu";

/// A binary next to this one (`target/debug/NAME`), or `$ENV`.
pub fn sibling_binary(name: &str, env: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locate kis-agent")?;
    let bin = exe.with_file_name(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "{} not found: build it with `cargo build -p {name}` (or set ${env})",
            bin.display()
        )
    }
}

/// The cached kubectl (`scripts/setup.sh kube`; the path tests/src/cluster.rs builds), or
/// `$KIS_KUBECTL`.
pub fn kubectl_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KIS_KUBECTL") {
        return Ok(PathBuf::from(p));
    }
    let cache = std::env::var_os("KIS_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/kis")
        });
    let p = cache.join("kube-v1.20.2-1/bin/kubectl");
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "{} not found: the testbed's Kubernetes is built once by `bash scripts/setup.sh kube`",
            p.display()
        )
    }
}

/// What `kis-e2e testbed up` records in `state.json` (the fields the demo reads).
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    /// The `kis-e2e testbed serve` process.
    pub pid: u32,
    /// Its run directory (logs, `pki/`).
    pub run_dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kis-adapter's publish URL.
    pub adapter: Option<String>,
    /// Its bearer token.
    pub adapter_token: Option<String>,
    /// Prometheus.
    pub prometheus: Option<String>,
    /// nginx in front of the Ready Pods.
    pub balancer: Option<String>,
    /// deploy/serving/ as the testbed applies it.
    pub manifests: PathBuf,
}

impl State {
    /// The adapter's serving CA: the testbed's PKI writes it as `RUN_DIR/pki/serving-ca.crt`.
    pub fn adapter_ca(&self) -> PathBuf {
        self.run_dir.join("pki/serving-ca.crt")
    }
}

/// Children started by the demo and the testbed it brought up, stopped by the signal handler.
static TRACKED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static TESTBED: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);

/// Sends `sig` to `pid`.
fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// A child process stopped by PID (SIGTERM, then SIGKILL after `grace`) when dropped.
pub struct Tracked {
    /// The child.
    pub child: Child,
    grace: Duration,
}

impl Tracked {
    /// Spawns `cmd` and registers it for the signal handler.
    pub fn spawn(mut cmd: Command, what: &str, grace: Duration) -> Result<Self> {
        let child = cmd.spawn().with_context(|| format!("start {what}"))?;
        TRACKED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child.id());
        Ok(Self { child, grace })
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, wait up to the grace, SIGKILL; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < self.grace {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.stop();
        let id = self.child.id();
        TRACKED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != id);
    }
}

/// On SIGINT / SIGTERM: stop the tracked children and the testbed by PID, then exit 130.
pub fn install_signal_handler() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        });
        eprintln!("kis-agent demo: interrupted; stopping what it started");
        for pid in TRACKED.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            signal(*pid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some((bin, dir)) = TESTBED.lock().unwrap_or_else(|p| p.into_inner()).take() {
            down(&bin, &dir);
        }
        std::process::exit(130);
    });
}

fn down(kis_e2e: &Path, dir: &Path) {
    let r = Command::new(kis_e2e)
        .args(["testbed", "down", "--timeout", "60", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output();
    match r {
        Ok(o) if !o.status.success() => eprintln!(
            "kis-agent demo: `kis-e2e testbed down` said: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("kis-agent demo: `kis-e2e testbed down` did not run: {e}"),
        Ok(_) => {}
    }
}

/// A testbed brought up by `kis-e2e testbed up`; `kis-e2e testbed down` (every process by PID)
/// when dropped, whatever happened.
pub struct Testbed {
    kis_e2e: PathBuf,
    dir: PathBuf,
    /// What it recorded.
    pub state: State,
    kubectl: PathBuf,
}

impl Testbed {
    /// `kis-e2e testbed up --dir DIR` with one node of `gpus` emulated GPUs.
    pub fn up(kis_e2e: &Path, dir: &Path, gpus: u32, log: &Path) -> Result<Self> {
        let kubectl = kubectl_binary()?;
        *TESTBED.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((kis_e2e.to_path_buf(), dir.to_path_buf()));
        // Registered before `up` so that a failure during it still runs `down`.
        let guard = DownOnDrop(kis_e2e.to_path_buf(), dir.to_path_buf());
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let status = Command::new(kis_e2e)
            .args(["testbed", "up", "--timeout", "300", "--dir"])
            .arg(dir)
            .arg(format!("--node=kis-node-1:cpu=16,memory=32Gi,gpu={gpus}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .with_context(|| format!("run {}", kis_e2e.display()))?;
        if !status.success() {
            bail!(
                "`kis-e2e testbed up` failed ({status}); see {}",
                log.display()
            );
        }
        let text = std::fs::read_to_string(dir.join("state.json"))
            .with_context(|| format!("read {}/state.json", dir.display()))?;
        let state: State = serde_json::from_str(&text).context("the testbed's state.json")?;
        std::mem::forget(guard);
        Ok(Self {
            kis_e2e: kis_e2e.to_path_buf(),
            dir: dir.to_path_buf(),
            state,
            kubectl,
        })
    }

    /// `kubectl --kubeconfig ADMIN ARGS`; stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let o = Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.state.kubeconfig.display()))
            .arg("--request-timeout=20s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run kubectl")?;
        if !o.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A known state: no HPA on the GPU pool, `triton-gpu` at exactly one Ready Pod (none
    /// terminating), `triton-cpu` at 0.
    pub fn reset(&self, bound: Duration) -> Result<()> {
        self.kubectl(&[
            "-n",
            NS,
            "delete",
            "hpa",
            GPU_DEPLOYMENT,
            "--ignore-not-found",
        ])?;
        self.kubectl(&["apply", "-f", &self.state.manifests.display().to_string()])?;
        for (d, n) in [(CPU_DEPLOYMENT, 0), (GPU_DEPLOYMENT, 1)] {
            self.kubectl(&[
                "-n",
                NS,
                "scale",
                "deployment",
                d,
                &format!("--replicas={n}"),
            ])?;
        }
        let t0 = Instant::now();
        loop {
            let pods = self.kubectl(&["-n", NS, "get", "pods", "-o", "json"])?;
            let v: serde_json::Value = serde_json::from_str(&pods)?;
            let items = v["items"].as_array().cloned().unwrap_or_default();
            let ready = items.iter().filter(|p| pod_ready(p)).count();
            if items.len() == 1 && ready == 1 {
                return Ok(());
            }
            if t0.elapsed() > bound {
                bail!(
                    "the testbed did not reach one Ready {GPU_DEPLOYMENT} Pod in {} s ({} Pods, {ready} Ready)",
                    bound.as_secs(),
                    items.len()
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Applies deploy/v1.20/hpa-gpu.yaml (the HPA that reads the published target).
    pub fn apply_hpa(&self, workspace: &Path) -> Result<()> {
        let f = workspace.join("deploy/v1.20/hpa-gpu.yaml");
        self.kubectl(&["apply", "-f", &f.display().to_string()])
            .map(drop)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        TESTBED.lock().unwrap_or_else(|p| p.into_inner()).take();
        down(&self.kis_e2e, &self.dir);
    }
}

struct DownOnDrop(PathBuf, PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        TESTBED.lock().unwrap_or_else(|p| p.into_inner()).take();
        down(&self.0, &self.1);
    }
}

fn pod_ready(p: &serde_json::Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// One reading of the GPU pool: Unix seconds, `spec.replicas`, Ready Pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix seconds.
    pub unix_s: f64,
    /// Deployment `spec.replicas`.
    pub spec: u32,
    /// Ready Pods (terminating ones left out).
    pub ready: u32,
}

/// Reads the GPU pool from the apiserver every second (or as asked) on its own thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    rx: mpsc::Receiver<Sample>,
    handle: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Sampler {
    /// Starts sampling through the kubeconfig, every second.
    pub fn start(kubeconfig: &Path) -> Result<Self> {
        Self::start_every(kubeconfig, Duration::from_secs(1))
    }

    /// Starts sampling through the kubeconfig every `every`.
    pub fn start_every(kubeconfig: &Path, every: Duration) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let kc = kubeconfig.to_path_buf();
        let handle = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let api = apiserver::connect(Some(&kc), None, Duration::from_secs(5)).await?;
                let d = DeploymentRef {
                    namespace: NS.into(),
                    name: GPU_DEPLOYMENT.into(),
                };
                while !s.load(Ordering::Relaxed) {
                    if let Ok(p) = api.pool(&d).await {
                        let _ = tx.send(Sample {
                            unix_s: unix_now(),
                            spec: p.spec_replicas,
                            ready: p.pods.iter().filter(|x| x.ready).count() as u32,
                        });
                    }
                    tokio::time::sleep(every).await;
                }
                Ok(())
            })
        });
        Ok(Self {
            stop,
            rx,
            handle: Some(handle),
        })
    }

    /// Stops it; every sample taken.
    pub fn finish(mut self) -> Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join()
                .map_err(|_| anyhow!("the replica sampler panicked"))??;
        }
        Ok(self.rx.try_iter().collect())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Now, Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
