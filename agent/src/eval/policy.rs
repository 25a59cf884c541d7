//! Policies as set-ups: a [`Policy`] maps an observation (and an action mask) to the environment's
//! multi-discrete action. The harness runs it through kis-sim's RL environment, whose actions move a
//! replica target that the stock HPA follows (External `kis-replicas`, AverageValue 1), so a learned
//! policy is scored on the same workloads, seeds and figures as the rule-based autoscalers.
//!
//! Everything that touches the environment's API is in [`run_episode`]; the observation, the
//! action space and the mask are the environment's own (`kis_autoscale::obs`), the same a policy
//! was trained with. A policy file (`kis-policy`, no libtorch) is a [`Policy`] like the built-ins.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use kis_autoscale::obs::ObsSet;
pub use kis_autoscale::obs::{ACTION_DIMS, MASK_LEN};
use kis_sim::env::{Action, Env, EnvConfig, SimEnv};
use kis_sim::{SimConfig, Summary};
use serde::{Serialize, Serializer};

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
    /// The observation set the policy reads (a trained policy: the one it was trained with).
    fn obs_set(&self) -> ObsSet {
        ObsSet::default()
    }
}

/// A trained policy file, run greedily by kis-policy's pure-Rust forward pass under the mask.
pub struct FilePolicy {
    name: String,
    policy: Arc<kis_policy::Policy>,
    set: ObsSet,
    scratch: kis_policy::Scratch,
}

impl FilePolicy {
    /// Loads `path` and checks it reads an observation set this build has and acts in its
    /// action space (one line naming the file otherwise).
    pub fn load(path: &Path) -> Result<Arc<kis_policy::Policy>> {
        let p = kis_policy::Policy::load(path)?;
        let spec = &p.header().obs_spec;
        let set = ObsSet::from_spec_id(&spec.name).ok_or_else(|| {
            anyhow!(
                "{}: observation spec {:?} v{} is not one this build computes (known: {}, {})",
                path.display(),
                spec.name,
                spec.version,
                ObsSet::Default.spec_id(),
                ObsSet::Paper.spec_id()
            )
        })?;
        p.check(&kis_learn_spec(set), &ACTION_DIMS)
            .with_context(|| path.display().to_string())?;
        Ok(Arc::new(p))
    }

    fn new(name: String, policy: Arc<kis_policy::Policy>) -> Self {
        let set = ObsSet::from_spec_id(&policy.header().obs_spec.name).unwrap_or_default();
        let scratch = policy.scratch();
        FilePolicy {
            name,
            policy,
            set,
            scratch,
        }
    }
}

/// The spec a policy trained on observation set `set` records (what kis-learn writes).
pub fn kis_learn_spec(set: ObsSet) -> kis_policy::ObsSpec {
    kis_policy::ObsSpec::new(
        &set.spec_id(),
        kis_autoscale::obs::OBS_SPEC_VERSION,
        set.names(),
    )
}

impl Policy for FilePolicy {
    fn name(&self) -> &str {
        &self.name
    }
    fn act(&mut self, obs: &[f32], mask: &[bool]) -> [usize; 3] {
        let mut a = [2, 2, 1];
        // Shapes were checked at load; a failure here would be a bug, and holding is safe.
        if self
            .policy
            .act(obs, Some(mask), &mut self.scratch, &mut a)
            .is_err()
        {
            return [2, 2, 1];
        }
        a
    }
    fn obs_set(&self) -> ObsSet {
        self.set
    }
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

/// A policy by name: `hold`, `scripted:g,c,p;g,c,p;...`, or a policy file (`*.kpol`).
pub fn builtin(spec: &str) -> Result<PolicySetup> {
    let spec = spec.trim();
    if spec.ends_with(".kpol") || Path::new(spec).is_file() {
        let path = Path::new(spec);
        let p = FilePolicy::load(path)?;
        // Set-up labels add "policy:" themselves.
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(spec)
            .to_string();
        let n = name.clone();
        return Ok(PolicySetup::new(name, move || {
            Box::new(FilePolicy::new(n.clone(), p.clone()))
        }));
    }
    if spec == "hold" {
        return Ok(PolicySetup::new("hold", || Box::new(Hold)));
    }
    if let Some(steps) = spec.strip_prefix("scripted:") {
        let s = Scripted::parse(steps)?;
        return Ok(PolicySetup::new(s.name.clone(), move || {
            Box::new(s.clone())
        }));
    }
    bail!("unknown policy {spec:?} (built-in: hold, scripted:g,c,p;...; or a .kpol file)")
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
    if gpu_only {
        // The environment's HPA needs max >= 1; the mask below keeps the target at 0.
        cfg.pools.cpu.replicas = 0;
        cfg.pools.cpu.min_replicas = 0;
        cfg.pools.cpu.max_replicas = 1;
    }
    let mut env_cfg = EnvConfig::new(cfg);
    env_cfg.obs = policy.obs_set();
    let mut env = SimEnv::new(env_cfg)?;
    policy.reset();
    let mut obs = env.reset(seed);
    let mut mask = env.mask();
    loop {
        if gpu_only {
            mask[5 + 3] = false;
            mask[5 + 4] = false;
        }
        let mut a = policy.act(&obs, &mask);
        for (d, i) in a.iter_mut().take(2).enumerate() {
            if !mask.get(d * 5 + *i).copied().unwrap_or(false) {
                *i = 2;
            }
        }
        let step = env.step(Action::from_indices(a));
        obs = step.obs;
        mask = step.mask;
        if step.truncated || step.terminated {
            break;
        }
    }
    // At the workload's end, as a rule-driven run reports it (not after the environment's extra
    // seconds that only score the last cohort's reward).
    env.end_summary()
        .cloned()
        .ok_or_else(|| anyhow!("environment ended without a summary"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
