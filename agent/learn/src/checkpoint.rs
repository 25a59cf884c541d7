//! Checkpoints: the policy file plus everything else a run needs to continue bit for bit on the
//! CPU (settings, counters, Adam's moments, the sampling RNG, the environments' current
//! observations, unfinished episodes and, where the environment can snapshot itself, its state).
//! Written atomically; a truncated or altered file fails its checksum and is refused.

use std::path::Path;

use kis_policy::codec::{Reader, Writer, write_atomic};
use kis_policy::{Policy, Provenance};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::env::VecEnv;
use crate::ppo::{PpoConfig, Trainer};
use crate::{Error, Result};

/// Magic bytes of a checkpoint.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"KISCKP01";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    cfg: PpoConfig,
    n_envs: usize,
    iteration: u64,
    global_step: u64,
    wall_seconds: f64,
    adam_t: u64,
    rng: u64,
    ep_length: Vec<u64>,
    recent_length: Vec<u64>,
    env_snapshot: bool,
}

fn flat(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default()
}

fn unflat(dst: &mut Tensor, src: &[f32]) -> Result<()> {
    let total = dst.numel();
    if total != src.len() {
        return Err(Error::Checkpoint(format!(
            "optimiser state holds {} numbers, the network {total}",
            src.len()
        )));
    }
    let v = Tensor::from_slice(src)
        .reshape(dst.size())
        .to_device(dst.device());
    dst.copy_(&v);
    Ok(())
}

impl<E: VecEnv> Trainer<E> {
    /// The checkpoint's bytes.
    pub fn checkpoint_bytes(&self, provenance: Provenance) -> Result<Vec<u8>> {
        let snapshot = self.env.save_state();
        let state = State {
            cfg: self.cfg.clone(),
            n_envs: self.env.num_envs(),
            iteration: self.iteration,
            global_step: self.global_step,
            wall_seconds: self.wall_seconds,
            adam_t: self.adam.t,
            rng: self.rng.state,
            ep_length: self.ep_length.clone(),
            recent_length: self.recent.iter().map(|r| r.1).collect(),
            env_snapshot: snapshot.is_some(),
        };
        let mut w = Writer::new(CHECKPOINT_MAGIC);
        w.bytes(&self.policy(provenance)?.to_bytes());
        w.bytes(&serde_json::to_vec(&state).map_err(|e| Error::Checkpoint(e.to_string()))?);
        w.f32s(&flat(&self.adam.m));
        w.f32s(&flat(&self.adam.v));
        w.f32s(&self.obs);
        w.bytes(&self.mask.iter().map(|&b| b as u8).collect::<Vec<_>>());
        w.f64s(&self.ep_return);
        w.f64s(&self.recent.iter().map(|r| r.0).collect::<Vec<_>>());
        w.bytes(&snapshot.unwrap_or_default());
        Ok(w.finish())
    }

    /// Writes a checkpoint atomically.
    pub fn save_checkpoint(&self, path: &Path, provenance: Provenance) -> Result<()> {
        Ok(write_atomic(path, &self.checkpoint_bytes(provenance)?)?)
    }

    /// Continues a run from a checkpoint with fresh environments `env` (same kind and count). If
    /// the checkpoint holds no environment snapshot, the environments start new episodes.
    pub fn resume(path: &Path, env: E, device: Device) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| kis_policy::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_checkpoint(&data, env, device).map_err(|e| match e {
            Error::Policy(p) => Error::Policy(p.in_file(path)),
            Error::Checkpoint(m) => Error::Checkpoint(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// [`Trainer::resume`] from bytes.
    pub fn from_checkpoint(data: &[u8], env: E, device: Device) -> Result<Self> {
        let mut r = Reader::open(data, CHECKPOINT_MAGIC, "kis checkpoint")?;
        let policy = Policy::from_bytes(r.bytes()?)?;
        let state: State = serde_json::from_slice(r.bytes()?)
            .map_err(|e| Error::Checkpoint(format!("state: {e}")))?;
        policy.check(&env.obs_spec(), &env.action_dims())?;
        if state.n_envs != env.num_envs() {
            return Err(Error::Checkpoint(format!(
                "made with {} environments, resumed with {}",
                state.n_envs,
                env.num_envs()
            )));
        }
        let mut cfg = state.cfg.clone();
        cfg.net = policy.header().net.clone();
        let mut t = Trainer::new(cfg, env, device)?;
        t.model.load_flat(policy.weights());
        t.norm = policy.norm().clone();
        unflat(&mut t.adam.m, &r.f32s()?)?;
        unflat(&mut t.adam.v, &r.f32s()?)?;
        t.adam.t = state.adam_t;
        t.iteration = state.iteration;
        t.global_step = state.global_step;
        t.wall_seconds = state.wall_seconds;
        t.rng.state = state.rng;
        let obs = r.f32s()?;
        let mask: Vec<bool> = r.bytes()?.iter().map(|&b| b != 0).collect();
        let ep_return = r.f64s()?;
        let recent = r.f64s()?;
        let snapshot = r.bytes()?;
        r.end()?;
        if obs.len() != t.obs.len()
            || mask.len() != t.mask.len()
            || ep_return.len() != t.ep_return.len()
            || recent.len() != state.recent_length.len()
            || state.ep_length.len() != t.ep_length.len()
        {
            return Err(Error::Checkpoint(
                "buffer sizes do not match the environments".into(),
            ));
        }
        t.recent = recent.into_iter().zip(state.recent_length).collect();
        if state.env_snapshot {
            t.env.load_state(snapshot).map_err(Error::Checkpoint)?;
            t.obs = obs;
            t.mask = mask;
            t.ep_return = ep_return;
            t.ep_length = state.ep_length;
        } else {
            // No snapshot: fresh episodes from a seed drawn from the restored RNG.
            let seed = t.rng.next_u64();
            t.env.reset(seed, &mut t.obs, &mut t.mask);
        }
        Ok(t)
    }
}
