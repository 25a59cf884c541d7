//! The actor-critic network in tch, laid out exactly as [`NetConfig::params`] says (so its weights
//! drop into a policy file and the pure-Rust forward pass), with orthogonal initialisation
//! (gain sqrt(2) in hidden layers, 0.01 for the policy head, 1 for the value head, biases 0), and
//! Adam with global gradient-norm clipping written out so its moments can be checkpointed.

use kis_policy::{Activation, NetConfig};
use tch::nn::{self, Init, LinearConfig, Module};
use tch::{Device, Kind, Tensor};

/// The network.
#[derive(Debug)]
pub struct ActorCritic {
    cfg: NetConfig,
    trunks: Vec<Vec<nn::Linear>>,
    pi: nn::Linear,
    v: nn::Linear,
    /// Parameters in [`NetConfig::params`] order, with their shapes.
    params: Vec<(Tensor, Vec<i64>)>,
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
        let params = cfg
            .params(obs_dim, n_logits)
            .into_iter()
            .map(|(name, shape)| {
                let t = vars[&name].shallow_clone();
                (t, shape.iter().map(|&d| d as i64).collect())
            })
            .collect();
        ActorCritic {
            cfg: cfg.clone(),
            trunks,
            pi,
            v,
            params,
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

    /// All weights, flat, in storage order (the policy file's layout).
    pub fn flat_weights(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for (t, _) in &self.params {
            let v: Vec<f32> =
                Vec::try_from(t.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
            out.extend(v);
        }
        out
    }

    /// Overwrites the weights from a flat vector in storage order (its length was checked by
    /// the policy file's loader).
    pub fn load_flat(&mut self, w: &[f32]) {
        let _guard = tch::no_grad_guard();
        let mut off = 0;
        for (t, shape) in &mut self.params {
            let n: i64 = shape.iter().product();
            let src = Tensor::from_slice(&w[off..off + n as usize])
                .reshape(shape.as_slice())
                .to_device(t.device());
            t.copy_(&src);
            off += n as usize;
        }
    }
}

/// Adam (Kingma & Ba) as PyTorch computes it, plus the global gradient-norm clip; its moments are
/// plain tensors so a checkpoint can hold them.
#[derive(Debug)]
pub struct Adam {
    /// Step count.
    pub t: u64,
    /// First moments, one per parameter.
    pub m: Vec<Tensor>,
    /// Second moments.
    pub v: Vec<Tensor>,
    /// Epsilon added to the denominator.
    pub eps: f64,
}

/// Adam's decay rates.
const BETAS: (f64, f64) = (0.9, 0.999);

impl Adam {
    /// Zero moments for `params`.
    pub fn new<'a>(params: impl Iterator<Item = &'a Tensor>, eps: f64) -> Adam {
        let m: Vec<Tensor> = params.map(|p| p.zeros_like()).collect();
        let v = m.iter().map(|t| t.zeros_like()).collect();
        Adam { t: 0, m, v, eps }
    }

    /// Scales the gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm<'a>(
        params: impl Iterator<Item = &'a Tensor> + Clone,
        max_norm: f64,
    ) -> f64 {
        let _guard = tch::no_grad_guard();
        let sq: f64 = params
            .clone()
            .map(|p| p.grad().square().sum(Kind::Double).double_value(&[]))
            .sum();
        let norm = sq.sqrt();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for p in params {
                let mut g = p.grad();
                let _ = g.f_mul_scalar_(coef);
            }
        }
        norm
    }

    /// One step with learning rate `lr`, then zeroes the gradients.
    pub fn step<'a>(&mut self, params: impl Iterator<Item = &'a Tensor>, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let (b1, b2) = BETAS;
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        for ((p, m), v) in params.zip(&mut self.m).zip(&mut self.v) {
            let mut g = p.grad();
            m.copy_(&(&*m * b1 + &g * (1.0 - b1)));
            v.copy_(&(&*v * b2 + g.square() * (1.0 - b2)));
            let denom = v.sqrt() / bc2.sqrt() + self.eps;
            let mut p = p.shallow_clone();
            p.copy_(&(&p - (&*m / denom) * (lr / bc1)));
            let _ = g.zero_();
        }
    }
}
