//! The masked multi-discrete distribution in tch: one categorical per action dimension over its
//! slice of the logits, invalid actions' logits replaced by [`MASK_LOGIT`] (probability 0),
//! log-probabilities and entropies summed over dimensions, the entropy counting valid actions only
//! (Huang & Ontañón, arXiv 2006.14171). Used in the rollout and in every update, so training sees
//! exactly the policy that runs.
//!
//! The dimensions are laid out padded, `[B, n_dims, width]` with `width` the largest dimension,
//! padding slots masked: one log-softmax, one gather and one sum serve every dimension at once,
//! instead of a narrow, a log-softmax and a gather per dimension (fewer ops and autograd nodes per
//! minibatch; the values are the same, the padding's probability being exactly 0).

use kis_policy::MASK_LOGIT;
use tch::{Device, Kind, Tensor};

/// The padded layout of a multi-discrete action space.
#[derive(Debug)]
pub struct Heads {
    dims: Vec<usize>,
    width: usize,
    /// `[n_dims * width]` int64: the logit column of each padded slot (0 for padding).
    cols: Tensor,
    /// `[n_dims * width]` bool: true for real slots, false for padding.
    real: Tensor,
}

impl Heads {
    /// The layout of `dims` (each at least 1) on `device`.
    pub fn new(dims: &[usize], device: Device) -> Heads {
        let width = dims.iter().copied().max().unwrap_or(1);
        let (mut cols, mut real) = (Vec::new(), Vec::new());
        let mut off = 0;
        for &n in dims {
            for i in 0..width {
                cols.push(if i < n { (off + i) as i64 } else { 0 });
                real.push(i < n);
            }
            off += n;
        }
        Heads {
            dims: dims.to_vec(),
            width,
            cols: Tensor::from_slice(&cols).to_device(device),
            real: Tensor::from_slice(&real).to_device(device),
        }
    }

    /// Slots per dimension (the largest dimension).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The padded mask `[B, n_dims, width]` of a bool mask `[B, sum(dims)]` (true = allowed);
    /// padding is never allowed.
    pub fn pad_mask(&self, mask: &Tensor) -> Tensor {
        mask.index_select(1, &self.cols)
            .logical_and(&self.real)
            .view([-1, self.dims.len() as i64, self.width as i64])
    }

    /// Per-dimension log-softmax of the masked logits `[B, sum(dims)]`: `[B, n_dims, width]`
    /// (padding about [`MASK_LOGIT`]). `mask` is the padded mask from [`Heads::pad_mask`].
    pub fn log_probs(&self, logits: &Tensor, mask: &Tensor) -> Tensor {
        logits
            .index_select(1, &self.cols)
            .view([-1, self.dims.len() as i64, self.width as i64])
            .where_scalarother(mask, MASK_LOGIT as f64)
            .log_softmax(2, Kind::Float)
    }
}

/// Summed log-probability `[B]` of `actions` (int64 `[B, n_dims]`) under [`Heads::log_probs`].
pub fn log_prob(logp: &Tensor, actions: &Tensor) -> Tensor {
    logp.gather(2, &actions.unsqueeze(2), false)
        .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float)
}

/// Summed entropy `[B]` over dimensions, each over its valid actions only (`mask` padded).
pub fn entropy(logp: &Tensor, mask: &Tensor) -> Tensor {
    let p_log_p = (logp.exp() * logp).where_scalarother(mask, 0.0);
    -p_log_p.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float)
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
        let heads = Heads::new(&[3, 2], Device::Cpu);
        let logits =
            Tensor::from_slice(&[0f32, 0., 0., 0., 0., 0., 3f32.ln(), 5., 0., 0.]).reshape([2, 5]);
        let mask = heads.pad_mask(
            &Tensor::from_slice(&[
                true, true, false, true, true, true, true, false, true, false,
            ])
            .reshape([2, 5]),
        );
        let logp = heads.log_probs(&logits, &mask);
        let h1 = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        close(&entropy(&logp, &mask), &[2.0 * 2f64.ln(), h1], 1e-6);
        // Actions row 0: [1, 0] -> ln(1/2) + ln(1/2); row 1: [1, 0] -> ln(3/4) + ln 1.
        let actions = Tensor::from_slice(&[1i64, 0, 1, 0]).reshape([2, 2]);
        close(
            &log_prob(&logp, &actions),
            &[2.0 * 0.5f64.ln(), 0.75f64.ln()],
            1e-6,
        );
        // A masked action has probability 0 (log-probability about MASK_LOGIT).
        let masked = Tensor::from_slice(&[2i64, 0, 2, 1]).reshape([2, 2]);
        let lp: Vec<f32> = Vec::try_from(log_prob(&logp, &masked)).unwrap();
        assert!(lp.iter().all(|&x| x < -1e7), "{lp:?}");
    }

    /// The straightforward per-dimension version: a log-softmax over each dimension's slice.
    fn per_dimension(
        logits: &Tensor,
        mask: &Tensor,
        actions: &Tensor,
        dims: &[usize],
    ) -> [Tensor; 2] {
        let masked = logits.where_scalarother(mask, MASK_LOGIT as f64);
        let (mut lp, mut ent) = (Vec::new(), Vec::new());
        let mut off = 0;
        for (k, &n) in dims.iter().enumerate() {
            let part = masked.narrow(1, off, n as i64).log_softmax(1, Kind::Float);
            let m = mask.narrow(1, off, n as i64);
            lp.push(
                part.gather(1, &actions.narrow(1, k as i64, 1), false)
                    .squeeze_dim(1),
            );
            let plogp = (part.exp() * &part).where_scalarother(&m, 0.0);
            ent.push(-plogp.sum_dim_intlist([1i64].as_slice(), false, Kind::Float));
            off += n as i64;
        }
        [
            Tensor::stack(&lp, 1).sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
            Tensor::stack(&ent, 1).sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
        ]
    }

    #[test]
    fn padded_heads_equal_per_dimension_on_random_input() {
        // The paper's dims [5, 5, 3] and an uneven [4, 1, 2]; random logits (scale 3), random
        // masks with at least one valid action per dimension, random valid actions; log-probs
        // and entropies agree to 1e-6, and so do the gradients of a loss using both.
        tch::manual_seed(7);
        for dims in [vec![5usize, 5, 3], vec![4, 1, 2]] {
            let (b, l) = (256i64, dims.iter().sum::<usize>() as i64);
            let heads = Heads::new(&dims, Device::Cpu);
            let logits =
                (Tensor::randn([b, l], (Kind::Float, Device::Cpu)) * 3.0).set_requires_grad(true);
            let mask = Tensor::rand([b, l], (Kind::Float, Device::Cpu)).gt(0.3);
            let mut actions = Vec::new();
            let mut off = 0;
            for &n in &dims {
                // First slot always valid; the action a valid slot drawn by argmax of noise.
                let _ = mask.narrow(1, off, 1).fill_(1);
                let m = mask.narrow(1, off, n as i64);
                let noise = Tensor::rand([b, n as i64], (Kind::Float, Device::Cpu));
                actions.push(noise.where_scalarother(&m, -1.0).argmax(1, true));
                off += n as i64;
            }
            let actions = Tensor::cat(&actions, 1);
            let [lp_ref, ent_ref] = per_dimension(&logits, &mask, &actions, &dims);
            let pm = heads.pad_mask(&mask);
            let lp_all = heads.log_probs(&logits, &pm);
            let (lp, ent) = (log_prob(&lp_all, &actions), entropy(&lp_all, &pm));
            let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
            assert!(diff(&lp, &lp_ref) < 1e-6, "log-prob {}", diff(&lp, &lp_ref));
            assert!(
                diff(&ent, &ent_ref) < 1e-6,
                "entropy {}",
                diff(&ent, &ent_ref)
            );
            let g = |x: Tensor| Tensor::run_backward(&[x], &[&logits], false, false).remove(0);
            let g_new = g((lp - ent * 0.1).sum(Kind::Float));
            let g_ref = g((lp_ref - ent_ref * 0.1).sum(Kind::Float));
            assert!(
                diff(&g_new, &g_ref) < 1e-6,
                "gradient {}",
                diff(&g_new, &g_ref)
            );
        }
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
