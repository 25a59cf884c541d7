use std::path::PathBuf;
use std::process::Command;

use crate::common::{self, Pki, StandIn, json};

/// Debian's kubectl as unpacked by scripts/setup.d/40-adapter.sh.
fn kubectl() -> PathBuf {
    if let Ok(p) = std::env::var("KIS_KUBECTL") {
        return PathBuf::from(p);
    }
    let cache = std::env::var("KIS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kis")
        });
    let p = cache.join("debian-kubectl/usr/bin/kubectl");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup.d/40-adapter.sh",
        p.display()
    );
    p
}

#[tokio::test]
async fn kubectl_get_raw_reads_the_published_value_over_mtls() {
    let pki = Pki::new();
    let standin = StandIn::default();
    standin
        .allowed
        .lock()
        .unwrap()
        .insert("alice:kis-replicas".into());
    let kc = standin.serve(pki.dir.path()).await;
    let mut flags = pki.tls_flags();
    flags.push(format!("--kubeconfig={}", kc.display()));
    let r = common::start(&flags).await;
    let mut c = common::connect(&pki, &r, None).await;
    common::publish_each(
        &mut c,
        "prod",
        "kis-replicas",
        &[(&[("target", "web")], 7.0), (&[("target", "cpu")], 2.0)],
        600,
    )
    .await;

    std::fs::write(pki.dir.path().join("alice.crt"), &pki.alice.cert).unwrap();
    std::fs::write(pki.dir.path().join("alice.key"), &pki.alice.key).unwrap();
    let kubeconfig = pki.dir.path().join("kubectl.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: adapter\n  cluster:\n    server: https://localhost:{}\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: adapter\n  context:\n    cluster: adapter\n    user: alice\ncurrent-context: adapter\n",
            r.addr.port(),
            pki.path("server-ca.crt"),
            pki.path("alice.crt"),
            pki.path("alice.key"),
        ),
    )
    .unwrap();
    let run = |path: String| {
        let kubeconfig = kubeconfig.clone();
        let home = pki.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Command::new(kubectl())
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["get", "--raw", &path])
                .env("HOME", home)
                .output()
                .expect("run kubectl")
        })
    };
    let ok = run("/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/kis-replicas?labelSelector=target%3Dweb".into())
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v = json(&ok.stdout);
    assert_eq!(v["kind"], "ExternalMetricValueList");
    assert_eq!(v["items"][0]["value"], "7");
    assert_eq!(v["items"][0]["metricLabels"]["target"], "web");
    // The SubjectAccessReview saw alice from her certificate.
    assert_eq!(standin.reviews.lock().unwrap()[0]["spec"]["user"], "alice");

    // Not allowed on another metric: kubectl reports the Forbidden Status and exits 1.
    let denied = run("/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/other".into())
        .await
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("Forbidden"), "{err}");
    r.shutdown().await;
}
