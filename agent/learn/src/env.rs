//! The vectorised-environment interface the learner trains against: flat buffers (observations as
//! f32 `[n_envs * obs_dim]`, masks as bool `[n_envs * sum(dims)]`, true = allowed), multi-discrete
//! actions, and termination kept apart from truncation. Environments reset themselves when an
//! episode ends and hand back the episode's last observation, so a truncated episode can still be
//! bootstrapped with V(s_final).

use kis_policy::ObsSpec;

/// What one step of all environments returns; the buffers are reused between steps.
#[derive(Clone, Debug, Default)]
pub struct StepBuf {
    /// Observations after the step (after an automatic reset for environments that finished).
    pub obs: Vec<f32>,
    /// Action masks for `obs`.
    pub mask: Vec<bool>,
    /// Reward of the step.
    pub reward: Vec<f32>,
    /// The episode ended in a terminal state (no bootstrap).
    pub terminated: Vec<bool>,
    /// The episode was cut by a time limit (bootstrap from `final_obs`).
    pub truncated: Vec<bool>,
    /// The last observation of an episode that just ended; meaningless elsewhere.
    pub final_obs: Vec<f32>,
}

impl StepBuf {
    /// Buffers for `n` environments.
    pub fn new(n: usize, obs_dim: usize, n_logits: usize) -> StepBuf {
        StepBuf {
            obs: vec![0.0; n * obs_dim],
            mask: vec![true; n * n_logits],
            reward: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: vec![0.0; n * obs_dim],
        }
    }
}

/// A batch of environments stepped together.
pub trait VecEnv {
    /// Number of environments.
    fn num_envs(&self) -> usize;
    /// The observation layout.
    fn obs_spec(&self) -> ObsSpec;
    /// Categories per action dimension.
    fn action_dims(&self) -> Vec<usize>;
    /// Starts every environment afresh from `seed`; writes observations and masks.
    fn reset(&mut self, seed: u64, obs: &mut [f32], mask: &mut [bool]);
    /// Applies `actions` (`[n_envs * n_dims]`, category indices) and fills `out`.
    fn step(&mut self, actions: &[usize], out: &mut StepBuf);
    /// The full state, if the environment can be snapshotted (then a resumed run continues bit
    /// for bit); None otherwise (a resumed run then starts fresh episodes).
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }
    /// Restores a [`VecEnv::save_state`] snapshot.
    fn load_state(&mut self, _state: &[u8]) -> Result<(), String> {
        Err("this environment cannot restore a snapshot".into())
    }
}
