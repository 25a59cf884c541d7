//! The process kubelet: the testbed's one stand-in for a cluster component (a real kubelet needs
//! a container runtime, cgroups and images, none of which this machine has). Everything around it
//! is real: the apiserver it registers with, the scheduler that binds Pods to its nodes, the
//! ReplicaSet controller that creates and deletes them, and the Triton servers it runs.
//!
//! It registers Node objects with capacity (cpu, memory, pods, `nvidia.com/gpu`) and keeps their
//! Ready heartbeat and leases fresh ([`node`]). Every Pod bound to one of its nodes gets a real
//! Triton process on its own loopback address `127.A.B.N` (so Pod IPs differ and ports do not
//! clash), run as [`container`] describes; its probes are run ([`probe`]) and its status written
//! ([`status`]); crashes are restarted per `restartPolicy`, and deletion is graceful ([`pod`]).
//! Pods are found by listing each node's Pods every [`KubeletConfig::sync`] (a field selector on
//! `spec.nodeName`), which also rides out an apiserver restart.
//!
//! Each Triton process runs in its own process group under a [`Watchdog`], so nothing outlives
//! the kubelet, even when it is killed.

pub mod container;
pub mod node;
pub mod pod;
pub mod probe;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use node::{GPU_RESOURCE, NodeSpec};

use crate::proc::Watchdog;

/// The version the nodes report (`nodeInfo.kubeletVersion`): the control plane's, marked as the
/// stand-in it is.
pub const KUBELET_VERSION: &str = "v1.20.2-kis-process-kubelet";

/// Why the kubelet could not start or keep going.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// An API call failed.
    #[error("apiserver: {0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig could not be used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// Process supervision failed.
    #[error("{0}")]
    Proc(#[from] crate::proc::ProcError),
}

/// Settings of one kubelet process.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Its credentials (a `system:node:NAME` client certificate in the testbed).
    pub kubeconfig: PathBuf,
    /// The nodes it registers and runs Pods for.
    pub nodes: Vec<NodeSpec>,
    /// Pod IPs are `127.A.B.N` with these `[A, B]` (chosen at run time by the testbed, so that
    /// two testbeds on one machine never share an address).
    pub pod_network: [u8; 2],
    /// The Triton launcher (`$KIS_CACHE/triton-v1/bin/tritonserver`).
    pub launcher: PathBuf,
    /// A model repository added to Triton's (the emulated accelerator's).
    pub repository: Option<PathBuf>,
    /// Where container logs go.
    pub log_dir: PathBuf,
    /// Node status and lease period.
    pub heartbeat: Duration,
    /// Pod list period.
    pub sync: Duration,
    /// Bound on stopping the processes when the kubelet stops.
    pub shutdown_grace: Duration,
}

/// Pod IPs in `127.A.B.2..=254`, each handed out once until released.
#[derive(Debug)]
struct IpPool {
    net: [u8; 2],
    used: BTreeSet<u8>,
}

impl IpPool {
    fn take(&mut self) -> Option<Ipv4Addr> {
        let n = (2..=254u8).find(|n| !self.used.contains(n))?;
        self.used.insert(n);
        Some(Ipv4Addr::new(127, self.net[0], self.net[1], n))
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip.octets()[3]);
    }
}

struct PodHandle {
    tx: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
    ip: Ipv4Addr,
}

/// A client from a kubeconfig file.
pub async fn client(kubeconfig: &std::path::Path) -> Result<Client, KubeletError> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Runs the kubelet until `shutdown` completes, then stops every process it started (bounded by
/// `shutdown_grace`) and returns. Pods stay in the API, as with a real kubelet that stops.
pub async fn run(
    config: KubeletConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), KubeletError> {
    if config.nodes.is_empty() {
        return Err(KubeletError::Config("no nodes to register".into()));
    }
    std::fs::create_dir_all(&config.log_dir)
        .map_err(|e| KubeletError::Config(format!("{}: {e}", config.log_dir.display())))?;
    let client = client(&config.kubeconfig).await?;
    for n in &config.nodes {
        node::register(&client, n).await?;
        tracing::info!(node = %n.name, gpus = n.gpus, "node registered");
    }
    let ctx = pod::Context {
        client: client.clone(),
        watchdog: Watchdog::start(None)?,
        launcher: config.launcher.clone(),
        repository: config.repository.clone(),
        log_dir: config.log_dir.clone(),
        shutdown_grace: config.shutdown_grace,
    };
    let mut ips = IpPool {
        net: config.pod_network,
        used: BTreeSet::new(),
    };
    let mut pods: HashMap<String, PodHandle> = HashMap::new();
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    let mut sync = tokio::time::interval(config.sync);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = heartbeat.tick() => for n in &config.nodes {
                if let Err(e) = node::heartbeat(&client, n).await {
                    tracing::warn!(node = %n.name, error = %e, "heartbeat failed");
                }
            },
            _ = sync.tick() => {
                if let Err(e) = sync_pods(&ctx, &config.nodes, &mut pods, &mut ips).await {
                    tracing::warn!(error = %e, "pod sync failed");
                }
            }
        }
    }
    tracing::info!(pods = pods.len(), "stopping every container");
    let handles: Vec<PodHandle> = pods.into_values().collect();
    for h in handles {
        drop(h.tx);
        let _ = h.task.await;
    }
    ctx.watchdog.disarm();
    Ok(())
}

/// Lists each node's Pods, starts a worker for each new one, hands every worker its Pod's latest
/// version (or `None` once it is gone) and forgets finished workers.
async fn sync_pods(
    ctx: &pod::Context,
    nodes: &[NodeSpec],
    pods: &mut HashMap<String, PodHandle>,
    ips: &mut IpPool,
) -> Result<(), KubeletError> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut seen = HashMap::new();
    for n in nodes {
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", n.name));
        for p in api.list(&lp).await? {
            seen.insert(p.uid().unwrap_or_default(), p);
        }
    }
    for (uid, p) in &seen {
        if let Some(h) = pods.get(uid) {
            h.tx.send_replace(Some(p.clone()));
            continue;
        }
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // Finished before this kubelet saw it: only a deletion needs handling.
            if p.metadata.deletion_timestamp.is_some() {
                let ns: Api<Pod> =
                    Api::namespaced(ctx.client.clone(), &p.namespace().unwrap_or_default());
                let _ = ns
                    .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                    .await;
            }
            continue;
        }
        let Some(ip) = ips.take() else {
            tracing::warn!(pod = %p.name_any(), "no free Pod IP");
            continue;
        };
        let (tx, rx) = watch::channel(Some(p.clone()));
        let task = tokio::spawn(pod::run(ctx.clone(), ip, rx));
        pods.insert(uid.clone(), PodHandle { tx, task, ip });
    }
    for (uid, h) in pods.iter() {
        if !seen.contains_key(uid) {
            h.tx.send_replace(None);
        }
    }
    let done: Vec<String> = pods
        .iter()
        .filter(|(_, h)| h.task.is_finished())
        .map(|(u, _)| u.clone())
        .collect();
    for uid in done {
        if let Some(h) = pods.remove(&uid) {
            ips.release(h.ip);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_pool_hands_out_distinct_addresses_and_reuses_released_ones() {
        let mut pool = IpPool {
            net: [123, 45],
            used: BTreeSet::new(),
        };
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 123, 45, 2));
        assert_ne!(a, b);
        pool.release(a);
        assert_eq!(pool.take().unwrap(), a);
        let n = std::iter::from_fn(|| pool.take()).count();
        assert_eq!(n, 253 - 2, "2..=254 minus the two held");
    }
}
