//! Exact trajectories pinned: the hashes below were recorded from the simulator before the
//! hot-path work of issue 13 (commit 39cafc4) and must not move when the engine is only made faster.
//! They cover the RL environment (observations, rewards, terminations, masks, step infos and the
//! end-of-episode summaries, bit for bit, on the `default` scenario and on a randomised one shaped
//! like agent/learn/scenarios/gpu16-randomized.json), [`VecEnv`]'s buffers (inline and on worker
//! threads), and plain simulation runs (summary and series) through batching, timers, routing,
//! queue limits, rule autoscalers, scale-downs with grace periods and the node autoscaler.
//!
//! A change that is *meant* to alter the simulation updates these hashes (and says so in its
//! commit); every other change leaves them alone.

use kis_autoscale::HpaConfig;
use kis_sim::env::{Action, Env, EnvConfig, SimEnv};
use kis_sim::randomize::Randomization;
use kis_sim::scaler::AutoscalerSpec;
use kis_sim::vec_env::VecEnv;
use kis_sim::{
    Dist, NodeAutoscaler, Pool, RatePoint, Routing, ScalerSpec, SimConfig, Simulation, Summary,
};
use kis_traffic::ShapeSpec;

use crate::common::{Script, single_pool};

/// FNV-1a over the bytes fed in: stable across Rust releases (std's hasher is not promised to be).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn f32(&mut self, v: f32) {
        self.bytes(&v.to_bits().to_le_bytes());
    }
    fn bools(&mut self, v: &[bool]) {
        for &b in v {
            self.bytes(&[b as u8]);
        }
    }
    /// A value through its JSON (serde_json writes floats so that they read back bit for bit).
    fn json<T: serde::Serialize>(&mut self, v: &T) {
        self.bytes(serde_json::to_string(v).unwrap().as_bytes());
    }
}

/// SplitMix64's finaliser: the actions' random source.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Any action, masked or not (a masked delta is clamped: that path is pinned too).
fn action(k: u64, i: u64) -> [usize; 3] {
    let r = mix((k << 16) | i);
    [
        (r % 5) as usize,
        ((r >> 8) % 5) as usize,
        ((r >> 16) % 3) as usize,
    ]
}

/// `steps` steps of one [`SimEnv`], resetting with the next seed at each episode's end.
fn env_hash(cfg: EnvConfig, steps: u64) -> u64 {
    let mut env = SimEnv::new(cfg).unwrap();
    let mut h = Fnv::new();
    let mut seed = 3;
    env.reset(seed).iter().for_each(|&x| h.f32(x));
    h.bools(&env.mask());
    for k in 0..steps {
        let s = env.step(Action::from_indices(action(k, 0)));
        s.obs.iter().for_each(|&x| h.f32(x));
        h.f64(s.reward);
        h.bools(&[s.terminated, s.truncated]);
        h.bools(&s.mask);
        h.json(&s.info);
        if s.terminated || s.truncated {
            h.json(&env.end_summary());
            seed += 1;
            env.reset(seed).iter().for_each(|&x| h.f32(x));
            h.bools(&env.mask());
        }
    }
    h.0
}

/// `steps` steps of a [`VecEnv`] of `n` environments on `threads` threads: every buffer.
fn vec_hash(cfg: EnvConfig, n: usize, threads: usize, steps: u64) -> u64 {
    let mut v = VecEnv::with_threads(cfg, n, threads).unwrap();
    let mut h = Fnv::new();
    v.reset(&(0..n as u64).map(|i| 100 + i).collect::<Vec<_>>());
    v.obs().iter().for_each(|&x| h.f32(x));
    for k in 0..steps {
        let a: Vec<[usize; 3]> = (0..n as u64).map(|i| action(k, i)).collect();
        v.step(&a);
        v.obs().iter().for_each(|&x| h.f32(x));
        v.reward().iter().for_each(|&x| h.f32(x));
        h.bools(v.terminated());
        h.bools(v.truncated());
        h.bools(v.mask());
        let d = v.obs_dim();
        for i in (0..n).filter(|&i| v.done(i)) {
            v.final_obs()[i * d..(i + 1) * d]
                .iter()
                .for_each(|&x| h.f32(x));
        }
        h.json(&v.infos());
    }
    h.0
}

/// The randomised scenario (gpu16-randomized.json's settings: 16 one-GPU nodes, 1..=16 GPU
/// replicas, the NASA 1995 trace at 15-80 % of the largest fleet, 1200 s episodes); None without
/// the shared traces folder.
fn randomized() -> Option<EnvConfig> {
    let Some(dir) = kis_traffic::shared_dir().map(|d| d.join("traces")) else {
        eprintln!("no shared/traces folder: the randomised golden trajectory is skipped");
        return None;
    };
    let mut cfg = crate::common::gpu16_env();
    cfg.randomize = Some(Randomization {
        episode_seconds: 1200.0,
        traces: vec![dir.join("nasa1995_rate_60s.csv")],
        gpus: [8, 16],
        gpu_replicas: [1, 4],
        cpu_replicas: [0, 0],
        load: [0.15, 0.8],
        profile_jitter: 0.1,
        ..Randomization::default()
    });
    Some(cfg)
}

/// One plain run: its summary and series.
fn sim_hash(cfg: SimConfig) -> u64 {
    sim_hash_with(cfg, |_| {})
}

/// [`sim_hash`] with `setup` applied to the simulation before it runs.
fn sim_hash_with(cfg: SimConfig, setup: impl FnOnce(&mut Simulation)) -> u64 {
    let mut sim = Simulation::new(cfg).unwrap();
    setup(&mut sim);
    let s: Summary = sim.run();
    let mut h = Fnv::new();
    h.json(&s);
    h.json(&sim.series());
    h.0
}

fn check(what: &str, got: u64, want: u64) {
    assert_eq!(
        got, want,
        "{what}: trajectory hash {got:#018x}, recorded {want:#018x}: the simulation changed",
    );
}

#[test]
fn env_trajectories_are_unchanged() {
    check(
        "default env",
        env_hash(EnvConfig::default_cluster(), 60),
        0x3ab9_235a_ae2c_aba3,
    );
    let mut paper = EnvConfig::kis_s_testbed();
    paper.obs = kis_autoscale::ObsSet::Paper;
    check(
        "kis-s-testbed env, paper obs",
        env_hash(paper, 30),
        0xea99_2582_d7c1_c8c2,
    );
    if let Some(cfg) = randomized() {
        check("randomised env", env_hash(cfg, 100), 0xe8a0_d6e3_59b0_7ae4);
    }
}

#[test]
fn vec_env_buffers_are_unchanged() {
    check(
        "default VecEnv inline",
        vec_hash(EnvConfig::default_cluster(), 3, 1, 25),
        0x372a_003e_55ba_4158,
    );
    check(
        "default VecEnv on 2 threads",
        vec_hash(EnvConfig::default_cluster(), 5, 2, 25),
        0x1ba4_7316_244b_45a0,
    );
    if let Some(cfg) = randomized() {
        check(
            "randomised VecEnv",
            vec_hash(cfg, 4, 2, 45),
            0x459d_8b12_d661_d757,
        );
    }
}

#[test]
fn simulation_runs_are_unchanged() {
    // Dynamic batching with a queue delay (timers), least-outstanding routing, a queue limit,
    // two instances per pod, a rate-changing workload and a CPU pool beside.
    let mut a = single_pool(
        0.0,
        0.0,
        Dist::Lognormal {
            mean: 0.03,
            cv: 0.4,
        },
        2,
    );
    a.workload.shape = ShapeSpec::Random {
        min: 10.0,
        max: 150.0,
        interval: 20.0,
        duration: 240.0,
    };
    a.pools.gpu.replicas = 2;
    a.pools.gpu.max_batch = 8;
    a.pools.gpu.max_queue_delay = 0.004;
    a.pools.gpu.queue_limit = Some(40);
    a.pools.cpu.replicas = 2;
    // Overheads outside the queue: a fixed distribution on GPU, a rate-dependent one on CPU.
    a.pools.gpu.profile.network = Some(Dist::Exponential { mean: 0.002 });
    a.pools.cpu.profile.network_by_rate = vec![
        RatePoint {
            rate_rps: 5.0,
            dist: Dist::Uniform {
                min: 0.001,
                max: 0.003,
            },
        },
        RatePoint {
            rate_rps: 50.0,
            dist: Dist::Lognormal {
                mean: 0.01,
                cv: 0.3,
            },
        },
    ];
    a.pools.cpu.weight = 0.1;
    a.pools.cpu.queue_limit = Some(10);
    a.routing = Routing::LeastOutstanding;
    a.record_series = true;
    a.seed = 11;
    check("batching run", sim_hash(a), 0xfdbc_c2df_2846_967a);

    // Rule autoscalers scaling both ways on the default cluster (grace periods, victims, pending
    // pods), with the node autoscaler adding nodes, and the drain phase.
    let mut b = EnvConfig::default_cluster().sim;
    b.workload.shape = ShapeSpec::Spike {
        base: 10.0,
        peak: 120.0,
        start: 0.2,
        length: 0.3,
        duration: 900.0,
    };
    b.cluster.nodes = 2;
    b.cluster.node_autoscaler = Some(NodeAutoscaler {
        max_nodes: 5,
        provision_delay: Dist::Uniform {
            min: 40.0,
            max: 90.0,
        },
    });
    let hpa = |max_replicas| {
        ScalerSpec::Rule(AutoscalerSpec::Hpa(HpaConfig {
            max_replicas,
            downscale_stabilization: 60.0,
            cpu_initialization_period: 0.0,
            initial_readiness_delay: 0.0,
            ..HpaConfig::default()
        }))
    };
    b.pools.cpu.autoscaler = Some(hpa(12));
    b.record_series = true;
    b.drain = true;
    b.seed = 5;
    // The GPU pool follows a script: up past the cluster (Pending pods, new nodes), down with
    // requests in flight (grace periods, victims), up again.
    let script = Script {
        steps: vec![(0.0, 1), (100.0, 4), (300.0, 2), (420.0, 6), (700.0, 1)],
        period: 15.0,
    };
    let got = sim_hash_with(b, |sim| sim.set_autoscaler(Pool::Gpu, Box::new(script)));
    check("autoscaled run", got, 0xd01d_fecb_5528_ae46);

    // The standard performance scenario, shortened.
    let mut c = kis_sim::bench::hour_at_1000_rps();
    c.workload.shape = ShapeSpec::Constant {
        rate: 1000.0,
        duration: 120.0,
    };
    check("1000 req/s run", sim_hash(c), 0x10d2_6e3c_d4fc_00ee);
}
