//! Exact shards: the shards' send times together are the single-process schedule, for every
//! shape and both arrival kinds, with several generator threads per shard.

use std::time::{Duration, Instant};

use kis_loadgen::config::Overflow;
use kis_loadgen::engine::{Plan, dispatch_probe};
use kis_loadgen::schedule::Sched;
use kis_loadgen::shard::Shard;
use kis_traffic::{ArrivalKind, ShapeSpec};

/// Every shape kis-traffic has, short and dense enough to give thousands of arrivals.
fn shapes(trace: &std::path::Path) -> Vec<ShapeSpec> {
    vec![
        ShapeSpec::Constant {
            rate: 700.0,
            duration: 3.0,
        },
        ShapeSpec::Ramp {
            start: 100.0,
            end: 900.0,
            steps: 0,
            duration: 3.0,
        },
        ShapeSpec::Ramp {
            start: 100.0,
            end: 900.0,
            steps: 4,
            duration: 3.0,
        },
        ShapeSpec::Periodic {
            min: 50.0,
            max: 800.0,
            cycles: 2.0,
            duration: 3.0,
        },
        ShapeSpec::Random {
            min: 50.0,
            max: 800.0,
            interval: 0.5,
            duration: 3.0,
        },
        ShapeSpec::Spike {
            base: 100.0,
            peak: 1500.0,
            start: 0.3,
            length: 0.2,
            duration: 3.0,
        },
        ShapeSpec::Trace {
            path: trace.to_path_buf(),
            scale: 1.0,
            speedup: 1.0,
            offset: 0.0,
            limit: None,
        },
    ]
}

/// All send times of a slice, walked to the end.
fn walk(mut s: Sched) -> Vec<Instant> {
    let mut v = Vec::new();
    while let Some(t) = s.peek() {
        v.push(t);
        s.advance();
    }
    v
}

#[test]
fn the_union_of_the_shards_is_the_single_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "t_seconds,rate_rps\n0,200\n1,900\n2,300\n3,300\n").unwrap();
    let t0 = Instant::now();
    for spec in shapes(&trace) {
        for kind in [ArrivalKind::Uniform, ArrivalKind::Poisson] {
            let seed = 11;
            let p = spec.build(seed).unwrap();
            let single = walk(Sched::new(&p, kind, seed, t0, 0, 1));
            assert!(single.len() > 500, "{spec:?}: {} arrivals", single.len());
            for (n, threads) in [(2u32, 1usize), (3, 2), (7, 3)] {
                let mut union = Vec::new();
                for k in 0..n {
                    let shard = Shard::new(k, n).unwrap();
                    let mut mine = Vec::new();
                    for t in 0..threads {
                        let (offset, stride) = shard.thread_slice(t, threads);
                        mine.extend(walk(Sched::new(&p, kind, seed, t0, offset, stride)));
                    }
                    // Each shard sends its exact share: arrivals K, K+N, ... of the whole.
                    assert_eq!(
                        mine.len() as u64,
                        shard.share_of(single.len() as u64),
                        "{spec:?} {kind} shard {shard}"
                    );
                    union.extend(mine);
                }
                union.sort();
                assert_eq!(
                    union, single,
                    "{spec:?} {kind} {n} shards x {threads} threads"
                );
            }
        }
    }
}

/// The real dispatcher of a shard hands out exactly that shard's arrivals (the engine wires the
/// shard into its schedule, not only the schedule type).
#[test]
fn a_sharded_dispatcher_hands_out_its_share() {
    let spec = ShapeSpec::Constant {
        rate: 300.0,
        duration: 1.0,
    };
    let kind = ArrivalKind::Poisson;
    let p = spec.build(5).unwrap();
    let mut union = Vec::new();
    let mut t0s = Vec::new();
    for k in 0..3 {
        let mut plan = Plan::probe(
            p.clone(),
            kind,
            5,
            4,
            Overflow::Queue,
            Duration::from_millis(20),
        );
        plan.shard = Shard::new(k, 3).unwrap();
        let t0 = plan.t0;
        t0s.push(t0);
        union.extend(
            dispatch_probe(&plan)
                .unwrap()
                .into_iter()
                .map(|(t, _)| t.duration_since(t0)),
        );
    }
    union.sort();
    let single: Vec<Duration> = walk(Sched::new(&p, kind, 5, t0s[0], 0, 1))
        .into_iter()
        .map(|t| t.duration_since(t0s[0]))
        .collect();
    assert_eq!(union, single);
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn constant_cfg(url: &str) -> kis_loadgen::Config {
    let target = kis_loadgen::config::Target::http(&format!("{url}/"), "GET").unwrap();
    kis_loadgen::Config::open_loop(
        target,
        ShapeSpec::Constant {
            rate: 200.0,
            duration: 1.5,
        },
        ArrivalKind::Uniform,
    )
    .quiet()
}

/// `--start-at` ahead: time zero is that instant, not when the process happened to be ready.
#[test]
fn the_schedule_starts_at_start_at() {
    let server = crate::common::start(crate::common::Behavior::Fast);
    let mut cfg = constant_cfg(&server.url());
    let at = unix_now() + 1.5;
    cfg.start_at_unix_s = Some(at);
    let r = kis_loadgen::run(cfg).unwrap();
    assert!(
        (r.started_unix_s - at).abs() < 1e-3,
        "{} vs {at}",
        r.started_unix_s
    );
    assert_eq!(r.totals.requests, r.totals.scheduled);
    assert!(
        !r.generator
            .warnings
            .iter()
            .any(|w| w.contains("--start-at")),
        "{:?}",
        r.generator.warnings
    );
}

/// A process that is ready only after `--start-at` keeps the schedule: it says how late it
/// is, and the arrivals already due go out late and are counted as late sends.
#[test]
fn a_late_start_is_said_and_counted_not_shifted() {
    let server = crate::common::start(crate::common::Behavior::Fast);
    let mut cfg = constant_cfg(&server.url());
    let at = unix_now() - 0.5;
    cfg.start_at_unix_s = Some(at);
    let r = kis_loadgen::run(cfg).unwrap();
    assert!((r.started_unix_s - at).abs() < 1e-3);
    let w = r
        .generator
        .warnings
        .iter()
        .find(|w| w.contains("after --start-at"))
        .unwrap_or_else(|| panic!("{:?}", r.generator.warnings));
    assert!(w.contains("not shifted"), "{w}");
    // About 0.5 s x 200/s were due before the process started: all late.
    assert!(r.totals.late_sends >= 90, "{} late", r.totals.late_sends);
    assert_eq!(r.totals.scheduled, 300);
}
