//! Node objects: registration with capacity (cpu, memory, pods, `nvidia.com/gpu`), the Ready
//! condition's heartbeat and the node lease in `kube-node-lease`, as a kubelet keeps them.

use std::str::FromStr;
use std::time::SystemTime;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::status::rfc3339;
use super::{KUBELET_VERSION, KubeletError};

/// The extended resource name of a GPU.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// One node this kubelet registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// CPU capacity (a quantity, e.g. `8`).
    pub cpu: String,
    /// Memory capacity (e.g. `16Gi`).
    pub memory: String,
    /// `nvidia.com/gpu` capacity (emulated devices).
    pub gpus: u32,
    /// Pod capacity.
    pub pods: u32,
}

impl FromStr for NodeSpec {
    type Err = String;

    /// `NAME[:cpu=8,memory=16Gi,gpu=1,pods=110]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = s.split_once(':').unwrap_or((s, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if name.is_empty() || !name.chars().all(valid) {
            return Err(format!(
                "node {name:?}: a name is lowercase letters, digits, '-' and '.'"
            ));
        }
        let mut node = NodeSpec {
            name: name.to_string(),
            cpu: "8".into(),
            memory: "16Gi".into(),
            gpus: 0,
            pods: 110,
        };
        for kv in rest.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("node {name}: {kv:?} is not KEY=VALUE"))?;
            let count = || {
                v.parse::<u32>()
                    .map_err(|_| format!("node {name}: {k}={v:?} is not a count"))
            };
            match k {
                "cpu" => node.cpu = v.to_string(),
                "memory" => node.memory = v.to_string(),
                "gpu" => node.gpus = count()?,
                "pods" => node.pods = count()?,
                _ => {
                    return Err(format!(
                        "node {name}: unknown key {k:?} (cpu, memory, gpu, pods)"
                    ));
                }
            }
        }
        Ok(node)
    }
}

/// The Node's `status` with a fresh heartbeat.
fn node_status(spec: &NodeSpec, now: &str) -> Value {
    let resources = json!({
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": spec.pods.to_string(),
        GPU_RESOURCE: spec.gpus.to_string(),
    });
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "process kubelet (kis-e2e stand-in) is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": spec.name},
        ],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "kis-e2e process kubelet (stand-in)", "containerRuntimeVersion": "kis-process://1",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

/// Creates the Node (or takes over an existing one of that name) and writes its status.
pub async fn register(client: &Client, spec: &NodeSpec) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kis.dev/process-kubelet": "true",
            },
        },
    }))
    .map_err(|e| KubeletError::Config(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e.into()),
    }
    heartbeat(client, spec).await
}

/// Refreshes the Node's status (capacity, Ready heartbeat) and renews its lease.
pub async fn heartbeat(client: &Client, spec: &NodeSpec) -> Result<(), KubeletError> {
    let now = rfc3339(SystemTime::now(), false);
    let nodes: Api<Node> = Api::all(client.clone());
    let mut status = node_status(spec, &now);
    // Keep the Ready condition's transition time from the first heartbeat.
    if let Some(old) = nodes.get_opt(&spec.name).await?
        && let Some(since) = old
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready" && c.status == "True")
            .and_then(|c| c.last_transition_time)
    {
        status["conditions"][0]["lastTransitionTime"] =
            json!(since.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    nodes
        .patch_status(
            &spec.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    renew_lease(client, spec).await
}

async fn renew_lease(client: &Client, spec: &NodeSpec) -> Result<(), KubeletError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = rfc3339(SystemTime::now(), true);
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": spec.name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": 40, "renewTime": renew},
    });
    match leases.get_opt(&spec.name).await? {
        Some(lease) => {
            let patch = json!({"spec": body["spec"].clone(), "metadata": {"resourceVersion": lease.resource_version()}});
            leases
                .patch(&spec.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        None => {
            let lease: Lease =
                serde_json::from_value(body).map_err(|e| KubeletError::Config(e.to_string()))?;
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs_parse_with_defaults_and_name_bad_input() {
        let n: NodeSpec = "kis-node-1:gpu=1,cpu=4".parse().unwrap();
        assert_eq!(n.name, "kis-node-1");
        assert_eq!((n.gpus, n.cpu.as_str(), n.pods), (1, "4", 110));
        let n: NodeSpec = "plain".parse().unwrap();
        assert_eq!(n.gpus, 0);
        for (bad, needle) in [
            ("Node_1", "lowercase"),
            ("n:gpu=x", "gpu=\"x\""),
            ("n:disk=1", "unknown key"),
            ("n:gpu", "KEY=VALUE"),
        ] {
            let e = bad.parse::<NodeSpec>().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn status_carries_the_gpu_capacity() {
        let n: NodeSpec = "n:gpu=2".parse().unwrap();
        let s = node_status(&n, "t");
        assert_eq!(s["allocatable"][GPU_RESOURCE], "2");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["conditions"][0]["status"], "True");
    }
}
