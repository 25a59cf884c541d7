//! Proximal policy optimisation (Schulman et al., 2017) with the details of CleanRL's reference
//! implementation ("The 37 Implementation Details of PPO", Huang et al., 2022): vectorised
//! rollouts, GAE, per-minibatch advantage normalisation, the clipped surrogate and clipped value
//! loss, an entropy bonus, several epochs over shuffled minibatches, a global gradient-norm clip,
//! Adam with eps 1e-5 and a linearly annealed learning rate, approx-KL / clip fraction / explained
//! variance and an optional target-KL stop. Actions are multi-discrete with masks
//! ([`crate::dist`]); observations are normalised by a running normaliser saved with the policy.

use std::collections::VecDeque;
use std::time::Instant;

use kis_policy::{Header, NetConfig, ObsNorm, POLICY_FORMAT, Policy, Provenance};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::dist::{Heads, clipped_surrogate, entropy, log_prob, value_loss};
use crate::env::{StepBuf, VecEnv};
use crate::gae::{explained_variance, gae};
use crate::model::{ActorCritic, Adam};
use crate::rng::Rng;
use crate::{Error, Result};

/// Hyper-parameters (CleanRL's defaults for discrete actions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Seed of the initial weights, the environments, sampling and shuffling.
    pub seed: u64,
    /// Environment steps to train (all environments together).
    pub total_steps: u64,
    /// Steps per environment per rollout.
    pub n_steps: usize,
    /// Discount.
    pub gamma: f64,
    /// GAE lambda.
    pub gae_lambda: f64,
    /// Minibatches per epoch.
    pub n_minibatches: usize,
    /// Epochs per update.
    pub update_epochs: usize,
    /// Ratio clip.
    pub clip_coef: f64,
    /// Clip the value loss with the same coefficient.
    pub clip_vloss: bool,
    /// Entropy bonus.
    pub ent_coef: f64,
    /// Value loss weight.
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Adam learning rate (at the start when annealed).
    pub lr: f64,
    /// Anneal the learning rate linearly to 0 over the run.
    pub anneal_lr: bool,
    /// Adam epsilon.
    pub adam_eps: f64,
    /// Stop an update's epochs once approx-KL exceeds this.
    pub target_kl: Option<f64>,
    /// Normalise advantages per minibatch.
    pub norm_adv: bool,
    /// Normalised observations are clipped to [-obs_clip, obs_clip].
    pub obs_clip: f64,
    /// Network layout.
    pub net: NetConfig,
    /// libtorch intra-op threads (1: predictable on small machines, tch-setup.md §3-4).
    pub threads: i32,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            seed: 1,
            total_steps: 500_000,
            n_steps: 128,
            gamma: 0.99,
            gae_lambda: 0.95,
            n_minibatches: 4,
            update_epochs: 4,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            lr: 2.5e-4,
            anneal_lr: true,
            adam_eps: 1e-5,
            target_kl: None,
            norm_adv: true,
            obs_clip: 10.0,
            net: NetConfig::default(),
            threads: 1,
        }
    }
}

impl PpoConfig {
    /// Checks the settings for `n_envs` environments.
    pub fn validate(&self, n_envs: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if n_envs == 0 || self.n_steps == 0 {
            return bad("need at least one environment and one step per rollout".into());
        }
        let batch = n_envs * self.n_steps;
        if self.n_minibatches == 0 || !batch.is_multiple_of(self.n_minibatches) {
            return bad(format!(
                "n_minibatches {} must divide the batch of {batch} transitions",
                self.n_minibatches
            ));
        }
        if self.update_epochs == 0 || self.threads < 1 {
            return bad("update_epochs and threads must be at least 1".into());
        }
        for (name, v) in [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        self.net.validate().map_err(Error::from)
    }

    /// Rollout + update rounds in the run.
    pub fn iterations(&self, n_envs: usize) -> u64 {
        (self.total_steps / (n_envs * self.n_steps) as u64).max(1)
    }
}

/// What one iteration did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IterStats {
    /// Iterations done (1-based).
    pub iteration: u64,
    /// Environment steps so far.
    pub steps: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Episodes finished in this rollout.
    pub episodes: usize,
    /// Their mean undiscounted return (NaN if none).
    pub mean_return: f64,
    /// Their mean length (NaN if none).
    pub mean_length: f64,
    /// Mean return of the last 20 finished episodes (NaN before the first).
    pub recent_return: f64,
    /// Policy loss (last minibatch).
    pub pg_loss: f64,
    /// Value loss (last minibatch).
    pub v_loss: f64,
    /// Mean entropy (last minibatch).
    pub entropy: f64,
    /// Approximate KL to the rollout policy (last minibatch).
    pub approx_kl: f64,
    /// Fraction of ratios outside the clip range, over the update.
    pub clip_frac: f64,
    /// Explained variance of the rollout's values.
    pub explained_var: f64,
    /// Epochs run (fewer than configured after a target-KL stop).
    pub epochs: usize,
    /// Environment steps per wall-clock second in this iteration.
    pub sps: f64,
}

/// Rollout storage, time-major.
#[derive(Debug, Default)]
pub(crate) struct Rollout {
    obs: Vec<f32>,
    mask: Vec<bool>,
    actions: Vec<i64>,
    logp: Vec<f32>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
}

/// The learner: environments, network, optimiser and all the state a checkpoint needs.
pub struct Trainer<E: VecEnv> {
    pub(crate) cfg: PpoConfig,
    pub(crate) env: E,
    pub(crate) device: Device,
    pub(crate) _vs: nn::VarStore,
    pub(crate) model: ActorCritic,
    pub(crate) adam: Adam,
    pub(crate) norm: ObsNorm,
    pub(crate) rng: Rng,
    pub(crate) obs: Vec<f32>,
    pub(crate) mask: Vec<bool>,
    pub(crate) ep_return: Vec<f64>,
    pub(crate) ep_length: Vec<u64>,
    pub(crate) recent: VecDeque<(f64, u64)>,
    pub(crate) iteration: u64,
    pub(crate) global_step: u64,
    pub(crate) wall_seconds: f64,
    dims: Vec<usize>,
    heads: Heads,
    /// The flat gradient's buffer, reused every optimiser step.
    grad: Tensor,
    obs_dim: usize,
    step: StepBuf,
    buf: Rollout,
}

/// Makes glibc's malloc keep the update's large temporaries (the weight gradients autograd
/// allocates every step, 256 KB for a 256x256 layer) on its heap instead of mapping and unmapping
/// them: above its mmap threshold (128 KB at start) every such allocation came back as fresh
/// zeroed pages, tens of thousands of page faults per update. Freeing one mapped block raises the
/// threshold to that block's size (and the heap's trim threshold to twice it; mallopt(3),
/// "dynamic mmap threshold"), so one 24 MB tensor allocated and dropped here does it for the
/// process, through libtorch's own allocator and without touching the memory. Elsewhere than
/// glibc it is a harmless allocation.
fn raise_malloc_mmap_threshold() {
    drop(Tensor::empty([6 << 20], (Kind::Float, Device::Cpu)));
}

/// Episodes kept for [`IterStats::recent_return`].
const RECENT: usize = 20;

impl<E: VecEnv> Trainer<E> {
    /// A fresh run: seeds torch, initialises the network and resets the environments.
    pub fn new(cfg: PpoConfig, mut env: E, device: Device) -> Result<Self> {
        let n = env.num_envs();
        cfg.validate(n)?;
        tch::set_num_threads(cfg.threads);
        tch::manual_seed(cfg.seed as i64);
        raise_malloc_mmap_threshold();
        let spec = env.obs_spec();
        let dims = env.action_dims();
        let (d, l) = (spec.dim(), dims.iter().sum::<usize>());
        let vs = nn::VarStore::new(device);
        let model = ActorCritic::new(&vs, &cfg.net, d, l);
        let adam = Adam::new(model.flat_params(), cfg.adam_eps);
        let grad = model.flat_params().zeros_like();
        let (mut obs, mut mask) = (vec![0.0; n * d], vec![true; n * l]);
        env.reset(cfg.seed, &mut obs, &mut mask);
        Ok(Trainer {
            norm: ObsNorm::new(d, cfg.obs_clip),
            rng: Rng::new(cfg.seed ^ 0x5eed_0fac_710a),
            cfg,
            env,
            device,
            _vs: vs,
            model,
            adam,
            obs,
            mask,
            ep_return: vec![0.0; n],
            ep_length: vec![0; n],
            recent: VecDeque::new(),
            iteration: 0,
            global_step: 0,
            wall_seconds: 0.0,
            step: StepBuf::new(n, d, l),
            buf: Rollout::default(),
            heads: Heads::new(&dims, device),
            grad,
            dims,
            obs_dim: d,
        })
    }

    /// Settings of the run.
    pub fn config(&self) -> &PpoConfig {
        &self.cfg
    }

    /// The environments.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// Environment steps so far.
    pub fn steps(&self) -> u64 {
        self.global_step
    }

    /// Iterations so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// True once the configured number of iterations has run.
    pub fn finished(&self) -> bool {
        self.iteration >= self.cfg.iterations(self.env.num_envs())
    }

    /// The current policy as a file-ready [`Policy`].
    pub fn policy(&self, mut provenance: Provenance) -> Result<Policy> {
        provenance.seed = self.cfg.seed;
        provenance.steps = self.global_step;
        provenance.wall_seconds = self.wall_seconds;
        let header = Header {
            format: POLICY_FORMAT.into(),
            obs_spec: self.env.obs_spec(),
            action_dims: self.dims.clone(),
            net: self.cfg.net.clone(),
            provenance,
        };
        Ok(Policy::new(
            header,
            self.norm.clone(),
            self.model.flat_weights(),
        )?)
    }

    /// The network (for tests and benches).
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    /// The running observation normaliser.
    pub fn norm(&self) -> &ObsNorm {
        &self.norm
    }

    fn tensor(&self, data: &[f32], cols: usize) -> Tensor {
        Tensor::from_slice(data)
            .reshape([(data.len() / cols.max(1)) as i64, cols as i64])
            .to_device(self.device)
    }

    fn values_of(&self, raw: &[f32]) -> Vec<f32> {
        let mut x = vec![0.0; raw.len()];
        self.norm.normalize(raw, &mut x);
        let v = tch::no_grad(|| self.model.value(&self.tensor(&x, self.obs_dim)));
        Vec::try_from(v.to_device(Device::Cpu)).unwrap_or_default()
    }

    /// One rollout and one update.
    pub fn iterate(&mut self) -> Result<IterStats> {
        let started = Instant::now();
        let iters = self.cfg.iterations(self.env.num_envs());
        let lr = if self.cfg.anneal_lr {
            self.cfg.lr * (1.0 - self.iteration as f64 / iters as f64)
        } else {
            self.cfg.lr
        };
        let mut stats = IterStats {
            lr,
            ..IterStats::default()
        };
        let last_values = self.rollout(&mut stats)?;
        self.update(&last_values, lr, &mut stats)?;
        self.iteration += 1;
        let secs = started.elapsed().as_secs_f64();
        self.wall_seconds += secs;
        stats.iteration = self.iteration;
        stats.steps = self.global_step;
        stats.sps = (self.env.num_envs() * self.cfg.n_steps) as f64 / secs.max(1e-9);
        stats.recent_return = if self.recent.is_empty() {
            f64::NAN
        } else {
            self.recent.iter().map(|r| r.0).sum::<f64>() / self.recent.len() as f64
        };
        Ok(stats)
    }

    /// Re-runs the update on the stored rollout with the current learning rate (benches: the cost
    /// of an update alone). Changes the weights like a real update; counters stay.
    pub fn update_again(&mut self) -> Result<IterStats> {
        let last = self.values_of(&self.obs);
        let mut stats = IterStats {
            lr: self.cfg.lr,
            ..IterStats::default()
        };
        self.update(&last, self.cfg.lr, &mut stats)?;
        Ok(stats)
    }

    /// Samples one action per dimension per environment from host log-probabilities (padded,
    /// [`Heads::log_probs`]), never a masked one; returns the summed log-probability of each
    /// environment's action.
    fn sample(&mut self, logp: &[f32], mask: &[bool], actions: &mut [i64]) -> Vec<f32> {
        let n = self.env.num_envs();
        let l: usize = self.dims.iter().sum();
        let (nd, w) = (self.dims.len(), self.heads.width());
        let mut out = vec![0.0f32; n];
        for e in 0..n {
            let mut off = e * l;
            for (k, &dn) in self.dims.iter().enumerate() {
                let slots = (e * nd + k) * w;
                let (lp, m) = (&logp[slots..slots + dn], &mask[off..off + dn]);
                let u = self.rng.f64();
                let mut acc = 0.0f64;
                let mut pick = None;
                for i in 0..dn {
                    if !m[i] {
                        continue;
                    }
                    pick = Some(i);
                    acc += (lp[i] as f64).exp();
                    if u < acc {
                        break;
                    }
                }
                // Rounding can leave u just above the total: the last valid category then.
                let i = pick.unwrap_or(0);
                actions[e * nd + k] = i as i64;
                out[e] += lp[i];
                off += dn;
            }
        }
        out
    }

    /// Collects `n_steps` per environment; returns V(s_T) for bootstrapping.
    fn rollout(&mut self, stats: &mut IterStats) -> Result<Vec<f32>> {
        let (n, d, t_max) = (self.env.num_envs(), self.obs_dim, self.cfg.n_steps);
        let l: usize = self.dims.iter().sum();
        let nd = self.dims.len();
        let mut buf = std::mem::take(&mut self.buf);
        buf.obs.resize(t_max * n * d, 0.0);
        buf.mask.resize(t_max * n * l, true);
        buf.actions.resize(t_max * n * nd, 0);
        buf.logp.resize(t_max * n, 0.0);
        buf.values.resize(t_max * n, 0.0);
        buf.rewards.resize(t_max * n, 0.0);
        buf.dones.resize(t_max * n, false);
        let (mut ep_sum, mut ep_len_sum) = (0.0, 0u64);
        let mut step_actions = vec![0usize; n * nd];
        for t in 0..t_max {
            self.norm.update(&self.obs);
            let xo = &mut buf.obs[t * n * d..(t + 1) * n * d];
            self.norm.normalize(&self.obs, xo);
            buf.mask[t * n * l..(t + 1) * n * l].copy_from_slice(&self.mask);
            let x = self.tensor(xo, d);
            let m = Tensor::from_slice(&self.mask)
                .reshape([n as i64, l as i64])
                .to_device(self.device);
            let (lp, v) = tch::no_grad(|| {
                let (logits, v) = self.model.forward(&x);
                (self.heads.log_probs(&logits, &self.heads.pad_mask(&m)), v)
            });
            let lp: Vec<f32> = Vec::try_from(lp.to_device(Device::Cpu).flatten(0, -1))?;
            let v: Vec<f32> = Vec::try_from(v.to_device(Device::Cpu))?;
            buf.values[t * n..(t + 1) * n].copy_from_slice(&v);
            let mask = self.mask.clone();
            let acts = &mut buf.actions[t * n * nd..(t + 1) * n * nd];
            let logp = self.sample(&lp, &mask, acts);
            buf.logp[t * n..(t + 1) * n].copy_from_slice(&logp);
            for (s, &a) in step_actions.iter_mut().zip(acts.iter()) {
                *s = a as usize;
            }
            self.env.step(&step_actions, &mut self.step);
            self.global_step += n as u64;
            let bootstrap = self.truncation_values();
            for (e, boot) in bootstrap.iter().enumerate() {
                let r = self.step.reward[e];
                let done = self.step.terminated[e] || self.step.truncated[e];
                buf.rewards[t * n + e] = r + boot;
                buf.dones[t * n + e] = done;
                self.ep_return[e] += r as f64;
                self.ep_length[e] += 1;
                if done {
                    stats.episodes += 1;
                    ep_sum += self.ep_return[e];
                    ep_len_sum += self.ep_length[e];
                    self.recent
                        .push_back((self.ep_return[e], self.ep_length[e]));
                    if self.recent.len() > RECENT {
                        self.recent.pop_front();
                    }
                    self.ep_return[e] = 0.0;
                    self.ep_length[e] = 0;
                }
            }
            self.obs.copy_from_slice(&self.step.obs);
            self.mask.copy_from_slice(&self.step.mask);
        }
        let eps = stats.episodes as f64;
        stats.mean_return = if eps > 0.0 { ep_sum / eps } else { f64::NAN };
        stats.mean_length = if eps > 0.0 {
            ep_len_sum as f64 / eps
        } else {
            f64::NAN
        };
        self.buf = buf;
        Ok(self.values_of(&self.obs))
    }

    /// `gamma * V(final_obs)` for environments whose episode was truncated this step, else 0.
    fn truncation_values(&self) -> Vec<f32> {
        let n = self.env.num_envs();
        let d = self.obs_dim;
        let idx: Vec<usize> = (0..n).filter(|&e| self.step.truncated[e]).collect();
        let mut out = vec![0.0; n];
        if idx.is_empty() {
            return out;
        }
        let rows: Vec<f32> = idx
            .iter()
            .flat_map(|&e| self.step.final_obs[e * d..(e + 1) * d].iter().copied())
            .collect();
        for (&e, v) in idx.iter().zip(self.values_of(&rows)) {
            out[e] = self.cfg.gamma as f32 * v;
        }
        out
    }

    /// Several epochs of minibatch updates on the rollout. The rollout becomes tensors once per
    /// update and is shuffled once per epoch (four `index_select`s, the advantages normalised per
    /// minibatch in one go); a minibatch is a window onto that. The statistics of an epoch's last
    /// minibatch (what [`IterStats`] reports and the target-KL stop reads) are read once per
    /// epoch, the clip fraction once per update.
    fn update(&mut self, last_values: &[f32], lr: f64, stats: &mut IterStats) -> Result<()> {
        let c = self.cfg.clone();
        let b = &self.buf;
        let (adv, ret) = gae(
            &b.rewards,
            &b.values,
            &b.dones,
            last_values,
            c.gamma as f32,
            c.gae_lambda as f32,
        );
        stats.explained_var = explained_variance(&b.values, &ret);
        let batch = Batch::new(self, &adv, &ret);
        let n = self.buf.values.len();
        let mb = (n / c.n_minibatches) as i64;
        let mut order: Vec<i64> = (0..n as i64).collect();
        let mut ratios = Vec::new();
        for epoch in 0..c.update_epochs {
            self.rng.shuffle(&mut order);
            let perm = Tensor::from_slice(&order).to_device(self.device);
            let shuffled = batch.shuffled(&perm, c.n_minibatches as i64, c.norm_adv);
            let mut last = None;
            for k in 0..c.n_minibatches as i64 {
                let out = self.minibatch(&shuffled.minibatch(k, mb), &c);
                self.model.flat_grad_into(&out.loss, &self.grad);
                let params = self.model.flat_params();
                self.adam.step(params, &mut self.grad, c.max_grad_norm, lr);
                ratios.push(out.ratio.detach());
                last = Some(out);
            }
            if let Some(out) = last {
                out.read(stats);
            }
            stats.epochs = epoch + 1;
            if c.target_kl.is_some_and(|t| stats.approx_kl > t) {
                break;
            }
        }
        stats.clip_frac = tch::no_grad(|| {
            let r = Tensor::cat(&ratios, 0);
            let out = (r - 1.0).abs().gt(c.clip_coef).to_kind(Kind::Float);
            out.mean(Kind::Double).double_value(&[])
        });
        Ok(())
    }

    /// The loss of one minibatch and what the statistics need.
    fn minibatch(&self, b: &Batch, c: &PpoConfig) -> MinibatchOut {
        let [old_logp, old_v, adv, ret]: [Tensor; 4] = b.cols.unbind(0).try_into().expect("4 rows");
        let (logits, new_v) = self.model.forward(&b.obs);
        let lp_all = self.heads.log_probs(&logits, &b.mask);
        let new_logp = log_prob(&lp_all, &b.actions);
        let ent = entropy(&lp_all, &b.mask).mean(Kind::Float);
        let logratio = new_logp - old_logp;
        let ratio = logratio.exp();
        let pg = clipped_surrogate(&ratio, &adv, c.clip_coef);
        let vl = value_loss(&new_v, &old_v, &ret, c.clip_vloss.then_some(c.clip_coef));
        let loss = &pg - &ent * c.ent_coef + &vl * c.vf_coef;
        MinibatchOut {
            loss,
            pg,
            vl,
            ent,
            logratio,
            ratio,
        }
    }
}

/// Transitions as tensors: the whole rollout for an update (rows in the rollout's order), one
/// epoch's shuffled copy, or a minibatch (a window onto that copy).
struct Batch {
    /// Normalised observations `[N, obs_dim]`.
    obs: Tensor,
    /// Padded masks `[N, n_dims, width]` ([`Heads::pad_mask`]).
    mask: Tensor,
    /// Actions `[N, n_dims]`.
    actions: Tensor,
    /// `[4, N]`: the rollout's log-probabilities, values, advantages and returns (one
    /// `index_select` per epoch for all four); the advantages normalised per minibatch once
    /// shuffled, when the config says so.
    cols: Tensor,
}

impl Batch {
    fn new<E: VecEnv>(t: &Trainer<E>, adv: &[f32], ret: &[f32]) -> Batch {
        let (b, dev) = (&t.buf, t.device);
        let l = t.dims.iter().sum::<usize>() as i64;
        let mask = Tensor::from_slice(&b.mask).reshape([-1, l]).to_device(dev);
        let cols: Vec<f32> = [&b.logp[..], &b.values, adv, ret].concat();
        Batch {
            obs: t.tensor(&b.obs, t.obs_dim),
            mask: t.heads.pad_mask(&mask),
            actions: Tensor::from_slice(&b.actions)
                .reshape([-1, t.dims.len() as i64])
                .to_device(dev),
            cols: t.tensor(&cols, adv.len()),
        }
    }

    /// The rows in the order `perm`, advantages normalised within each of the `n_mb` consecutive
    /// minibatches (mean 0, sample standard deviation 1) if `norm_adv`.
    fn shuffled(&self, perm: &Tensor, n_mb: i64, norm_adv: bool) -> Batch {
        let mut cols = self.cols.index_select(1, perm);
        if norm_adv {
            let a = cols.select(0, 2).view([n_mb, -1]);
            let dim = [1i64].as_slice();
            let normed =
                (&a - a.mean_dim(dim, true, Kind::Float)) / (a.std_dim(dim, true, true) + 1e-8);
            cols = Tensor::cat(
                &[
                    cols.narrow(0, 0, 2),
                    normed.view([1, -1]),
                    cols.narrow(0, 3, 1),
                ],
                0,
            );
        }
        Batch {
            obs: self.obs.index_select(0, perm),
            mask: self.mask.index_select(0, perm),
            actions: self.actions.index_select(0, perm),
            cols,
        }
    }

    /// Minibatch `k` of size `mb` of a shuffled batch.
    fn minibatch(&self, k: i64, mb: i64) -> Batch {
        Batch {
            obs: self.obs.narrow(0, k * mb, mb),
            mask: self.mask.narrow(0, k * mb, mb),
            actions: self.actions.narrow(0, k * mb, mb),
            cols: self.cols.narrow(1, k * mb, mb),
        }
    }
}

/// One minibatch's loss and the tensors its statistics come from.
struct MinibatchOut {
    loss: Tensor,
    pg: Tensor,
    vl: Tensor,
    ent: Tensor,
    logratio: Tensor,
    ratio: Tensor,
}

impl MinibatchOut {
    /// Writes the losses, entropy and approx-KL (`mean((r - 1) - log r)`) into `stats`.
    fn read(&self, stats: &mut IterStats) {
        let _guard = tch::no_grad_guard();
        stats.pg_loss = self.pg.double_value(&[]);
        stats.v_loss = self.vl.double_value(&[]);
        stats.entropy = self.ent.double_value(&[]);
        let kl = ((&self.ratio - 1.0) - &self.logratio).mean(Kind::Float);
        stats.approx_kl = kl.double_value(&[]);
    }
}
