//! kis-adapter registered through the API aggregator, read by kubectl and by the stock HPA
//! controller, with front-proxy authentication and SubjectAccessReviews against the real
//! apiserver.

use std::time::{Duration, Instant};

use kis_e2e::adapter::{API_PREFIX, APISERVICE};
use kis_e2e::wait_until;

use crate::common::{
    CONTROLLER_BOUND, HPA_BOUND, METRIC, adapter, cluster, deployment_yaml, hpa_condition,
    hpa_yaml, namespace, replicas, wait_replicas, workspace,
};

/// Waits for the APIService's `Available` condition to be True; returns the seconds it took.
pub(crate) fn wait_available() -> f64 {
    let cp = cluster();
    adapter();
    let t0 = Instant::now();
    wait_until(
        "the APIService to become Available",
        CONTROLLER_BOUND,
        || {
            let svc = cp
                .admin
                .json(&["get", "apiservice", APISERVICE])
                .map_err(|e| e.to_string())?;
            let cond = svc["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Available"))
                .cloned()
                .unwrap_or_default();
            if cond["status"] == "True" {
                Ok(())
            } else {
                Err(cond.to_string())
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- adapter log ---\n{}", adapter().log_tail()));
    t0.elapsed().as_secs_f64()
}

fn metric_path(ns: &str, metric: &str, target: &str) -> String {
    format!("{API_PREFIX}/namespaces/{ns}/{metric}?labelSelector=target%3D{target}")
}

/// A Deployment `name` with one replica and an HPA on it (see `hpa_yaml`).
fn autoscaled_deployment(ns: &str, name: &str) {
    let cp = cluster();
    cp.admin.apply(&deployment_yaml(ns, name, 1)).unwrap();
    cp.admin.apply(&hpa_yaml(ns, name, 10)).unwrap();
}

/// Asserts that `spec.replicas` stays `want` for `window` (polled), i.e. no scale to min.
fn assert_replicas_hold(ns: &str, name: &str, want: i64, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert_eq!(replicas(ns, name), want, "{ns}/{name} replicas changed");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits for `ScalingActive=False` with reason FailedGetExternalMetric.
fn wait_scaling_inactive(ns: &str, name: &str) {
    wait_until(
        &format!("HPA {ns}/{name} to report ScalingActive=False"),
        HPA_BOUND,
        || match hpa_condition(ns, name, "ScalingActive") {
            Some((status, reason)) if status == "False" => {
                assert_eq!(reason, "FailedGetExternalMetric");
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap();
}

#[test]
fn apiservice_becomes_available_and_is_discoverable() {
    let took = wait_available();
    eprintln!("APIService Available after {took:.1} s");
    let cp = cluster();
    // The aggregator installs its proxy for the group shortly after the status flips.
    let resources = wait_until(
        "the group's discovery document through the apiserver",
        CONTROLLER_BOUND,
        || cp.admin.raw_json(API_PREFIX).map_err(|e| e.to_string()),
    )
    .unwrap();
    assert_eq!(resources["kind"], "APIResourceList", "{resources}");
    assert_eq!(resources["groupVersion"], "external.metrics.k8s.io/v1beta1");
    assert!(
        !resources["resources"].as_array().unwrap().is_empty(),
        "{resources}"
    );
    // The apiserver's own discovery now lists the group.
    let groups = cp.admin.raw_json("/apis").unwrap();
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "external.metrics.k8s.io"),
        "{groups}"
    );
}

#[test]
fn kubectl_reads_published_values_through_the_aggregator() {
    wait_available();
    let cp = cluster();
    let a = adapter();
    let ns = namespace("kis-raw");
    a.publish(&ns, METRIC, &[("target", "web")], 5.0, 300)
        .unwrap();
    let list = cp.admin.raw_json(&metric_path(&ns, METRIC, "web")).unwrap();
    assert_eq!(list["kind"], "ExternalMetricValueList", "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["value"], "5", "{list}");
    assert_eq!(items[0]["metricName"], METRIC);
    assert_eq!(items[0]["metricLabels"]["target"], "web");

    // Republishing replaces the value; fractions come back as milli-quantities.
    a.publish(&ns, METRIC, &[("target", "web")], 2.5, 300)
        .unwrap();
    let list = cp.admin.raw_json(&metric_path(&ns, METRIC, "web")).unwrap();
    assert_eq!(list["items"][0]["value"], "2500m", "{list}");

    // An unknown metric is a NotFound relayed by the aggregator, not an empty success.
    let out = cp
        .admin
        .output(&["get", "--raw", &metric_path(&ns, "no-such-metric", "web")])
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

#[test]
fn hpa_scales_to_the_published_target_up_and_down() {
    wait_available();
    let a = adapter();
    let ns = namespace("kis-hpa");
    autoscaled_deployment(&ns, "web");
    assert_eq!(replicas(&ns, "web"), 1);

    a.publish(&ns, METRIC, &[("target", "web")], 7.0, 600)
        .unwrap();
    let up = wait_replicas(&ns, "web", 7, HPA_BOUND);
    eprintln!("HPA 1 -> 7 in {up:.1} s");
    // The controller scales first and writes its status after: wait for the condition too.
    wait_until(
        "HPA ScalingActive=True",
        CONTROLLER_BOUND,
        || match hpa_condition(&ns, "web", "ScalingActive") {
            Some((status, _)) if status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap();

    a.publish(&ns, METRIC, &[("target", "web")], 3.0, 600)
        .unwrap();
    let down = wait_replicas(&ns, "web", 3, HPA_BOUND);
    eprintln!("HPA 7 -> 3 in {down:.1} s");
}

#[test]
fn expired_target_holds_replicas_and_deactivates_scaling() {
    wait_available();
    let a = adapter();
    let ns = namespace("kis-stale");
    autoscaled_deployment(&ns, "web");
    a.publish(&ns, METRIC, &[("target", "web")], 4.0, 600)
        .unwrap();
    wait_replicas(&ns, "web", 4, HPA_BOUND);

    // Replace it with a short-lived target and let it expire.
    a.publish(&ns, METRIC, &[("target", "web")], 4.0, 2)
        .unwrap();
    let cp = cluster();
    wait_until("the target to expire", CONTROLLER_BOUND, || {
        let out = cp
            .admin
            .output(&["get", "--raw", &metric_path(&ns, METRIC, "web")])
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Err("still served".into())
        } else {
            Ok(())
        }
    })
    .unwrap();
    wait_scaling_inactive(&ns, "web");
    // Several sync periods later the Deployment still has its replicas: never a scale to min.
    assert_replicas_hold(&ns, "web", 4, Duration::from_secs(8));
}

#[test]
fn withdrawn_target_holds_replicas_and_deactivates_scaling() {
    wait_available();
    let a = adapter();
    let ns = namespace("kis-withdrawn");
    autoscaled_deployment(&ns, "web");
    a.publish(&ns, METRIC, &[("target", "web")], 2.0, 600)
        .unwrap();
    wait_replicas(&ns, "web", 2, HPA_BOUND);
    a.withdraw(&ns, METRIC, &[("target", "web")]).unwrap();
    wait_scaling_inactive(&ns, "web");
    assert_replicas_hold(&ns, "web", 2, Duration::from_secs(8));
}

#[test]
fn identity_headers_are_trusted_only_from_the_front_proxy() {
    wait_available();
    let cp = cluster();
    let a = adapter();
    let ns = namespace("kis-headers");
    a.publish(&ns, METRIC, &[("target", "web")], 1.0, 600)
        .unwrap();
    let path = metric_path(&ns, METRIC, "web");
    let forged = [
        ("X-Remote-User", "kis-admin"),
        ("X-Remote-Group", "system:masters"),
    ];

    // Positive control: the aggregator's own client certificate with the same headers works.
    let ok = a
        .request(
            "GET",
            &path,
            Some(&cp.pki.front_proxy_client),
            &forged,
            None,
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);

    // No client certificate: the headers are ignored and the request is anonymous.
    let anon = a.request("GET", &path, None, &forged, None).unwrap();
    assert!(
        anon.status == 401 || anon.status == 403,
        "headers without a client cert were trusted: {} {}",
        anon.status,
        anon.body
    );
    assert_eq!(anon.json()["kind"], "Status", "{}", anon.body);

    // Signed by the front-proxy CA but with a CN that is not in requestheader-allowed-names.
    let rogue = a
        .request(
            "GET",
            &path,
            Some(&cp.pki.rogue_proxy_client),
            &forged,
            None,
        )
        .unwrap();
    assert!(
        rogue.status == 401 || rogue.status == 403,
        "a disallowed front-proxy CN was trusted: {} {}",
        rogue.status,
        rogue.body
    );

    // A genuine client-CA user is that user, whatever headers it adds: kis-nobody has no RBAC.
    let nobody = a
        .request("GET", &path, Some(&cp.pki.nobody), &forged, None)
        .unwrap();
    assert_eq!(
        nobody.status, 403,
        "a client-CA user escalated through headers: {}",
        nobody.body
    );
}

#[test]
fn subject_access_review_against_the_real_apiserver_decides() {
    wait_available();
    let cp = cluster();
    let a = adapter();
    let ns = namespace("kis-sar");
    a.publish(&ns, METRIC, &[("target", "web")], 3.0, 600)
        .unwrap();
    let path = metric_path(&ns, METRIC, "web");
    let proxy = Some(&cp.pki.front_proxy_client);

    // An authenticated user without RBAC permission: 403 from the adapter's SAR.
    let denied = a
        .request(
            "GET",
            &path,
            proxy,
            &[("X-Remote-User", "kis-e2e-stranger")],
            None,
        )
        .unwrap();
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.json()["reason"], "Forbidden", "{}", denied.body);

    // Through the apiserver the same user is stopped by the apiserver's own RBAC.
    let out = cp.nobody.output(&["get", "--raw", &path]).unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bind deploy/'s reader role to a fresh user: the real apiserver now allows it, so the
    // adapter serves it. (A fresh name avoids the adapter's 10 s deny cache.)
    cp.admin
        .run(&[
            "create",
            "clusterrolebinding",
            "kis-e2e-reader",
            "--clusterrole=kis-external-metrics-reader",
            "--user=kis-e2e-reader",
        ])
        .unwrap();
    let reader = [("X-Remote-User", "kis-e2e-reader")];
    let allowed = wait_until(
        "the reader binding to be honoured",
        CONTROLLER_BOUND,
        || {
            let r = a
                .request("GET", &path, proxy, &reader, None)
                .map_err(|e| e.to_string())?;
            if r.status == 200 {
                Ok(r)
            } else {
                Err(format!("{} {}", r.status, r.body))
            }
        },
    )
    .unwrap();
    assert_eq!(allowed.json()["items"][0]["value"], "3", "{}", allowed.body);

    // The built-in `view` role includes the metrics through deploy/'s aggregate-to-view role,
    // for the namespace it is bound in only.
    cp.admin
        .run(&[
            "-n",
            &ns,
            "create",
            "rolebinding",
            "viewer",
            "--clusterrole=view",
            "--user=kis-e2e-viewer",
        ])
        .unwrap();
    let viewer = [("X-Remote-User", "kis-e2e-viewer")];
    wait_until("the view binding to be honoured", CONTROLLER_BOUND, || {
        let r = a
            .request("GET", &path, proxy, &viewer, None)
            .map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    })
    .unwrap();
    let elsewhere = a
        .request(
            "GET",
            &metric_path("default", METRIC, "web"),
            proxy,
            &viewer,
            None,
        )
        .unwrap();
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);
}

#[test]
fn example_gpu_and_cpu_hpas_act_on_their_own_targets() {
    wait_available();
    let cp = cluster();
    let a = adapter();
    // deploy/v1.20/ holds the autoscaling/v2beta2 form of the example HPAs (namespace
    // kis-serving, Deployments triton-gpu and triton-cpu).
    let ns = namespace("kis-serving");
    for name in ["triton-gpu", "triton-cpu"] {
        cp.admin.apply(&deployment_yaml(&ns, name, 1)).unwrap();
    }
    for file in ["hpa-gpu.yaml", "hpa-cpu.yaml"] {
        let path = workspace().join("deploy/v1.20").join(file);
        cp.admin
            .run(&["apply", "-f", &path.display().to_string()])
            .unwrap();
    }
    a.publish(&ns, METRIC, &[("target", "triton-gpu")], 3.0, 600)
        .unwrap();
    a.publish(&ns, METRIC, &[("target", "triton-cpu")], 6.0, 600)
        .unwrap();
    wait_replicas(&ns, "triton-gpu", 3, HPA_BOUND);
    wait_replicas(&ns, "triton-cpu", 6, HPA_BOUND);

    // Moving one target leaves the other Deployment alone.
    a.publish(&ns, METRIC, &[("target", "triton-gpu")], 2.0, 600)
        .unwrap();
    wait_replicas(&ns, "triton-gpu", 2, HPA_BOUND);
    assert_eq!(replicas(&ns, "triton-cpu"), 6);

    // A target above the example's maxReplicas (8 for the GPU HPA) is capped by the HPA.
    a.publish(&ns, METRIC, &[("target", "triton-gpu")], 12.0, 600)
        .unwrap();
    wait_replicas(&ns, "triton-gpu", 8, HPA_BOUND);
    assert_eq!(replicas(&ns, "triton-cpu"), 6);
}

#[test]
fn deploy_rbac_gives_the_adapter_exactly_what_it_needs() {
    let cp = cluster();
    adapter();
    let sa = "system:serviceaccount:kis-system:kis-adapter";
    let can = |args: &[&str]| -> String {
        let mut all = vec!["auth", "can-i", "--as", sa];
        all.extend_from_slice(args);
        let out = cp.admin.output(&all).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Delegated authorization: SubjectAccessReview only. The adapter never sends a
    // TokenReview, so deploy/ does not bind system:auth-delegator, which would grant it.
    assert_eq!(
        can(&["create", "subjectaccessreviews.authorization.k8s.io"]),
        "yes"
    );
    assert_eq!(can(&["create", "tokenreviews.authentication.k8s.io"]), "no");
    // The front-proxy CA lives in this one ConfigMap.
    assert_eq!(
        can(&[
            "-n",
            "kube-system",
            "get",
            "configmap/extension-apiserver-authentication"
        ]),
        "yes"
    );
    // Nothing beyond that.
    assert_eq!(can(&["-n", "kube-system", "get", "secrets"]), "no");
    assert_eq!(
        can(&["-n", "kube-system", "get", "configmap/kube-root-ca.crt"]),
        "no"
    );
    assert_eq!(can(&["list", "deployments", "--all-namespaces"]), "no");
    // The HPA controller may read the metric: the same SubjectAccessReview the adapter sends.
    // (kubectl auth can-i cannot name a metric that discovery does not list.)
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            "resourceAttributes": {
                "namespace": "kis-serving",
                "verb": "list",
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "resource": "kis-replicas",
            },
        },
    });
    let answer = cp
        .admin
        .run_stdin(&["create", "-f", "-", "-o", "json"], &review.to_string())
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"]["allowed"], true, "{answer}");
    let mut stranger = review.clone();
    stranger["spec"]["user"] = "kis-nobody".into();
    let answer = cp
        .admin
        .run_stdin(&["create", "-f", "-", "-o", "json"], &stranger.to_string())
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_ne!(answer["status"]["allowed"], true, "{answer}");
}
