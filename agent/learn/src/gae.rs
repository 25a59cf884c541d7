//! Generalised advantage estimation (Schulman et al., 2016) over a rollout stored time-major
//! (`[t * n_envs + env]`). Truncated episodes are bootstrapped before this point by adding
//! `gamma * V(final_obs)` to their last reward, so here every episode end simply stops the sum.

/// Advantages and returns (`advantages + values`) for `T = rewards.len() / n_envs` steps.
/// `dones[t]` says the episode ended at step t (the value after it is not used);
/// `last_values` are V(s_T) for bootstrapping the unfinished episodes.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = last_values.len();
    let steps = rewards.len() / n.max(1);
    let mut adv = vec![0.0f32; rewards.len()];
    let mut last = vec![0.0f32; n];
    for t in (0..steps).rev() {
        for e in 0..n {
            let i = t * n + e;
            let next_value = if t + 1 == steps {
                last_values[e]
            } else {
                values[i + n]
            };
            let keep = if dones[i] { 0.0 } else { 1.0 };
            let delta = rewards[i] + gamma * next_value * keep - values[i];
            last[e] = delta + gamma * lambda * keep * last[e];
            adv[i] = last[e];
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// `1 - Var(returns - values) / Var(returns)`: how much of the return the critic explains
/// (1 = all, 0 = no better than a constant; NaN when the returns do not vary).
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let var = |x: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = x.collect();
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / v.len().max(1) as f64
    };
    let vr = var(&mut returns.iter().map(|&r| r as f64));
    if vr == 0.0 {
        return f64::NAN;
    }
    let vd = var(&mut returns.iter().zip(values).map(|(&r, &v)| (r - v) as f64));
    1.0 - vd / vr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // One environment, 3 steps, gamma 0.9, lambda 0.8; the episode ends at step 1.
        // r = [1, 2, 3], V = [0.5, 1.0, 1.5], done = [F, T, F], V(s_3) = 2.
        // delta2 = 3 + 0.9*2 - 1.5 = 3.3;            A2 = 3.3
        // delta1 = 2 + 0 - 1.0 = 1.0;                A1 = 1.0 (the episode ended: no carry)
        // delta0 = 1 + 0.9*1.0 - 0.5 = 1.4;          A0 = 1.4 + 0.72*1.0 = 2.12
        let (a, r) = gae(
            &[1.0, 2.0, 3.0],
            &[0.5, 1.0, 1.5],
            &[false, true, false],
            &[2.0],
            0.9,
            0.8,
        );
        let want = [2.12, 1.0, 3.3];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-6, "{a:?}");
        }
        assert!(
            (r[0] - 2.62).abs() < 1e-6 && (r[2] - 4.8).abs() < 1e-6,
            "{r:?}"
        );
    }

    #[test]
    fn two_envs_interleaved_time_major() {
        // Env 0: r=[1,1], never done, V=0, V_T=0: A = [1 + 0.5*1, 1] with gamma*lambda = 0.5.
        // Env 1: r=[0,1], done at 0, V=0, V_T=10: A1 = 1 + 1*10 = 11; A0 = 0 (done).
        let (a, _) = gae(
            &[1.0, 0.0, 1.0, 1.0],
            &[0.0; 4],
            &[false, true, false, false],
            &[0.0, 10.0],
            1.0,
            0.5,
        );
        assert_eq!(a, vec![1.5, 0.0, 1.0, 11.0]);
    }

    #[test]
    fn explained_variance_extremes() {
        assert!((explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 3], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 2], &[1.0, 1.0]).is_nan());
    }
}
