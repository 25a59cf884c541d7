//! Time of one PPO update as the issue specifies it (2048 transitions, 4 epochs, minibatch 64, the
//! paper-sized 137,998-parameter network, 1 libtorch thread): the median of repeated updates on one
//! stored rollout of a stand-in environment (random observations; the update's cost does not depend
//! on them). Its peer is `bench/ppo_update.py` (PyTorch), run in the same session.
//! `cargo bench -p kis-learn --bench update [-- --quick]`.

use std::time::Instant;

use kis_learn::sim_adapter::SimVecEnv;
use kis_learn::{PpoConfig, StepBuf, Trainer, VecEnv};
use kis_policy::{NetConfig, ObsSpec};

/// Random observations in [0, 1], all actions allowed, episodes of 100 steps.
struct Noise {
    n: usize,
    x: u64,
    t: usize,
}

impl Noise {
    fn next(&mut self) -> f32 {
        self.x = self
            .x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.x >> 40) as f32 / (1u64 << 24) as f32
    }
}

impl VecEnv for Noise {
    fn num_envs(&self) -> usize {
        self.n
    }
    fn obs_spec(&self) -> ObsSpec {
        // The paper's 10 features (the network sizes of tch-setup.md).
        SimVecEnv::spec_of(kis_autoscale::obs::ObsSet::Paper)
    }
    fn action_dims(&self) -> Vec<usize> {
        vec![5, 5, 3]
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32], mask: &mut [bool]) {
        self.x = seed;
        obs.iter_mut().for_each(|o| *o = self.next());
        mask.fill(true);
    }
    fn step(&mut self, _a: &[usize], out: &mut StepBuf) {
        self.t += 1;
        for i in 0..out.obs.len() {
            out.obs[i] = self.next();
        }
        for e in 0..self.n {
            out.reward[e] = self.next();
            out.terminated[e] = false;
            out.truncated[e] = self.t.is_multiple_of(100);
        }
        out.final_obs.copy_from_slice(&out.obs);
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 2 } else { 6 };
    let cfg = PpoConfig {
        n_steps: 256,
        n_minibatches: 32,
        update_epochs: 4,
        total_steps: 2048 * 100,
        anneal_lr: false,
        net: NetConfig::paper(),
        threads: 1,
        ..PpoConfig::default()
    };
    let env = Noise { n: 8, x: 0, t: 0 };
    let mut t = Trainer::new(cfg, env, tch::Device::Cpu).expect("trainer");
    t.iterate().expect("first iteration");
    let mut ms = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        t.update_again().expect("update");
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    // The first is a warm-up.
    let mut timed = ms[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    println!(
        "ppo update (2048 x 4 epochs, minibatch 64, 137,998 parameters, 1 thread): median {:.0} ms of {:?}",
        timed[timed.len() / 2],
        timed.iter().map(|m| m.round()).collect::<Vec<_>>()
    );
}
