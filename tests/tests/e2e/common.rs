//! The shared control plane and small helpers used by every e2e test module.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use kis_e2e::adapter::Adapter;
use kis_e2e::cluster::{ControlPlane, ControlPlaneConfig};

/// The control plane shared by the tests of this binary, started on first use.
pub fn cluster() -> &'static ControlPlane {
    static CLUSTER: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        let t0 = std::time::Instant::now();
        let cp = ControlPlane::start(&ControlPlaneConfig::default()).map_err(|e| e.to_string());
        eprintln!(
            "kis-e2e: control plane start took {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        cp
    });
    match started {
        Ok(cp) => cp,
        Err(e) => panic!("the Kubernetes control plane did not start: {e}"),
    }
}

/// The repository root (deploy/ and adapter/ live there).
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

/// kis-adapter registered with the shared control plane (deploy/ applied), started on first use.
pub fn adapter() -> &'static Adapter {
    static ADAPTER: OnceLock<Result<Adapter, String>> = OnceLock::new();
    let cp = cluster();
    let started = ADAPTER.get_or_init(|| {
        let t0 = std::time::Instant::now();
        let a = Adapter::start(cp, workspace()).map_err(|e| e.to_string());
        eprintln!(
            "kis-e2e: adapter registration took {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        a
    });
    match started {
        Ok(a) => a,
        Err(e) => panic!("kis-adapter did not start: {e}"),
    }
}

/// Creates namespace `name` (tests use distinct names so they can run in parallel).
pub fn namespace(name: &str) -> String {
    let cp = cluster();
    cp.admin
        .run(&["create", "namespace", name])
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    name.to_string()
}

/// A Deployment with `replicas` replicas and the label `app=NAME` (its Pods stay Pending:
/// there is no kubelet).
pub fn deployment_yaml(namespace: &str, name: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: registry.invalid/kis/placeholder:never-pulled
"#
    )
}

/// `spec.replicas` of a Deployment.
pub fn replicas(namespace: &str, name: &str) -> i64 {
    let d = cluster()
        .admin
        .json(&["-n", namespace, "get", "deployment", name])
        .unwrap_or_else(|e| panic!("get deployment {namespace}/{name}: {e}"));
    d["spec"]["replicas"]
        .as_i64()
        .unwrap_or_else(|| panic!("deployment {namespace}/{name} has no spec.replicas: {d}"))
}

/// Bound for things the controllers do within a few sync periods.
pub const CONTROLLER_BOUND: Duration = Duration::from_secs(60);

/// The metric every test publishes (as in deploy/).
pub const METRIC: &str = "kis-replicas";

/// An `autoscaling/v2beta2` HPA on Deployment `name` driven by the External metric
/// `kis-replicas{target=NAME}` with `AverageValue: 1`, scaling both ways without stabilisation.
pub fn hpa_yaml(namespace: &str, name: &str, max: u32) -> String {
    hpa_yaml_selecting(namespace, name, max, "target")
}

/// [`hpa_yaml`] with the metric selector `LABEL=NAME` (`app` covers every shard of a target).
pub fn hpa_yaml_selecting(namespace: &str, name: &str, max: u32, label: &str) -> String {
    format!(
        r#"apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  namespace: {namespace}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: {max}
  metrics:
  - type: External
    external:
      metric:
        name: {METRIC}
        selector:
          matchLabels: {{{label}: {name}}}
      target: {{type: AverageValue, averageValue: "1"}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies: [{{type: Percent, value: 1000, periodSeconds: 15}}]
    scaleDown:
      stabilizationWindowSeconds: 0
      policies: [{{type: Percent, value: 100, periodSeconds: 15}}]
"#
    )
}

/// The HPA's `status.conditions` entry of `type_` as (status, reason), read in v2beta2 form.
pub fn hpa_condition(namespace: &str, name: &str, type_: &str) -> Option<(String, String)> {
    let hpa = cluster()
        .admin
        .json(&[
            "-n",
            namespace,
            "get",
            "horizontalpodautoscalers.v2beta2.autoscaling",
            name,
        ])
        .ok()?;
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Waits until the Deployment's `spec.replicas` equals `want`; returns the seconds it took.
pub fn wait_replicas(namespace: &str, name: &str, want: i64, bound: Duration) -> f64 {
    let t0 = std::time::Instant::now();
    kis_e2e::wait_until(
        &format!("{namespace}/{name} to have {want} replicas"),
        bound,
        || {
            let r = replicas(namespace, name);
            if r == want {
                Ok(())
            } else {
                Err(format!("replicas={r}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    t0.elapsed().as_secs_f64()
}

/// Bound for the HPA to act on a new target (a few 2 s sync periods plus slack for a busy
/// machine).
pub const HPA_BOUND: Duration = Duration::from_secs(90);
