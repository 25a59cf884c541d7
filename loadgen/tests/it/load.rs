use crate::common::{Behavior, bin, constant_get, run, run_get, start, tempdir};

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
    assert!((80.0..=124.0).contains(&n), "{n} requests");
    assert_eq!(r.totals.errors, 0);
    // No schedule to fall behind: corrected equals service.
    assert_eq!(r.latency.corrected.p50_ms, r.latency.service.p50_ms);
}

/// Drop policy: at the in-flight limit arrivals are counted as dropped, not sent.
#[test]
fn drop_policy_counts_dropped_arrivals() {
    let srv = start(Behavior::Slow { ms: 100 });
    let r = run_get(
        &srv.url(),
        "100",
        "2s",
        &[
            "--connections",
            "4",
            "--max-in-flight",
            "2",
            "--overflow",
            "drop",
        ],
    );
    // Two slots of 100 ms serve at most ~20 req/s; the rest of 200 arrivals are dropped.
    assert_eq!(r.totals.scheduled, 200);
    assert_eq!(r.totals.requests + r.totals.dropped, 200);
    assert!(r.totals.dropped >= 140, "{:?}", r.totals);
    assert!(r.latency.service.p50_ms >= 100.0);
    // The sleeping dispatcher's idle stretches are its sleeps: no gaps are recorded.
    assert_eq!(r.totals.dispatcher_gaps, Default::default());
}

/// `--busy-poll`: the open loop sends its whole schedule and answers are read as usual; the
/// generator's busy core is by design, so it is not reported as a CPU warning.
#[test]
fn busy_poll_sends_the_whole_schedule_without_a_cpu_warning() {
    let srv = start(Behavior::Fast);
    let r = run_get(&srv.url(), "200", "2s", &["--busy-poll"]);
    assert_eq!(r.totals.scheduled, 400);
    assert_eq!(r.totals.ok, 400, "{:?}", r.totals);
    assert!(
        !r.generator.warnings.iter().any(|w| w.contains("CPU")),
        "{:?}",
        r.generator.warnings
    );
    assert!(matches!(
        r.config.load,
        kis_loadgen::config::Load::Open {
            busy_poll: true,
            ..
        }
    ));
}

/// Queue policy: arrivals wait for a slot and the wait is charged to corrected latency.
#[test]
fn queue_policy_charges_waiting_from_the_intended_time() {
    let srv = start(Behavior::Slow { ms: 50 });
    let r = run_get(
        &srv.url(),
        "40",
        "2s",
        &["--connections", "1", "--grace", "10s"],
    );
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

/// Closed loop with a shape: the number of active users follows it (Locust's load shapes).
/// A spike from 2 to 8 users over the middle 40 % of the run against a 20 ms server: the
/// windows inside the spike carry about four times the requests of the first.
#[test]
fn closed_loop_users_follow_the_pattern() {
    let srv = start(Behavior::Slow { ms: 20 });
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--users",
        "8",
        "--wait",
        "0s",
        "--pattern",
        "spike",
        "--min",
        "2",
        "--max",
        "8",
        "--duration",
        "5s",
    ]);
    assert_eq!(r.totals.errors, 0);
    let sent: Vec<u64> = r.windows.iter().map(|w| w.sent).collect();
    assert!(sent.len() >= 5, "{sent:?}");
    // 2 users at ~20 ms: ≤ 100 per window before the spike (t < 1.5 s).
    assert!(sent[0] <= 110, "{sent:?}");
    let peak = *sent.iter().max().unwrap();
    assert!(peak >= 3 * sent[0].max(1), "{sent:?}");
    // Never more than 8 on the wire.
    assert!(r.windows.iter().all(|w| w.in_flight <= 8));
}

/// A generator that cannot keep up (1 M arrivals/s on 2 connections to a 100 ms server) keeps
/// its memory flat: the due arrivals stay in the lazy schedule and are counted, not queued.
/// The report shows the growing backlog, the "generator saturated" warning, and the unsent due
/// arrivals as cancelled.
#[test]
fn a_generator_that_cannot_keep_up_keeps_memory_bounded() {
    let srv = start(Behavior::Slow { ms: 100 });
    let dir = tempdir("backlog");
    let json = dir.join("r.json");
    let mut child = bin()
        .args(constant_get(&srv.url(), "1000000", "4s"))
        .args([
            "--quiet",
            "--connections",
            "2",
            "--grace",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed().as_secs() < 60, "run did not end");
        if let Ok(s) = std::fs::read_to_string(&status)
            && let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // 4 M arrivals as a queue of 16-byte instants alone would be 64 MB.
    assert!(peak_kb > 0 && peak_kb < 48 * 1024, "peak RSS {peak_kb} kB");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let t = &r["totals"];
    let sent = t["requests"].as_u64().unwrap();
    let cancelled = t["cancelled"].as_u64().unwrap();
    assert!(sent < 200, "{t}");
    assert!(cancelled > 3_000_000, "{t}");
    assert_eq!(t["scheduled"].as_u64().unwrap(), sent + cancelled);
    let backlogs: Vec<u64> = r["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["backlog"].as_u64().unwrap())
        .collect();
    assert!(backlogs.iter().any(|b| *b > 500_000), "{backlogs:?}");
    // The warning names a side from timing evidence (answers vs the server's fastest), which
    // other processes on a busy machine can tilt; a saturation warning must be given either way.
    let warnings = r["generator"]["warnings"].to_string();
    assert!(
        warnings.contains("generator saturated") || warnings.contains("the server is saturated"),
        "{warnings}"
    );
}

/// A generator that falls behind does not get credit for its catch-up: two connections to a
/// 20 ms server carry about 100 req/s, so of 200 arrivals in 1 s about half go out on time and
/// the rest in a catch-up of about a second after the schedule's end. The report says so.
#[test]
fn an_overrun_is_reported_not_credited() {
    let srv = start(Behavior::Slow { ms: 20 });
    let r = run_get(
        &srv.url(),
        "200",
        "1s",
        &["--connections", "2", "--grace", "20s"],
    );
    assert_eq!(r.totals.requests, 200, "{:?}", r.totals);
    let rt = &r.rates;
    assert!(rt.on_time_ratio < 0.8, "{rt:?}");
    assert!(rt.achieved_ratio < 0.8, "{rt:?}");
    assert!(rt.achieved_rps < 160.0, "{rt:?}");
    assert_eq!(rt.on_time_sends + rt.overrun_sends, 200, "{rt:?}");
    assert!(rt.overrun_sends >= 40, "{rt:?}");
    // The real wall time: the last send about 2 s in, the overrun measured from the 1 s end.
    assert!(rt.send_wall_s > 1.4, "{rt:?}");
    assert!((rt.send_wall_s - rt.overrun_s - 1.0).abs() < 1e-6, "{rt:?}");
    let summary = r.summary();
    let line = summary
        .lines()
        .find(|l| l.starts_with("overrun "))
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(line.contains("the 1.0 s schedule took"), "{line}");
}

/// The saturation warning blames the side that limits. A server with one worker and 20 ms per
/// request (50 req/s) under 100 req/s on 8 connections queues every request: "the server is
/// saturated", and no advice to add connections. A fast server behind one connection at a
/// rate no connection can carry: the generator's side ("generator saturated").
#[test]
fn the_saturation_warning_names_the_side_that_limits() {
    let slow = start(Behavior::Serial { ms: 20 });
    let r = run_get(
        &slow.url(),
        "100",
        "3s",
        &["--connections", "8", "--grace", "1s"],
    );
    let w = r.generator.warnings.join("\n");
    assert!(w.contains("the server is saturated"), "{w}");
    assert!(!w.contains("generator saturated"), "{w}");
    assert!(!w.contains("raise --connections"), "{w}");
    let fast = start(Behavior::Fast);
    let r = run_get(
        &fast.url(),
        "1000000",
        "2s",
        &["--connections", "1", "--grace", "1s"],
    );
    let w = r.generator.warnings.join("\n");
    assert!(w.contains("generator saturated"), "{w}");
    assert!(!w.contains("the server is saturated"), "{w}");
}

/// `--duration` is wall-clock time for a trace too: 1 s at `--trace-speedup 10` plays 10 s of
/// trace (5 s at 10 req/s, then 30 req/s) in 1 s of wall time: 5 + 15 = 20 requests (counted in
/// trace seconds it was 0.1 s and 1 request). The label shows the trace's min..max rate.
#[test]
fn trace_duration_is_wall_time() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("trace-wall");
    let trace = dir.join("t.csv");
    let rows: String = (0..100)
        .map(|t| format!("{t},{}\n", if t < 5 { 10 } else { 30 }))
        .collect();
    std::fs::write(&trace, format!("t_seconds,rate_rps\n{rows}")).unwrap();
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--pattern",
        "trace",
        "--trace",
        trace.to_str().unwrap(),
        "--trace-speedup",
        "10",
        "--duration",
        "1s",
    ]);
    assert_eq!(r.totals.requests, 20, "{:?}", r.totals);
    assert!((r.rates.schedule_s - 1.0).abs() < 1e-9, "{:?}", r.rates);
    assert!(r.target.contains("trace 10.0..30.0 req/s"), "{}", r.target);
}
