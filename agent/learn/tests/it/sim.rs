use kis_learn::sim_adapter::SimVecEnv;
use kis_learn::{PpoConfig, Trainer, VecEnv};
use kis_policy::{AUTOSCALER_ACTION_DIMS, NetConfig, Policy, Provenance};
use kis_sim::env::EnvConfig;
use kis_sim::profiles::{kis_s_cpu, kis_s_gpu};
use kis_sim::{PoolConfig, Pools, SimConfig, Workload};
use kis_traffic::{ArrivalKind, ShapeSpec};
use tch::Device;

fn env_cfg() -> EnvConfig {
    let shape = ShapeSpec::Spike {
        base: 5.0,
        peak: 40.0,
        start: 0.3,
        length: 0.4,
        duration: 300.0,
    };
    let sim = SimConfig::new(
        Workload::new(shape, ArrivalKind::Poisson),
        Pools {
            gpu: PoolConfig::new(1, kis_s_gpu()),
            cpu: PoolConfig::new(1, kis_s_cpu()),
        },
    );
    EnvConfig::new(sim)
}

#[test]
fn sim_adapter_trains_and_the_policy_round_trips() {
    // 300 s episodes of 30 s steps: 10 steps each, so a 16-step rollout crosses an auto-reset.
    let env = SimVecEnv::new(&env_cfg(), 2, 2).unwrap();
    assert_eq!(env.action_dims(), AUTOSCALER_ACTION_DIMS.to_vec());
    let cfg = PpoConfig {
        n_steps: 16,
        total_steps: 2 * 16 * 2,
        net: NetConfig::paper(),
        ..PpoConfig::default()
    };
    let mut t = Trainer::new(cfg, env, Device::Cpu).unwrap();
    let mut episodes = 0;
    while !t.finished() {
        let s = t.iterate().unwrap();
        assert!(s.pg_loss.is_finite() && s.v_loss.is_finite(), "{s:?}");
        episodes += s.episodes;
    }
    assert_eq!(episodes, 6, "2 environments x 32 steps / 10-step episodes");
    let p = t.policy(Provenance::default()).unwrap();
    let q = Policy::from_bytes(&p.to_bytes()).unwrap();
    q.check(&SimVecEnv::spec(), &AUTOSCALER_ACTION_DIMS)
        .unwrap();
    assert_eq!(q.header().provenance.steps, 64);
}
