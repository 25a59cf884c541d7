use kis_autoscale::obs::{self, MASK_LEN, ObsInput, ObsSet, RateHistory};
use kis_sim::env::{Action, Env, EnvConfig, ExternalHpa, Placement, SimEnv};
use kis_sim::randomize::{LoadBasis, PEAK_WINDOW, Randomization, peak_rate_over};
use kis_sim::vec_env::VecEnv;
use kis_sim::{Device, Dist, Pool, PoolConfig, ServiceProfile};
use kis_traffic::ShapeSpec;

use crate::common::{roomy, single_pool};

fn env_cfg() -> EnvConfig {
    let mut sim = roomy(
        single_pool(0.0, 0.0, Dist::Exponential { mean: 0.02 }, 1),
        10,
    );
    sim.workload.shape = ShapeSpec::Spike {
        base: 20.0,
        peak: 150.0,
        start: 0.3,
        length: 0.4,
        duration: 300.0,
    };
    sim.pools.cpu = PoolConfig::new(
        1,
        ServiceProfile::single(Device::Cpu, Dist::Exponential { mean: 0.08 }),
    );
    sim.pools.cpu.startup = kis_sim::Startup::instant();
    sim.pools.gpu.startup = kis_sim::Startup::instant();
    EnvConfig::new(sim)
}

fn rollout(env: &mut SimEnv, seed: u64, policy: impl Fn(usize) -> Action) -> (f64, usize, bool) {
    env.reset(seed);
    let mut total = 0.0;
    for k in 0..100 {
        let s = env.step(policy(k));
        assert!(s.obs.iter().all(|x| (0.0..=1.0).contains(x)), "{:?}", s.obs);
        total += s.reward;
        if s.truncated || s.terminated {
            return (total, k + 1, s.truncated);
        }
    }
    panic!("episode did not end");
}

#[test]
fn episodes_truncate_at_the_workload_end_and_are_deterministic() {
    let mut env = SimEnv::new(env_cfg()).unwrap();
    let hold = |_| Action::default();
    let (r1, steps, truncated) = rollout(&mut env, 5, hold);
    assert_eq!(steps, 10, "300 s in 30 s steps");
    assert!(truncated);
    let (r2, _, _) = rollout(&mut env, 5, hold);
    assert_eq!(r1, r2);
    let (r3, _, _) = rollout(&mut env, 6, hold);
    assert_ne!(r1, r3);
}

#[test]
fn actions_reach_the_replicas_through_the_hpa() {
    let mut env = SimEnv::new(env_cfg()).unwrap();
    env.reset(1);
    let up = Action {
        gpu_delta: 2,
        cpu_delta: -2,
        placement: Placement::PreferGpu,
    };
    let s = env.step(up);
    assert_eq!(s.info.target, [3, 1], "CPU target clamps at min_replicas");
    assert_eq!(s.info.replicas, [3, 1]);
    let s = env.step(up);
    assert_eq!(s.info.replicas, [5, 1]);
    let sim = env.sim().unwrap();
    assert_eq!(sim.ready_replicas(Pool::Gpu), 5);
}

#[test]
fn a_minus_two_takes_effect_within_one_step_with_the_exact_n_behaviour() {
    let mut cfg = env_cfg();
    cfg.sim.pools.gpu.replicas = 4;
    let down = Action {
        gpu_delta: -2,
        ..Action::default()
    };
    let mut env = SimEnv::new(cfg.clone()).unwrap();
    env.reset(3);
    env.step(Action::default());
    let s = env.step(down);
    assert_eq!(s.info.target[0], 2);
    assert_eq!(
        s.info.replicas[0], 2,
        "spec.replicas follows within the step"
    );
    assert_eq!(
        env.sim().unwrap().pod_phases(Pool::Gpu)[2],
        2,
        "two Ready pods left"
    );
    // The legacy path (no behavior) holds the scale-down for its 300 s window: the reason the
    // behaviour is part of the scenario.
    cfg.hpa = ExternalHpa {
        behavior: None,
        ..ExternalHpa::default()
    };
    let mut legacy = SimEnv::new(cfg).unwrap();
    legacy.reset(3);
    legacy.step(Action::default());
    assert_eq!(legacy.step(down).info.replicas[0], 4);
}

#[test]
fn step_slo_miss_is_a_cohort_fraction_and_every_arrival_is_scored_once() {
    // Overload: 1 GPU replica at 20 ms serves 50 req/s against a 150 req/s spike; hold.
    let mut env = SimEnv::new(env_cfg()).unwrap();
    env.reset(2);
    let (mut cohorts, mut missed) = (0u64, 0u64);
    let r = &env.config().reward;
    let (lo, hi) = (-(r.alpha + r.gamma + r.slo_violation + r.cost), r.beta);
    let mut worst: f64 = 0.0;
    loop {
        let s = env.step(Action::default());
        assert!((0.0..=1.0).contains(&s.info.slo_miss), "{:?}", s.info);
        assert!(
            (lo..=hi).contains(&s.reward),
            "reward {} out of [{lo}, {hi}]",
            s.reward
        );
        worst = worst.max(s.info.slo_miss);
        cohorts += s.info.cohort;
        missed += (s.info.slo_miss * s.info.cohort as f64).round() as u64;
        if s.truncated {
            break;
        }
    }
    let sum = env.sim().unwrap().summary();
    assert_eq!(cohorts, sum.arrivals, "every arrival in exactly one cohort");
    let met = sum.completed - sum.pool(Pool::Gpu).over_slo - sum.pool(Pool::Cpu).over_slo;
    assert_eq!(missed, sum.arrivals - met);
    assert!(worst > 0.5, "the overload shows up as misses: {worst}");
}

#[test]
fn scaling_up_for_the_spike_earns_more_reward_than_holding() {
    let mut env = SimEnv::new(env_cfg()).unwrap();
    let hold = |_| Action::default();
    // 150 req/s needs about 3 GPU replicas at 20 ms; add them before the spike at 90 s.
    let scale = |k: usize| Action {
        gpu_delta: if k == 1 { 2 } else { 0 },
        ..Action::default()
    };
    let (held, _, _) = rollout(&mut env, 9, hold);
    let (scaled, _, _) = rollout(&mut env, 9, scale);
    assert!(scaled > held, "scaled {scaled} vs held {held}");
}

#[test]
fn masks_match_the_clamp_in_the_env() {
    // The default cluster caps the GPU pool at its 4 GPUs.
    let mut env = SimEnv::new(EnvConfig::default_cluster()).unwrap();
    env.reset(4);
    let mut mask = env.mask();
    let mut target = env.target();
    for k in 0..10 {
        let a = Action::from_indices([(k * 3) % 5, (k * 7 + 1) % 5, k % 3]);
        let s = env.step(a);
        for (i, d) in [a.gpu_delta, a.cpu_delta].into_iter().enumerate() {
            let want = target[i] as i64 + d as i64;
            let allowed = mask[i * 5 + (d + 2) as usize];
            assert_eq!(
                allowed || d == 0,
                s.info.target[i] as i64 == want,
                "step {k} pool {i}: target {} + {d} -> {}, mask {allowed}",
                target[i],
                s.info.target[i]
            );
        }
        assert!(s.info.target[0] <= 4, "never more GPU pods than GPUs");
        mask = s.mask;
        target = s.info.target;
        if s.truncated {
            break;
        }
    }
}

/// The observation from the env equals the one built from the recorded, Prometheus-like series
/// (per-scrape offered and completed rates) and the scraped views.
#[test]
fn observation_from_the_env_equals_one_from_the_scraped_series() {
    for set in [ObsSet::Default, ObsSet::Paper] {
        let mut cfg = EnvConfig::default_cluster();
        cfg.sim.record_series = true;
        cfg.obs = set;
        let mut env = SimEnv::new(cfg).unwrap();
        env.reset(7);
        let mut boundaries = Vec::new();
        for k in 0..6 {
            let s = env.step(Action::from_indices([3, 2 + k % 2, 1]));
            let sim = env.sim().unwrap();
            // The counters as Prometheus has them: summed from the per-scrape rates.
            let (mut a, mut c, mut t0) = (0.0, 0.0, 0.0);
            for r in sim.series() {
                a += r.offered_rps * (r.t - t0);
                c += r.throughput_rps * (r.t - t0);
                t0 = r.t;
            }
            let (g, cp) = (sim.view(Pool::Gpu), sim.view(Pool::Cpu));
            let p95 = ObsInput {
                gpu: &g,
                cpu: &cp,
                target: [0, 0],
                history: &RateHistory::new(),
            }
            .p95();
            boundaries.push((t0, a, c, p95));
            if k == 0 {
                boundaries.insert(0, (0.0, 0.0, 0.0, None));
            }
            let history = RateHistory::from_series(&boundaries);
            let input = ObsInput {
                gpu: &g,
                cpu: &cp,
                target: env.target(),
                history: &history,
            };
            let rebuilt = obs::observation(set, env.capacity(), &input);
            for (i, (x, y)) in s.obs.iter().zip(&rebuilt).enumerate() {
                assert!(
                    (x - y).abs() < 1e-5,
                    "{set:?} step {k} feature {}: env {x} vs series {y}",
                    set.names()[i]
                );
            }
        }
    }
}

fn write_trace(name: &str, rates: &[f64]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kis-sim-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let mut s = String::from("t_seconds,rate_rps\n");
    for (i, r) in rates.iter().enumerate() {
        s.push_str(&format!("{},{r}\n", i * 10));
    }
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn no_feature_reads_the_future() {
    // Two workloads equal for the first 100 s, then very different.
    let calm: Vec<f64> = (0..30).map(|i| if i < 10 { 40.0 } else { 30.0 }).collect();
    let storm: Vec<f64> = (0..30).map(|i| if i < 10 { 40.0 } else { 400.0 }).collect();
    let paths = [
        write_trace("calm.csv", &calm),
        write_trace("storm.csv", &storm),
    ];
    for set in [ObsSet::Default, ObsSet::Paper] {
        let mut runs: Vec<Vec<Vec<f32>>> = Vec::new();
        for p in &paths {
            let mut cfg = EnvConfig::default_cluster();
            cfg.obs = set;
            cfg.sim.workload.shape = ShapeSpec::Trace {
                path: p.clone(),
                scale: 1.0,
                speedup: 1.0,
                offset: 0.0,
                limit: None,
            };
            let mut env = SimEnv::new(cfg).unwrap();
            let mut obs = vec![env.reset(11)];
            for _ in 0..6 {
                obs.push(env.step(Action::from_indices([3, 3, 1])).obs);
            }
            runs.push(obs);
        }
        // Steps end at 30, 60, 90 s: before the workloads part, the observations are identical.
        for (k, (a, b)) in runs[0].iter().zip(&runs[1]).take(4).enumerate() {
            assert_eq!(a, b, "{set:?} observation {k} differs");
        }
        assert_ne!(
            runs[0][6], runs[1][6],
            "{set:?}: the perturbation is visible later"
        );
    }
}

#[test]
fn vec_env_equals_sequential_stepping_with_auto_reset() {
    let n = 3;
    let mut v = VecEnv::with_threads(env_cfg(), n, 2).unwrap();
    let d = v.obs_dim();
    let seeds: Vec<u64> = (100..100 + n as u64).collect();
    v.reset(&seeds);
    let mut seq: Vec<SimEnv> = (0..n).map(|_| SimEnv::new(env_cfg()).unwrap()).collect();
    let mut seq_seed = seeds.clone();
    for i in 0..n {
        assert_eq!(seq[i].reset(seeds[i]), v.obs()[i * d..(i + 1) * d]);
    }
    let mut resets = 0;
    for k in 0..23 {
        let actions: Vec<[usize; 3]> = (0..n)
            .map(|i| [(i + k) % 5, (2 * i + k) % 5, k % 3])
            .collect();
        v.step(&actions);
        for i in 0..n {
            let s = seq[i].step(Action::from_indices(actions[i]));
            assert_eq!(v.reward()[i], s.reward as f32, "env {i} step {k}");
            assert_eq!(v.terminated()[i], s.terminated);
            assert_eq!(v.truncated()[i], s.truncated);
            assert_eq!(v.infos()[i], s.info);
            let row = i * d..(i + 1) * d;
            if s.truncated || s.terminated {
                resets += 1;
                assert_eq!(v.final_obs()[row.clone()], s.obs[..], "final obs kept");
                seq_seed[i] += n as u64;
                let o = seq[i].reset(seq_seed[i]);
                assert_eq!(v.obs()[row], o[..], "auto-reset with seed + n");
                assert_eq!(v.mask()[i * MASK_LEN..(i + 1) * MASK_LEN], seq[i].mask());
            } else {
                assert_eq!(v.obs()[row], s.obs[..]);
                assert_eq!(v.mask()[i * MASK_LEN..(i + 1) * MASK_LEN], s.mask);
            }
        }
    }
    assert_eq!(resets, 2 * n, "two episodes of 10 steps ended in each env");
    // The same on the caller's thread.
    let mut inline = VecEnv::with_threads(env_cfg(), n, 1).unwrap();
    inline.reset(&seeds);
    v.reset(&seeds);
    for k in 0..12 {
        let a = vec![[k % 5, 4 - k % 5, 1]; n];
        inline.step(&a);
        v.step(&a);
        assert_eq!(inline.obs(), v.obs());
        assert_eq!(inline.reward(), v.reward());
    }
}

#[test]
fn randomized_episodes_differ_by_seed_and_repeat_with_it() {
    let mut cfg = EnvConfig::default_cluster();
    cfg.randomize = Some(Randomization::default());
    let env = SimEnv::new(cfg).unwrap();
    let a = env.episode_config(1);
    assert_eq!(a, env.episode_config(1));
    let distinct = (2..12).filter(|&s| env.episode_config(s) != a).count();
    assert_eq!(distinct, 10);
    let gpus: std::collections::BTreeSet<u32> = (0..40)
        .map(|s| env.episode_config(s).gpu_capacity())
        .collect();
    assert!(gpus.len() >= 3, "GPU capacity varies: {gpus:?}");
    let mut env = env;
    for s in 0..5 {
        let (_, steps, truncated) = rollout(&mut env, s, |k| Action::from_indices([k % 5, 2, 1]));
        assert!(truncated && steps == 10, "seed {s}: {steps} steps");
    }
}

/// With `load_basis: episode_peak` every episode's busiest minute is the drawn fraction of its own
/// fleet (its drawn GPUs), as `evaluate` scales traces; the default basis ignores the GPUs drawn.
#[test]
fn episode_peak_load_is_a_fraction_of_the_episodes_own_fleet() {
    let mut cfg = crate::common::gpu16_env();
    cfg.randomize = Some(Randomization {
        episode_seconds: 600.0,
        gpus: [4, 16],
        load: [0.8, 0.8],
        rate_scale: [1.0, 1.0],
        load_basis: LoadBasis::EpisodePeak,
        ..Randomization::default()
    });
    let env = SimEnv::new(cfg.clone()).unwrap();
    let fleet = |sc: &kis_sim::SimConfig| {
        let (g, c) = (&sc.pools.gpu, &sc.pools.cpu);
        g.max_replicas.min(sc.gpu_capacity()) as f64 * g.replica_capacity()
            + c.max_replicas as f64 * c.replica_capacity()
    };
    for seed in 0..12 {
        let sc = env.episode_config(seed);
        let p = sc
            .workload
            .shape
            .build(seed)
            .unwrap()
            .scaled(sc.workload.scale);
        let ratio = peak_rate_over(&p, PEAK_WINDOW) / fleet(&sc);
        assert!(
            (ratio - 0.8).abs() < 1e-6,
            "seed {seed}: peak / fleet = {ratio}"
        );
    }
    // The default basis: the mean against the largest fleet, whatever GPUs were drawn.
    cfg.randomize.as_mut().unwrap().load_basis = LoadBasis::FleetMean;
    let env = SimEnv::new(cfg).unwrap();
    let small = (0..40)
        .map(|s| env.episode_config(s))
        .find(|sc| sc.gpu_capacity() <= 6)
        .expect("a small cluster drawn");
    let p = small
        .workload
        .shape
        .build(0)
        .unwrap()
        .scaled(small.workload.scale);
    assert!(
        peak_rate_over(&p, PEAK_WINDOW) > fleet(&small),
        "the old basis overloads a small cluster"
    );
}

#[test]
fn randomization_refuses_held_out_traces() {
    let p = write_trace("twitter2021_spikewindow_rate_1s.csv", &[1.0, 2.0, 3.0]);
    let mut cfg = EnvConfig::default_cluster();
    cfg.randomize = Some(Randomization {
        traces: vec![p],
        ..Randomization::default()
    });
    let e = SimEnv::new(cfg.clone())
        .err()
        .expect("held-out trace refused");
    assert!(e.to_string().contains("held"), "{e}");
    assert!(VecEnv::new(cfg, 2).is_err());
    // A training trace is replayed in windows of its usable part.
    let ok = write_trace("mine.csv", &[5.0; 100]);
    let mut cfg = EnvConfig::default_cluster();
    cfg.randomize = Some(Randomization {
        traces: vec![ok],
        trace_fraction: 1.0,
        ..Randomization::default()
    });
    let env = SimEnv::new(cfg).unwrap();
    assert!(matches!(
        env.episode_config(3).workload.shape,
        ShapeSpec::Trace { .. }
    ));
}

#[test]
fn named_scenarios_state_their_cluster() {
    let d = EnvConfig::named("default").unwrap();
    assert_eq!(d.sim.gpu_capacity(), 4);
    let t = EnvConfig::named("kis-s-testbed").unwrap();
    assert_eq!(t.sim.gpu_capacity(), 1);
    let env = SimEnv::new(t).unwrap();
    let mut env = env;
    env.reset(0);
    assert_eq!(
        env.mask()[3..5],
        [false, false],
        "no GPU scale-up on the 1-GPU testbed"
    );
    assert_eq!(
        env.mask()[0..3],
        [true, false, true],
        "3 -> 1 allowed, 3 -> 2 still over"
    );
    let s = env.step(Action::default());
    assert_eq!(s.info.target, [3, 3], "holding keeps the paper's 3 + 3");
    assert_eq!(env.sim().unwrap().pod_phases(Pool::Gpu)[..3], [2, 0, 1]);
    let e = EnvConfig::named("nope").unwrap_err().to_string();
    assert!(e.contains("kis-s-testbed"), "{e}");
}

/// The real training and validation traces replay in windows of their usable parts, scaled to the
/// drawn load. Needs shared/traces (absent in a bare checkout: then it says so and checks nothing).
#[test]
fn randomization_replays_windows_of_the_real_training_traces() {
    let Some(dir) = kis_traffic::shared_dir().map(|d| d.join("traces")) else {
        eprintln!("no shared/traces folder: randomization_replays_windows... skipped");
        return;
    };
    let traces = vec![
        dir.join("nasa1995_rate_60s.csv"),
        dir.join("servegen_mlarge_rate_60s.csv"),
    ];
    let mut cfg = EnvConfig::default_cluster();
    cfg.randomize = Some(Randomization {
        traces: traces.clone(),
        trace_fraction: 1.0,
        ..Randomization::default()
    });
    let mut env = SimEnv::new(cfg).unwrap();
    let mut used = std::collections::BTreeSet::new();
    for seed in 0..6 {
        let sc = env.episode_config(seed);
        let ShapeSpec::Trace {
            path,
            offset,
            limit,
            speedup,
            ..
        } = &sc.workload.shape
        else {
            panic!("seed {seed}: not a trace window");
        };
        kis_sim::split::ensure_not_held_out(path, *offset, *limit).unwrap();
        assert!((1.0..=60.0).contains(speedup), "{speedup}");
        used.insert(path.clone());
        let (_, steps, truncated) = rollout(&mut env, seed, |_| Action::default());
        assert!(truncated && steps == 10, "seed {seed}: {steps} steps");
        let arrivals = env.sim().unwrap().summary().arrivals;
        assert!(
            arrivals > 100,
            "seed {seed}: the window was scaled to a load: {arrivals}"
        );
    }
    assert_eq!(used.len(), 2, "both traces drawn: {used:?}");
}

/// A worker that panics (here: stepping before any reset) fails the caller instead of hanging it.
#[test]
#[should_panic(expected = "VecEnv worker")]
fn a_panicking_vec_env_worker_fails_the_caller() {
    let mut v = VecEnv::with_threads(env_cfg(), 4, 2).unwrap();
    v.step(&[[2, 2, 1]; 4]);
}
