//! `Noise`, a stand-in environment with the simulator's observation spec (the paper's 10 features)
//! and action space and random observations and rewards in [0, 1], for tests and benches where the
//! network or the update, not the environment, is under test. Shared by file
//! (`#[path = ".../tests/support/noise.rs"] mod noise;`) by tests/it/forward.rs and
//! benches/update.rs, so kis-learn's library carries no test code.

use kis_learn::sim_adapter::SimVecEnv;
use kis_learn::{StepBuf, VecEnv};
use kis_policy::ObsSpec;

/// `n` environments of random numbers; every action allowed; each episode is truncated with
/// probability 1/20 per step (the final observation kept, as the simulator does).
pub struct Noise {
    /// Environments.
    pub n: usize,
    /// The generator's state (a 64-bit LCG).
    pub state: u64,
}

impl Noise {
    /// `n` environments from generator state `state`.
    pub fn new(n: usize, state: u64) -> Noise {
        Noise { n, state }
    }

    /// The next number in [0, 1).
    pub fn next(&mut self) -> f32 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.state >> 40) as f32 / (1u64 << 24) as f32
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
        self.state = seed;
        obs.iter_mut().for_each(|o| *o = self.next());
        mask.fill(true);
    }
    fn step(&mut self, _actions: &[usize], out: &mut StepBuf) {
        for i in 0..out.obs.len() {
            out.obs[i] = self.next();
        }
        let d = out.obs.len() / self.n.max(1);
        for e in 0..self.n {
            out.reward[e] = self.next();
            out.terminated[e] = false;
            out.truncated[e] = self.next() < 0.05;
            if out.truncated[e] {
                out.final_obs[e * d..(e + 1) * d].copy_from_slice(&out.obs[e * d..(e + 1) * d]);
            }
        }
        out.mask.fill(true);
    }
}
