//! deploy/serving/ as the testbed applies it: the same objects a real cluster gets, with only the
//! differences the testbed must have (listed in [`for_testbed`] and tests/README.md). One place,
//! so the testbed cannot drift from the real-cluster manifests.

use std::path::Path;

use serde_json::Value;

use crate::Error;
use crate::kubectl::Kubectl;

/// The real-cluster serving manifests, relative to the repository root.
pub const DIR: &str = "deploy/serving";

/// The emulated model each Triton Deployment serves on the testbed (`--load-model`).
pub const TESTBED_MODELS: [(&str, &str); 2] = [
    ("triton-gpu", "emulated-gpu"),
    ("triton-cpu", "emulated-cpu"),
];

/// Reads every object in `workspace/deploy/serving/` (with kubectl's client-side parser, as
/// `kubectl apply -f DIR` would) and rewrites it for the testbed.
pub fn objects(kubectl: &Kubectl, workspace: &Path) -> Result<Vec<Value>, Error> {
    let dir = workspace.join(DIR);
    let objects = kubectl.json_objects(&[
        "create",
        "--dry-run=client",
        "-f",
        &dir.display().to_string(),
    ])?;
    let out: Vec<Value> = objects.into_iter().filter_map(for_testbed).collect();
    for (d, _) in TESTBED_MODELS {
        if !out
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == d)
        {
            return Err(Error::Config(format!(
                "{} has no Deployment {d}",
                dir.display()
            )));
        }
    }
    Ok(out)
}

/// One object as the testbed applies it, or None when it has no place there. The differences:
/// - a PersistentVolumeClaim is dropped, and so is every volume (and mount) that uses one: the
///   testbed has no storage, and the process kubelet gives Triton the testbed's model repository
///   in place of `--model-repository`;
/// - a Triton Deployment's `--load-model` names the emulated model ([`TESTBED_MODELS`]) instead
///   of the real one.
///
/// Image, command, probes (the warm-up startup probe included), preStop, grace period, ports,
/// resources and labels stay as they are. What the process kubelet itself ignores (the image,
/// security contexts, other volumes) is in tests/README.md.
pub fn for_testbed(mut o: Value) -> Option<Value> {
    if o["kind"] == "PersistentVolumeClaim" {
        return None;
    }
    if o["kind"] != "Deployment" {
        return Some(o);
    }
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod = &mut o["spec"]["template"]["spec"];
    let mut claimed = Vec::new();
    if let Some(vols) = pod["volumes"].as_array_mut() {
        vols.retain(|v| {
            let pvc = v["persistentVolumeClaim"].is_object();
            if pvc {
                claimed.push(v["name"].clone());
            }
            !pvc
        });
    }
    let model = TESTBED_MODELS
        .iter()
        .find(|(d, _)| *d == name)
        .map(|(_, m)| *m);
    for c in pod["containers"].as_array_mut().into_iter().flatten() {
        if let Some(mounts) = c["volumeMounts"].as_array_mut() {
            mounts.retain(|m| !claimed.contains(&m["name"]));
        }
        let Some(model) = model else { continue };
        for a in c["args"].as_array_mut().into_iter().flatten() {
            if a.as_str().is_some_and(|s| s.starts_with("--load-model=")) {
                *a = Value::from(format!("--load-model={model}"));
            }
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_model_and_the_claimed_volume_change() {
        let d = json!({"kind": "Deployment", "metadata": {"name": "triton-cpu"},
            "spec": {"template": {"spec": {
                "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "m"}},
                            {"name": "tmp", "emptyDir": {}}],
                "containers": [{"name": "triton", "image": "img", "command": ["tritonserver"],
                    "args": ["--model-repository=/models", "--load-model=image", "--exit-timeout-secs=20"],
                    "volumeMounts": [{"name": "models", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}],
                    "startupProbe": {"exec": {"command": ["python3", "-c", "x"]}}}]}}}});
        let t = for_testbed(d.clone()).unwrap();
        let c = &t["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["args"],
            json!([
                "--model-repository=/models",
                "--load-model=emulated-cpu",
                "--exit-timeout-secs=20"
            ])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"name": "tmp", "mountPath": "/tmp"}])
        );
        assert_eq!(
            t["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "tmp", "emptyDir": {}}])
        );
        assert_eq!(c["image"], "img");
        assert_eq!(
            c["startupProbe"],
            d["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        );
        assert!(for_testbed(json!({"kind": "PersistentVolumeClaim"})).is_none());
        let svc = json!({"kind": "Service", "metadata": {"name": "triton-cpu"}});
        assert_eq!(for_testbed(svc.clone()), Some(svc));
    }
}
