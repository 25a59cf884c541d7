//! The masked multi-discrete distribution in tch: one categorical per action dimension over its
//! slice of the logits, invalid actions' logits replaced by [`MASK_LOGIT`] (probability 0),
//! log-probabilities and entropies summed over dimensions, the entropy counting valid actions only
//! (Huang & Ontañón, arXiv 2006.14171). Used in the rollout and in every update, so training sees
//! exactly the policy that runs.

use kis_policy::MASK_LOGIT;
use tch::{Kind, Tensor};

/// Per-dimension log-softmax of the masked logits, concatenated: `[B, sum(dims)]`.
/// `mask` is bool `[B, sum(dims)]`, true = allowed.
pub fn masked_log_probs(logits: &Tensor, mask: &Tensor, dims: &[usize]) -> Tensor {
    let masked = logits.where_scalarother(mask, MASK_LOGIT as f64);
    let mut parts = Vec::with_capacity(dims.len());
    let mut off = 0;
    for &n in dims {
        parts.push(masked.narrow(1, off, n as i64).log_softmax(1, Kind::Float));
        off += n as i64;
    }
    Tensor::cat(&parts, 1)
}

/// Summed log-probability of `actions` (int64 `[B, n_dims]`) under [`masked_log_probs`] output.
pub fn log_prob(logp: &Tensor, actions: &Tensor, dims: &[usize]) -> Tensor {
    let mut total: Option<Tensor> = None;
    let mut off = 0;
    for (k, &n) in dims.iter().enumerate() {
        let a = actions.narrow(1, k as i64, 1);
        let lp = logp
            .narrow(1, off, n as i64)
            .gather(1, &a, false)
            .squeeze_dim(1);
        total = Some(match total {
            Some(t) => t + lp,
            None => lp,
        });
        off += n as i64;
    }
    total.unwrap_or_else(|| Tensor::zeros([0], (Kind::Float, logp.device())))
}

/// Summed entropy `[B]` over dimensions, each over its valid actions only.
pub fn entropy(logp: &Tensor, mask: &Tensor) -> Tensor {
    let p_log_p = (logp.exp() * logp).where_scalarother(mask, 0.0);
    -p_log_p.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

/// PPO's clipped surrogate loss `mean(max(-A r, -A clip(r, 1-c, 1+c)))`.
pub fn clipped_surrogate(ratio: &Tensor, adv: &Tensor, clip: f64) -> Tensor {
    let pg1 = -adv * ratio;
    let pg2 = -adv * ratio.clamp(1.0 - clip, 1.0 + clip);
    pg1.maximum(&pg2).mean(Kind::Float)
}

/// The value loss `0.5 mean(max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2))`, or the
/// unclipped `0.5 mean((v - R)^2)` when `clip` is None.
pub fn value_loss(new_v: &Tensor, old_v: &Tensor, ret: &Tensor, clip: Option<f64>) -> Tensor {
    let unclipped = (new_v - ret).square();
    let per = match clip {
        Some(c) => {
            let clipped = old_v + (new_v - old_v).clamp(-c, c);
            unclipped.maximum(&(clipped - ret).square())
        }
        None => unclipped,
    };
    per.mean(Kind::Float) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(t: &Tensor, want: &[f64], tol: f64) {
        let got: Vec<f64> = Vec::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < tol, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn masked_multi_discrete_entropy_and_log_prob_by_hand() {
        // Dims [3, 2]. Row 0: logits all 0, mask [T,T,F | T,T]: dim 0 is uniform over 2 valid
        // actions (entropy ln 2), dim 1 uniform over 2 (ln 2): total 2 ln 2.
        // Row 1: logits [ln 1, ln 3, 5 | 0, 0], mask [T,T,F | T,F]: dim 0 p = [1/4, 3/4],
        // entropy = -(1/4 ln 1/4 + 3/4 ln 3/4); dim 1 a single valid action: entropy 0.
        let logits =
            Tensor::from_slice(&[0f32, 0., 0., 0., 0., 0., 3f32.ln(), 5., 0., 0.]).reshape([2, 5]);
        let mask = Tensor::from_slice(&[
            true, true, false, true, true, true, true, false, true, false,
        ])
        .reshape([2, 5]);
        let logp = masked_log_probs(&logits, &mask, &[3, 2]);
        let h1 = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        close(&entropy(&logp, &mask), &[2.0 * 2f64.ln(), h1], 1e-6);
        // Actions row 0: [1, 0] -> ln(1/2) + ln(1/2); row 1: [1, 0] -> ln(3/4) + ln 1.
        let actions = Tensor::from_slice(&[1i64, 0, 1, 0]).reshape([2, 2]);
        close(
            &log_prob(&logp, &actions, &[3, 2]),
            &[2.0 * 0.5f64.ln(), 0.75f64.ln()],
            1e-6,
        );
        // A masked action has probability 0 (log-probability about MASK_LOGIT).
        let masked = Tensor::from_slice(&[2i64, 0, 2, 1]).reshape([2, 2]);
        let lp: Vec<f32> = Vec::try_from(log_prob(&logp, &masked, &[3, 2])).unwrap();
        assert!(lp.iter().all(|&x| x < -1e7), "{lp:?}");
    }

    #[test]
    fn clipped_objective_by_hand() {
        // clip 0.2. (r, A): (1.5, 1) -> max(-1.5, -1.2) = -1.2; (0.5, 1) -> max(-0.5, -0.8) = -0.5;
        // (1.5, -1) -> max(1.5, 1.2) = 1.5; (0.5, -1) -> max(0.5, 0.8) = 0.8. Mean 0.15.
        let r = Tensor::from_slice(&[1.5f32, 0.5, 1.5, 0.5]);
        let a = Tensor::from_slice(&[1f32, 1., -1., -1.]);
        close(&clipped_surrogate(&r, &a, 0.2), &[0.15], 1e-6);
        // Value: v = [2, 0], v_old = [0, 0], R = [1, 1], clip 0.5:
        // (2-1)^2 = 1 vs (0.5-1)^2 = 0.25 -> 1; (0-1)^2 = 1 both -> 1. 0.5 * mean = 0.5.
        // Unclipped the same here; v = [0.6, 0]: clipped (0.5-1)^2 = 0.25 > (0.6-1)^2 = 0.16.
        let (v, old, ret) = (
            Tensor::from_slice(&[2f32, 0.]),
            Tensor::from_slice(&[0f32, 0.]),
            Tensor::from_slice(&[1f32, 1.]),
        );
        close(&value_loss(&v, &old, &ret, Some(0.5)), &[0.5], 1e-6);
        let v2 = Tensor::from_slice(&[0.6f32, 0.]);
        close(
            &value_loss(&v2, &old, &ret, Some(0.5)),
            &[0.5 * (0.25 + 1.0) / 2.0],
            1e-6,
        );
        close(
            &value_loss(&v2, &old, &ret, None),
            &[0.5 * (0.16 + 1.0) / 2.0],
            1e-6,
        );
    }
}
