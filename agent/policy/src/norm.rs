//! The running observation normaliser: per-feature mean and variance merged batch by batch
//! (Chan et al.'s parallel update), applied as `clip((x - mean) / sqrt(var + eps))`. The learner
//! updates it while collecting experience; the policy file carries it frozen, so evaluation and the
//! live loop see observations scaled exactly as in training.

use serde::{Deserialize, Serialize};

/// Added to the variance before the square root.
pub const NORM_EPS: f64 = 1e-8;

/// Running mean/variance of each observation feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNorm {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature (population) variance.
    pub var: Vec<f64>,
    /// Observations merged so far (starts at a tiny value so the first merge takes the batch).
    pub count: f64,
    /// Normalised values are clipped to [-clip, clip].
    pub clip: f64,
}

impl ObsNorm {
    /// Identity start: mean 0, variance 1.
    pub fn new(dim: usize, clip: f64) -> ObsNorm {
        ObsNorm {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
            clip,
        }
    }

    /// Feature count.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Merges a batch of rows (`batch.len()` a multiple of [`ObsNorm::dim`]).
    pub fn update(&mut self, batch: &[f32]) {
        let d = self.dim();
        if d == 0 || batch.is_empty() {
            return;
        }
        let n = (batch.len() / d) as f64;
        for j in 0..d {
            let col = batch.iter().skip(j).step_by(d).map(|&x| x as f64);
            let bmean = col.clone().sum::<f64>() / n;
            let bvar = col.map(|x| (x - bmean).powi(2)).sum::<f64>() / n;
            let delta = bmean - self.mean[j];
            let tot = self.count + n;
            self.mean[j] += delta * n / tot;
            let m2 = self.var[j] * self.count + bvar * n + delta * delta * self.count * n / tot;
            self.var[j] = m2 / tot;
        }
        self.count += n;
    }

    /// Normalises rows of `raw` into `out` (same length).
    pub fn normalize(&self, raw: &[f32], out: &mut [f32]) {
        let d = self.dim().max(1);
        for (i, (o, &x)) in out.iter_mut().zip(raw).enumerate() {
            let j = i % d;
            let z = (x as f64 - self.mean[j]) / (self.var[j] + NORM_EPS).sqrt();
            *o = z.clamp(-self.clip, self.clip) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_batches_equal_one_pass() {
        let mut n = ObsNorm::new(2, 10.0);
        n.update(&[1.0, 10.0, 3.0, 30.0]);
        n.update(&[5.0, 50.0]);
        // One pass over x = 1, 3, 5 (the initial 1e-4 pseudo-count barely matters).
        assert!((n.mean[0] - 3.0).abs() < 1e-3, "{:?}", n.mean);
        assert!((n.var[0] - 8.0 / 3.0).abs() < 1e-2, "{:?}", n.var);
        assert!((n.mean[1] - 30.0).abs() < 1e-2);
        let mut out = [0.0; 4];
        n.normalize(&[3.0, 30.0, 1e9, -1e9], &mut out);
        assert!(out[0].abs() < 1e-3 && out[1].abs() < 1e-3, "{out:?}");
        assert_eq!(out[2], 10.0, "clipped");
        assert_eq!(out[3], -10.0, "clipped");
    }
}
