//! Prometheus (Debian's `prometheus` 2.42, installed by `scripts/kube/build.sh`) for the testbed,
//! scraping every second the targets in a `file_sd_configs` file. Debian builds Prometheus without
//! Kubernetes service discovery, so the shared [`Refresher`] writes that file from the apiserver
//! instead: every Ready Pod's port named `metrics` (Triton's `/metrics`), labelled with
//! `namespace`, `pod` and `app`, listed with its own client certificate bound to the `view`
//! ClusterRole. The same selection and labels as deploy/prometheus/scrape-configs.yml gives a
//! real cluster's Prometheus with Kubernetes service discovery. Two more jobs scrape one fixed
//! target each: `kis-adapter` (its plain-HTTP `--metrics-port`) and `kis-loadgen` (a port
//! reserved for a run's `--metrics-addr`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::cluster::ControlPlane;
use crate::pki::Usage;
use crate::proc::{Supervised, free_port};
use crate::refresher::{Consumer, Refresher, pod_port, serving, write_atomic};
use crate::{Error, wait_until};

/// A running Prometheus on loopback.
#[derive(Debug)]
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where a kis-loadgen run serves `/metrics` to be scraped (job `kis-loadgen`):
    /// `--metrics-addr` this. Reserved at start; the target is down while no run serves it.
    pub loadgen_metrics: String,
    dir: PathBuf,
    proc: Mutex<Supervised>,
    _targets: Refresher,
}

/// The jobs besides the Triton Pods, each scraping the `host:port` targets in its own file.
const STATIC_JOBS: [&str; 2] = ["kis-adapter", "kis-loadgen"];

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
        let targets = Refresher::start(
            &kubeconfig,
            Duration::from_secs(1),
            Consumer {
                file: targets_file.clone(),
                derive: Box::new(|pods: &[Pod]| file_sd(pods)),
                render: Box::new(Value::to_string),
                applied: Box::new(|_: &Value| {}),
            },
        )?;
        let mut config = format!(
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
        for job in STATIC_JOBS {
            let f = dir.join(format!("{job}.json"));
            std::fs::write(&f, "[]").map_err(|e| Error::Io(f.clone(), e))?;
            config.push_str(&format!(
                "- job_name: {job}\n  file_sd_configs:\n  - files: [{}]\n    refresh_interval: 1s\n",
                f.display()
            ));
        }
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
            loadgen_metrics: format!("127.0.0.1:{}", free_port()?),
            dir,
            proc: Mutex::new(proc),
            _targets: targets,
        };
        p.scrape("kis-loadgen", &p.loadgen_metrics)?;
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

    /// Scrapes `host:port` (plain HTTP `/metrics`) as the only target of `job`, one of
    /// `kis-adapter` and `kis-loadgen`.
    pub fn scrape(&self, job: &str, target: &str) -> Result<(), Error> {
        if !STATIC_JOBS.contains(&job) {
            return Err(Error::Config(format!(
                "no scrape job {job} (jobs: {STATIC_JOBS:?})"
            )));
        }
        let groups = json!([{"targets": [target]}]);
        write_atomic(&self.dir.join(format!("{job}.json")), &groups.to_string())
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
