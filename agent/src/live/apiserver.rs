//! What the live mode reads from the apiserver: each pool's Deployment (`spec.replicas`, its
//! selector) and its Pods (Ready, start and Ready times), through the kube client with the
//! agent's own identity (kubeconfig, or in-cluster ServiceAccount). Only `get` on Deployments and
//! `list` on Pods are needed (deploy/'s RBAC for the agent).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A Deployment by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One pod as the agent sees it, times in Unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    /// Pod name.
    pub name: String,
    /// Ready condition True.
    pub ready: bool,
    /// `status.startTime`, else `metadata.creationTimestamp`.
    pub started: f64,
    /// The Ready condition's last transition while Ready.
    pub ready_since: Option<f64>,
}

/// A pool's Deployment and its live (not terminating) Pods.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolState {
    /// `spec.replicas`.
    pub spec_replicas: u32,
    /// Pods matching the Deployment's selector, without the terminating ones.
    pub pods: Vec<PodInfo>,
}

/// The apiserver client.
#[derive(Clone)]
pub struct Apiserver {
    client: Client,
    url: String,
}

/// Builds a kube config: `kubeconfig` if given, else the usual inference (in-cluster
/// ServiceAccount, `$KUBECONFIG`, `~/.kube/config`); `server` overrides the URL.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    server: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Apiserver> {
    let mut cfg = match kubeconfig {
        Some(p) => {
            let kc = Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", p.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", p.display()))?
        }
        None => Config::infer().await.map_err(|e| {
            anyhow::anyhow!("no apiserver credentials (give --kubeconfig, or run in a Pod): {e}")
        })?,
    };
    if let Some(s) = server {
        cfg.cluster_url = s
            .parse()
            .map_err(|e| anyhow::anyhow!("--apiserver {s}: {e}"))?;
    }
    cfg.connect_timeout = Some(timeout);
    cfg.read_timeout = Some(timeout);
    cfg.write_timeout = Some(timeout);
    let url = cfg.cluster_url.to_string();
    let client = Client::try_from(cfg).map_err(|e| anyhow::anyhow!("apiserver {url}: {e}"))?;
    Ok(Apiserver { client, url })
}

fn unix(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

impl Apiserver {
    /// The apiserver URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the Deployment and its Pods; one line naming the Deployment on failure.
    pub async fn pool(&self, d: &DeploymentRef) -> Result<PoolState, String> {
        let what = format!("deployment {}/{}", d.namespace, d.name);
        let deps: Api<Deployment> = Api::namespaced(self.client.clone(), &d.namespace);
        let dep = deps
            .get(&d.name)
            .await
            .map_err(|e| format!("{what} at {}: {e}", self.url))?;
        let spec = dep.spec.as_ref().ok_or(format!("{what} has no spec"))?;
        let selector = spec
            .selector
            .match_labels
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(format!("{what}: only matchLabels selectors are supported"));
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &d.namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("pods of {what} at {}: {e}", self.url))?;
        Ok(PoolState {
            spec_replicas: spec.replicas.unwrap_or(1).max(0) as u32,
            pods: list.items.iter().filter_map(pod_info).collect(),
        })
    }
}

/// A pod's info; None for a terminating pod.
pub fn pod_info(p: &Pod) -> Option<PodInfo> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref();
    let ready_cond = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let ready = ready_cond.is_some_and(|c| c.status == "True");
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .or(p.metadata.creation_timestamp.as_ref())
        .map_or(0.0, unix);
    Some(PodInfo {
        name: p.metadata.name.clone().unwrap_or_default(),
        ready,
        started,
        ready_since: if ready {
            ready_cond
                .and_then(|c| c.last_transition_time.as_ref())
                .map(unix)
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_info_reads_ready_and_skips_terminating() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "creationTimestamp": "2026-12-03T10:00:00Z"},
            "status": {"startTime": "2026-12-03T10:00:01Z", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-03T10:00:05Z"}]}
        }))
        .unwrap();
        let i = pod_info(&p).unwrap();
        assert!(i.ready);
        assert_eq!(i.ready_since.unwrap() - i.started, 4.0);
        let mut t = p.clone();
        t.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        assert_eq!(pod_info(&t), None);
        let pending: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "b"}})).unwrap();
        let i = pod_info(&pending).unwrap();
        assert!(!i.ready && i.ready_since.is_none());
    }
}
