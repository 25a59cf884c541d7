//! `kubectl apply -k deploy/` as an operator runs it: kubectl's own kustomize (the cached
//! v1.20.2) renders deploy/kustomization.yaml, and the real apiserver accepts every object in a
//! server-side dry run (admission, defaulting and validation of each object, nothing stored).
//! A private control plane, so the product's namespaces and cluster objects do not meet the
//! shared one's tests. v1.20 lacks autoscaling/v2, policy/v1 and the preStop `sleep` action,
//! so the rendered copy uses deploy/v1.20/'s HPAs, leaves out pdb.yaml and the adapter's preStop,
//! as deploy/README.md tells older clusters to.

use std::path::Path;
use std::process::Command;

use kis_e2e::cluster::{ControlPlane, ControlPlaneConfig};

use crate::common::workspace;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if name == "generated" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

#[test]
fn the_kustomization_renders_and_the_apiserver_accepts_every_object() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("deploy");
    copy_dir(&workspace().join("deploy"), &d);
    let certs = Command::new("bash")
        .arg(d.join("gen-certs.sh"))
        .arg(d.join("generated"))
        .output()
        .unwrap();
    assert!(
        certs.status.success(),
        "{}",
        String::from_utf8_lossy(&certs.stderr)
    );
    let k = d.join("kustomization.yaml");
    edit(&k, "\n- hpa-gpu.yaml\n", "\n- v1.20/hpa-gpu.yaml\n");
    edit(&k, "\n- hpa-cpu.yaml\n", "\n- v1.20/hpa-cpu.yaml\n");
    edit(&k, "\n- pdb.yaml\n", "\n");
    edit(
        &d.join("deployment.yaml"),
        "        lifecycle:\n          preStop:\n            sleep: {seconds: 5}\n",
        "",
    );

    let cp = ControlPlane::start(&ControlPlaneConfig::default()).unwrap();
    let rendered = cp.admin.run(&["kustomize", d.to_str().unwrap()]).unwrap();
    let objects =
        rendered.matches("\nkind: ").count() + usize::from(rendered.starts_with("kind: "));
    let file = tmp.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    // Namespaces for real first: a dry-run Namespace does not exist for the objects inside it.
    for ns in [
        "namespace.yaml",
        "serving/namespace.yaml",
        "agent/namespace.yaml",
    ] {
        cp.admin
            .run(&["apply", "-f", d.join(ns).to_str().unwrap()])
            .unwrap();
    }
    let out = cp
        .admin
        .run(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("the apiserver refused an object: {e}"));
    let accepted = out
        .lines()
        .filter(|l| l.ends_with("(server dry run)"))
        .count();
    assert_eq!(accepted, objects, "{out}");
    assert!(objects >= 40, "{objects} objects rendered");
    for want in [
        "deployment.apps/kis-adapter",
        "deployment.apps/triton-gpu",
        "deployment.apps/triton-cpu",
        "deployment.apps/kis-agent",
        "configmap/kis-agent-policy-",
        "secret/kis-agent-adapter",
        "role.rbac.authorization.k8s.io/kis-agent-reader",
        "networkpolicy.networking.k8s.io/kis-agent-egress",
        "horizontalpodautoscaler.autoscaling/triton-cpu",
        "apiservice.apiregistration.k8s.io/v1beta1.external.metrics.k8s.io",
    ] {
        assert!(out.contains(want), "{want} not in:\n{out}");
    }
    // The generated policy ConfigMap is what the agent's Deployment mounts (name with hash).
    let cm = out
        .lines()
        .find_map(|l| l.strip_prefix("configmap/kis-agent-policy-"))
        .unwrap();
    let hash = cm.split_whitespace().next().unwrap();
    assert!(rendered.contains(&format!("name: kis-agent-policy-{hash}")));
}
