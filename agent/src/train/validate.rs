//! Periodic evaluation during training on the validation split (servegen_mlarge_rate_60s.csv days
//! 0-6, shared/traces/README.md), scaled as `tune` scales it: the greedy policy, without libtorch,
//! through the same environment and masks it trained in.

use anyhow::{Result, anyhow, bail};
use kis_policy::Policy;
use kis_sim::env::{Action, Env, EnvConfig, SimEnv};
use kis_traffic::ShapeSpec;

use crate::eval::workload::peak_rate_over;
use crate::scenario::{replica_capacity, resolve_trace};
use crate::tune::VALIDATION_TRACE;

/// Validation days in the split.
const VALIDATION_DAYS: f64 = 7.0;

/// What one validation episode scored.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Score {
    /// Sum of rewards.
    pub ret: f64,
    /// Fraction of arrivals that missed the SLO.
    pub slo_miss: f64,
    /// GPU replica-hours.
    pub gpu_hours: f64,
}

/// The scenario's cluster and reward on the validation trace.
pub(super) fn validation_env(base: &EnvConfig, days: f64, speedup: f64) -> Result<EnvConfig> {
    if !(days > 0.0 && days <= VALIDATION_DAYS) {
        bail!("--eval-days {days}: the validation split is days 0-7 (days 7-13 are held out)");
    }
    if !(speedup.is_finite() && speedup > 0.0) {
        bail!("--eval-speedup must be a positive number, got {speedup}");
    }
    let path = resolve_trace(VALIDATION_TRACE)?;
    let shape = ShapeSpec::Trace {
        path: path.clone(),
        scale: 1.0,
        speedup,
        offset: 0.0,
        limit: Some(days * 86_400.0),
    };
    let profile = shape
        .build(0)
        .map_err(|e| anyhow!("trace {}: {e}", path.display()))?;
    let mut cfg = base.clone();
    cfg.shapes.clear();
    // Without this every "validation" episode was a randomised training episode (the
    // randomisation overrides the workload), scored on the training distribution.
    cfg.randomize = None;
    let gpu = &cfg.sim.pools.gpu;
    let capacity = replica_capacity(gpu) * gpu.max_replicas as f64;
    let peak = peak_rate_over(&profile, 60.0 / speedup);
    cfg.sim.workload.scale = if peak > 0.0 {
        0.8 * capacity / peak
    } else {
        1.0
    };
    cfg.sim.workload.shape = shape;
    cfg.validate()?;
    Ok(cfg)
}

/// One greedy episode of `policy` in `cfg` with `seed`.
pub(super) fn score(policy: &Policy, cfg: &EnvConfig, seed: u64) -> Result<Score> {
    let mut env = SimEnv::new(cfg.clone())?;
    let mut obs = env.reset(seed);
    let mut mask = env.mask();
    let mut s = policy.scratch();
    let mut a = [0usize; 3];
    let mut ret = 0.0;
    loop {
        policy.act(&obs, Some(&mask), &mut s, &mut a)?;
        let st = env.step(Action::from_indices(a));
        ret += st.reward;
        obs = st.obs;
        mask = st.mask;
        if st.terminated || st.truncated {
            break;
        }
    }
    let sum = env
        .end_summary()
        .cloned()
        .ok_or_else(|| anyhow!("validation episode ended without a summary"))?;
    Ok(Score {
        ret,
        slo_miss: sum.slo_miss_fraction,
        gpu_hours: sum.gpu_hours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kis_sim::randomize::Randomization;

    /// Validation replays the validation trace even when the training scenario randomises (the
    /// randomisation would otherwise replace the workload with a training episode).
    #[test]
    fn validation_replays_the_validation_trace_not_a_randomised_episode() {
        if resolve_trace(VALIDATION_TRACE).is_err() {
            eprintln!("no shared/traces folder: validation test skipped");
            return;
        }
        let mut base = EnvConfig::default_cluster();
        base.randomize = Some(Randomization::default());
        let cfg = validation_env(&base, 1.0, 20.0).unwrap();
        assert!(cfg.randomize.is_none());
        let env = SimEnv::new(cfg).unwrap();
        let sc = env.episode_config(0);
        let ShapeSpec::Trace { path, limit, .. } = &sc.workload.shape else {
            panic!(
                "validation workload is not the trace: {:?}",
                sc.workload.shape
            );
        };
        assert!(path.ends_with(VALIDATION_TRACE), "{}", path.display());
        assert_eq!(*limit, Some(86_400.0));
    }
}
