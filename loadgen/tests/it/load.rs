use crate::common::{Behavior, run, start};

/// Closed loop: U users with a fixed think time T against a server that answers in L send about
/// U / (T + L) requests per second, Locust-style.
#[test]
fn closed_loop_users_follow_littles_law() {
    let srv = start(Behavior::Slow { ms: 20 });
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--users",
        "4",
        "--wait",
        "80ms",
        "--duration",
        "3s",
    ]);
    // 4 / (0.08 + 0.02) = 40 req/s, 120 in 3 s (less a little connection and timer overhead).
    let n = r.totals.requests as f64;
    assert!((100.0..=124.0).contains(&n), "{n} requests");
    assert_eq!(r.totals.errors, 0);
    // No schedule to fall behind: corrected equals service.
    assert_eq!(r.latency.corrected.p50_ms, r.latency.service.p50_ms);
}

/// Drop policy: at the in-flight limit arrivals are counted as dropped, not sent.
#[test]
fn drop_policy_counts_dropped_arrivals() {
    let srv = start(Behavior::Slow { ms: 100 });
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--pattern",
        "constant",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--connections",
        "4",
        "--max-in-flight",
        "2",
        "--overflow",
        "drop",
    ]);
    // Two slots of 100 ms serve at most ~20 req/s; the rest of 200 arrivals are dropped.
    assert_eq!(r.totals.scheduled, 200);
    assert_eq!(r.totals.requests + r.totals.dropped, 200);
    assert!(r.totals.dropped >= 140, "{:?}", r.totals);
    assert!(r.latency.service.p50_ms >= 100.0);
}

/// Queue policy: arrivals wait for a slot and the wait is charged to corrected latency.
#[test]
fn queue_policy_charges_waiting_from_the_intended_time() {
    let srv = start(Behavior::Slow { ms: 50 });
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--pattern",
        "constant",
        "--rate",
        "40",
        "--duration",
        "2s",
        "--connections",
        "1",
        "--grace",
        "10s",
    ]);
    // One connection at 50 ms serves 20 req/s; 40 req/s for 2 s means the last arrivals wait ~2 s.
    assert_eq!(r.totals.requests, 80);
    assert_eq!(r.totals.dropped, 0);
    assert!(
        r.latency.corrected.max_ms > 1500.0,
        "{:?}",
        r.latency.corrected
    );
    assert!(r.latency.service.max_ms < 500.0, "{:?}", r.latency.service);
}

/// KServe mode against a KServe-shaped server: binary and JSON bodies are accepted.
#[test]
fn kserve_binary_and_json_bodies_are_accepted() {
    let srv = start(Behavior::Kserve);
    let url = srv.url();
    for extra in [&[][..], &["--json-body"][..]] {
        let mut args = vec![
            "--url",
            &url,
            "--model",
            "m",
            "--shape",
            "INPUT0:1,16",
            "--pattern",
            "constant",
            "--rate",
            "50",
            "--duration",
            "1s",
        ];
        args.extend_from_slice(extra);
        let r = run(&args);
        assert_eq!(r.totals.ok, 50, "{extra:?}: {:?}", r.totals);
    }
}
