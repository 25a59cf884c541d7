//! `--targets-configmap`: targets from a watched ConfigMap, the same on every replica (two
//! adapters on one stand-in ConfigMap here; the e2e suite does it against kube-apiserver).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{self, Pki, StandIn, json};

const M: &str =
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/prod/kis-replicas?labelSelector=target%3Dweb";
const NS: &str = "kis-system";
const NAME: &str = "kis-adapter-targets";

fn doc(published_at: Option<&str>, value: f64, ttl: Option<u64>) -> BTreeMap<String, String> {
    let mut t = serde_json::json!({"namespace": "prod", "metric": "kis-replicas",
        "labels": {"target": "web"}, "value": value});
    if let Some(ttl) = ttl {
        t["ttlSeconds"] = ttl.into();
    }
    let mut d = serde_json::json!({"targets": [t]});
    if let Some(p) = published_at {
        d["publishedAt"] = p.into();
    }
    [("targets.json".to_string(), d.to_string())].into()
}

fn rfc3339_ago(secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

async fn start(pki: &Pki, kubeconfig: &std::path::Path) -> kis_adapter::server::Running {
    let mut flags = pki.tls_flags();
    flags.push("--no-delegated-authorization".into());
    flags.push("--authentication-skip-lookup".into());
    flags.push("--authentication-config-resync=1h".into());
    flags.push(format!("--kubeconfig={}", kubeconfig.display()));
    flags.push(format!("--targets-configmap={NS}/{NAME}"));
    common::start(&flags).await
}

/// Polls `GET M` on a fresh connection until `check(code, body)` holds, for at most 10 s.
async fn wait_read(
    pki: &Pki,
    r: &kis_adapter::server::Running,
    what: &str,
    check: impl Fn(u16, &serde_json::Value) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = common::connect(pki, r, Some(&pki.alice)).await;
        let (code, body) = c.request("GET", M, &[], None).await.unwrap();
        let v = serde_json::from_slice(&body).unwrap_or_default();
        if check(code, &v) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last answer {code} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value_is(want: &'static str) -> impl Fn(u16, &serde_json::Value) -> bool {
    move |code, v| code == 200 && v["items"][0]["value"] == want
}

#[tokio::test]
async fn two_replicas_serve_the_same_value_after_one_update() {
    let pki = Pki::new();
    let standin = StandIn::default();
    let kc = standin.serve(pki.dir.path()).await;
    // Absent at start: both start, serving nothing from it (404, never 0).
    let a = start(&pki, &kc).await;
    let b = start(&pki, &kc).await;
    for r in [&a, &b] {
        let mut c = common::connect(&pki, r, Some(&pki.alice)).await;
        assert_eq!(c.request("GET", M, &[], None).await.unwrap().0, 404);
    }
    standin.set_configmap(NS, NAME, doc(None, 4.0, None));
    for r in [&a, &b] {
        wait_read(&pki, r, "first version", value_is("4")).await;
    }
    standin.set_configmap(NS, NAME, doc(Some(&rfc3339_ago(0)), 7.5, Some(600)));
    for r in [&a, &b] {
        wait_read(&pki, r, "update", value_is("7500m")).await;
    }
    // A bad version is refused by both; the previous value stays.
    let mut bad = doc(None, 9.0, Some(600)); // ttlSeconds without publishedAt
    bad.insert("ignored".into(), "x".into());
    standin.set_configmap(NS, NAME, bad);
    for r in [&a, &b] {
        let mut m = common::connect(&pki, r, Some(&pki.alice)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&m.get_ok("/metrics").await.unwrap()).into_owned();
            if text.contains(r#"kis_adapter_config_loads_total{source="targets",result="error"} 1"#)
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut m = common::connect(&pki, &a, Some(&pki.alice)).await;
    for r in [&a, &b] {
        wait_read(&pki, r, "after a bad version", value_is("7500m")).await;
    }
    // The ConfigMap source shows in the listing.
    let (code, body) = m
        .request(
            "GET",
            "/targets/v1",
            &[("authorization", "Bearer s3cret-token")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    let list = json(&body);
    assert!(
        list.to_string().contains("configmap"),
        "source missing: {list}"
    );
    // Deleting the ConfigMap withdraws its targets: an error, never 0.
    standin.delete_configmap(NS, NAME);
    for r in [&a, &b] {
        wait_read(&pki, r, "deletion", |code, _| code == 404).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn configmap_ttl_counts_from_published_at() {
    let pki = Pki::new();
    let standin = StandIn::default();
    // Written 58 s ago with a 60 s TTL: fresh now, stale 2 s later, on every replica alike.
    standin.set_configmap(NS, NAME, doc(Some(&rfc3339_ago(58)), 3.0, Some(60)));
    let kc = standin.serve(pki.dir.path()).await;
    let r = start(&pki, &kc).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    assert_eq!(json(&c.get_ok(M).await.unwrap())["items"][0]["value"], "3");
    wait_read(&pki, &r, "expiry", |code, v| {
        code == 503 && v["reason"] == "ServiceUnavailable"
    })
    .await;
    // A later restart computes the same expiry: still stale, not a fresh TTL.
    r.shutdown().await;
    let r = start(&pki, &kc).await;
    let mut c = common::connect(&pki, &r, Some(&pki.alice)).await;
    assert_eq!(c.request("GET", M, &[], None).await.unwrap().0, 503);
    r.shutdown().await;
}

#[tokio::test]
async fn a_bad_configmap_at_start_is_a_clear_error() {
    let pki = Pki::new();
    let standin = StandIn::default();
    standin.set_configmap(NS, NAME, doc(None, 3.0, Some(60)));
    let kc = standin.serve(pki.dir.path()).await;
    let mut flags = pki.tls_flags();
    flags.extend([
        "--no-delegated-authorization".to_string(),
        "--authentication-skip-lookup".into(),
        format!("--kubeconfig={}", kc.display()),
        format!("--targets-configmap={NS}/{NAME}"),
    ]);
    let mut args = vec![
        "kis-adapter".to_string(),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=0".into(),
    ];
    args.extend(flags);
    let cli = <kis_adapter::cli::Cli as clap::Parser>::parse_from(args);
    let e = kis_adapter::server::start(cli)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--targets-configmap") && e.contains("publishedAt"),
        "{e}"
    );
    // A malformed reference is refused by the flag parser.
    let e = <kis_adapter::cli::Cli as clap::Parser>::try_parse_from([
        "kis-adapter",
        "--self-signed",
        "--targets-configmap=no-slash",
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("NAMESPACE/NAME"), "{e}");
}
