//! Policies as set-ups: a [`Policy`] maps an observation (and an action mask) to the environment's
//! multi-discrete action. The harness runs it through kis-sim's RL environment, whose actions move a
//! replica target that the stock HPA follows (External `kis-replicas`, AverageValue 1), so a learned
//! policy is scored on the same workloads, seeds and figures as the rule-based autoscalers.
//!
//! Everything that touches the environment's API is in [`run_episode`], so a change of the
//! environment (observation builder, masks) is one edit here.

use std::fmt;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use kis_sim::env::{Action, Env, EnvConfig, SimEnv};
use kis_sim::{Pool, SimConfig, Summary};
use serde::{Serialize, Serializer};

/// Sizes of the action's categorical dimensions: GPU Δ (−2..=2), CPU Δ (−2..=2), placement.
pub const ACTION_DIMS: [usize; 3] = [5, 5, 3];
/// Length of the flat action mask (5 + 5 + 3).
pub const MASK_LEN: usize = 13;

/// A policy: observation in, action out.
pub trait Policy: Send {
    /// Name in tables.
    fn name(&self) -> &str;
    /// The action for `obs`: one index per dimension of [`ACTION_DIMS`]. `mask` (length
    /// [`MASK_LEN`], per dimension in order) marks the indices that keep the targets within their
    /// bounds; a policy trained with masks must honour them.
    fn act(&mut self, obs: &[f32], mask: &[bool]) -> [usize; 3];
    /// Called at the start of every episode.
    fn reset(&mut self) {}
}

/// Always holds the targets (Δ 0, balanced placement).
#[derive(Debug, Clone, Default)]
pub struct Hold;

impl Policy for Hold {
    fn name(&self) -> &str {
        "hold"
    }
    fn act(&mut self, _obs: &[f32], _mask: &[bool]) -> [usize; 3] {
        [2, 2, 1]
    }
}

/// Plays a fixed list of actions, one per step, then holds.
#[derive(Debug, Clone)]
pub struct Scripted {
    name: String,
    actions: Vec<[usize; 3]>,
    next: usize,
}

impl Scripted {
    /// From `g,c,p;g,c,p;...` (indices, as `act` returns them).
    pub fn parse(text: &str) -> Result<Self> {
        let mut actions = Vec::new();
        for step in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let v: Vec<usize> = step
                .split(',')
                .map(|x| x.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    anyhow!("scripted policy step {step:?}: expected three indices g,c,p")
                })?;
            let [g, c, p] = v[..] else {
                bail!("scripted policy step {step:?}: expected three indices g,c,p");
            };
            if g >= 5 || c >= 5 || p >= 3 {
                bail!("scripted policy step {step:?}: indices must be below 5, 5 and 3");
            }
            actions.push([g, c, p]);
        }
        if actions.is_empty() {
            bail!("scripted policy: no steps in {text:?}");
        }
        Ok(Scripted {
            name: format!("scripted:{text}"),
            actions,
            next: 0,
        })
    }
}

impl Policy for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn act(&mut self, _obs: &[f32], _mask: &[bool]) -> [usize; 3] {
        let a = self.actions.get(self.next).copied().unwrap_or([2, 2, 1]);
        self.next += 1;
        a
    }
    fn reset(&mut self) {
        self.next = 0;
    }
}

/// Builds a fresh policy for each run (runs happen on several threads at once).
#[derive(Clone)]
pub struct PolicyMaker(pub Arc<dyn Fn() -> Box<dyn Policy> + Send + Sync>);

impl fmt::Debug for PolicyMaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyMaker")
    }
}

/// A policy as a set-up: its name and how to make one.
#[derive(Clone, Debug)]
pub struct PolicySetup {
    /// Name (the label's source).
    pub name: String,
    /// Factory.
    pub make: PolicyMaker,
}

impl Serialize for PolicySetup {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl PolicySetup {
    /// Wraps a factory.
    pub fn new(
        name: impl Into<String>,
        make: impl Fn() -> Box<dyn Policy> + Send + Sync + 'static,
    ) -> Self {
        PolicySetup {
            name: name.into(),
            make: PolicyMaker(Arc::new(make)),
        }
    }
}

/// A built-in policy by name: `hold`, or `scripted:g,c,p;g,c,p;...`.
pub fn builtin(spec: &str) -> Result<PolicySetup> {
    let spec = spec.trim();
    if spec == "hold" {
        return Ok(PolicySetup::new("hold", || Box::new(Hold)));
    }
    if let Some(steps) = spec.strip_prefix("scripted:") {
        let s = Scripted::parse(steps)?;
        return Ok(PolicySetup::new(s.name.clone(), move || {
            Box::new(s.clone())
        }));
    }
    bail!("unknown policy {spec:?} (built-in: hold, scripted:g,c,p;...)")
}

/// The mask for the current targets: a Δ is allowed when the target stays within the pool's
/// `[min_replicas, max_replicas]` (holding is always allowed); every placement is allowed.
pub fn action_mask(target: [u32; 2], bounds: [(u32, u32); 2]) -> [bool; MASK_LEN] {
    let mut m = [true; MASK_LEN];
    for (p, (&t, &(lo, hi))) in target.iter().zip(&bounds).enumerate() {
        for i in 0..5 {
            let n = t as i64 + i as i64 - 2;
            m[p * 5 + i] = i == 2 || (lo as i64 <= n && n <= hi as i64);
        }
    }
    m
}

/// One episode of `policy` on `cfg` with `seed`, through the RL environment (steps of 30 s, the
/// targets followed by the external-target HPA); the run's summary at the end of the workload.
///
/// Actions outside the mask are replaced by holding that dimension, as the clamp would. With
/// `gpu_only` the CPU pool is held at 0 (the mask forbids raising it), as in every rule set-up.
pub fn run_episode(
    mut cfg: SimConfig,
    policy: &mut dyn Policy,
    seed: u64,
    gpu_only: bool,
) -> Result<Summary> {
    // The environment panics on a shape that cannot be built; check it here to get an error.
    cfg.workload
        .shape
        .build(seed)
        .map_err(|e| anyhow!("workload: {e}"))?;
    let mut bounds = [
        (cfg.pools.gpu.min_replicas, cfg.pools.gpu.max_replicas),
        (cfg.pools.cpu.min_replicas, cfg.pools.cpu.max_replicas),
    ];
    if gpu_only {
        // The environment's HPA needs max >= 1; the mask keeps the target at 0.
        cfg.pools.cpu.replicas = 0;
        cfg.pools.cpu.min_replicas = 0;
        cfg.pools.cpu.max_replicas = 1;
        bounds[1] = (0, 0);
    }
    let mut env = SimEnv::new(EnvConfig::new(cfg))?;
    policy.reset();
    let mut obs = env.reset(seed);
    let sim = env
        .sim()
        .ok_or_else(|| anyhow!("environment did not start"))?;
    let mut target = [sim.spec_replicas(Pool::Gpu), sim.spec_replicas(Pool::Cpu)];
    loop {
        let o: Vec<f32> = obs.iter().map(|&x| x as f32).collect();
        let mask = action_mask(target, bounds);
        let mut a = policy.act(&o, &mask);
        for (d, i) in a.iter_mut().take(2).enumerate() {
            if !mask.get(d * 5 + *i).copied().unwrap_or(false) {
                *i = 2;
            }
        }
        let step = env.step(Action::from_indices(a));
        target = step.info.target;
        obs = step.obs;
        if step.truncated || step.terminated {
            break;
        }
    }
    Ok(env
        .sim()
        .ok_or_else(|| anyhow!("environment lost its simulation"))?
        .summary())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_clamp() {
        let m = action_mask([1, 0], [(1, 4), (0, 0)]);
        assert_eq!(&m[..5], &[false, false, true, true, true]);
        assert_eq!(&m[5..10], &[false, false, true, false, false]);
        assert!(m[10..].iter().all(|&x| x));
        let m = action_mask([4, 0], [(1, 4), (0, 3)]);
        assert_eq!(&m[..5], &[true, true, true, false, false]);
        assert_eq!(&m[5..10], &[false, false, true, true, true]);
    }

    #[test]
    fn scripted_parses_and_replays() {
        let mut s = Scripted::parse("4,2,1; 0,2,1").unwrap();
        assert_eq!(s.act(&[], &[]), [4, 2, 1]);
        assert_eq!(s.act(&[], &[]), [0, 2, 1]);
        assert_eq!(s.act(&[], &[]), [2, 2, 1]);
        s.reset();
        assert_eq!(s.act(&[], &[]), [4, 2, 1]);
        for bad in ["", "1,2", "5,2,1", "a,b,c"] {
            assert!(Scripted::parse(bad).is_err(), "{bad:?}");
        }
        assert!(builtin("nope").is_err());
        assert_eq!(builtin("hold").unwrap().name, "hold");
    }
}
