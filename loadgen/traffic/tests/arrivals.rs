//! Arrival schedules over every shape: counts, step timing, Poisson statistics, determinism,
//! and replay of the real traces in `shared/traces/`.

use kis_traffic::{ArrivalKind, Pattern, Profile, ShapeSpec};

fn default_profile(p: Pattern) -> Profile {
    ShapeSpec::default_for(p).build(11).unwrap()
}

/// Kolmogorov–Smirnov distance between a sample and the Exp(1) distribution.
fn ks_exp1(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = 1.0 - (-x).exp();
            (f - i as f64 / n)
                .abs()
                .max((f - (i as f64 + 1.0) / n).abs())
        })
        .fold(0.0, f64::max)
}

/// Critical KS distance at significance 0.001.
fn ks_critical(n: usize) -> f64 {
    1.949 / (n as f64).sqrt()
}

#[test]
fn uniform_arrivals_hit_the_integral_exactly() {
    for p in [
        Pattern::Constant,
        Pattern::Ramp,
        Pattern::Periodic,
        Pattern::Random,
        Pattern::Spike,
    ] {
        let prof = default_profile(p);
        let sends: Vec<f64> = prof.arrivals(ArrivalKind::Uniform, 0).collect();
        // One arrival per unit of the integral: round(total) of them.
        assert_eq!(sends.len() as f64, prof.total().round(), "{p}");
        for (n, &t) in sends.iter().enumerate() {
            let want = n as f64 + 0.5;
            assert!(
                (prof.cumulative(t) - want).abs() < 1e-6,
                "{p}: arrival {n} at {t} has cumulative {}",
                prof.cumulative(t)
            );
        }
        assert!(sends.windows(2).all(|w| w[0] <= w[1]), "{p} not sorted");
        assert!(sends.iter().all(|&t| (0.0..prof.duration()).contains(&t)));
    }
}

#[test]
fn spike_step_takes_effect_within_ten_milliseconds() {
    let prof = default_profile(Pattern::Spike);
    let sends: Vec<f64> = prof.arrivals(ArrivalKind::Uniform, 0).collect();
    for step in [90.0, 210.0] {
        let after = sends.iter().copied().find(|&t| t >= step).unwrap();
        let before = sends.iter().copied().rev().find(|&t| t < step).unwrap();
        let new_rate = prof.rate(step);
        // The first send after the step comes within one new interval of it, and the spacing
        // right after the step is already the new rate's.
        assert!(
            after - step <= 1.0 / new_rate + 1e-9,
            "step {step}: first send at {after}"
        );
        let next = sends.iter().copied().find(|&t| t > after).unwrap();
        assert!(((next - after) - 1.0 / new_rate).abs() < 1e-9);
        assert!(step - before <= 1.0 / prof.rate(before) + 1e-9);
    }
    // At 100 req/s the step to the peak shows up within 10 ms.
    let first_peak = sends.iter().copied().find(|&t| t >= 90.0).unwrap();
    assert!(first_peak - 90.0 <= 0.010 + 1e-9, "{first_peak}");
}

#[test]
fn poisson_interarrivals_are_exponential() {
    let prof = ShapeSpec::Constant {
        rate: 200.0,
        duration: 100.0,
    }
    .build(0)
    .unwrap();
    let sends: Vec<f64> = prof.arrivals(ArrivalKind::Poisson, 1234).collect();
    let gaps: Vec<f64> = sends.windows(2).map(|w| (w[1] - w[0]) * 200.0).collect();
    let d = ks_exp1(gaps.clone());
    assert!(
        d < ks_critical(gaps.len()),
        "KS distance {d} over {} gaps",
        gaps.len()
    );
    // Evenly spaced arrivals are far from exponential: the test can fail.
    let even: Vec<f64> = prof
        .arrivals(ArrivalKind::Uniform, 0)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (w[1] - w[0]) * 200.0)
        .collect();
    assert!(ks_exp1(even.clone()) > ks_critical(even.len()));
}

#[test]
fn poisson_over_a_varying_rate_is_time_rescaled_exponential() {
    // Time-rescaling: the integral of the rate between consecutive arrivals is Exp(1).
    for p in [Pattern::Ramp, Pattern::Periodic, Pattern::Spike] {
        let prof = default_profile(p).scaled(5.0);
        let sends: Vec<f64> = prof.arrivals(ArrivalKind::Poisson, 99).collect();
        let gaps: Vec<f64> = sends
            .windows(2)
            .map(|w| prof.cumulative(w[1]) - prof.cumulative(w[0]))
            .collect();
        let d = ks_exp1(gaps.clone());
        assert!(d < ks_critical(gaps.len()), "{p}: KS distance {d}");
        // Counts in the spike's peak phase follow its rate (within 4 standard deviations).
        if p == Pattern::Spike {
            let n = sends
                .iter()
                .filter(|&&t| (90.0..210.0).contains(&t))
                .count() as f64;
            let mean = 500.0 * 120.0;
            assert!((n - mean).abs() < 4.0 * mean.sqrt(), "{n} vs {mean}");
        }
    }
}

#[test]
fn arrivals_are_deterministic_per_seed() {
    let prof = default_profile(Pattern::Periodic);
    let a: Vec<f64> = prof.arrivals(ArrivalKind::Poisson, 5).collect();
    let b: Vec<f64> = prof.arrivals(ArrivalKind::Poisson, 5).collect();
    let c: Vec<f64> = prof.arrivals(ArrivalKind::Poisson, 6).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn real_traces_replay() {
    let shared = kis_traffic::shared_dir()
        .expect("shared/traces not found beside the repository (set KIS_SHARED_DIR)");
    let dir = shared.join("traces");
    let files = [
        "azure_llm2023_code_rate_1s.csv",
        "azure_llm2023_conv_rate_1s.csv",
        "nasa1995_rate_60s.csv",
        "nasa1995_busiestday_rate_1s.csv",
        "servegen_mlarge_rate_60s.csv",
        "twitter2021_rate_60s.csv",
        "twitter2021_spikewindow_rate_1s.csv",
    ];
    for f in files {
        let path = dir.join(f);
        let bins = kis_traffic::trace::read(&path).unwrap();
        let spec = ShapeSpec::Trace {
            path: path.clone(),
            scale: 1.0,
            speedup: 1.0,
            offset: 0.0,
            limit: None,
        };
        let prof = spec.build(0).unwrap();
        // The replay integrates to the trace's own request count (rate x bin width summed).
        let width = bins[1].t - bins[0].t;
        let total: f64 = bins.iter().map(|b| b.rate * width).sum();
        assert!(
            (prof.total() - total).abs() < 1e-6 * total.max(1.0),
            "{f}: {} vs {total}",
            prof.total()
        );
    }
    // The spike window: a 2 h trace whose flash crowd lifts the rate well above its mean.
    let spike = ShapeSpec::Trace {
        path: dir.join("twitter2021_spikewindow_rate_1s.csv"),
        scale: 1.0,
        speedup: 1.0,
        offset: 0.0,
        limit: None,
    }
    .build(0)
    .unwrap();
    assert_eq!(spike.duration(), 7200.0);
    assert!(spike.peak_rate() > 4.0 * spike.mean_rate());
}

#[test]
fn trace_replay_windows_days() {
    // Validation days 0-6 of ServeGen, replayed 60x faster at half the rate.
    let path = kis_traffic::shared_dir()
        .expect("shared/traces not found")
        .join("traces/servegen_mlarge_rate_60s.csv");
    let day = 86_400.0;
    let full = ShapeSpec::Trace {
        path: path.clone(),
        scale: 1.0,
        speedup: 1.0,
        offset: 0.0,
        limit: Some(7.0 * day),
    }
    .build(0)
    .unwrap();
    let fast = ShapeSpec::Trace {
        path,
        scale: 0.5,
        speedup: 60.0,
        offset: 0.0,
        limit: Some(7.0 * day),
    }
    .build(0)
    .unwrap();
    assert_eq!(full.duration(), 7.0 * day);
    assert!((fast.duration() - 7.0 * day / 60.0).abs() < 1e-6);
    assert!((fast.total() - full.total() * 0.5 / 60.0).abs() < 1e-6 * full.total());
}
