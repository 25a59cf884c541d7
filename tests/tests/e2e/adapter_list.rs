//! A selector that matches several published targets, through the real aggregator and the stock
//! HPA: the adapter lists every match, the HPA sums them (AverageValue 1 → replicas = sum), and
//! one stale member makes the whole read an error, so the HPA holds its replicas instead of
//! scaling to a partial sum.

use std::time::Duration;

use kis_e2e::adapter::API_PREFIX;
use kis_e2e::wait_until;

use crate::common::{
    CONTROLLER_BOUND, HPA_BOUND, METRIC, adapter, cluster, deployment_yaml, hpa_condition,
    hpa_yaml_selecting, namespace, replicas, wait_replicas,
};

/// Values of the list `kubectl get --raw` reads through the aggregator, and their sum.
fn listed(ns: &str, name: &str) -> (Vec<String>, f64) {
    let path = format!("{API_PREFIX}/namespaces/{ns}/{METRIC}?labelSelector=app%3D{name}");
    let list = cluster().admin.raw_json(&path).unwrap();
    assert_eq!(list["kind"], "ExternalMetricValueList", "{list}");
    let values: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect();
    let sum = values
        .iter()
        .map(|v| kis_adapter::api::parse_quantity(v).unwrap())
        .sum();
    (values, sum)
}

#[test]
fn two_and_three_matching_targets_are_listed_and_summed_by_the_hpa() {
    crate::adapter::wait_available();
    let a = adapter();
    let cp = cluster();
    let ns = namespace("kis-shards");
    cp.admin.apply(&deployment_yaml(&ns, "web", 1)).unwrap();
    cp.admin
        .apply(&hpa_yaml_selecting(&ns, "web", 20, "app"))
        .unwrap();

    a.publish(&ns, METRIC, &[("app", "web"), ("shard", "a")], 2.0, 600)
        .unwrap();
    a.publish(&ns, METRIC, &[("app", "web"), ("shard", "b")], 3.0, 600)
        .unwrap();
    // Another app's target in the same namespace is not part of the sum.
    a.publish(&ns, METRIC, &[("app", "db")], 9.0, 600).unwrap();
    assert_eq!(listed(&ns, "web"), (vec!["2".into(), "3".into()], 5.0));
    let t = wait_replicas(&ns, "web", 5, HPA_BOUND);
    eprintln!("two shards (2 + 3): HPA 1 -> 5 in {t:.1} s");

    a.publish(&ns, METRIC, &[("app", "web"), ("shard", "c")], 1.5, 600)
        .unwrap();
    assert_eq!(
        listed(&ns, "web"),
        (vec!["2".into(), "3".into(), "1500m".into()], 6.5)
    );
    // ceil(6.5 / 1) = 7.
    let t = wait_replicas(&ns, "web", 7, HPA_BOUND);
    eprintln!("three shards (2 + 3 + 1.5): HPA 5 -> 7 in {t:.1} s");

    // One shard goes stale: the whole read is an error (never the partial sum 3.5 -> 4 replicas).
    a.publish(&ns, METRIC, &[("app", "web"), ("shard", "b")], 3.0, 2)
        .unwrap();
    let path = format!("{API_PREFIX}/namespaces/{ns}/{METRIC}?labelSelector=app%3Dweb");
    wait_until("the read to fail as stale", CONTROLLER_BOUND, || {
        let out = cp
            .admin
            .output(&["get", "--raw", &path])
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Err("still served".into())
        } else if stderr.contains("ServiceUnavailable") || stderr.contains("expired") {
            Ok(())
        } else {
            panic!("unexpected error: {stderr}");
        }
    })
    .unwrap();
    wait_until("ScalingActive=False", HPA_BOUND, || {
        match hpa_condition(&ns, "web", "ScalingActive") {
            Some((s, reason)) if s == "False" => {
                assert_eq!(reason, "FailedGetExternalMetric");
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < end {
        assert_eq!(
            replicas(&ns, "web"),
            7,
            "replicas must hold while a shard is stale"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
