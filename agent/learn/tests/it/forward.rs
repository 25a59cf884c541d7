use kis_learn::sim_adapter::SimVecEnv;
use kis_learn::{PpoConfig, StepBuf, Trainer, VecEnv};
use kis_policy::{NetConfig, ObsSpec, Provenance};
use tch::{Device, Tensor};

/// A stand-in environment with the simulator's spec and action space and random observations in
/// [0, 1] (the network, not the environment, is under test).
pub struct Noise {
    pub n: usize,
    pub state: u64,
}

impl Noise {
    fn next(&mut self) -> f32 {
        self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1);
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
        for e in 0..self.n {
            out.reward[e] = self.next();
            out.terminated[e] = false;
            out.truncated[e] = self.next() < 0.05;
            if out.truncated[e] {
                out.final_obs[e * 10..(e + 1) * 10].copy_from_slice(&out.obs[e * 10..(e + 1) * 10]);
            }
        }
        out.mask.fill(true);
    }
}

fn check(net: NetConfig) {
    let cfg = PpoConfig {
        net,
        n_steps: 32,
        total_steps: 4 * 32 * 3,
        ..PpoConfig::default()
    };
    let mut t = Trainer::new(cfg, Noise { n: 4, state: 0 }, Device::Cpu).unwrap();
    // Train a little so the weights and the normaliser are not at their initial values.
    for _ in 0..2 {
        t.iterate().unwrap();
    }
    let p = t.policy(Provenance::default()).unwrap();
    let mut s = p.scratch();
    let mut rng = Noise { n: 1, state: 99 };
    let mut worst = 0.0f32;
    for _ in 0..50 {
        let raw: Vec<f32> = (0..10).map(|_| rng.next() * 1.4 - 0.2).collect();
        let v_rust = p.forward(&raw, &mut s).unwrap();
        let mut x = vec![0.0; 10];
        t.norm().normalize(&raw, &mut x);
        let (logits, v) =
            tch::no_grad(|| t.model().forward(&Tensor::from_slice(&x).reshape([1, 10])));
        let logits: Vec<f32> = Vec::try_from(logits.flatten(0, -1)).unwrap();
        let v: Vec<f32> = Vec::try_from(v).unwrap();
        assert_eq!(logits.len(), s.logits.len());
        for (a, b) in logits.iter().zip(&s.logits) {
            worst = worst.max((a - b).abs());
        }
        worst = worst.max((v[0] - v_rust).abs());
    }
    assert!(worst <= 1e-5, "largest difference {worst}");
}

#[test]
fn pure_rust_forward_equals_tch_cleanrl_net() {
    check(NetConfig::default());
}

#[test]
fn pure_rust_forward_equals_tch_paper_net() {
    check(NetConfig::paper());
}
