//! Scale-down under load through the load balancer loses nothing: nginx drops a Pod from its pool
//! as soon as it is being deleted, while its `preStop` hook keeps Triton serving, and only then is
//! Triton stopped.

use std::time::{Duration, Instant};

use kis_e2e::emulated::CPU_MODEL;
use kis_e2e::wait_until;

use crate::common::{
    Load, READY_BOUND, clean_up, pods, scale, serving_namespace, testbed, turn, wait_serving,
    workspace,
};

const NS: &str = "kis-serving";

#[test]
fn scale_down_from_three_to_one_under_load_loses_no_request() {
    let _turn = turn();
    let tb = testbed();
    let lb = tb
        .balancer
        .as_ref()
        .expect("the shared testbed runs the load balancer");
    serving_namespace(tb);
    tb.apply_tritons(workspace(), NS, &[("triton-cpu", 3)])
        .unwrap();
    wait_serving(tb, NS, "triton-cpu", CPU_MODEL, 3);

    // A steady 8 requests/s for 25 s (one emulated CPU replica serves about 12/s).
    let load = Load::start(
        &lb.url,
        &["--pattern", "constant", "--rate", "8"],
        "25s",
        &[],
    );
    std::thread::sleep(Duration::from_secs(6));
    scale(tb, NS, "triton-cpu", 1);
    let t0 = Instant::now();
    wait_until("two Pods to be removed under load", READY_BOUND, || {
        let n = pods(tb, NS, "triton-cpu").len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} Pods"))
        }
    })
    .unwrap();
    eprintln!(
        "scaled 3 -> 1 under load in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let r = load.finish();
    let t = &r["totals"];
    let why = lb.diagnose();
    assert_eq!(t["errors"], 0, "requests lost on scale-down: {t}\n{why}");
    assert_eq!(t["dropped"], 0, "{t}\n{why}");
    assert_eq!(t["ok"], t["scheduled"], "{t}\n{why}");
    assert!(
        t["ok"].as_u64().unwrap() >= 150,
        "too few requests to mean anything: {t}"
    );
    assert_eq!(lb.backends().get(CPU_MODEL).map_or(0, Vec::len), 1);
    clean_up(tb, NS, &["triton-cpu"]);
}
