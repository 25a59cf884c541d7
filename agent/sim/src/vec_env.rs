//! Many [`SimEnv`]s stepped together for a trainer: a persistent pool of worker threads (each owns a
//! contiguous shard of the environments; no thread is spawned per step), per-environment
//! auto-reset that keeps the finished episode's final observation for bootstrapping, and flat
//! buffers ready to become tensors.
//!
//! Buffer layout after [`VecEnv::reset`] / [`VecEnv::step`] (`n` environments, `d` = obs dim):
//! - `obs`: f32 `[n * d]`, row `i` = environment `i`'s current observation (after an auto-reset:
//!   the first observation of its new episode);
//! - `final_obs`: f32 `[n * d]`, row `i` valid where `done(i)`: the last observation of the episode
//!   that just ended (bootstrap V(s') from it when only `truncated`);
//! - `reward`: f32 `[n]`; `terminated`, `truncated`: bool `[n]`;
//! - `mask`: bool `[n * 13]`, row `i` = [`kis_autoscale::Capacity::action_mask`] of the current state.
//!
//! Seeds: [`VecEnv::reset`] gives environment `i` seed `seeds[i]`; when its episode with seed `s`
//! ends, the next one has seed `s + n`. So seeds `base..base + n` never collide.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;

use kis_autoscale::obs::MASK_LEN;

use crate::Result;
use crate::env::{Action, EnvConfig, SimEnv, StepInfo};

struct Slot {
    env: SimEnv,
    seed: u64,
}

/// One shard's output buffers (moved to the worker with each command and back).
#[derive(Default)]
struct Shard {
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    reward: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    mask: Vec<bool>,
    info: Vec<StepInfo>,
}

impl Shard {
    fn sized(n: usize, d: usize) -> Self {
        Shard {
            obs: vec![0.0; n * d],
            final_obs: vec![0.0; n * d],
            reward: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            mask: vec![true; n * MASK_LEN],
            info: vec![StepInfo::default(); n],
        }
    }
}

enum Cmd {
    Reset(Vec<u64>, Shard),
    Step(Vec<[usize; 3]>, Shard),
}

fn reset_shard(slots: &mut [Slot], seeds: &[u64], out: &mut Shard, d: usize) {
    for (k, (s, &seed)) in slots.iter_mut().zip(seeds).enumerate() {
        s.seed = seed;
        s.env.reset_state(seed);
        s.env.observe_into(&mut out.obs[k * d..(k + 1) * d]);
        out.mask[k * MASK_LEN..(k + 1) * MASK_LEN].copy_from_slice(&s.env.mask());
        out.reward[k] = 0.0;
        out.terminated[k] = false;
        out.truncated[k] = false;
        out.info[k] = StepInfo::default();
    }
}

fn step_shard(slots: &mut [Slot], actions: &[[usize; 3]], out: &mut Shard, d: usize, n: u64) {
    for (k, (s, &a)) in slots.iter_mut().zip(actions).enumerate() {
        let (reward, term, trunc, info) = s.env.advance(Action::from_indices(a));
        let row = k * d..(k + 1) * d;
        if term || trunc {
            s.env.observe_into(&mut out.final_obs[row.clone()]);
            s.seed = s.seed.wrapping_add(n);
            s.env.reset_state(s.seed);
        }
        s.env.observe_into(&mut out.obs[row]);
        out.mask[k * MASK_LEN..(k + 1) * MASK_LEN].copy_from_slice(&s.env.mask());
        out.reward[k] = reward as f32;
        out.terminated[k] = term;
        out.truncated[k] = trunc;
        out.info[k] = info;
    }
}

struct Worker {
    tx: Sender<Cmd>,
    handle: Option<JoinHandle<()>>,
    range: std::ops::Range<usize>,
}

/// Many environments with the same settings, stepped on a persistent worker pool.
pub struct VecEnv {
    n: usize,
    d: usize,
    set: kis_autoscale::ObsSet,
    inline: Vec<Slot>,
    workers: Vec<Worker>,
    done_rx: Option<Receiver<(usize, Shard)>>,
    shards: Vec<Option<Shard>>,
    buf: Shard,
}

impl VecEnv {
    /// `n` environments with the same settings, on one worker per core (at most `n`; with one core
    /// or one environment they run on the caller's thread).
    pub fn new(cfg: EnvConfig, n: usize) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        Self::with_threads(cfg, n, cores)
    }

    /// Like [`VecEnv::new`] with at most `threads` workers; `threads <= 1` steps on the caller's thread.
    pub fn with_threads(cfg: EnvConfig, n: usize, threads: usize) -> Result<Self> {
        let first = SimEnv::new(cfg.clone())?;
        let d = first.obs_dim();
        let traces = first.traces();
        let mut slots: Vec<Slot> = Vec::with_capacity(n);
        slots.extend((n > 0).then_some(Slot {
            env: first,
            seed: 0,
        }));
        while slots.len() < n {
            slots.push(Slot {
                env: SimEnv::with_traces(cfg.clone(), traces.clone()),
                seed: 0,
            });
        }
        let threads = threads.min(n);
        let mut v = VecEnv {
            n,
            d,
            set: cfg.obs,
            inline: Vec::new(),
            workers: Vec::new(),
            done_rx: None,
            shards: Vec::new(),
            buf: Shard::sized(n, d),
        };
        if threads <= 1 {
            v.inline = slots;
            return Ok(v);
        }
        let (done_tx, done_rx) = channel();
        let chunk = n.div_ceil(threads);
        let mut start = 0;
        let mut rest = slots;
        while !rest.is_empty() {
            let tail = rest.split_off(chunk.min(rest.len()));
            let mine = std::mem::replace(&mut rest, tail);
            let range = start..start + mine.len();
            start = range.end;
            let (tx, rx) = channel::<Cmd>();
            let done = done_tx.clone();
            let idx = v.workers.len();
            let total = n as u64;
            let handle = std::thread::Builder::new()
                .name(format!("kis-vecenv-{idx}"))
                .spawn(move || worker(idx, mine, rx, done, d, total))
                .map_err(|e| {
                    crate::Error::invalid("threads", format!("cannot start a worker: {e}"))
                })?;
            v.shards.push(Some(Shard::sized(range.len(), d)));
            v.workers.push(Worker {
                tx,
                handle: Some(handle),
                range,
            });
        }
        v.done_rx = Some(done_rx);
        Ok(v)
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The observation set (its `names()`, `dim()`, `spec_id()`).
    pub fn obs_set(&self) -> kis_autoscale::ObsSet {
        self.set
    }

    /// Observation length per environment.
    pub fn obs_dim(&self) -> usize {
        self.d
    }

    /// Starts environment `i`'s episode with `seeds[i]`; fills `obs` and `mask`.
    ///
    /// # Panics
    /// Unless there is one seed per environment; when a worker died (it panicked).
    pub fn reset(&mut self, seeds: &[u64]) {
        assert_eq!(seeds.len(), self.n, "one seed per environment");
        if self.workers.is_empty() {
            reset_shard(&mut self.inline, seeds, &mut self.buf, self.d);
            return;
        }
        for (w, s) in self.workers.iter().zip(self.shards.iter_mut()) {
            let shard = s.take().unwrap_or_default();
            w.tx.send(Cmd::Reset(seeds[w.range.clone()].to_vec(), shard))
                .expect("VecEnv worker died");
        }
        self.gather();
    }

    /// Steps environment `i` with the categorical indices `actions[i]` (see
    /// [`Action::from_indices`]), auto-resetting finished ones; fills every buffer.
    ///
    /// # Panics
    /// Unless there is one action per environment; when a worker died (it panicked).
    pub fn step(&mut self, actions: &[[usize; 3]]) {
        assert_eq!(actions.len(), self.n, "one action per environment");
        let (d, n) = (self.d, self.n as u64);
        if self.workers.is_empty() {
            step_shard(&mut self.inline, actions, &mut self.buf, d, n);
            return;
        }
        for (w, s) in self.workers.iter().zip(self.shards.iter_mut()) {
            let shard = s.take().unwrap_or_default();
            w.tx.send(Cmd::Step(actions[w.range.clone()].to_vec(), shard))
                .expect("VecEnv worker died");
        }
        self.gather();
    }

    /// [`VecEnv::step`] with [`Action`]s.
    pub fn step_actions(&mut self, actions: &[Action]) {
        let idx: Vec<[usize; 3]> = actions.iter().map(Action::indices).collect();
        self.step(&idx);
    }

    fn gather(&mut self) {
        let rx = self
            .done_rx
            .as_ref()
            .expect("workers have a result channel");
        for _ in 0..self.workers.len() {
            // The other workers keep the result channel open, so a worker that panicked is found by
            // its finished thread rather than by a closed channel.
            let (idx, shard) = loop {
                match rx.recv_timeout(std::time::Duration::from_millis(200)) {
                    Ok(x) => break x,
                    Err(RecvTimeoutError::Timeout) => {
                        let dead = self
                            .workers
                            .iter()
                            .any(|w| w.handle.as_ref().is_none_or(|h| h.is_finished()));
                        assert!(!dead, "a VecEnv worker panicked (see its message above)");
                    }
                    Err(RecvTimeoutError::Disconnected) => panic!("VecEnv workers died"),
                }
            };
            let r = self.workers[idx].range.clone();
            let (d, m) = (self.d, MASK_LEN);
            self.buf.obs[r.start * d..r.end * d].copy_from_slice(&shard.obs);
            self.buf.final_obs[r.start * d..r.end * d].copy_from_slice(&shard.final_obs);
            self.buf.mask[r.start * m..r.end * m].copy_from_slice(&shard.mask);
            self.buf.reward[r.clone()].copy_from_slice(&shard.reward);
            self.buf.terminated[r.clone()].copy_from_slice(&shard.terminated);
            self.buf.truncated[r.clone()].copy_from_slice(&shard.truncated);
            self.buf.info[r].clone_from_slice(&shard.info);
            self.shards[idx] = Some(shard);
        }
    }

    /// Current observations, f32 `[n * obs_dim]`.
    pub fn obs(&self) -> &[f32] {
        &self.buf.obs
    }

    /// Final observations of the episodes that ended in the last step, f32 `[n * obs_dim]`; row `i`
    /// is meaningful only where [`VecEnv::done`]`(i)`.
    pub fn final_obs(&self) -> &[f32] {
        &self.buf.final_obs
    }

    /// Rewards of the last step, f32 `[n]`.
    pub fn reward(&self) -> &[f32] {
        &self.buf.reward
    }

    /// Episodes that failed in the last step (no bootstrap), `[n]`.
    pub fn terminated(&self) -> &[bool] {
        &self.buf.terminated
    }

    /// Episodes cut by the time limit in the last step (bootstrap from `final_obs`), `[n]`.
    pub fn truncated(&self) -> &[bool] {
        &self.buf.truncated
    }

    /// Whether environment `i`'s episode ended in the last step.
    pub fn done(&self, i: usize) -> bool {
        self.buf.terminated[i] || self.buf.truncated[i]
    }

    /// Action masks of the current states, bool `[n * 13]`.
    pub fn mask(&self) -> &[bool] {
        &self.buf.mask
    }

    /// Raw values of the last step per environment.
    pub fn infos(&self) -> &[StepInfo] {
        &self.buf.info
    }
}

fn worker(
    idx: usize,
    mut slots: Vec<Slot>,
    rx: Receiver<Cmd>,
    done: Sender<(usize, Shard)>,
    d: usize,
    n: u64,
) {
    while let Ok(cmd) = rx.recv() {
        let out = match cmd {
            Cmd::Reset(seeds, mut out) => {
                reset_shard(&mut slots, &seeds, &mut out, d);
                out
            }
            Cmd::Step(actions, mut out) => {
                step_shard(&mut slots, &actions, &mut out, d, n);
                out
            }
        };
        if done.send((idx, out)).is_err() {
            return;
        }
    }
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        // Closing the command channels ends the workers' loops.
        let handles: Vec<_> = self
            .workers
            .drain(..)
            .filter_map(|mut w| w.handle.take())
            .collect();
        for h in handles {
            let _ = h.join();
        }
    }
}
