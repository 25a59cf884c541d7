//! Every manifest in deploy/ (and what deploy/gen-certs.sh writes) is parsed into the
//! k8s-openapi types; a field the types do not know fails the test (round-trip comparison:
//! every field of the YAML must come back out of the typed value unchanged). Then the
//! governance every workload (kis-adapter, the Triton pools, kis-agent) is held to, and what
//! is not a Kubernetes object: kustomization.yaml, the Prometheus jobs, the Grafana dashboard.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Paths in `orig` that are missing or different in `back`.
fn diff(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                match b.get(k) {
                    Some(bv) => diff(v, bv, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: unknown field (or dropped)")),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (x, y)) in o.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        (x, y) if x == y => {}
        (x, y) => out.push(format!("{path}: {x} came back as {y}")),
    }
}

fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    let mut errs = Vec::new();
    diff(doc, &back, "", &mut errs);
    if errs.is_empty() {
        Ok(back)
    } else {
        Err(errs.join("; "))
    }
}

// cert-manager kinds are not in k8s-openapi: the fields used, with unknown fields denied.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmObject {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: CmSpec,
}
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    self_signed: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renew_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer_ref: Option<CmIssuerRef>,
}
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CmIssuerRef {
    name: String,
    kind: String,
}

/// Checks one document; returns its kind.
fn check(doc: &Value) -> Result<String, String> {
    let av = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    match (av, kind.as_str()) {
        ("v1", "Namespace") => strict::<Namespace>(doc),
        ("v1", "ServiceAccount") => strict::<ServiceAccount>(doc),
        ("v1", "Service") => strict::<Service>(doc),
        ("v1", "Secret") => strict::<Secret>(doc),
        ("v1", "PersistentVolumeClaim") => strict::<PersistentVolumeClaim>(doc),
        ("v1", "ConfigMap") => strict::<ConfigMap>(doc).and_then(|cm| {
            // A targets ConfigMap must hold a document the adapter accepts.
            match cm["data"]["targets.json"].as_str() {
                Some(body) => kis_adapter::server::parse_targets(
                    body.as_bytes(),
                    kis_adapter::store::now_unix(),
                    kis_adapter::store::Source::ConfigMap,
                )
                .map(|_| cm.clone())
                .map_err(|e| format!("targets.json: {e}")),
                None => Ok(cm),
            }
        }),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => strict::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => strict::<ClusterRoleBinding>(doc),
        ("rbac.authorization.k8s.io/v1", "Role") => strict::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => strict::<RoleBinding>(doc),
        ("apps/v1", "Deployment") => strict::<Deployment>(doc),
        ("batch/v1", "Job") => strict::<k8s_openapi::api::batch::v1::Job>(doc),
        ("policy/v1", "PodDisruptionBudget") => strict::<PodDisruptionBudget>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => strict::<NetworkPolicy>(doc),
        ("apiregistration.k8s.io/v1", "APIService") => strict::<APIService>(doc),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => strict::<HorizontalPodAutoscaler>(doc),
        ("autoscaling/v2beta2", "HorizontalPodAutoscaler") => {
            // v2beta2 (Kubernetes <= 1.25) has the same spec as v2 minus per-rule tolerance;
            // k8s-openapi no longer ships it, so check it as v2 and forbid `tolerance`.
            if doc.to_string().contains("\"tolerance\"") {
                return Err("autoscaling/v2beta2 has no behavior.*.tolerance".into());
            }
            let mut v2 = doc.clone();
            v2["apiVersion"] = "autoscaling/v2".into();
            strict::<HorizontalPodAutoscaler>(&v2)
        }
        ("cert-manager.io/v1", "Issuer" | "Certificate") => strict::<CmObject>(doc),
        _ => Err(format!("no typed check for {av} {kind}")),
    }
    .map(|_| kind)
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Files and folders under deploy/ that hold no Kubernetes objects: the kustomization, the
/// Prometheus jobs, and what `gen-certs.sh deploy/generated` writes (checked by the gen-certs
/// test instead).
const NOT_OBJECTS: [&str; 3] = ["kustomization.yaml", "prometheus", "generated"];

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if NOT_OBJECTS.contains(&name.as_str()) {
            continue;
        }
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_manifest_parses_strictly() {
    let mut kinds = Vec::new();
    for f in yaml_files(&deploy_dir()) {
        for d in docs(&f) {
            match check(&d) {
                Ok(k) => kinds.push(k),
                Err(e) => panic!(
                    "{}: {} {}: {e}",
                    f.display(),
                    d["kind"],
                    d["metadata"]["name"]
                ),
            }
        }
    }
    for want in [
        "Namespace",
        "ServiceAccount",
        "ClusterRoleBinding",
        "RoleBinding",
        "ClusterRole",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "APIService",
        "HorizontalPodAutoscaler",
        "Certificate",
        "Issuer",
        "NetworkPolicy",
        "Job",
        "PersistentVolumeClaim",
        "Role",
    ] {
        assert!(kinds.iter().any(|k| k == want), "deploy/ has no {want}");
    }
}

#[test]
fn the_strict_check_catches_unknown_fields() {
    let mut d = docs(&deploy_dir().join("pdb.yaml")).remove(0);
    assert!(check(&d).is_ok());
    d["spec"]["minAvailabel"] = 1.into();
    assert!(check(&d).unwrap_err().contains("minAvailabel"));
    let mut h = docs(&deploy_dir().join("v1.20/hpa-gpu.yaml")).remove(0);
    assert!(check(&h).is_ok());
    h["spec"]["behavior"]["scaleUp"]["tolerance"] = "0".into();
    assert!(check(&h).is_err());
}

#[test]
fn deployment_and_hpas_follow_the_contract() {
    let d: Deployment =
        serde_json::from_value(docs(&deploy_dir().join("deployment.yaml")).remove(0)).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some());
    let res = c.resources.clone().unwrap();
    assert!(res.requests.is_some() && res.limits.is_some());
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .iter()
            .any(|a| a == "--secure-port=6443")
    );

    let svc: Service =
        serde_json::from_value(docs(&deploy_dir().join("service.yaml")).remove(0)).unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 443);

    for f in ["hpa-gpu.yaml", "hpa-cpu.yaml"] {
        let h: HorizontalPodAutoscaler =
            serde_json::from_value(docs(&deploy_dir().join(f)).remove(0)).unwrap();
        let spec = h.spec.unwrap();
        let m = &spec.metrics.unwrap()[0];
        assert_eq!(m.type_, "External");
        let ext = m.external.as_ref().unwrap();
        assert_eq!(ext.target.type_, "AverageValue");
        assert_eq!(ext.target.average_value.as_ref().unwrap().0, "1");
        let b = spec.behavior.unwrap();
        assert_eq!(b.scale_up.unwrap().tolerance.unwrap().0, "0");
        assert_eq!(b.scale_down.unwrap().tolerance.unwrap().0, "0");
    }
}

#[tokio::test]
async fn gen_certs_output_parses_and_the_adapter_serves_it_to_the_aggregator_name() {
    let out = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("bash")
        .arg(deploy_dir().join("gen-certs.sh"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "gen-certs.sh: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    for f in ["secrets.yaml", "apiservice.yaml"] {
        for d in docs(&out.path().join(f)) {
            check(&d).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
    let api: APIService =
        serde_json::from_value(docs(&out.path().join("apiservice.yaml")).remove(0)).unwrap();
    let ca = api.spec.unwrap().ca_bundle.unwrap().0;
    assert_eq!(ca, std::fs::read(out.path().join("ca.crt")).unwrap());
    // The aggregator dials with server name kis-adapter.kis-system.svc and the caBundle.
    let p = |n: &str| out.path().join(n).display().to_string();
    let r = crate::common::start(&[
        format!("--tls-cert-file={}", p("tls.crt")),
        format!("--tls-private-key-file={}", p("tls.key")),
        "--no-delegated-authorization".into(),
    ])
    .await;
    let client =
        kis_adapter::client::TlsClient::new(r.addr, "kis-adapter.kis-system.svc", &ca, None)
            .unwrap();
    let mut c = client.connect().await.unwrap();
    assert_eq!(c.get_ok("/readyz").await.unwrap(), b"ok");
    r.shutdown().await;
}

/// Every document in deploy/ (recursively), with its file.
fn all_docs() -> Vec<(PathBuf, Value)> {
    yaml_files(&deploy_dir())
        .into_iter()
        .flat_map(|f| docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn of_kind<'a>(all: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

/// Namespaces: the `restricted` Pod Security Standard enforced, audited and warned.
#[test]
fn every_namespace_is_labelled_restricted() {
    let all = all_docs();
    let namespaces = of_kind(&all, "Namespace");
    assert!(!namespaces.is_empty());
    for ns in namespaces {
        for mode in ["enforce", "audit", "warn"] {
            let key = format!("pod-security.kubernetes.io/{mode}");
            assert_eq!(
                ns["metadata"]["labels"][&key], "restricted",
                "{}: {key}",
                ns["metadata"]["name"]
            );
        }
    }
    // Every workload lives in a namespace defined (and so labelled) here.
    let names: Vec<&Value> = of_kind(&all, "Namespace")
        .iter()
        .map(|n| &n["metadata"]["name"])
        .collect();
    for d in of_kind(&all, "Deployment") {
        assert!(
            names.contains(&&d["metadata"]["namespace"]),
            "{}",
            d["metadata"]["name"]
        );
    }
}

/// Workloads: restricted-compliant pods, bounded resources, all three probes and a grace period,
/// for every Deployment; then what each one needs on top (below).
#[test]
fn every_workload_is_restricted_drains_and_has_probes() {
    let all = all_docs();
    let deployments = of_kind(&all, "Deployment");
    let names: Vec<&str> = deployments
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    for want in ["kis-adapter", "triton-gpu", "triton-cpu", "kis-agent"] {
        assert!(names.contains(&want), "deploy/ has no Deployment {want}");
    }
    for d in deployments {
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(pod[host].is_null() || pod[host] == false, "{name}: {host}");
        }
        for v in pod["volumes"].as_array().into_iter().flatten() {
            assert!(v["hostPath"].is_null(), "{name}: hostPath volume");
        }
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("terminationGracePeriodSeconds");
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
            assert!(sc["capabilities"]["add"].is_null(), "{name}");
            assert!(
                sc["privileged"].is_null() || sc["privileged"] == false,
                "{name}"
            );
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                assert!(c[probe].is_object(), "{name}: {probe}");
            }
            for r in ["requests", "limits"] {
                for k in ["cpu", "memory"] {
                    assert!(
                        c["resources"][r][k].is_string(),
                        "{name}: resources.{r}.{k}"
                    );
                }
            }
            match name.as_str() {
                "kis-adapter" => adapter_container(&name, pod, c, grace),
                "triton-gpu" | "triton-cpu" => triton_container(&name, c, grace),
                "kis-agent" => agent_container(&name, d, c),
                other => panic!("no governance check for Deployment {other}"),
            }
        }
    }
    for (file, image) in [
        ("Containerfile", "kis-adapter:0.1.0"),
        ("Containerfile.agent", "kis-agent:0.1.0"),
    ] {
        let cf = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        let froms: Vec<&str> = cf.lines().filter(|l| l.starts_with("FROM ")).collect();
        assert!(froms.len() >= 2, "{file}: multi-stage: {froms:?}");
        assert!(
            froms.last().unwrap().contains("distroless"),
            "{file}: {froms:?}"
        );
        let user = cf.lines().rfind(|l| l.starts_with("USER ")).expect("USER");
        assert!(!user.contains("root") && user != "USER 0", "{file}: {user}");
        assert!(cf.contains(image), "{file}");
    }
}

/// kis-adapter: a priority class for an aggregated API, its readiness path, a drain that fits
/// the grace period, the image the Containerfile builds.
fn adapter_container(name: &str, pod: &Value, c: &Value, grace: u64) {
    assert!(
        ["system-cluster-critical", "system-node-critical"]
            .contains(&pod["priorityClassName"].as_str().unwrap_or_default()),
        "{name}: priorityClassName {}",
        pod["priorityClassName"]
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name}: preStop sleep"));
    // The drain fits the grace period: preStop, then the adapter's own shutdown grace.
    let shutdown = flag_secs(c, "--shutdown-grace=").unwrap_or(5);
    assert!(
        pre_stop + shutdown < grace,
        "{name}: {pre_stop} + {shutdown} >= {grace}"
    );
    assert_eq!(c["image"], "kis-adapter:0.1.0", "{name}");
}

/// A Triton pool: Ready only after the warm-up inference (the startup probe), strict readiness,
/// a preStop drain and Triton's exit timeout inside the grace period, the `metrics` port the
/// Prometheus job keeps, and one GPU per pod in the GPU pool only.
fn triton_container(name: &str, c: &Value, grace: u64) {
    let warm = &c["startupProbe"]["exec"]["command"];
    assert_eq!(
        warm[0], "python3",
        "{name}: the warm-up runs with the image's python3"
    );
    let script = warm[2].as_str().unwrap_or_default();
    for needle in ["/v2/repository/index", "/infer", "inference_count"] {
        assert!(script.contains(needle), "{name}: warm-up lacks {needle}");
    }
    assert!(
        c["startupProbe"]["timeoutSeconds"].as_u64().unwrap_or(1) >= 10,
        "{name}: a first inference may take seconds"
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready",
        "{name}"
    );
    let args = container_args(c);
    assert!(args.contains(&"--strict-readiness=true"), "{name}");
    assert!(
        args.iter().any(|a| a.starts_with("--load-model=")),
        "{name}"
    );
    let sleep = &c["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(sleep[0], "sleep", "{name}: preStop");
    let pre_stop: u64 = sleep[1].as_str().unwrap().parse().unwrap();
    let exit = flag_secs(c, "--exit-timeout-secs=").expect("--exit-timeout-secs");
    assert!(
        pre_stop >= 2 && pre_stop + exit < grace,
        "{name}: {pre_stop} + {exit} >= {grace}"
    );
    let ports: Vec<(&str, u64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        ports.contains(&("metrics", 8002)) && ports.contains(&("http", 8000)),
        "{name}"
    );
    let gpus = &c["resources"]["limits"]["nvidia.com/gpu"];
    assert_eq!(
        gpus.is_null(),
        name == "triton-cpu",
        "{name}: nvidia.com/gpu {gpus}"
    );
}

/// kis-agent: shadow mode (the safe default), one replica replaced by Recreate, the publish
/// token from a Secret and the policy from a ConfigMap.
fn agent_container(name: &str, d: &Value, c: &Value) {
    assert_eq!(d["spec"]["replicas"], 1, "{name}");
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate", "{name}");
    let args = container_args(c);
    assert_eq!(args[0], "live", "{name}");
    assert!(args.contains(&"--mode=shadow"), "{name}: {args:?}");
    // Both pools of kis-serving, as the HPAs name them.
    for pool in [
        "--pool=gpu=kis-serving/triton-gpu",
        "--pool=cpu=kis-serving/triton-cpu",
    ] {
        assert!(args.contains(&pool), "{name}: {pool}");
    }
    for flag in [
        "--prometheus=",
        "--adapter=",
        "--adapter-ca=",
        "--token-file=",
        "--policy=",
        "--metrics-addr=",
    ] {
        assert!(args.iter().any(|a| a.starts_with(flag)), "{name}: {flag}");
    }
    let vols = &d["spec"]["template"]["spec"]["volumes"];
    let vol = |kind: &str| {
        vols.as_array()
            .unwrap()
            .iter()
            .find(|v| v[kind].is_object())
            .unwrap_or_else(|| panic!("{name}: no {kind} volume"))
            .clone()
    };
    assert_eq!(vol("configMap")["configMap"]["name"], "kis-agent-policy");
    assert_eq!(vol("secret")["secret"]["secretName"], "kis-agent-adapter");
    assert_eq!(c["image"], "kis-agent:0.1.0", "{name}");
}

/// A container's args.
fn container_args(c: &Value) -> Vec<&str> {
    c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The seconds in `FLAG=Ns` or `FLAG=N` among the container's args.
fn flag_secs(c: &Value, flag: &str) -> Option<u64> {
    c["args"]
        .as_array()?
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix(flag))
        .map(|v| v.trim_end_matches('s').parse::<u64>().unwrap())
}

/// Network: default deny in every namespace with a workload, then the three explicit allows.
#[test]
fn network_policy_denies_by_default_and_allows_exactly_three_callers() {
    let all = all_docs();
    let policies = of_kind(&all, "NetworkPolicy");
    for d in of_kind(&all, "Deployment") {
        let ns = &d["metadata"]["namespace"];
        let deny = policies.iter().find(|p| {
            &p["metadata"]["namespace"] == ns
                && p["spec"]["podSelector"] == serde_json::json!({})
                && p["spec"]["policyTypes"] == serde_json::json!(["Ingress", "Egress"])
                && p["spec"]["ingress"].is_null()
                && p["spec"]["egress"].is_null()
        });
        assert!(deny.is_some(), "no default-deny NetworkPolicy in {ns}");
    }
    let ingress: Vec<&Value> = policies
        .iter()
        .flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten())
        .collect();
    let port = |r: &Value| r["ports"][0]["port"].as_u64().unwrap_or(0);
    let from_pods = |r: &Value, ns: &str, app: &str| {
        r["from"].as_array().into_iter().flatten().any(|f| {
            f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == ns
                && f["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == app
        })
    };
    assert!(
        ingress
            .iter()
            .any(|r| port(r) == 6443 && r["from"][0]["ipBlock"].is_object()),
        "aggregator"
    );
    assert!(
        ingress
            .iter()
            .any(|r| port(r) == 6443 && from_pods(r, "kis-agent", "kis-agent")),
        "agent"
    );
    let metrics: Vec<&&Value> = ingress.iter().filter(|r| port(r) == 9090).collect();
    assert!(!metrics.is_empty(), "Prometheus");
    for r in metrics {
        // /metrics is for Prometheus only: a pod selector, never an open rule.
        assert!(from_pods(r, "monitoring", "prometheus"), "{r}");
        assert_eq!(r["from"].as_array().unwrap().len(), 1, "{r}");
    }
    for r in &ingress {
        assert!(
            !r["from"].is_null(),
            "an ingress rule without `from` admits everyone: {r}"
        );
        assert!(
            !r["ports"].is_null(),
            "an ingress rule without ports admits every port: {r}"
        );
    }
}

/// A file under deploy/ as text.
fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// Whether a (Cluster)RoleBinding binds the ServiceAccount `ns/name`.
fn binds_service_account(b: &Value, ns: &str, name: &str) -> bool {
    b["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == ns)
}

/// The port numbers of a NetworkPolicy rule.
fn rule_ports(r: &Value) -> Vec<u64> {
    r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect()
}

/// RBAC: the adapter holds only what it uses (SubjectAccessReview, the authentication reader
/// role, its own targets ConfigMap); no system:auth-delegator (TokenReview is never called).
#[test]
fn rbac_grants_only_what_the_adapter_uses() {
    let all = all_docs();
    let is_adapter = |b: &Value| binds_service_account(b, "kis-system", "kis-adapter");
    let mut roles = Vec::new();
    for b in of_kind(&all, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&all, "RoleBinding"))
    {
        assert_ne!(
            b["roleRef"]["name"], "system:auth-delegator",
            "{}",
            b["metadata"]["name"]
        );
        if is_adapter(b) {
            roles.push(b["roleRef"]["name"].as_str().unwrap().to_string());
        }
    }
    roles.sort();
    assert_eq!(
        roles,
        [
            "extension-apiserver-authentication-reader",
            "kis-adapter-subjectaccessreviewer",
            "kis-adapter-targets-reader"
        ]
    );
    let rules_of = |name: &str| -> Value {
        all.iter()
            .map(|(_, d)| d)
            .find(|d| {
                (d["kind"] == "ClusterRole" || d["kind"] == "Role") && d["metadata"]["name"] == name
            })
            .map(|d| d["rules"].clone())
            .unwrap()
    };
    assert_eq!(
        rules_of("kis-adapter-subjectaccessreviewer"),
        serde_json::json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}])
    );
    let t = rules_of("kis-adapter-targets-reader");
    assert_eq!(
        t[0]["resourceNames"],
        serde_json::json!(["kis-adapter-targets"])
    );
    assert_eq!(t.as_array().unwrap().len(), 1);
}

/// Example HPAs reproduce the published N: AverageValue 1, no stabilisation window in either
/// direction (a scale-down window would hold the old N for minutes after a lower target is
/// published), policies that allow the whole step in one sync, tolerance 0 where the API has it.
#[test]
fn example_hpas_follow_the_exact_n_recipe() {
    let all = all_docs();
    let hpas = of_kind(&all, "HorizontalPodAutoscaler");
    assert!(hpas.len() >= 4, "v2 and v1.20 examples");
    for h in hpas {
        let name = format!("{} {}", h["apiVersion"], h["metadata"]["name"]);
        let spec = &h["spec"];
        for m in spec["metrics"].as_array().unwrap() {
            assert_eq!(m["type"], "External", "{name}");
            assert_eq!(m["external"]["target"]["type"], "AverageValue", "{name}");
            assert_eq!(m["external"]["target"]["averageValue"], "1", "{name}");
        }
        for dir in ["scaleUp", "scaleDown"] {
            let b = &spec["behavior"][dir];
            assert_eq!(b["stabilizationWindowSeconds"], 0, "{name} {dir}");
            assert_ne!(b["selectPolicy"], "Disabled", "{name} {dir}");
            let pct = b["policies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["type"] == "Percent")
                .filter_map(|p| p["value"].as_u64())
                .max()
                .unwrap_or(0);
            assert!(
                pct >= 100,
                "{name} {dir}: a Percent policy of at least 100 %"
            );
            if h["apiVersion"] == "autoscaling/v2" {
                assert_eq!(b["tolerance"], "0", "{name} {dir}");
            }
        }
    }
}

/// Network, the serving and agent namespaces: Triton's metrics port only from Prometheus, and the
/// agent's egress to exactly the adapter's publish port, Prometheus, the apiserver and DNS.
#[test]
fn serving_and_agent_network_policies_allow_only_their_paths() {
    let all = all_docs();
    let policies = of_kind(&all, "NetworkPolicy");
    let in_ns = |ns: &str| -> Vec<&Value> {
        policies
            .iter()
            .filter(|p| p["metadata"]["namespace"] == ns)
            .copied()
            .collect()
    };
    let prometheus = serde_json::json!([{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]);
    let rules = |ps: &[&Value], dir: &str| -> Vec<Value> {
        ps.iter()
            .flat_map(|p| p["spec"][dir].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let serving = rules(&in_ns("kis-serving"), "ingress");
    for r in &serving {
        let ports = rule_ports(r);
        if ports.contains(&8002) {
            assert_eq!(ports, [8002], "metrics shares a rule: {r}");
            assert_eq!(r["from"], prometheus, "{r}");
        } else {
            assert!(ports.iter().all(|p| [8000, 8001].contains(p)), "{r}");
        }
    }
    assert!(serving.iter().any(|r| r["ports"][0]["port"] == 8002));
    let agent = in_ns("kis-agent");
    let ingress = rules(&agent, "ingress");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(ingress[0]["from"], prometheus);
    assert_eq!(ingress[0]["ports"][0]["port"], 9091);
    let egress = rules(&agent, "egress");
    let to = |ns: &str, app: &str, port: u64| {
        egress.iter().any(|r| {
            r["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == ns
                && r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == app
                && r["ports"] == serde_json::json!([{"protocol": "TCP", "port": port}])
        })
    };
    assert!(
        to("kis-system", "kis-adapter", 6443),
        "agent -> adapter publish"
    );
    assert!(to("monitoring", "prometheus", 9090), "agent -> Prometheus");
    for r in &egress {
        let ports = rule_ports(r);
        assert!(
            ports.iter().all(|p| [443, 6443, 9090, 53].contains(p)),
            "{r}"
        );
    }
}

/// RBAC: kis-agent reads pods, deployments and replicasets in kis-serving, and holds nothing
/// else (no ClusterRoleBinding, no write verb).
#[test]
fn rbac_lets_the_agent_only_read_the_serving_pools() {
    let all = all_docs();
    let is_agent = |b: &Value| binds_service_account(b, "kis-agent", "kis-agent");
    assert!(
        !of_kind(&all, "ClusterRoleBinding")
            .into_iter()
            .any(is_agent)
    );
    let bindings: Vec<&Value> = of_kind(&all, "RoleBinding")
        .into_iter()
        .filter(|b| is_agent(b))
        .collect();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0]["metadata"]["namespace"], "kis-serving");
    assert_eq!(bindings[0]["roleRef"]["kind"], "Role");
    let role = of_kind(&all, "Role")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"] == bindings[0]["roleRef"]["name"]
                && r["metadata"]["namespace"] == "kis-serving"
        })
        .expect("the agent's Role");
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]}
        ])
    );
}

/// kustomization.yaml lists every object file of the product (a manifest added to deploy/ and
/// forgotten there would silently not be installed), and the policy it packs is the shipped one.
#[test]
fn the_kustomization_installs_every_manifest_and_the_shipped_policy() {
    let k: Value = serde_yaml::from_str(&read("kustomization.yaml")).unwrap();
    let resources: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    // Not installed by `apply -k`: the template gen-certs.sh fills, the cert-manager variant,
    // the pre-1.23 HPAs, the load-generation Job, and a patch that is all comments.
    let optional = [
        "apiservice.yaml",
        "apiservice-cert-manager.yaml",
        "v1.20/hpa-cpu.yaml",
        "v1.20/hpa-gpu.yaml",
        "loadgen/job.yaml",
        "loadgen/recording-rules.yaml",
        "agent/patch-gpu-node.yaml",
    ];
    for f in yaml_files(&deploy_dir()) {
        let rel = f
            .strip_prefix(deploy_dir())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            resources.contains(&rel.as_str()) || optional.contains(&rel.as_str()),
            "kustomization.yaml does not list {rel}"
        );
    }
    for r in &resources {
        assert!(
            deploy_dir().join(r).is_file() || r.starts_with("generated/"),
            "kustomization.yaml lists missing {r}"
        );
    }
    for g in ["generated/secrets.yaml", "generated/apiservice.yaml"] {
        assert!(resources.contains(&g), "{g}");
    }
    let cm = &k["configMapGenerator"][0];
    assert_eq!(cm["name"], "kis-agent-policy");
    assert_eq!(cm["namespace"], "kis-agent");
    let file = cm["files"][0].as_str().unwrap();
    assert_eq!(
        std::fs::read(deploy_dir().join(file)).unwrap(),
        std::fs::read(deploy_dir().join("../agent/policies/default.kpol")).unwrap(),
        "{file} differs from agent/policies/default.kpol: copy it again"
    );
}

/// The Prometheus jobs: Triton's Ready pods' `metrics` port in kis-serving, labelled as the
/// testbed labels them (namespace, pod, app), and the adapter's and agent's metrics ports.
#[test]
fn the_prometheus_jobs_keep_the_metrics_ports_with_the_testbed_labels() {
    let c: Value = serde_yaml::from_str(&read("prometheus/scrape-configs.yml")).unwrap();
    let jobs = c["scrape_configs"].as_array().unwrap();
    let job = |name: &str| {
        jobs.iter()
            .find(|j| j["job_name"] == name)
            .unwrap_or_else(|| panic!("no job {name}"))
    };
    let triton = job("kis-triton");
    assert_eq!(
        triton["kubernetes_sd_configs"][0],
        serde_json::json!({"role": "pod", "namespaces": {"names": ["kis-serving"]}})
    );
    let relabel = triton["relabel_configs"].as_array().unwrap();
    let keeps: Vec<(String, String)> = relabel
        .iter()
        .filter(|r| r["action"] == "keep")
        .map(|r| {
            (
                r["source_labels"][0].as_str().unwrap().into(),
                r["regex"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(keeps.contains(&(
        "__meta_kubernetes_pod_container_port_name".into(),
        "metrics".into()
    )));
    assert!(keeps.contains(&("__meta_kubernetes_pod_ready".into(), "true".into())));
    let mut targets: Vec<&str> = relabel
        .iter()
        .filter_map(|r| r["target_label"].as_str())
        .collect();
    targets.sort();
    assert_eq!(targets, ["app", "namespace", "pod"]);
    for (name, regex) in [
        ("kis-adapter", "kis-adapter;metrics"),
        ("kis-agent", "kis-agent;metrics"),
    ] {
        let j = job(name);
        assert!(
            j["relabel_configs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "keep" && r["regex"] == regex),
            "{name}"
        );
    }
}

/// The Grafana dashboard: load, replicas, p95, decisions and fallbacks by reason, each panel
/// with a query on the metric it is about.
#[test]
fn the_dashboard_shows_load_replicas_p95_decisions_and_fallbacks() {
    let d: Value = serde_json::from_str(&read("grafana/kis.json")).unwrap();
    let exprs: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let has = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    for needle in [
        "nv_inference_request_success",
        "up{job=\"kis-triton\"}",
        "quantile=\"0.95\"",
        "kis_agent_decisions_total",
        "sum by (reason) (increase(kis_agent_fallbacks_total",
        "kis_agent_decision_seconds_bucket",
    ] {
        assert!(has(needle), "no panel queries {needle}");
    }
}
