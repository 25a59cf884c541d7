//! Tests that need only the control plane: readiness, RBAC, kubectl and the controllers.

use std::time::Duration;

use kis_e2e::cluster::{ControlPlane, ControlPlaneConfig};
use kis_e2e::wait_until;

use crate::common::{CONTROLLER_BOUND, cluster, deployment_yaml, namespace, replicas};

#[test]
fn apiserver_is_ready_and_is_the_cached_build() {
    let cp = cluster();
    let readyz = cp.admin.run(&["get", "--raw", "/readyz"]).unwrap();
    assert_eq!(readyz.trim(), "ok");
    let version = cp.admin.raw_json("/version").unwrap();
    assert_eq!(version["gitVersion"], "v1.20.2", "{version}");
    // The aggregator is part of this apiserver: its own group is served.
    let groups = cp.admin.raw_json("/apis").unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"apiregistration.k8s.io"), "{names:?}");
    assert!(names.contains(&"autoscaling"), "{names:?}");
    cp.check_running().unwrap();
}

#[test]
fn rbac_denies_the_unprivileged_user_until_a_role_is_bound() {
    let cp = cluster();
    let ns = namespace("kis-rbac");
    let denied = cp.nobody.output(&["-n", &ns, "get", "pods"]).unwrap();
    assert!(!denied.status.success(), "an unbound user listed pods");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("Forbidden"), "{stderr}");
    assert!(stderr.contains("kis-nobody"), "{stderr}");

    let can = cp
        .nobody
        .output(&["-n", &ns, "auth", "can-i", "list", "deployments"])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");
    let admin_can = cp
        .admin
        .run(&["-n", &ns, "auth", "can-i", "list", "deployments"])
        .unwrap();
    assert_eq!(admin_can.trim(), "yes");

    // The same certificate is accepted once RBAC allows it: authentication was never the issue.
    cp.admin
        .run(&[
            "-n",
            &ns,
            "create",
            "role",
            "pod-reader",
            "--verb=list",
            "--resource=pods",
        ])
        .unwrap();
    cp.admin
        .run(&[
            "-n",
            &ns,
            "create",
            "rolebinding",
            "nobody-reads-pods",
            "--role=pod-reader",
            "--user=kis-nobody",
        ])
        .unwrap();
    wait_until("the role binding to take effect", CONTROLLER_BOUND, || {
        cp.nobody
            .run(&["-n", &ns, "get", "pods"])
            .map_err(|e| e.to_string())
    })
    .unwrap();
    // Still nothing outside that namespace.
    let other = cp.nobody.output(&["-n", "default", "get", "pods"]).unwrap();
    assert!(!other.status.success());
}

#[test]
fn deployment_applied_with_kubectl_is_reconciled_and_scaled() {
    let cp = cluster();
    let ns = namespace("kis-deploy");
    cp.admin.apply(&deployment_yaml(&ns, "web", 2)).unwrap();
    assert_eq!(replicas(&ns, "web"), 2);

    // The deployment controller runs: it creates a ReplicaSet with the same count.
    let rs_replicas = wait_until("a ReplicaSet for web", CONTROLLER_BOUND, || {
        let list = cp
            .admin
            .json(&["-n", &ns, "get", "replicasets", "-l", "app=web"])
            .map_err(|e| e.to_string())?;
        list["items"]
            .as_array()
            .and_then(|items| items.first())
            .and_then(|rs| rs["spec"]["replicas"].as_i64())
            .ok_or_else(|| format!("no ReplicaSet yet: {list}"))
    })
    .unwrap();
    assert_eq!(rs_replicas, 2);

    cp.admin
        .run(&["-n", &ns, "scale", "deployment/web", "--replicas=3"])
        .unwrap();
    assert_eq!(replicas(&ns, "web"), 3);
    // The scale subresource the HPA uses reports the same.
    let scale = cp
        .admin
        .raw_json(&format!(
            "/apis/apps/v1/namespaces/{ns}/deployments/web/scale"
        ))
        .unwrap();
    assert_eq!(scale["spec"]["replicas"], 3, "{scale}");
}

#[test]
fn dropping_a_control_plane_stops_every_process_and_removes_its_files() {
    // A second, private control plane (the shared one lives until the binary exits).
    let cp = ControlPlane::start(&ControlPlaneConfig::default()).unwrap();
    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    // etcd, kube-apiserver, kube-controller-manager, kube-scheduler.
    assert_eq!(pids.len(), 4, "{pids:?}");
    for pid in &pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    assert!(dir.join("pki/cluster-ca.crt").exists());
    drop(cp);
    // Reaped children disappear from /proc; nothing may linger in their process groups.
    wait_until(
        "the processes to be gone",
        Duration::from_secs(10),
        || match pids
            .iter()
            .find(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            Some(p) => Err(format!("pid {p} still there")),
            None => Ok(()),
        },
    )
    .unwrap();
    if std::env::var("KIS_E2E_KEEP").as_deref() != Ok("1") {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}
