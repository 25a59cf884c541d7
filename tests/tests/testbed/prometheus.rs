//! Prometheus on the testbed scrapes what a cluster's would: every Ready Triton Pod's
//! `nv_inference_count` under its own `pod` label, kis-adapter's `/metrics`, and a kis-loadgen
//! run serving `--metrics-addr` at the address the testbed reserved for it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use kis_e2e::emulated::CPU_MODEL;
use kis_e2e::prometheus::Prometheus;
use kis_e2e::wait_until;
use serde_json::Value;

use crate::common::{
    READY_BOUND, clean_up, loadgen, serving_namespace, testbed, turn, wait_serving, workspace,
};

const NS: &str = "kis-serving";

/// An instant query's samples as (the `by` label's value -> value).
fn samples(prom: &Prometheus, promql: &str, by: &str) -> Result<BTreeMap<String, f64>, String> {
    let rows = prom.query(promql).map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| {
            let key = r["metric"][by].as_str().unwrap_or_default().to_string();
            let v = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (key, v.unwrap_or(f64::NAN))
        })
        .collect())
}

#[test]
fn prometheus_has_each_ready_pods_inference_count_and_scrapes_the_adapter_and_kis_loadgen() {
    let _turn = turn();
    let tb = testbed();
    let prom = tb
        .prometheus
        .as_ref()
        .expect("the shared testbed runs Prometheus");
    let lb = tb.balancer.as_ref().expect("the shared testbed runs nginx");
    serving_namespace(tb);
    tb.apply_tritons(workspace(), NS, &[("triton-cpu", 2)])
        .unwrap();
    let ready = wait_serving(tb, NS, "triton-cpu", CPU_MODEL, 2);
    let names: Vec<String> = ready
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    // kis-loadgen through nginx, 5 requests/s for 20 s, serving /metrics where Prometheus looks.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let load = Command::new(loadgen())
        .args(["--url", &lb.url, "--model", CPU_MODEL, "--json-body"])
        .args([
            "--shape",
            "INPUT0:1,3",
            "--pattern",
            "constant",
            "--rate",
            "5",
        ])
        .args(["--duration", "20s", "--timeout", "30", "--quiet"])
        .args(["--metrics-addr", &prom.loadgen_metrics, "--json"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "Prometheus to scrape kis-loadgen's requests",
        READY_BOUND,
        || {
            let sent = samples(
                prom,
                r#"sum(kis_loadgen_requests_total{job="kis-loadgen"})"#,
                "",
            )?;
            match sent.values().next() {
                Some(v) if *v > 0.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .unwrap();
    wait_until("kis-adapter to be up in Prometheus", READY_BOUND, || {
        let up = samples(prom, r#"up{job="kis-adapter"}"#, "job")?;
        if up.get("kis-adapter") == Some(&1.0) {
            Ok(())
        } else {
            Err(format!("{up:?}"))
        }
    })
    .unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kis-loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let ok = r["totals"]["ok"].as_u64().unwrap() as f64;
    assert!(
        ok >= 50.0,
        "too few requests to mean anything: {}",
        r["totals"]
    );

    // One series per Ready Pod, under its name; together they count every answered request
    // and each Pod's warm-up inference (the startup probe's).
    let promql = format!(r#"nv_inference_count{{namespace="{NS}",app="triton-cpu"}}"#);
    let counts = wait_until("each Ready Pod's nv_inference_count", READY_BOUND, || {
        let by_pod = samples(prom, &promql, "pod")?;
        let total: f64 = by_pod.values().sum();
        let pods: Vec<&String> = by_pod.keys().collect();
        if pods == names.iter().collect::<Vec<_>>() && total >= ok + 2.0 {
            Ok(by_pod)
        } else {
            Err(format!("{by_pod:?} (kis-loadgen answered {ok})"))
        }
    })
    .unwrap();
    assert!(counts.values().all(|v| *v >= 1.0), "{counts:?}");
    clean_up(tb, NS, &["triton-cpu"]);
}
