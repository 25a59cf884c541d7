//! The simulator as a [`VecEnv`]: `kis_sim::env::SimEnv` (the observation set its scenario names,
//! built by the live-computable `kis_autoscale::obs` builder, with the environment's action masks),
//! stepped in parallel on scoped threads, reset per environment when its episode ends.
//!
//! Snapshots for bit-identical resume: the simulator is deterministic for a seed and an action
//! sequence, so a snapshot is each environment's episode seed plus the actions taken since its
//! reset, and restoring replays them (at most one episode per environment).

use kis_autoscale::obs::{MASK_LEN, OBS_SPEC_VERSION, ObsSet};
use kis_policy::{AUTOSCALER_ACTION_DIMS, ObsSpec};
use kis_sim::env::{Action, Env, EnvConfig, SimEnv};

use crate::env::{StepBuf, VecEnv};
use crate::rng::Rng;

/// `n` simulated clusters.
pub struct SimVecEnv {
    envs: Vec<SimEnv>,
    rng: Rng,
    threads: usize,
    /// Per environment: the seed of its current episode and the actions since.
    history: Vec<(u64, Vec<[usize; 3]>)>,
    set: ObsSet,
}

impl SimVecEnv {
    /// `n` environments of `cfg`, stepped on up to `threads` threads.
    pub fn new(cfg: &EnvConfig, n: usize, threads: usize) -> Result<Self, kis_sim::Error> {
        let envs = (0..n)
            .map(|_| SimEnv::new(cfg.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SimVecEnv {
            envs,
            rng: Rng::new(0),
            threads: threads.max(1),
            history: vec![(0, Vec::new()); n],
            set: cfg.obs,
        })
    }

    /// The observation spec of a named set (what a policy records and is checked against).
    pub fn spec_of(set: ObsSet) -> ObsSpec {
        ObsSpec::new(&set.spec_id(), OBS_SPEC_VERSION, set.names())
    }

    /// The default observation set's spec.
    pub fn spec() -> ObsSpec {
        Self::spec_of(ObsSet::default())
    }

    fn dim(&self) -> usize {
        self.set.dim()
    }
}

/// One environment's step and, if its episode ended, the first observation of the next with its mask.
type Outcome = (
    kis_sim::env::Step<Vec<f32>>,
    Option<(Vec<f32>, [bool; MASK_LEN])>,
);

impl VecEnv for SimVecEnv {
    fn num_envs(&self) -> usize {
        self.envs.len()
    }

    fn obs_spec(&self) -> ObsSpec {
        Self::spec_of(self.set)
    }

    fn action_dims(&self) -> Vec<usize> {
        AUTOSCALER_ACTION_DIMS.to_vec()
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32], mask: &mut [bool]) {
        self.rng = Rng::new(seed);
        let d = self.dim();
        for (i, env) in self.envs.iter_mut().enumerate() {
            let seed = self.rng.next_u64();
            self.history[i] = (seed, Vec::new());
            obs[i * d..(i + 1) * d].copy_from_slice(&env.reset(seed));
            mask[i * MASK_LEN..(i + 1) * MASK_LEN].copy_from_slice(&env.mask());
        }
    }

    fn step(&mut self, actions: &[usize], out: &mut StepBuf) {
        let n = self.envs.len();
        // Seeds for the episodes that may start now, drawn in a fixed order (determinism).
        let seeds: Vec<u64> = (0..n).map(|_| self.rng.next_u64()).collect();
        let chunk = n.div_ceil(self.threads).max(1);
        let mut results: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        std::thread::scope(|s| {
            for ((envs, res), (acts, seeds)) in self
                .envs
                .chunks_mut(chunk)
                .zip(results.chunks_mut(chunk))
                .zip(actions.chunks(chunk * 3).zip(seeds.chunks(chunk)))
            {
                s.spawn(move || {
                    for (i, env) in envs.iter_mut().enumerate() {
                        let a =
                            Action::from_indices([acts[3 * i], acts[3 * i + 1], acts[3 * i + 2]]);
                        let st = env.step(a);
                        let fresh = (st.terminated || st.truncated)
                            .then(|| (env.reset(seeds[i]), env.mask()));
                        res[i] = Some((st, fresh));
                    }
                });
            }
        });
        for (i, r) in results.into_iter().enumerate() {
            let Some((st, fresh)) = r else { continue };
            if fresh.is_some() {
                self.history[i] = (seeds[i], Vec::new());
            } else {
                self.history[i]
                    .1
                    .push([actions[3 * i], actions[3 * i + 1], actions[3 * i + 2]]);
            }
            out.reward[i] = st.reward as f32;
            out.terminated[i] = st.terminated;
            out.truncated[i] = st.truncated;
            let d = self.set.dim();
            let (o, m) = match fresh {
                Some((f, m)) => {
                    out.final_obs[i * d..(i + 1) * d].copy_from_slice(&st.obs);
                    (f, m)
                }
                None => (st.obs, st.mask),
            };
            out.obs[i * d..(i + 1) * d].copy_from_slice(&o);
            out.mask[i * MASK_LEN..(i + 1) * MASK_LEN].copy_from_slice(&m);
        }
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        let mut put = |x: u64| v.extend_from_slice(&x.to_le_bytes());
        put(self.rng.state);
        for (seed, acts) in &self.history {
            put(*seed);
            put(acts.len() as u64);
            for a in acts {
                a.iter().for_each(|&x| put(x as u64));
            }
        }
        Some(v)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        let mut words = state
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        let mut next = || words.next().ok_or("simulator snapshot is truncated");
        self.rng.state = next()?;
        for i in 0..self.envs.len() {
            let seed = next()?;
            let n = next()? as usize;
            let mut acts = Vec::with_capacity(n.min(1 << 20));
            for _ in 0..n {
                acts.push([next()? as usize, next()? as usize, next()? as usize]);
            }
            self.envs[i].reset(seed);
            for a in &acts {
                self.envs[i].step(Action::from_indices(*a));
            }
            self.history[i] = (seed, acts);
        }
        Ok(())
    }
}
