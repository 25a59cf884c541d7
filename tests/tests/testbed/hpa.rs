//! The whole loop live: a target published through kis-adapter, read by the real HPA through the
//! aggregator, turned into replicas by the real Deployment and ReplicaSet controllers, placed by
//! the real scheduler and run as real Tritons by the process kubelet.

use std::time::Instant;

use kis_e2e::wait_until;

use kis_e2e::emulated::CPU_MODEL;

use crate::common::{
    READY_BOUND, clean_up, infer_at, is_ready, pods, serving_namespace, testbed, turn,
    wait_serving, workspace,
};

const NS: &str = "kis-serving";
const METRIC: &str = "kis-replicas";

fn ready_count() -> Result<usize, String> {
    let tb = testbed();
    tb.check_running().map_err(|e| e.to_string())?;
    Ok(pods(tb, NS, "triton-cpu")
        .iter()
        .filter(|p| is_ready(p))
        .count())
}

fn wait_for(replicas: i64, ready: usize, what: &str) -> f64 {
    let tb = testbed();
    let t0 = Instant::now();
    wait_until(what, READY_BOUND, || {
        let d = tb
            .cp
            .admin
            .json(&["-n", NS, "get", "deployment", "triton-cpu"])
            .map_err(|e| e.to_string())?;
        let spec = d["spec"]["replicas"].as_i64().unwrap_or(-1);
        let all = pods(tb, NS, "triton-cpu").len();
        let r = ready_count()?;
        if spec == replicas && r == ready && all == ready {
            Ok(())
        } else {
            Err(format!("spec.replicas={spec}, {all} Pods, {r} Ready"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    t0.elapsed().as_secs_f64()
}

#[test]
fn a_target_published_through_the_adapter_becomes_ready_tritons() {
    let _turn = turn();
    let tb = testbed();
    let adapter = tb
        .adapter
        .as_ref()
        .expect("the shared testbed registers kis-adapter");
    serving_namespace(tb);
    tb.apply_tritons(workspace(), NS, &[("triton-cpu", 1)])
        .unwrap();
    // deploy/'s example HPA for the CPU pool, unchanged: it targets kis-serving/triton-cpu.
    let hpa = workspace().join("deploy/v1.20/hpa-cpu.yaml");
    tb.cp
        .admin
        .run(&["apply", "-f", hpa.to_str().unwrap()])
        .unwrap();
    wait_for(1, 1, "one Ready triton-cpu Pod");

    let labels = [("target", "triton-cpu")];
    adapter.publish(NS, METRIC, &labels, 3.0, 600).unwrap();
    let up = wait_for(3, 3, "the HPA to make three Ready Tritons");
    eprintln!("published 3 -> 3 Ready Tritons in {up:.1} s");
    // ... and all three serve behind the load balancer.
    wait_serving(tb, NS, "triton-cpu", CPU_MODEL, 3);
    let lb = tb.balancer.as_ref().expect("the shared testbed runs nginx");
    assert_eq!(
        infer_at(&lb.url, CPU_MODEL).unwrap(),
        serde_json::json!([1.0, 2.0, 3.0])
    );

    adapter.publish(NS, METRIC, &labels, 1.0, 600).unwrap();
    let down = wait_for(1, 1, "the HPA to scale back to one Triton");
    eprintln!("published 1 -> 1 Triton (2 removed gracefully) in {down:.1} s");

    adapter.withdraw(NS, METRIC, &labels).unwrap();
    tb.cp
        .admin
        .run(&["-n", NS, "delete", "hpa", "triton-cpu"])
        .unwrap();
    clean_up(tb, NS, &["triton-cpu"]);
}
