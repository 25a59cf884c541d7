//! Prometheus (Debian's `prometheus` 2.42, installed by `scripts/kube/build.sh`) for the testbed,
//! scraping every second the targets in a `file_sd_configs` file. Debian builds Prometheus without
//! Kubernetes service discovery, so [`PodTargets`] writes that file from the apiserver instead:
//! every Ready Pod's port named `metrics` (Triton's `/metrics`), labelled with `namespace`, `pod`
//! and `app`, listed with its own client certificate bound to the `view` ClusterRole.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::pki::Usage;
use crate::proc::{Supervised, free_port};
use crate::{Error, wait_until};

/// A running Prometheus on loopback.
#[derive(Debug)]
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    proc: Mutex<Supervised>,
    _targets: PodTargets,
}

/// The binary Debian installs.
fn binary() -> Result<PathBuf, Error> {
    let p = PathBuf::from("/usr/bin/prometheus");
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::Missing(
            "/usr/bin/prometheus not found (Debian package prometheus): run `bash scripts/setup.sh` first".into(),
        ))
    }
}

impl Prometheus {
    /// Starts Prometheus against `cp` and waits (bounded) for `/-/ready`.
    pub fn start(cp: &ControlPlane, bound: Duration) -> Result<Self, Error> {
        let bin = binary()?;
        let dir = cp.dir().join("prometheus");
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
        let cert =
            cp.pki
                .cluster_ca
                .issue("prometheus", "kis-prometheus", &[], &[], Usage::Client)?;
        cp.admin.apply(
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "kis-prometheus"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kis-prometheus"}]}"#,
        )?;
        let kubeconfig = cp.write_kubeconfig(
            "prometheus",
            &crate::kubectl::UserAuth::Cert {
                cert: cert.cert,
                key: cert.key,
            },
        )?;
        let targets_file = dir.join("triton-pods.json");
        std::fs::write(&targets_file, "[]").map_err(|e| Error::Io(targets_file.clone(), e))?;
        let targets = PodTargets::start(&kubeconfig, &targets_file)?;
        let config = format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: triton
  file_sd_configs:
  - files: [{file}]
    refresh_interval: 1s
"#,
            file = targets_file.display(),
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).map_err(|e| Error::Io(file.clone(), e))?;
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1h");
        let proc = Supervised::spawn(
            "prometheus",
            cmd,
            &cp.dir().join("prometheus.log"),
            cp.watchdog(),
        )?;
        let p = Self {
            url: format!("http://127.0.0.1:{port}"),
            proc: Mutex::new(proc),
            _targets: targets,
        };
        let mut exited = None;
        let ready = wait_until("prometheus /-/ready", bound, || {
            if let Err(e) = p.check_running() {
                // Exited: no point in waiting any longer.
                exited = Some(e);
                return Ok(());
            }
            match get(&format!("{}/-/ready", p.url)) {
                Ok((200, _)) => Ok(()),
                Ok((code, body)) => Err(format!("{code} {body}")),
                Err(e) => Err(e.to_string()),
            }
        });
        match (exited, ready) {
            (Some(e), _) => Err(e),
            (None, r) => r.map(|()| p),
        }
    }

    /// Fails with the log's tail if Prometheus has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        self.proc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_running()
            .map_err(Error::from)
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.proc.lock().unwrap_or_else(|p| p.into_inner()).pid()
    }

    /// An instant query; the `data.result` array.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, Error> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-G", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(format!("{}/api/v1/query", self.url))
            .output()
            .map_err(|e| Error::Spawn("curl".into(), e))?;
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::Parse(
                format!("query {promql}"),
                format!("{e}: {}", String::from_utf8_lossy(&out.stdout)),
            )
        })?;
        if v["status"] != "success" {
            return Err(Error::Parse(format!("query {promql}"), v.to_string()));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// A GET with curl: (status, body).
fn get(url: &str) -> Result<(u16, String), Error> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()
        .map_err(|e| Error::Spawn("curl".into(), e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

/// Keeps a `file_sd_configs` file listing every Ready Pod's `metrics` port, refreshed every
/// second from the apiserver; stops when dropped.
#[derive(Debug)]
pub struct PodTargets {
    _watch: PodWatch,
}

impl PodTargets {
    /// Starts the refresh loop with the credentials in `kubeconfig`, writing `file` atomically.
    pub fn start(kubeconfig: &Path, file: &Path) -> Result<Self, Error> {
        let file = file.to_path_buf();
        PodWatch::start(kubeconfig, Duration::from_secs(1), move |pods| {
            let tmp = file.with_extension("tmp");
            if std::fs::write(&tmp, file_sd(pods).to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &file);
            }
        })
        .map(|w| Self { _watch: w })
    }
}

/// Lists every Pod from the apiserver each `period` on a thread of its own and hands the list to
/// a callback (what the testbed's Prometheus targets and load balancer are configured from);
/// stops when dropped.
#[derive(Debug)]
pub struct PodWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PodWatch {
    /// Starts the loop with the credentials in `kubeconfig` (which need `list` on Pods).
    pub fn start(
        kubeconfig: &Path,
        period: Duration,
        mut each: impl FnMut(&[Pod]) + Send + 'static,
    ) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Spawn("tokio runtime".into(), e))?;
        let client = rt
            .block_on(crate::kubelet::client(kubeconfig))
            .map_err(|e| Error::Config(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let api: Api<Pod> = Api::all(client);
            while !flag.load(Ordering::Relaxed) {
                match rt.block_on(api.list(&ListParams::default())) {
                    Ok(list) => each(&list.items),
                    Err(e) => tracing::warn!(error = %e, "listing Pods failed"),
                }
                std::thread::sleep(period);
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the Pod is Ready and not being deleted.
pub fn serving(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Pod's container port named `name`, with its IP: `IP:PORT`.
pub fn pod_port(p: &Pod, name: &str) -> Option<String> {
    let ip = p.status.as_ref()?.pod_ip.clone()?;
    let port = p
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(name))?
        .container_port;
    Some(format!("{ip}:{port}"))
}

/// The file_sd target groups for the Ready Pods among `pods` that have a port named `metrics`.
pub fn file_sd(pods: &[Pod]) -> Value {
    let groups: Vec<Value> = pods
        .iter()
        .filter(|p| serving(p))
        .filter_map(|p| {
            let target = pod_port(p, "metrics")?;
            let app = p.labels().get("app").cloned().unwrap_or_default();
            Some(json!({
                "targets": [target],
                "labels": {"namespace": p.namespace().unwrap_or_default(), "pod": p.name_any(), "app": app},
            }))
        })
        .collect();
    Value::Array(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_pods_with_a_metrics_port_are_targets() {
        let pod = |name: &str, ready: &str, port: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": port, "containerPort": 8002}]}]},
                "status": {"podIP": "127.1.2.3", "conditions": [{"type": "Ready", "status": ready}]}
            }))
            .unwrap()
        };
        let groups = file_sd(&[
            pod("ok", "True", "metrics"),
            pod("unready", "False", "metrics"),
            pod("noport", "True", "http"),
        ]);
        assert_eq!(
            groups,
            json!([{"targets": ["127.1.2.3:8002"], "labels": {"namespace": "ns", "pod": "ok", "app": "a"}}])
        );
    }
}
