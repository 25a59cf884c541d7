//! kis-adapter's ConfigMap watches against the real kube-apiserver: client-CA rotation through
//! `kube-system/extension-apiserver-authentication`, and `--targets-configmap` shared by two
//! adapter processes. The adapters here run with a one-hour file resync, so only the watch can
//! explain a change they pick up.
//!
//! kube-apiserver's ClusterAuthenticationTrustController reconciles the authentication ConfigMap
//! by merging: it writes the union of the CAs already in the ConfigMap and its own, so a CA added
//! by hand stays until it is removed by hand (the test checks both on the live object).

use std::time::{Duration, Instant};

use kis_e2e::adapter::{API_PREFIX, Adapter, NAMESPACE};
use kis_e2e::pki::{Ca, CertKey, Usage};
use kis_e2e::wait_until;
use serde_json::Value;

use crate::common::{METRIC, adapter, cluster, namespace, workspace};

/// How fast a watched change must reach the adapter (seconds in practice; slack for a busy
/// 2-core machine).
const WATCH_BOUND: Duration = Duration::from_secs(20);

const AUTH_CM: &str = "extension-apiserver-authentication";

fn auth_configmap() -> Value {
    cluster()
        .admin
        .json(&["-n", "kube-system", "get", "configmap", AUTH_CM])
        .unwrap()
}

/// Replaces the ConfigMap's `client-ca-file` with `edit(current)`, retrying on a write conflict
/// (the controller may write in between).
fn edit_client_ca(edit: impl Fn(&str) -> String) {
    let cp = cluster();
    wait_until(
        "the authentication ConfigMap update",
        Duration::from_secs(30),
        || {
            let mut cm = auth_configmap();
            let cur = cm["data"]["client-ca-file"].as_str().unwrap_or_default();
            cm["data"]["client-ca-file"] = Value::from(edit(cur));
            cp.admin
                .run_stdin(&["replace", "-f", "-"], &cm.to_string())
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .unwrap();
}

/// The status of a metric read presenting `client` (no identity headers), or None when the TLS
/// handshake is refused.
fn status_as(a: &Adapter, path: &str, client: &CertKey) -> Option<u16> {
    a.request("GET", path, Some(client), &[], None)
        .ok()
        .map(|r| r.status)
}

/// The first line of a PEM certificate's base64 body, to find it in a bundle.
fn pem_marker(pem: &str) -> String {
    pem.lines()
        .find(|l| !l.starts_with("-----") && !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn client_ca_rotation_in_the_authentication_configmap_reaches_the_adapter_through_the_watch() {
    let cp = cluster();
    adapter();
    let a = Adapter::start_extra(
        cp,
        workspace(),
        "ca-watch",
        &["--authentication-config-resync=1h"],
    )
    .unwrap();
    let ns = namespace("kis-ca-watch");
    let path = format!("{API_PREFIX}/namespaces/{ns}/{METRIC}?labelSelector=target%3Dweb");

    let dir = cp.dir().join("rotation");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::new(&dir, "rotation-ca", "kis-e2e-rotation-ca").unwrap();
    let rotated = ca
        .issue("rotated-user", "kis-e2e-rotated", &[], &[], Usage::Client)
        .unwrap();
    let ca_pem = ca.cert_pem().unwrap();
    let marker = pem_marker(&ca_pem);

    // Before: the adapter does not know the CA, so the handshake is refused.
    assert_eq!(status_as(&a, &path, &rotated), None);
    // A cluster-CA user is authenticated (403: no RBAC), the control for what follows.
    assert_eq!(status_as(&a, &path, &cp.pki.nobody), Some(403));

    // Add the CA to the client-ca-file bundle.
    let t0 = Instant::now();
    edit_client_ca(|cur| format!("{}\n{ca_pem}", cur.trim_end()));
    wait_until(
        "the rotated CA's user to be authenticated (403 from the SubjectAccessReview)",
        WATCH_BOUND,
        || match status_as(&a, &path, &rotated) {
            Some(403) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- adapter log ---\n{}", a.log_tail()));
    eprintln!(
        "added client CA served after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(status_as(&a, &path, &cp.pki.nobody), Some(403));
    // The controller merges rather than overwrites: the CA is still in the live object a few
    // seconds later (it reacts to every update of the ConfigMap at once).
    std::thread::sleep(Duration::from_secs(3));
    let bundle = auth_configmap()["data"]["client-ca-file"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        bundle.contains(&marker),
        "kube-apiserver dropped the added CA"
    );
    assert!(
        a.log_tail()
            .contains("client CA and front-proxy settings reloaded")
    );

    // Remove it again: new connections with its certificates are refused.
    let t0 = Instant::now();
    edit_client_ca(|cur| {
        let mut out = String::new();
        let mut block = String::new();
        for line in cur.lines() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END") {
                if !block.contains(&marker) {
                    out.push_str(&block);
                }
                block.clear();
            }
        }
        out
    });
    wait_until(
        "the removed CA to be refused",
        WATCH_BOUND,
        || match status_as(&a, &path, &rotated) {
            None | Some(401) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- adapter log ---\n{}", a.log_tail()));
    eprintln!(
        "removed client CA refused after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // It stays removed (the controller only re-adds its own CAs), and cluster users still work.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !auth_configmap()["data"]["client-ca-file"]
            .as_str()
            .unwrap_or_default()
            .contains(&marker)
    );
    assert_eq!(status_as(&a, &path, &rotated).unwrap_or(401), 401);
    assert_eq!(status_as(&a, &path, &cp.pki.nobody), Some(403));
    a.check_running().unwrap();
}

const TARGETS_CM: &str = "kis-adapter-targets";

fn targets_doc(ns: &str, value: f64) -> String {
    let doc = serde_json::json!({"targets": [{"namespace": ns, "metric": METRIC,
        "labels": {"target": "web"}, "value": value}]});
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": TARGETS_CM, "namespace": NAMESPACE},
        "data": {"targets.json": doc.to_string()}})
    .to_string()
}

/// The value both adapters serve for `path` (as system:masters through the front-proxy cert).
fn served(a: &Adapter, path: &str) -> Result<String, String> {
    let cp = cluster();
    let r = a
        .request(
            "GET",
            path,
            Some(&cp.pki.front_proxy_client),
            &[
                ("X-Remote-User", "kis-e2e-reader"),
                ("X-Remote-Group", "system:masters"),
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("{} {}", r.status, r.body));
    }
    r.json()["items"][0]["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| r.body.clone())
}

#[test]
fn two_adapters_serve_the_same_value_after_one_targets_configmap_update() {
    let cp = cluster();
    adapter();
    let ns = namespace("kis-targets-cm");
    // deploy/'s example applies as is (an empty document).
    cp.admin
        .run(&[
            "apply",
            "-f",
            &workspace()
                .join("deploy/targets-configmap.yaml")
                .display()
                .to_string(),
        ])
        .unwrap();
    let flag = format!("--targets-configmap={NAMESPACE}/{TARGETS_CM}");
    let args = ["--authentication-config-resync=1h", flag.as_str()];
    let replicas = [
        Adapter::start_extra(cp, workspace(), "targets-a", &args).unwrap(),
        Adapter::start_extra(cp, workspace(), "targets-b", &args).unwrap(),
    ];
    let path = format!("{API_PREFIX}/namespaces/{ns}/{METRIC}?labelSelector=target%3Dweb");
    for a in &replicas {
        let e = served(a, &path).unwrap_err();
        assert!(e.starts_with("404"), "{e}");
    }

    for (value, want) in [(4.0, "4"), (6.5, "6500m")] {
        let t0 = Instant::now();
        cp.admin.apply(&targets_doc(&ns, value)).unwrap();
        for (i, a) in replicas.iter().enumerate() {
            wait_until(
                &format!("replica {i} to serve {want}"),
                WATCH_BOUND,
                || match served(a, &path) {
                    Ok(v) if v == want => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            )
            .unwrap_or_else(|e| panic!("{e}\n--- adapter log ---\n{}", a.log_tail()));
        }
        eprintln!(
            "both replicas serve {want} {:.1} s after the update",
            t0.elapsed().as_secs_f64()
        );
    }

    // RBAC: the ServiceAccount reads this one ConfigMap, and no other in its namespace.
    let sa = format!("system:serviceaccount:{NAMESPACE}:kis-adapter");
    let can = |args: &[&str]| -> String {
        let mut all = vec!["auth", "can-i", "--as", sa.as_str(), "-n", NAMESPACE];
        all.extend_from_slice(args);
        let out = cp.admin.output(&all).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let own = format!("configmap/{TARGETS_CM}");
    assert_eq!(can(&["watch", &own]), "yes");
    assert_eq!(can(&["get", "configmap/other"]), "no");
    assert_eq!(can(&["list", "configmaps"]), "no");
    assert_eq!(can(&["update", &own]), "no");

    // Deleting the ConfigMap withdraws its targets on both: an error, never 0.
    cp.admin
        .run(&["-n", NAMESPACE, "delete", "configmap", TARGETS_CM])
        .unwrap();
    for a in &replicas {
        wait_until(
            "the targets to be withdrawn",
            WATCH_BOUND,
            || match served(a, &path) {
                Err(e) if e.starts_with("404") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
        .unwrap();
        a.check_running().unwrap();
    }
}
