use kis_sim::env::{Action, Env, EnvConfig, Placement, SimEnv, VecEnv};
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
fn vec_env_matches_sequential_envs() {
    let n = 6;
    let mut v = VecEnv::new(env_cfg(), n).unwrap();
    let seeds: Vec<u64> = (0..n as u64).collect();
    let obs = v.reset(&seeds);
    assert_eq!(obs.len(), n);
    let actions: Vec<Action> = (0..n)
        .map(|i| Action::from_indices([i % 5, (i + 2) % 5, i % 3]))
        .collect();
    let par = v.step(&actions);
    for i in 0..n {
        let mut e = SimEnv::new(env_cfg()).unwrap();
        assert_eq!(e.reset(seeds[i]), obs[i]);
        assert_eq!(e.step(actions[i]), par[i]);
    }
}
