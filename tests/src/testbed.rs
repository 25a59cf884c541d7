//! A live testbed on one machine: the real control plane ([`ControlPlane`]: apiserver, scheduler,
//! controller-manager with the ReplicaSet, HPA and garbage-collector controllers), the process
//! kubelet ([`crate::kubelet`], the one stand-in, run as `kis-e2e kubelet`) whose nodes advertise
//! emulated GPUs, real Triton servers serving the emulated accelerator ([`crate::emulated`]),
//! Prometheus scraping the Ready Pods ([`Prometheus`]), nginx in front of the Ready Pods of
//! `kis-serving` ([`Balancer`]), and optionally kis-adapter registered
//! through the aggregator ([`Adapter`]).
//!
//! [`Testbed::start`] brings it up in-process (tests keep one); `kis-e2e testbed up|down|status`
//! runs one in a background `kis-e2e testbed serve` process and records it in a state directory
//! ([`State`]). Every process is stopped by PID when the [`Testbed`] is dropped, and by the
//! watchdogs when its owner dies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapter::Adapter;
use crate::balancer::Balancer;
use crate::cluster::{ControlPlane, ControlPlaneConfig};
use crate::emulated::EmulatedModel;
use crate::kubectl::UserAuth;
use crate::kubelet::NodeSpec;
use crate::pki::Usage;
use crate::proc::{StopMode, Supervised};
use crate::prometheus::Prometheus;
use crate::{Error, wait_until};

pub mod serving;

/// The serving objects as this testbed applies them (deploy/serving/ through
/// [`serving::for_testbed`]), written into the run directory for `kubectl apply -f`.
pub const SERVING_FILE: &str = "serving.json";

/// Settings of a testbed.
#[derive(Debug, Clone)]
pub struct TestbedConfig {
    /// The process kubelet's nodes.
    pub nodes: Vec<NodeSpec>,
    /// The emulated models written into the testbed's repository.
    pub models: Vec<EmulatedModel>,
    /// Also register kis-adapter (needs `target/debug/kis-adapter`).
    pub adapter: bool,
    /// Also run Prometheus (Debian's package).
    pub prometheus: bool,
    /// Put nginx in front of the Ready Pods of this namespace (None: no load balancer).
    pub balance: Option<String>,
    /// The repository root (deploy/, scripts/).
    pub workspace: PathBuf,
    /// The `kis-e2e` binary, run as `kis-e2e kubelet`.
    pub kis_e2e: PathBuf,
    /// Bound on each readiness wait.
    pub ready_timeout: Duration,
}

impl TestbedConfig {
    /// One node `kis-node-1` (8 CPUs, 16 GiB, one emulated GPU), both emulated models with the
    /// KIS-S figures, with the adapter.
    pub fn new(workspace: &Path, kis_e2e: &Path) -> Self {
        Self {
            nodes: vec![
                "kis-node-1:cpu=8,memory=16Gi,gpu=1"
                    .parse()
                    .expect("the default node spec parses"),
            ],
            models: vec![EmulatedModel::default(), EmulatedModel::kis_s_cpu()],
            adapter: true,
            prometheus: true,
            balance: Some("kis-serving".into()),
            workspace: workspace.to_path_buf(),
            kis_e2e: kis_e2e.to_path_buf(),
            ready_timeout: Duration::from_secs(180),
        }
    }
}

/// A running testbed. Dropping it stops the kubelet (and with it every Triton), the adapter and
/// the control plane.
#[derive(Debug)]
pub struct Testbed {
    /// The adapter, when asked for (dropped before the control plane).
    pub adapter: Option<Adapter>,
    /// Prometheus, when asked for.
    pub prometheus: Option<Prometheus>,
    /// The load balancer, when asked for.
    pub balancer: Option<Balancer>,
    /// The control plane.
    pub cp: ControlPlane,
    /// The nodes the kubelet registered.
    pub nodes: Vec<NodeSpec>,
    /// Pod IPs are `127.A.B.N` with these.
    pub pod_network: [u8; 2],
    /// The model repository the kubelet adds to every Triton.
    pub models: PathBuf,
    kubelet: Mutex<Option<Supervised>>,
}

/// How long the kubelet gets to stop its Tritons before it is killed (its watchdog then kills
/// what is left).
const KUBELET_STOP: Duration = Duration::from_secs(30);

impl Testbed {
    /// Starts the control plane, writes the emulated models, starts the process kubelet and
    /// waits until its nodes are Ready, then (if asked) registers kis-adapter.
    pub fn start(config: &TestbedConfig) -> Result<Self, Error> {
        let triton = kis_fixtures::triton_home().map_err(|e| Error::Missing(e.to_string()))?;
        let cp = ControlPlane::start(&ControlPlaneConfig {
            extra_controllers: vec!["garbagecollector".into(), "nodelifecycle".into()],
            ready_timeout: config.ready_timeout,
            ..ControlPlaneConfig::default()
        })?;
        let models = cp.dir().join("models");
        for m in &config.models {
            m.write_repository(&models, &triton, &config.workspace)?;
        }
        let kubeconfig = kubelet_identity(&cp, &config.nodes)?;
        let pod_network = pod_network();
        let mut cmd = Command::new(&config.kis_e2e);
        cmd.arg("kubelet")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--pod-network={}.{}",
                pod_network[0], pod_network[1]
            ))
            .arg(format!(
                "--launcher={}",
                triton.join("bin/tritonserver").display()
            ))
            .arg(format!("--repository={}", models.display()))
            .arg(format!("--log-dir={}", cp.dir().join("pods").display()))
            .env("RUST_LOG", "info");
        for n in &config.nodes {
            cmd.arg(format!(
                "--node={}:cpu={},memory={},gpu={},pods={}",
                n.name, n.cpu, n.memory, n.gpus, n.pods
            ));
        }
        let kubelet = Supervised::spawn(
            "kis-e2e kubelet",
            cmd,
            &cp.dir().join("kubelet.log"),
            cp.watchdog(),
        )?
        .with_stop_mode(StopMode::Group);
        let tb = Self {
            adapter: None,
            prometheus: None,
            balancer: None,
            cp,
            nodes: config.nodes.clone(),
            pod_network,
            models,
            kubelet: Mutex::new(Some(kubelet)),
        };
        for n in &tb.nodes {
            tb.wait_node_ready(&n.name, config.ready_timeout)?;
        }
        let mut tb = tb;
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List",
            "items": serving::objects(&tb.cp.admin, &config.workspace)?});
        let file = tb.cp.dir().join(SERVING_FILE);
        std::fs::write(&file, list.to_string()).map_err(|e| Error::Io(file.clone(), e))?;
        if config.prometheus {
            tb.prometheus = Some(Prometheus::start(&tb.cp, config.ready_timeout)?);
        }
        if let Some(ns) = &config.balance {
            // It lists Pods as the admin: an in-testbed component, like the kubelet's peers.
            let kubeconfig = tb.cp.admin.kubeconfig().to_path_buf();
            tb.balancer = Some(Balancer::start(
                &tb.cp,
                &kubeconfig,
                ns,
                config.ready_timeout,
            )?);
        }
        if config.adapter {
            let adapter = Adapter::start(&tb.cp, &config.workspace)?;
            if let Some(p) = &tb.prometheus {
                p.scrape(
                    "kis-adapter",
                    &format!("127.0.0.1:{}", adapter.metrics_port),
                )?;
            }
            tb.adapter = Some(adapter);
        }
        Ok(tb)
    }

    fn wait_node_ready(&self, name: &str, bound: Duration) -> Result<(), Error> {
        wait_until(&format!("node {name} to be Ready"), bound, || {
            self.check_running().map_err(|e| e.to_string())?;
            let node = self
                .cp
                .admin
                .json(&["get", "node", name])
                .map_err(|e| e.to_string())?;
            let ready = node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                Ok(())
            } else {
                Err(format!("conditions: {}", node["status"]["conditions"]))
            }
        })
    }

    /// Fails with a log tail if the kubelet or a control-plane process has exited.
    pub fn check_running(&self) -> Result<(), Error> {
        self.cp.check_running()?;
        let mut k = self.kubelet.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = k.as_mut() {
            k.check_running()?;
        }
        if let Some(a) = &self.adapter {
            a.check_running()?;
        }
        if let Some(p) = &self.prometheus {
            p.check_running()?;
        }
        if let Some(b) = &self.balancer {
            b.check_running()?;
        }
        Ok(())
    }

    /// The kubelet's PID, while it runs.
    pub fn kubelet_pid(&self) -> Option<u32> {
        let k = self.kubelet.lock().unwrap_or_else(|p| p.into_inner());
        k.as_ref().map(Supervised::pid)
    }

    /// The kubelet's log file.
    pub fn kubelet_log(&self) -> PathBuf {
        self.cp.dir().join("kubelet.log")
    }

    /// `127.A.B.` — the prefix every Pod IP of this testbed starts with.
    pub fn pod_ip_prefix(&self) -> String {
        format!("127.{}.{}.", self.pod_network[0], self.pod_network[1])
    }

    /// Applies deploy/serving/'s Triton Deployments as the testbed runs them
    /// ([`serving::for_testbed`]) into namespace `ns`, with `replicas` for each Deployment named
    /// in `only` (the others are not applied).
    pub fn apply_tritons(
        &self,
        workspace: &Path,
        ns: &str,
        only: &[(&str, u32)],
    ) -> Result<(), Error> {
        let objects = serving::objects(&self.cp.admin, workspace)?;
        let mut items = Vec::new();
        for mut o in objects {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if o["kind"] != "Deployment" {
                continue;
            }
            if let Some((_, n)) = only.iter().find(|(d, _)| *d == name) {
                o["metadata"]["namespace"] = Value::from(ns);
                o["spec"]["replicas"] = Value::from(*n);
                items.push(o);
            }
        }
        if items.len() != only.len() {
            return Err(Error::Config(format!(
                "{} lacks some of the Deployments {only:?}",
                serving::DIR
            )));
        }
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        self.cp.admin.apply(&list.to_string())?;
        Ok(())
    }

    /// What `testbed up` prints and records.
    pub fn summary(&self, pid: u32) -> State {
        let mut processes = vec![];
        for (name, p) in [
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
            "etcd",
        ]
        .iter()
        .zip(self.cp.pids())
        {
            processes.push(((*name).to_string(), p));
        }
        if let Some(p) = self.kubelet_pid() {
            processes.push(("kis-e2e kubelet (process kubelet, stand-in)".into(), p));
        }
        if let Some(p) = &self.prometheus {
            processes.push(("prometheus".into(), p.pid()));
        }
        if let Some(b) = &self.balancer {
            processes.push(("nginx (load balancer)".into(), b.pid()));
        }
        State {
            pid,
            run_dir: self.cp.dir().to_path_buf(),
            kubeconfig: self.cp.admin.kubeconfig().to_path_buf(),
            server: self.cp.server.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| format!("{} (nvidia.com/gpu={})", n.name, n.gpus))
                .collect(),
            pod_network: format!("{}0/24", self.pod_ip_prefix()),
            models: self.models.clone(),
            adapter: self
                .adapter
                .as_ref()
                .map(|a| format!("https://127.0.0.1:{}", a.port)),
            adapter_token: self.adapter.as_ref().map(|a| a.token.clone()),
            prometheus: self.prometheus.as_ref().map(|p| p.url.clone()),
            loadgen_metrics: self.prometheus.as_ref().map(|p| p.loadgen_metrics.clone()),
            balancer: self.balancer.as_ref().map(|b| b.url.clone()),
            processes,
            manifests: self.cp.dir().join(SERVING_FILE),
        }
    }

    /// Stops the kubelet (which stops its Tritons), the adapter and the control plane.
    pub fn stop(&mut self) {
        if let Some(mut k) = self
            .kubelet
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            k.stop(KUBELET_STOP);
        }
        self.adapter = None;
        self.balancer = None;
        self.prometheus = None;
        self.cp.stop();
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Issues the kubelet's client certificate (`system:node:FIRST-NODE`, group `system:nodes`),
/// binds the bootstrap `system:node` ClusterRole to that group (RBAC alone, no Node authorizer
/// here) and writes its kubeconfig.
fn kubelet_identity(cp: &ControlPlane, nodes: &[NodeSpec]) -> Result<PathBuf, Error> {
    let first = nodes
        .first()
        .ok_or_else(|| Error::Config("the testbed needs at least one node".into()))?;
    let cert = cp.pki.cluster_ca.issue(
        "kubelet",
        &format!("system:node:{}", first.name),
        &["system:nodes"],
        &[],
        Usage::Client,
    )?;
    cp.admin.apply(
        r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "kis-process-kubelet"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]}"#,
    )?;
    cp.write_kubeconfig(
        "kubelet",
        &UserAuth::Cert {
            cert: cert.cert,
            key: cert.key,
        },
    )
}

/// A random `[A, B]` for Pod IPs `127.A.B.N`, away from `127.0.x.x` where other servers listen.
fn pod_network() -> [u8; 2] {
    use rand::RngExt;
    let mut rng = rand::rng();
    [rng.random_range(64..=223), rng.random_range(0..=255)]
}

/// What `testbed up` records in its state directory (`state.json`) and prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The `kis-e2e testbed serve` process holding everything.
    pub pid: u32,
    /// The run directory (logs, PKI, kubeconfigs, models).
    pub run_dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The apiserver URL.
    pub server: String,
    /// The process kubelet's nodes.
    pub nodes: Vec<String>,
    /// Pod IPs.
    pub pod_network: String,
    /// The emulated models' repository.
    pub models: PathBuf,
    /// kis-adapter's URL, when running.
    pub adapter: Option<String>,
    /// kis-adapter's publish-API bearer token.
    pub adapter_token: Option<String>,
    /// Prometheus's URL, when running.
    pub prometheus: Option<String>,
    /// The address Prometheus scrapes as job `kis-loadgen`: pass it to `--metrics-addr`.
    #[serde(default)]
    pub loadgen_metrics: Option<String>,
    /// The load balancer's URL (Ready Pods of `kis-serving`), when running.
    pub balancer: Option<String>,
    /// (name, PID) of every long-running process at start (Tritons come and go with Pods).
    pub processes: Vec<(String, u32)>,
    /// deploy/serving/ as the testbed applies it (`kubectl apply -f` this file).
    pub manifests: PathBuf,
}

impl State {
    /// The human summary `testbed up` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "testbed up (pid {})\n  kubeconfig   {}\n  apiserver    {}\n  nodes        {} (process kubelet: a stand-in)\n  pod IPs      {}\n  models       {} (emulated accelerator)\n",
            self.pid,
            self.kubeconfig.display(),
            self.server,
            self.nodes.join(", "),
            self.pod_network,
            self.models.display(),
        );
        match &self.adapter {
            Some(a) => s.push_str(&format!(
                "  kis-adapter  {a} (publish token in state.json)\n"
            )),
            None => s.push_str("  kis-adapter  not started\n"),
        }
        match &self.prometheus {
            Some(p) => s.push_str(&format!(
                "  prometheus   {p} (scrapes Ready Pods' `metrics` ports, kis-adapter, and kis-loadgen run with --metrics-addr {})\n",
                self.loadgen_metrics.as_deref().unwrap_or("-")
            )),
            None => s.push_str("  prometheus   not started\n"),
        }
        match &self.balancer {
            Some(b) => s.push_str(&format!(
                "  balancer     {b} (nginx; /v2/models/M/ -> Ready kis-serving Pods loading M)\n"
            )),
            None => s.push_str("  balancer     not started\n"),
        }
        s.push_str(&format!(
            "  logs         {}\n  try          kubectl --kubeconfig {} apply -f {}\n",
            self.run_dir.display(),
            self.kubeconfig.display(),
            self.manifests.display()
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_networks_stay_off_127_0() {
        for _ in 0..200 {
            let [a, _] = pod_network();
            assert!((64..=223).contains(&a));
        }
    }
}
