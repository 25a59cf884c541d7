//! The testbed's load balancer: Debian's nginx (`nginx-light`, installed by
//! `scripts/kube/build.sh`) on one loopback URL in front of the Ready Pods of one namespace,
//! routing `/v2/models/M/...` to the Pods that load model M (their port named `http`) and
//! `/v2/health/...` to any of them. Its configuration is rewritten from the apiserver's Pod list
//! every half second (the shared [`Refresher`]) and applied with SIGHUP, nginx's graceful reload
//! (old workers finish their requests), waited for until only new workers run; so a Pod leaves
//! the pool as soon as it is not Ready or is being deleted — before its `preStop` hook ends and
//! Triton stops — and scale-down drains instead of cutting requests.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cluster::ControlPlane;
use crate::kubelet::container::loaded_models;
use crate::proc::{Supervised, free_port};
use crate::refresher::{Consumer, Refresher, pod_port, serving, write_atomic};
use crate::{Error, wait_until};

/// Backends per model: model name → `IP:PORT` of each Ready Pod that loads it.
pub type Backends = BTreeMap<String, Vec<String>>;

/// A running nginx kept in step with the Ready Pods.
#[derive(Debug)]
pub struct Balancer {
    /// `http://127.0.0.1:PORT`: what kis-loadgen is pointed at.
    pub url: String,
    backends: Arc<Mutex<Backends>>,
    history: Arc<Mutex<Vec<String>>>,
    error_log: PathBuf,
    proc: Arc<Mutex<Supervised>>,
    _watch: Option<Refresher>,
}

/// Reloads remembered for [`Balancer::diagnose`]; older ones are dropped.
const HISTORY: usize = 50;

fn binary() -> Result<PathBuf, Error> {
    let p = PathBuf::from("/usr/sbin/nginx");
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::Missing(
            "/usr/sbin/nginx not found (Debian package nginx-light): run `bash scripts/setup.sh` first".into(),
        ))
    }
}

impl Balancer {
    /// Starts nginx in front of the Ready Pods of `namespace`, listing them with `kubeconfig`.
    pub fn start(
        cp: &ControlPlane,
        kubeconfig: &Path,
        namespace: &str,
        bound: Duration,
    ) -> Result<Self, Error> {
        let bin = binary()?;
        let dir = cp.dir().join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| Error::Io(dir.clone(), e))?;
        let port = free_port()?;
        let conf = dir.join("nginx.conf");
        write_atomic(&conf, &config(&dir, port, &Backends::new()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"));
        let proc = Supervised::spawn("nginx", cmd, &cp.dir().join("nginx.log"), cp.watchdog())?;
        let mut lb = Self {
            url: format!("http://127.0.0.1:{port}"),
            backends: Arc::new(Mutex::new(Backends::new())),
            history: Arc::new(Mutex::new(Vec::new())),
            error_log: dir.join("error.log"),
            proc: Arc::new(Mutex::new(proc)),
            _watch: None,
        };
        wait_until("nginx to listen", bound, || {
            lb.check_running().map_err(|e| e.to_string())?;
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        let (backends, proc, ns) = (lb.backends.clone(), lb.proc.clone(), namespace.to_string());
        let (history, t0) = (lb.history.clone(), Instant::now());
        lb._watch = Some(Refresher::start(
            kubeconfig,
            Duration::from_millis(500),
            Consumer {
                file: conf,
                derive: Box::new(move |pods: &[Pod]| backends_of(pods, &ns)),
                render: Box::new(move |b: &Backends| config(&dir, port, b)),
                applied: Box::new(move |now: &Backends| {
                    let pid = proc.lock().unwrap_or_else(|p| p.into_inner()).pid();
                    reload(pid, RELOAD_BOUND);
                    tracing::info!(?now, "load balancer reloaded");
                    let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
                    if h.len() == HISTORY {
                        h.remove(0);
                    }
                    h.push(format!("{:8.3} s  {now:?}", t0.elapsed().as_secs_f64()));
                    *backends.lock().unwrap_or_else(|p| p.into_inner()) = now.clone();
                }),
            },
        )?);
        Ok(lb)
    }

    /// The backends nginx was last configured with.
    pub fn backends(&self) -> Backends {
        self.backends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What a failed test needs to tell a lost request's cause: the last reloads (seconds since
    /// start, backends) and the tail of nginx's error log (upstream errors, retries).
    pub fn diagnose(&self) -> String {
        let h = self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        let log = std::fs::read_to_string(&self.error_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("load balancer reloads:\n{h}\nnginx error.log (last 20 lines):\n{tail}")
    }

    /// Fails with the log's tail if nginx has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        self.proc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_running()
            .map_err(Error::from)
    }

    /// nginx's master PID.
    pub fn pid(&self) -> u32 {
        self.proc.lock().unwrap_or_else(|p| p.into_inner()).pid()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // The watch first, so no reload is sent to a stopping nginx.
        self._watch = None;
        self.proc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop(Duration::from_secs(5));
    }
}

/// How long a reload may take before the new backends are recorded anyway (a request slower
/// than this keeps an old worker alive; it still serves only what it had accepted).
const RELOAD_BOUND: Duration = Duration::from_secs(10);

/// nginx's graceful reload (SIGHUP to the master), waited for: the master starts workers with
/// the new configuration, then the old ones stop accepting and exit once their requests are
/// answered. Only when every worker is new does nginx route by the new file alone, so
/// [`Balancer::backends`] is updated after that and a test that waits for a backend never sends
/// a request the old configuration answers (a 503 when it had none).
fn reload(master: u32, bound: Duration) {
    let before = workers(master);
    let _ = kill(Pid::from_raw(master as i32), Signal::SIGHUP);
    let t0 = Instant::now();
    loop {
        let now = workers(master);
        if !now.is_empty() && now.iter().all(|w| !before.contains(w)) {
            return;
        }
        if t0.elapsed() > bound {
            tracing::warn!(?before, ?now, "nginx reload not finished within the bound");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PIDs of `master`'s child processes (nginx's workers), from `/proc`.
fn workers(master: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent(*pid) == Some(master))
        .collect()
}

/// A process's parent PID (the field after the parenthesised command name in `/proc/PID/stat`).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Ready, not terminating Pods of `namespace` by the models they load.
pub fn backends_of(pods: &[Pod], namespace: &str) -> Backends {
    let mut out = Backends::new();
    for p in pods
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace) && serving(p))
    {
        let Some(addr) = pod_port(p, "http") else {
            continue;
        };
        for m in loaded_models(p) {
            out.entry(m).or_default().push(addr.clone());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The nginx configuration for `backends`, with every path under `dir`.
pub fn config(dir: &Path, port: u16, backends: &Backends) -> String {
    let d = dir.display();
    let mut upstreams = String::new();
    let mut locations = String::new();
    let mut all: Vec<&String> = backends.values().flatten().collect();
    all.sort();
    all.dedup();
    let upstream = |name: &str, servers: &[&String]| {
        let list: String = servers
            .iter()
            .map(|s| format!("    server {s} max_fails=0;\n"))
            .collect();
        format!("  upstream {name} {{\n{list}    keepalive 32;\n  }}\n")
    };
    for (i, (model, servers)) in backends.iter().enumerate() {
        let refs: Vec<&String> = servers.iter().collect();
        upstreams.push_str(&upstream(&format!("model_{i}"), &refs));
        // Exact (model metadata) and prefix (ready, infer, stats): a prefix alone with a
        // trailing slash would answer the bare path with a redirect.
        locations.push_str(&format!(
            "    location = /v2/models/{model} {{ proxy_pass http://model_{i}; }}\n    location /v2/models/{model}/ {{ proxy_pass http://model_{i}; }}\n"
        ));
    }
    if all.is_empty() {
        locations.push_str("    location /v2/ { return 503; }\n");
    } else {
        upstreams.push_str(&upstream("any", &all));
        locations.push_str("    location /v2/health/ { proxy_pass http://any; }\n");
    }
    format!(
        r#"# Written by the kis-e2e testbed from the apiserver's Ready Pods; reloaded with SIGHUP.
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
# warn: upstream errors and the retries they cause, for Balancer::diagnose.
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  # A connection refused by a Pod that just left is retried on another (inference is
  # side-effect free, so a retried POST is safe).
  proxy_next_upstream error non_idempotent;
  proxy_read_timeout 60s;
{upstreams}  server {{
    listen 127.0.0.1:{port};
{locations}  }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ns: &str, ip: &str, ready: &str, model: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "t", "command": ["tritonserver"],
                "args": [format!("--load-model={model}")],
                "ports": [{"name": "http", "containerPort": 8000}]}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_parent_is_read_from_proc() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert_eq!(parent(child.id()), Some(me));
        assert!(workers(me).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!workers(me).contains(&child.id()));
    }

    #[test]
    fn backends_are_ready_pods_of_the_namespace_by_model() {
        let pods = [
            pod("a", "ns", "127.1.1.3", "True", "m1"),
            pod("b", "ns", "127.1.1.2", "True", "m1"),
            pod("c", "ns", "127.1.1.4", "False", "m1"),
            pod("d", "other", "127.1.1.5", "True", "m1"),
            pod("e", "ns", "127.1.1.6", "True", "m2"),
        ];
        let b = backends_of(&pods, "ns");
        assert_eq!(b["m1"], ["127.1.1.2:8000", "127.1.1.3:8000"]);
        assert_eq!(b["m2"], ["127.1.1.6:8000"]);
        let conf = config(Path::new("/d"), 9000, &b);
        assert!(conf.contains("location /v2/models/m1/ { proxy_pass http://model_0; }"));
        assert!(conf.contains("location = /v2/models/m1 { proxy_pass http://model_0; }"));
        assert!(conf.contains("server 127.1.1.6:8000 max_fails=0;"));
        assert!(conf.contains("listen 127.0.0.1:9000;"));
        let empty = config(Path::new("/d"), 9000, &Backends::new());
        assert!(empty.contains("return 503") && !empty.contains("upstream any"));
    }
}
