//! CartPole-v1, written from the dynamics published in the Gymnasium documentation (Barto, Sutton
//! and Anderson's cart-pole; Euler integration at 50 Hz, 500-step limit): the learner's sanity
//! check. A correct PPO reaches a mean return of 475 or more within about 500k steps.

use kis_policy::ObsSpec;

use crate::env::{StepBuf, VecEnv};
use crate::rng::Rng;

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_LIMIT: f64 = 2.4;
/// Episode length at which v1 truncates.
pub const MAX_STEPS: u32 = 500;

/// `n` independent cart-poles; action 0 pushes left, 1 right; reward 1 per step.
#[derive(Clone, Debug)]
pub struct CartPole {
    state: Vec<[f64; 4]>,
    steps: Vec<u32>,
    rng: Rng,
}

impl CartPole {
    /// `n` environments (call [`VecEnv::reset`] first).
    pub fn new(n: usize) -> CartPole {
        CartPole {
            state: vec![[0.0; 4]; n],
            steps: vec![0; n],
            rng: Rng::new(0),
        }
    }

    fn fresh(&mut self, i: usize) {
        for s in &mut self.state[i] {
            *s = self.rng.uniform(-0.05, 0.05);
        }
        self.steps[i] = 0;
    }

    fn write_obs(&self, i: usize, out: &mut [f32]) {
        for (o, s) in out[4 * i..4 * i + 4].iter_mut().zip(self.state[i]) {
            *o = s as f32;
        }
    }

    /// One Euler step of environment `i`; true if the pole fell or the cart left the track.
    fn advance(&mut self, i: usize, push_right: bool) -> bool {
        let [x, x_dot, theta, theta_dot] = self.state[i];
        let force = if push_right { FORCE } else { -FORCE };
        let (sin, cos) = theta.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        let next = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ];
        self.state[i] = next;
        self.steps[i] += 1;
        next[0].abs() > X_LIMIT || next[2].abs() > THETA_LIMIT
    }
}

impl VecEnv for CartPole {
    fn num_envs(&self) -> usize {
        self.state.len()
    }

    fn obs_spec(&self) -> ObsSpec {
        ObsSpec::new("cartpole-v1", 1, &["x", "x_dot", "theta", "theta_dot"])
    }

    fn action_dims(&self) -> Vec<usize> {
        vec![2]
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32], mask: &mut [bool]) {
        self.rng = Rng::new(seed);
        for i in 0..self.num_envs() {
            self.fresh(i);
            self.write_obs(i, obs);
        }
        mask.fill(true);
    }

    fn step(&mut self, actions: &[usize], out: &mut StepBuf) {
        for (i, &a) in actions.iter().enumerate().take(self.num_envs()) {
            let terminated = self.advance(i, a == 1);
            let truncated = !terminated && self.steps[i] >= MAX_STEPS;
            out.reward[i] = 1.0;
            out.terminated[i] = terminated;
            out.truncated[i] = truncated;
            if terminated || truncated {
                self.write_obs(i, &mut out.final_obs);
                self.fresh(i);
            }
            self.write_obs(i, &mut out.obs);
        }
        out.mask.fill(true);
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        v.extend_from_slice(&self.rng.state.to_le_bytes());
        for (s, &n) in self.state.iter().zip(&self.steps) {
            for x in s {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&(n as u64).to_le_bytes());
        }
        Some(v)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        let n = self.num_envs();
        if state.len() != 8 + n * 40 {
            return Err(format!(
                "cartpole snapshot of {} bytes, {} expected for {n} environments",
                state.len(),
                8 + n * 40
            ));
        }
        let word =
            |k: usize| u64::from_le_bytes(state[8 * k..8 * k + 8].try_into().unwrap_or([0; 8]));
        self.rng.state = word(0);
        for i in 0..n {
            for j in 0..4 {
                self.state[i][j] = f64::from_bits(word(1 + 5 * i + j));
            }
            self.steps[i] = word(5 + 5 * i) as u32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushing_one_way_tips_the_pole_within_a_few_dozen_steps() {
        let mut env = CartPole::new(1);
        let mut obs = vec![0.0; 4];
        let mut mask = vec![false; 2];
        env.reset(1, &mut obs, &mut mask);
        assert!(obs.iter().all(|x| x.abs() <= 0.05) && mask == [true, true]);
        let mut out = StepBuf::new(1, 4, 2);
        let mut n = 0;
        loop {
            env.step(&[1], &mut out);
            n += 1;
            if out.terminated[0] {
                break;
            }
            assert!(n < 100, "never fell");
        }
        // Gymnasium: constant pushing ends an episode in roughly 8-12 steps.
        assert!((5..30).contains(&n), "{n}");
        assert!(out.final_obs[2] < -THETA_LIMIT as f32 || out.final_obs[0].abs() > 2.4);
        assert!(out.obs.iter().all(|x| x.abs() <= 0.05), "auto-reset");
    }

    #[test]
    fn first_step_matches_the_published_equations() {
        let mut env = CartPole::new(1);
        env.state[0] = [0.0, 0.0, 0.0, 0.0];
        env.advance(0, true);
        // theta = 0: temp = 10/1.1; theta_acc = -temp / (0.5 * (4/3 - 0.1/1.1)).
        let temp = 10.0 / 1.1;
        let theta_acc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
        let x_acc = temp - 0.05 * theta_acc / 1.1;
        let s = env.state[0];
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 0.02 * x_acc).abs() < 1e-12);
        assert!((s[3] - 0.02 * theta_acc).abs() < 1e-12);
    }

    #[test]
    fn truncates_at_500_and_snapshots_round_trip() {
        let mut env = CartPole::new(2);
        let (mut obs, mut mask) = (vec![0.0; 8], vec![true; 4]);
        env.reset(3, &mut obs, &mut mask);
        env.steps[0] = MAX_STEPS - 1;
        let snap = env.save_state().unwrap();
        let mut out = StepBuf::new(2, 4, 2);
        env.step(&[0, 1], &mut out);
        assert!(out.truncated[0] && !out.terminated[0]);
        let mut other = CartPole::new(2);
        other.load_state(&snap).unwrap();
        let mut out2 = StepBuf::new(2, 4, 2);
        other.step(&[0, 1], &mut out2);
        assert_eq!(out.obs, out2.obs);
        assert!(other.load_state(&snap[1..]).is_err());
    }
}
