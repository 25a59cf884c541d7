//! The actor-critic network evaluated in plain Rust (no libtorch): dense layers over the flat f32
//! weights in [`NetConfig::params`] order, then per-dimension argmax under the action mask. This is
//! what `evaluate`, `compare` and the live loop run; kis-learn's tests check it equals tch to 1e-5.

use crate::spec::{MASK_LOGIT, NetConfig};
use crate::{Error, Result};

/// One dense layer's place in the flat weight vector.
#[derive(Clone, Debug)]
struct Dense {
    w: usize,
    b: usize,
    fan_in: usize,
    fan_out: usize,
}

/// A network bound to its weights.
#[derive(Clone, Debug)]
pub struct Net {
    cfg: NetConfig,
    weights: Vec<f32>,
    trunks: Vec<Vec<Dense>>,
    pi: Dense,
    v: Dense,
    obs_dim: usize,
}

/// Reusable buffers, so a decision allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    /// Normalised observation.
    pub obs: Vec<f32>,
    /// Logits of the last forward pass (all dimensions, concatenated).
    pub logits: Vec<f32>,
}

impl Net {
    /// Binds `weights` (flat, in [`NetConfig::params`] order) to the layout.
    pub fn new(cfg: NetConfig, obs_dim: usize, n_logits: usize, weights: Vec<f32>) -> Result<Net> {
        cfg.validate()?;
        let params = cfg.params(obs_dim, n_logits);
        let total: usize = params
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        if weights.len() != total {
            return Err(Error::Corrupt(format!(
                "{} weights stored, the network needs {total}",
                weights.len()
            )));
        }
        let mut off = 0;
        let mut layers = Vec::new();
        for pair in params.chunks(2) {
            let shape = &pair[0].1;
            let (fan_out, fan_in) = (shape[0], shape[1]);
            let d = Dense {
                w: off,
                b: off + fan_out * fan_in,
                fan_in,
                fan_out,
            };
            off = d.b + fan_out;
            layers.push(d);
        }
        let v = layers
            .pop()
            .ok_or_else(|| Error::Invalid("no layers".into()))?;
        let pi = layers
            .pop()
            .ok_or_else(|| Error::Invalid("no layers".into()))?;
        let per = cfg.hidden.len();
        let trunks = layers.chunks(per).map(|c| c.to_vec()).collect();
        Ok(Net {
            cfg,
            weights,
            trunks,
            pi,
            v,
            obs_dim,
        })
    }

    /// The flat weights.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The layout.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    fn dense(&self, d: &Dense, x: &[f32], out: &mut Vec<f32>, act: bool) {
        out.clear();
        let w = &self.weights[d.w..d.w + d.fan_in * d.fan_out];
        let b = &self.weights[d.b..d.b + d.fan_out];
        for (row, &bias) in w.chunks_exact(d.fan_in).zip(b) {
            let s = bias + dot(row, x);
            out.push(if act { self.cfg.activation.apply(s) } else { s });
        }
    }

    /// Runs trunk `t` on `s.obs`; the features end up in `s.a`.
    fn trunk(&self, t: usize, s: &mut Scratch) {
        s.a.clear();
        s.a.extend_from_slice(&s.obs);
        for d in &self.trunks[t] {
            let mut out = std::mem::take(&mut s.b);
            self.dense(d, &s.a, &mut out, true);
            s.b = std::mem::replace(&mut s.a, out);
        }
    }

    /// Forward pass on the normalised observation in `s.obs`: logits into `s.logits`; returns the
    /// value estimate.
    pub fn forward(&self, s: &mut Scratch) -> f32 {
        debug_assert_eq!(s.obs.len(), self.obs_dim);
        self.trunk(0, s);
        let mut logits = std::mem::take(&mut s.logits);
        self.dense(&self.pi, &s.a, &mut logits, false);
        s.logits = logits;
        if self.trunks.len() > 1 {
            self.trunk(1, s);
        }
        let mut v = std::mem::take(&mut s.b);
        self.dense(&self.v, &s.a, &mut v, false);
        let value = v[0];
        s.b = v;
        value
    }
}

/// Dot product with eight partial sums, so the compiler can keep them in one SIMD register (a
/// single running sum is a dependency chain it may not reorder).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Per-dimension argmax of `logits` (concatenated over `dims`) with masked entries (false in
/// `mask`) set to [`MASK_LOGIT`] first, as in training. Ties go to the lowest index.
pub fn masked_argmax(logits: &[f32], dims: &[usize], mask: Option<&[bool]>, out: &mut [usize]) {
    let mut off = 0;
    for (k, &n) in dims.iter().enumerate() {
        let mut best = (0, f32::NEG_INFINITY);
        for i in 0..n {
            let valid = mask.is_none_or(|m| m[off + i]);
            let l = if valid { logits[off + i] } else { MASK_LOGIT };
            if l > best.1 {
                best = (i, l);
            }
        }
        out[k] = best.0;
        off += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Activation;

    #[test]
    fn hand_computed_forward() {
        // 2 inputs, one hidden layer of 2 (relu), separate critic, 3 logits.
        let cfg = NetConfig {
            hidden: vec![2],
            activation: Activation::Relu,
            shared: false,
        };
        #[rustfmt::skip]
        let w = vec![
            1.0, 0.0, 0.0, -1.0, 0.5, 0.5, // actor.0: W=[[1,0],[0,-1]], b=[.5,.5]
            1.0, 1.0, 0.0, 0.0, 0.0, 1.0,  // critic.0: W=[[1,1],[0,0]], b=[0,1]
            1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.1, // pi: 3x2 + b
            2.0, 3.0, -1.0,                // v: 1x2 + b
        ];
        let net = Net::new(cfg, 2, 3, w).unwrap();
        let mut s = Scratch {
            obs: vec![1.0, 2.0],
            ..Scratch::default()
        };
        let v = net.forward(&mut s);
        // actor hidden: relu([1.5, -1.5]) = [1.5, 0]; logits = [1.5, 0, 1.5+0.1].
        assert_eq!(s.logits, vec![1.5, 0.0, 1.6]);
        // critic hidden: relu([3, 1]); v = 2*3 + 3*1 - 1 = 8.
        assert_eq!(v, 8.0);
        let mut a = [0; 2];
        masked_argmax(&s.logits, &[2, 1], None, &mut a);
        assert_eq!(a, [0, 0]);
        masked_argmax(
            &[1.0, 5.0, 0.0],
            &[3],
            Some(&[true, false, true]),
            &mut a[..1],
        );
        assert_eq!(a[0], 0, "the masked best logit is never chosen");
        assert!(Net::new(NetConfig::default(), 2, 3, vec![0.0; 5]).is_err());
    }
}
