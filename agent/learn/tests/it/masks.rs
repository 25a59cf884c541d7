use kis_learn::{PpoConfig, StepBuf, Trainer, VecEnv};
use kis_policy::ObsSpec;
use tch::Device;

/// A bandit whose valid actions change every step (drawn from a counter); it panics if it ever
/// receives a masked action, and rewards the highest valid index so the policy wants the masked
/// ones too (they are often the best-looking logits).
struct Shifting {
    n: usize,
    t: usize,
    mask: Vec<bool>,
    checked: usize,
}

const DIMS: [usize; 2] = [4, 3];

impl Shifting {
    fn fill(&mut self) {
        self.t += 1;
        for e in 0..self.n {
            let base = e * 7;
            for i in 0..4 {
                self.mask[base + i] = !(self.t + e + i).is_multiple_of(3);
            }
            for i in 0..3 {
                self.mask[base + 4 + i] = i == (self.t + e) % 3;
            }
        }
    }
}

impl VecEnv for Shifting {
    fn num_envs(&self) -> usize {
        self.n
    }
    fn obs_spec(&self) -> ObsSpec {
        ObsSpec::new("shifting-bandit", 1, &["phase", "one"])
    }
    fn action_dims(&self) -> Vec<usize> {
        DIMS.to_vec()
    }
    fn reset(&mut self, _seed: u64, obs: &mut [f32], mask: &mut [bool]) {
        self.fill();
        mask.copy_from_slice(&self.mask);
        for e in 0..self.n {
            obs[2 * e] = (self.t % 3) as f32;
            obs[2 * e + 1] = 1.0;
        }
    }
    fn step(&mut self, actions: &[usize], out: &mut StepBuf) {
        for e in 0..self.n {
            let (a, b) = (actions[2 * e], actions[2 * e + 1]);
            assert!(
                self.mask[e * 7 + a],
                "masked action {a} sampled in dimension 0"
            );
            assert!(
                self.mask[e * 7 + 4 + b],
                "masked action {b} sampled in dimension 1"
            );
            self.checked += 1;
            out.reward[e] = (a + b) as f32;
            out.terminated[e] = false;
            out.truncated[e] = false;
        }
        self.fill();
        out.mask.copy_from_slice(&self.mask);
        for e in 0..self.n {
            out.obs[2 * e] = (self.t % 3) as f32;
            out.obs[2 * e + 1] = 1.0;
        }
    }
}

#[test]
fn masked_actions_are_never_sampled_in_training() {
    let env = Shifting {
        n: 4,
        t: 0,
        mask: vec![true; 28],
        checked: 0,
    };
    let cfg = PpoConfig {
        n_steps: 64,
        total_steps: 4 * 64 * 10,
        ent_coef: 0.0,
        lr: 1e-2,
        ..PpoConfig::default()
    };
    let mut t = Trainer::new(cfg, env, Device::Cpu).unwrap();
    while !t.finished() {
        let s = t.iterate().unwrap();
        assert!(s.entropy.is_finite() && s.entropy >= 0.0, "{s:?}");
    }
    assert_eq!(t.env().checked, 4 * 64 * 10);
}
