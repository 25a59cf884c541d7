//! The actor-critic network in tch, laid out exactly as [`NetConfig::params`] says (so its weights
//! drop into a policy file and the pure-Rust forward pass), with orthogonal initialisation
//! (gain sqrt(2) in hidden layers, 0.01 for the policy head, 1 for the value head, biases 0), and
//! Adam with global gradient-norm clipping written out so its moments can be checkpointed.
//!
//! All parameters live in one flat buffer in that order (each parameter tensor a window onto it),
//! and the gradient is gathered into one flat tensor: the norm clip and Adam are then a handful of
//! whole-buffer ops per step instead of a dozen ops per parameter tensor (the update's cost on a
//! small network is mostly per-op overhead).

use kis_policy::{Activation, NetConfig};
use tch::nn::{self, Init, LinearConfig, Module};
use tch::{Device, Tensor};

/// The network.
#[derive(Debug)]
pub struct ActorCritic {
    cfg: NetConfig,
    trunks: Vec<Vec<nn::Linear>>,
    pi: nn::Linear,
    v: nn::Linear,
    /// Parameters in [`NetConfig::params`] order, with their shapes; windows onto `flat`.
    params: Vec<(Tensor, Vec<i64>)>,
    /// All parameters, flat, in that order.
    flat: Tensor,
}

fn layer(p: nn::Path<'_>, fan_in: usize, fan_out: usize, gain: f64) -> nn::Linear {
    let c = LinearConfig {
        ws_init: Init::Orthogonal { gain },
        bs_init: Some(Init::Const(0.0)),
        bias: true,
    };
    nn::linear(p, fan_in as i64, fan_out as i64, c)
}

impl ActorCritic {
    /// A freshly initialised network in `vs` (seed torch first for a deterministic init).
    pub fn new(vs: &nn::VarStore, cfg: &NetConfig, obs_dim: usize, n_logits: usize) -> Self {
        let root = vs.root();
        let mut trunks = Vec::new();
        for name in cfg.trunks() {
            let mut fan_in = obs_dim;
            let mut layers = Vec::new();
            for (i, &h) in cfg.hidden.iter().enumerate() {
                layers.push(layer(&root / *name / i, fan_in, h, 2f64.sqrt()));
                fan_in = h;
            }
            trunks.push(layers);
        }
        let last = *cfg.hidden.last().unwrap_or(&obs_dim);
        let pi = layer(&root / "pi", last, n_logits, 0.01);
        let v = layer(&root / "v", last, 1, 1.0);
        let vars = vs.variables();
        let mut params: Vec<(Tensor, Vec<i64>)> = cfg
            .params(obs_dim, n_logits)
            .into_iter()
            .map(|(name, shape)| {
                let t = vars[&name].shallow_clone();
                (t, shape.iter().map(|&d| d as i64).collect())
            })
            .collect();
        // One buffer for all: each variable (shared with the VarStore and the layers) is made a
        // window onto it, keeping its initial values.
        let flat = tch::no_grad(|| {
            let parts: Vec<Tensor> = params
                .iter()
                .map(|(t, _)| t.detach().reshape([-1]))
                .collect();
            Tensor::cat(&parts, 0)
        });
        let mut off = 0;
        for (t, shape) in &mut params {
            let n: i64 = shape.iter().product();
            t.set_data(&flat.narrow(0, off, n).view(shape.as_slice()));
            off += n;
        }
        ActorCritic {
            cfg: cfg.clone(),
            trunks,
            pi,
            v,
            params,
            flat,
        }
    }

    fn trunk(&self, t: usize, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for l in &self.trunks[t] {
            h = l.forward(&h);
            h = match self.cfg.activation {
                Activation::Tanh => h.tanh(),
                Activation::Relu => h.relu(),
            };
        }
        h
    }

    /// Logits `[B, sum(dims)]` and values `[B]` for normalised observations `[B, obs_dim]`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let h = self.trunk(0, x);
        let logits = self.pi.forward(&h);
        let hv = if self.trunks.len() > 1 {
            self.trunk(1, x)
        } else {
            h
        };
        (logits, self.v.forward(&hv).squeeze_dim(1))
    }

    /// Values only.
    pub fn value(&self, x: &Tensor) -> Tensor {
        self.forward(x).1
    }

    /// Parameters in storage order.
    pub fn params(&self) -> impl Iterator<Item = &Tensor> + Clone {
        self.params.iter().map(|(t, _)| t)
    }

    /// All parameters as one flat tensor in storage order (writing to it changes the network).
    pub fn flat_params(&self) -> &Tensor {
        &self.flat
    }

    /// The gradient of `loss` with respect to all parameters, flat in storage order (zeros for
    /// parameters `loss` does not use; the parameters' own `.grad` is left alone).
    pub fn flat_grad(&self, loss: &Tensor) -> Tensor {
        let out = self.flat.zeros_like();
        self.flat_grad_into(loss, &out);
        out
    }

    /// [`ActorCritic::flat_grad`] written into `out` (shaped like [`ActorCritic::flat_params`]):
    /// a buffer reused every step, where a fresh one would cost an allocation that the system
    /// hands out as new zeroed pages (it is larger than the allocator keeps on its heap).
    pub fn flat_grad_into(&self, loss: &Tensor, out: &Tensor) {
        let params: Vec<&Tensor> = self.params().collect();
        let grads = Tensor::run_backward(&[loss], &params, false, false);
        let parts: Vec<Tensor> = grads
            .iter()
            .zip(&params)
            .map(|(g, p)| {
                if g.defined() {
                    g.view([-1])
                } else {
                    p.detach().zeros_like().view([-1])
                }
            })
            .collect();
        let _ = Tensor::cat_out(out, &parts, 0);
    }

    /// All weights, flat, in storage order (the policy file's layout).
    pub fn flat_weights(&self) -> Vec<f32> {
        Vec::try_from(self.flat.to_device(Device::Cpu)).unwrap_or_default()
    }

    /// Overwrites the weights from a flat vector in storage order (its length was checked by
    /// the policy file's loader).
    pub fn load_flat(&mut self, w: &[f32]) {
        let _guard = tch::no_grad_guard();
        self.flat
            .copy_(&Tensor::from_slice(w).to_device(self.flat.device()));
    }
}

/// Adam (Kingma & Ba) on flat tensors with the global gradient-norm clip; its moments are plain
/// tensors so a checkpoint can hold them. A step is about ten in-place whole-buffer ops and
/// allocates nothing (the gradient's buffer is reused for the denominator): on a small network the
/// optimiser's cost is per-op overhead and memory traffic, not arithmetic.
#[derive(Debug)]
pub struct Adam {
    /// Step count.
    pub t: u64,
    /// First moments, flat like [`ActorCritic::flat_params`].
    pub m: Tensor,
    /// Second moments.
    pub v: Tensor,
    /// Epsilon added to the denominator.
    pub eps: f64,
}

/// Adam's decay rates.
const BETAS: (f64, f64) = (0.9, 0.999);

impl Adam {
    /// Zero moments for the flat parameters `params`.
    pub fn new(params: &Tensor, eps: f64) -> Adam {
        Adam {
            t: 0,
            m: params.zeros_like(),
            v: params.zeros_like(),
            eps,
        }
    }

    /// One step of the flat parameters `params` along the flat gradient `grad` (used up: it is
    /// scratch afterwards), first scaled so its L2 norm is at most `max_norm`, with learning rate
    /// `lr`; returns the norm before the clip. The update `p -= lr m_hat / (sqrt(v_hat) + eps)`
    /// (`m_hat = m / bc1`, `v_hat = v / bc2`) is computed as
    /// `p += m / ((sqrt(v) + eps sqrt(bc2)) * -bc1 / (lr sqrt(bc2)))`, the same value.
    pub fn step(&mut self, params: &Tensor, grad: &mut Tensor, max_norm: f64, lr: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let norm = grad.dot(grad).double_value(&[]).sqrt();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let _ = grad.g_mul_scalar_(coef);
        }
        self.t += 1;
        let (b1, b2) = BETAS;
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.t as i32)).sqrt();
        let _ = self.m.lerp_(grad, 1.0 - b1);
        let _ = grad.g_mul_scalar_((1.0 - b2).sqrt());
        let _ = self.v.g_mul_scalar_(b2);
        let _ = self.v.addcmul_(grad, grad);
        let denom = self.v.sqrt_out(grad);
        let _ = denom.shallow_clone().g_add_scalar_(self.eps * bc2_sqrt);
        let _ = denom.shallow_clone().g_mul_scalar_(-bc1 / (lr * bc2_sqrt));
        let _ = params.shallow_clone().addcdiv_(&self.m, &denom);
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn host(t: &Tensor) -> Vec<f64> {
        Vec::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    #[test]
    fn parameters_are_windows_onto_the_flat_buffer() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = ActorCritic::new(&vs, &NetConfig::default(), 4, 5);
        let w = net.flat_weights();
        let shapes = NetConfig::default().params(4, 5);
        assert_eq!(w.len(), NetConfig::default().num_params(4, 5));
        // The flat buffer holds each parameter's values in storage order.
        let parts: Vec<f64> = net.params().flat_map(host).collect();
        assert_eq!(parts, w.iter().map(|&x| x as f64).collect::<Vec<_>>());
        // Writing to the buffer changes the network (and its VarStore variables).
        let x = Tensor::ones([2, 4], (Kind::Float, Device::Cpu));
        let before = host(&net.forward(&x).0);
        net.load_flat(&vec![0.0; w.len()]);
        let after = host(&net.forward(&x).0);
        assert!(after.iter().all(|&v| v == 0.0) && before.iter().any(|&v| v != 0.0));
        assert!(
            vs.variables()
                .values()
                .all(|t| host(t).iter().all(|&v| v == 0.0))
        );
        // The flat gradient is each parameter's gradient, in order.
        net.load_flat(&w);
        let loss = |net: &ActorCritic| {
            let (logits, v) = net.forward(&x);
            logits.square().sum(Kind::Float) + v.sum(Kind::Float)
        };
        let g = host(&net.flat_grad(&loss(&net)));
        loss(&net).backward();
        let g_ref: Vec<f64> = net.params().flat_map(|p| host(&p.grad())).collect();
        assert_eq!(g, g_ref);
        // A parameter the loss does not use gets zeros.
        let g = host(&net.flat_grad(&net.forward(&x).1.sum(Kind::Float)));
        let n_pi: usize = shapes
            .iter()
            .filter(|(n, _)| n.starts_with("pi"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert!(
            g.iter().filter(|&&v| v == 0.0).count() >= n_pi,
            "pi's gradient is zero"
        );
    }

    #[test]
    fn adam_and_clip_match_the_textbook_formula() {
        // Three steps on random parameters and gradients against Adam as PyTorch documents it
        // (m_hat = m / bc1, v_hat = v / bc2, p -= lr m_hat / (sqrt(v_hat) + eps)), in f64, after
        // the global norm clip; the first two steps clip (norm about 3.2 > 1), the third not.
        tch::manual_seed(9);
        let opts = (Kind::Float, Device::Cpu);
        let n = 1003;
        let p = Tensor::randn([n], opts);
        let mut adam = Adam::new(&p, 1e-5);
        let (mut pr, mut m, mut v) = (host(&p), vec![0.0; n as usize], vec![0.0; n as usize]);
        for (t, scale) in [(1, 0.1), (2, 0.1), (3, 0.01)] {
            let mut g = Tensor::randn([n], opts) * scale;
            let gr = host(&g);
            let norm = gr.iter().map(|x| x * x).sum::<f64>().sqrt();
            let before = adam.step(&p, &mut g, 1.0, 1e-2);
            assert!((before - norm).abs() < 1e-5 * norm, "{before} vs {norm}");
            let coef = (1.0 / (norm + 1e-6)).min(1.0);
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
            for i in 0..n as usize {
                let gi = gr[i] * coef;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                pr[i] -= 1e-2 * (m[i] / bc1) / ((v[i] / bc2).sqrt() + 1e-5);
            }
        }
        let got = host(&p);
        let worst = got
            .iter()
            .zip(&pr)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "worst difference {worst}");
    }
}
