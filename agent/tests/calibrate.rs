//! `kis-agent calibrate` against the real Triton fixture (CPU, `image` model): the calibration
//! round-trip through the simulator, and its answers to bad input.

use std::path::PathBuf;

use clap::Parser;
use kis_agent::calibrate::{self, Options};
use kis_agent::cli::Cli;
use kis_agent::fidelity::{self, sim_config};
use kis_traffic::{ArrivalKind, ShapeSpec};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kis-calibrate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["kis-agent"];
    v.extend_from_slice(args);
    kis_agent::run(Cli::try_parse_from(v)?)
}

fn err(args: &[&str]) -> String {
    format!("{:#}", run(args).expect_err("must fail"))
}

/// The round trip: measure closed-loop levels, write and reload the profile, then simulate each
/// level's measured throughput (evenly spaced arrivals, one replica configured as Triton reports)
/// and compare the simulated mean latency and instance busy fraction with what was measured.
#[test]
fn calibration_round_trip_on_real_triton() {
    let triton = kis_fixtures::Triton::start().expect("Triton fixture (run scripts/setup.sh)");
    let d = scratch("rt");
    let out = d.join("image.json");
    let o = Options {
        url: triton.http_url(),
        model: "image".into(),
        levels: vec![1, 4],
        duration: 4.0,
        warmup: 1.0,
        seed: 7,
        open_rates: vec![20.0, 60.0],
        open_duration: 3.0,
        // Three rounds, as the CLI's default, not two: the fit and the check below both use each
        // latency figure's median over the rounds, and the median of two is their mean, so one round
        // disturbed by other work on this shared machine (seen: p95 298 ms in one round, 45 ms in the
        // other) went straight into the fitted spread (the batches' cv hit its cap of 2) and into the
        // overhead tables, whose shape a simulation then could not reproduce (measured p50 5.3 ms,
        // simulated 9.0 ms; the table was flat at its minimum up to p50, the fit's monotone bound).
        // The median of three discards one such round, which is what the rounds are for.
        open_rounds: 3,
    };
    // An unknown model is named, and nothing is written.
    let e = err(&[
        "calibrate",
        "--url",
        &triton.http_url(),
        "--model",
        "nosuchmodel",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("unknown model \"nosuchmodel\""), "{e}");
    assert!(!out.exists());

    let c = calibrate::calibrate(&o).expect("calibrate");
    calibrate::write_profile(&out, &c.profile).unwrap();
    let profile = kis_agent::scenario::load_profile(&out).expect("written profile loads");
    // JSON keeps every field; floats to the last bit or two.
    assert_eq!(profile.batches.len(), c.profile.batches.len());
    for (a, b) in profile.batches.iter().zip(&c.profile.batches) {
        assert_eq!(a.size, b.size);
        assert!((a.latency.mean() - b.latency.mean()).abs() <= 1e-12 * b.latency.mean());
    }
    assert_eq!(profile.description, c.profile.description);
    assert_eq!(c.config.max_batch_size, 16);
    assert_eq!(c.config.instances, 1);
    assert!((c.config.max_queue_delay.unwrap() - 0.002).abs() < 1e-9);
    assert_eq!(profile.batches[0].size, 1, "{:?}", profile.batches);
    assert!(profile.description.contains("model image"));
    eprint!("{}", calibrate::render(&c));
    for l in &c.levels {
        assert!(l.ok > 10, "level {}: only {} answers", l.concurrency, l.ok);
        assert_eq!(l.errors, 0);
        // The server's own accounting must fit inside what the client saw.
        assert!(
            l.server_queue_ms + l.server_compute_ms <= l.service_mean_ms * 1.05,
            "{l:?}"
        );
    }
    // Concurrency 4 with dynamic batching must have formed batches larger than 1.
    assert!(
        c.levels[1].batches.iter().any(|b| b.0 > 1),
        "{:?}",
        c.levels[1]
    );

    // Tolerance: 25 % on a 2-core machine shared by the client, the server and other work; the
    // fidelity table (agent/docs/fidelity.md) holds the 15 % comparison on quiet, longer runs.
    let tol = 0.25;
    // The open-loop rates: one overhead table per rate, and simulating each rate (Poisson, the
    // written profile, the replica's own rate estimate choosing the table) gives back the measured
    // mean and median latency (the medians over the rounds, which the fit used).
    let rates: Vec<f64> = profile.network_by_rate.iter().map(|r| r.rate_rps).collect();
    assert_eq!(rates, [20.0, 60.0], "{:?}", profile.network_by_rate);
    assert_eq!(
        c.levels
            .iter()
            .filter(|l| l.open_rate_rps.is_some())
            .count(),
        6,
        "2 rates x 3 rounds"
    );
    for rate in rates {
        let runs: Vec<&calibrate::Level> = c
            .levels
            .iter()
            .filter(|l| l.open_rate_rps == Some(rate))
            .collect();
        let open = calibrate::median_level(&runs);
        let s = fidelity::simulate(sim_config(
            &profile,
            &c.config,
            ShapeSpec::Constant {
                rate,
                duration: 300.0,
            },
            ArrivalKind::Poisson,
            1,
        ))
        .unwrap();
        let sim_mean_ms = s.mean_latency.unwrap() * 1e3;
        let sim_p50_ms = s.p50.unwrap() * 1e3;
        eprintln!(
            "open {rate}/s: measured mean {:.2} ms p50 {:.2} ms, simulated {sim_mean_ms:.2} / {sim_p50_ms:.2} ms",
            open.service_mean_ms, open.service_p50_ms
        );
        assert!(
            fidelity::rel_err(open.service_mean_ms, sim_mean_ms) <= tol,
            "open {rate}/s mean latency: measured {:.2} ms, simulated {sim_mean_ms:.2} ms",
            open.service_mean_ms
        );
        assert!(
            fidelity::rel_err(open.service_p50_ms, sim_p50_ms) <= tol,
            "open {rate}/s median latency: measured {:.2} ms, simulated {sim_p50_ms:.2} ms",
            open.service_p50_ms
        );
    }
    // The profile's batch times pool every level's executions, hot closed-loop batches and the
    // slower ones between sparse open-loop requests (this run's batch-1 compute: see the table);
    // the open levels' excess is fitted into their overhead tables instead. So the pooled
    // batch-1 mean lies between the levels' own means...
    let b1_means: Vec<f64> = c
        .levels
        .iter()
        .filter_map(|l| l.batches.iter().find(|b| b.0 == 1 && b.1 > 0).map(|b| b.2))
        .collect();
    let lo = b1_means.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = b1_means.iter().copied().fold(0.0, f64::max);
    let b1 = profile.batches[0].latency.mean() * 1e3;
    assert!(
        lo * 0.999 <= b1 && b1 <= hi * 1.001,
        "pooled batch-1 {b1:.3} ms outside the levels' {lo:.3}..{hi:.3} ms"
    );
    // ...and the busy-fraction check runs on the closed-loop levels' own pooled means: the
    // measured throughput of concurrency 1 through one simulated replica must keep the model
    // instance as busy as Triton's statistics say it was.
    let closed = calibrate::pooled_batches(c.levels.iter().filter(|l| l.open_rate_rps.is_none()));
    let mut hot = profile.clone();
    for bp in &mut hot.batches {
        if let Some(&(_, _, mean_ms)) = closed.iter().find(|p| p.0 == bp.size && p.1 > 0)
            && let kis_sim::Dist::Lognormal { mean, .. } = &mut bp.latency
        {
            *mean = mean_ms * 1e-3;
        }
    }
    let l = &c.levels[0];
    let s = fidelity::simulate(sim_config(
        &hot,
        &c.config,
        ShapeSpec::Constant {
            rate: l.throughput_rps,
            duration: 120.0,
        },
        ArrivalKind::Uniform,
        1,
    ))
    .unwrap();
    let sim_busy = s.pools[1].utilization;
    eprintln!(
        "c1 at {:.1}/s: measured busy {:.3}, simulated {sim_busy:.3}",
        l.throughput_rps, l.busy_fraction
    );
    assert!(
        fidelity::rel_err(l.busy_fraction, sim_busy) <= tol,
        "busy fraction: measured {:.3}, simulated {sim_busy:.3}",
        l.busy_fraction
    );
    // Throughput: the simulated replica keeps up with the measured rate (nothing piles up).
    assert!(
        fidelity::rel_err(l.throughput_rps, s.completed as f64 / 120.0) <= 0.05,
        "throughput: measured {:.1}/s, simulated {}",
        l.throughput_rps,
        s.completed
    );
    // The command line end to end: a short single level writes a loadable profile and its levels.
    let cli_out = d.join("cli.json");
    let levels = d.join("levels.json");
    run(&[
        "calibrate",
        "--url",
        &triton.http_url(),
        "--model",
        "identity",
        "--levels",
        "2",
        "--duration",
        "1500ms",
        "--open-rate",
        "0",
        "--warmup",
        "0",
        "--out",
        cli_out.to_str().unwrap(),
        "--levels-json",
        levels.to_str().unwrap(),
    ])
    .unwrap();
    let p = kis_agent::scenario::load_profile(&cli_out).unwrap();
    assert!(
        p.description.contains("model identity"),
        "{}",
        p.description
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&levels).unwrap()).unwrap();
    assert_eq!(v["config"]["max_batch_size"], 64);
    assert_eq!(v["levels"][0]["concurrency"], 2);
    triton.stop().unwrap();
}

#[test]
fn calibrate_rejects_bad_input() {
    let d = scratch("bad");
    let out = d.join("p.json");
    let out = out.to_str().unwrap();
    // Nothing listens on this port.
    let port = kis_fixtures::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let e = err(&["calibrate", "--url", &url, "--out", out, "--warmup", "0"]);
    assert!(e.contains("cannot reach") && e.contains(&url), "{e}");
    let e = err(&["calibrate", "--url", "ftp://x", "--out", out]);
    assert!(e.contains("--url"), "{e}");
    let e = err(&["calibrate", "--levels", "1,zero", "--out", out]);
    assert!(e.contains("--levels") && e.contains("zero"), "{e}");
    let e = err(&["calibrate", "--levels", "0", "--out", out]);
    assert!(e.contains("--levels"), "{e}");
    let e = err(&["calibrate", "--duration", "fast", "--out", out]);
    assert!(e.contains("--duration"), "{e}");
    let e = err(&["calibrate", "--open-rate=-5", "--out", out]);
    assert!(e.contains("--open-rate"), "{e}");
    let e = err(&["calibrate", "--open-rates", "20,fast", "--out", out]);
    assert!(e.contains("--open-rates") && e.contains("fast"), "{e}");
    let e = err(&["calibrate", "--open-rounds", "0", "--out", out]);
    assert!(e.contains("--open-rounds"), "{e}");
    let e = err(&["calibrate", "--open-duration", "soon", "--out", out]);
    assert!(e.contains("--open-duration"), "{e}");
    let e = err(&["calibrate", "--url", &url]);
    assert!(e.contains("--out"), "{e}");
    assert!(
        !PathBuf::from(out).exists(),
        "no profile written on failure"
    );
    let e = err(&[
        "fidelity",
        "--profile",
        "/nonexistent/p.json",
        "--url",
        &url,
    ]);
    assert!(e.contains("/nonexistent/p.json"), "{e}");
    let e = err(&[
        "fidelity",
        "--profile",
        "x.json",
        "--shapes",
        "ramp,zigzag",
        "--min",
        "1",
    ]);
    assert!(e.contains("zigzag"), "{e}");
}
