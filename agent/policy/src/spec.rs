//! What a policy was trained for and how its network is shaped: the observation spec (name, version,
//! feature names), the multi-discrete action space and the network layout. A policy is only run
//! where all of these match, so a policy trained on one observation is never fed another.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The logit given to a masked (invalid) action: far below any real logit, so its probability is 0
/// after the softmax and argmax never picks it; finite, so no NaN arises from `0 * -inf`.
pub const MASK_LOGIT: f32 = -1e8;

/// The autoscaler's action space: GPU delta (-2..=2), CPU delta (-2..=2), placement (3).
pub const AUTOSCALER_ACTION_DIMS: [usize; 3] = [5, 5, 3];

/// An observation layout: its features in order, under a name and version that change whenever
/// the meaning of any feature changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsSpec {
    /// Name of the layout, e.g. `kis-sim-paper10`.
    pub name: String,
    /// Version of the layout.
    pub version: u32,
    /// Feature names, in order (the observation's length is their number).
    pub features: Vec<String>,
}

impl ObsSpec {
    /// A spec from string slices.
    pub fn new(name: &str, version: u32, features: &[&str]) -> ObsSpec {
        ObsSpec {
            name: name.to_string(),
            version,
            features: features.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Observation length.
    pub fn dim(&self) -> usize {
        self.features.len()
    }

    /// Errors unless `other` is the same layout.
    pub fn check(&self, other: &ObsSpec) -> Result<()> {
        if self != other {
            return Err(Error::Incompatible(format!(
                "the policy observes {} v{} ({} features), the environment {} v{} ({} features)",
                self.name,
                self.version,
                self.dim(),
                other.name,
                other.version,
                other.dim()
            )));
        }
        Ok(())
    }
}

/// Errors unless the policy's action dimensions equal the environment's.
pub fn check_action_dims(policy: &[usize], env: &[usize]) -> Result<()> {
    if policy != env {
        return Err(Error::Incompatible(format!(
            "the policy acts in MultiDiscrete({policy:?}), the environment in MultiDiscrete({env:?})"
        )));
    }
    Ok(())
}

/// Hidden-layer non-linearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// tanh (CleanRL's default for PPO).
    #[default]
    Tanh,
    /// max(0, x).
    Relu,
}

impl Activation {
    /// Applies the non-linearity.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
        }
    }
}

/// The actor-critic network: hidden layers, and whether actor and critic share them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Hidden non-linearity.
    #[serde(default)]
    pub activation: Activation,
    /// One trunk feeding both heads (the paper's network) instead of separate actor and critic.
    #[serde(default)]
    pub shared: bool,
}

impl Default for NetConfig {
    /// Two tanh layers of 64, separate actor and critic (CleanRL's PPO network).
    fn default() -> Self {
        NetConfig {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            shared: false,
        }
    }
}

impl NetConfig {
    /// The paper-sized network: a shared 256-256-256 ReLU trunk (137,998 parameters for 10 inputs
    /// and 13 logits).
    pub fn paper() -> NetConfig {
        NetConfig {
            hidden: vec![256, 256, 256],
            activation: Activation::Relu,
            shared: true,
        }
    }

    /// Checks the layout.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::Invalid(format!(
                "hidden layers must be non-empty and non-zero, got {:?}",
                self.hidden
            )));
        }
        Ok(())
    }

    /// The trunks: `["trunk"]` when shared, else `["actor", "critic"]`.
    pub fn trunks(&self) -> &'static [&'static str] {
        if self.shared {
            &["trunk"]
        } else {
            &["actor", "critic"]
        }
    }

    /// Every parameter tensor in storage order: name and shape (`[out, in]` for weights, as
    /// torch's Linear stores them). The tch model and the pure-Rust forward both follow it.
    pub fn params(&self, obs_dim: usize, n_logits: usize) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let last = *self.hidden.last().unwrap_or(&obs_dim);
        for trunk in self.trunks() {
            let mut fan_in = obs_dim;
            for (i, &h) in self.hidden.iter().enumerate() {
                out.push((format!("{trunk}.{i}.weight"), vec![h, fan_in]));
                out.push((format!("{trunk}.{i}.bias"), vec![h]));
                fan_in = h;
            }
        }
        out.push(("pi.weight".into(), vec![n_logits, last]));
        out.push(("pi.bias".into(), vec![n_logits]));
        out.push(("v.weight".into(), vec![1, last]));
        out.push(("v.bias".into(), vec![1]));
        out
    }

    /// Total number of parameters.
    pub fn num_params(&self, obs_dim: usize, n_logits: usize) -> usize {
        self.params(obs_dim, n_logits)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_network_has_137998_parameters() {
        assert_eq!(NetConfig::paper().num_params(10, 13), 137_998);
        // CleanRL's CartPole network: 2 x (4*64+64 + 64*64+64) + 64*2+2 + 64+1.
        assert_eq!(NetConfig::default().num_params(4, 2), 9_155);
    }

    #[test]
    fn specs_must_match() {
        let a = ObsSpec::new("x", 1, &["a", "b"]);
        let mut b = a.clone();
        assert!(a.check(&b).is_ok());
        b.version = 2;
        let e = a.check(&b).unwrap_err().to_string();
        assert!(e.contains("x v1") && e.contains("x v2"), "{e}");
        assert!(check_action_dims(&[5, 5, 3], &[5, 5, 3]).is_ok());
        let e = check_action_dims(&[5, 5, 3], &[5, 5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("[5, 5, 3]"), "{e}");
    }
}
