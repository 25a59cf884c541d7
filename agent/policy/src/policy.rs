//! The policy file (`*.kpol`): what was trained for what, with which weights and normaliser, and
//! how it was made. Layout (little-endian, [`crate::codec`] container):
//!
//! ```text
//! "KISPOL01"  magic
//! bytes       header, JSON: format, observation spec, action dims, network, provenance
//! f64s        normaliser [count, clip, mean.., var..] (bits, so a reload is exact)
//! f32s        weights, in NetConfig::params order
//! u64         FNV-1a checksum of everything before it
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer, write_atomic};
use crate::net::{Net, Scratch, masked_argmax};
use crate::norm::ObsNorm;
use crate::spec::{NetConfig, ObsSpec, check_action_dims};
use crate::{Error, Result};

/// Magic bytes of a policy file.
pub const POLICY_MAGIC: &[u8; 8] = b"KISPOL01";
/// The header's `format` value.
pub const POLICY_FORMAT: &str = "kis-policy/v1";

/// How a policy was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git describe --always --dirty` of the tree that trained it (empty if unknown).
    pub commit: String,
    /// The scenario file or environment name.
    pub scenario: String,
    /// Training seed.
    pub seed: u64,
    /// Environment steps trained.
    pub steps: u64,
    /// Wall-clock seconds of training.
    pub wall_seconds: f64,
    /// The command line that made it.
    #[serde(default)]
    pub command: String,
}

/// Everything in a policy file except the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`POLICY_FORMAT`].
    pub format: String,
    /// The observation the policy reads.
    pub obs_spec: ObsSpec,
    /// Categories per action dimension.
    pub action_dims: Vec<usize>,
    /// Network layout.
    pub net: NetConfig,
    /// How it was made.
    pub provenance: Provenance,
}

/// A loaded policy: decides without libtorch.
#[derive(Clone, Debug)]
pub struct Policy {
    header: Header,
    norm: ObsNorm,
    net: Net,
}

impl Policy {
    /// Builds a policy, checking that the pieces fit together.
    pub fn new(header: Header, norm: ObsNorm, weights: Vec<f32>) -> Result<Policy> {
        if header.format != POLICY_FORMAT {
            return Err(Error::Incompatible(format!(
                "format {:?}, this build reads {POLICY_FORMAT:?}",
                header.format
            )));
        }
        let dim = header.obs_spec.dim();
        if norm.dim() != dim || norm.var.len() != dim {
            return Err(Error::Corrupt(format!(
                "normaliser has {} features, the observation spec {dim}",
                norm.dim()
            )));
        }
        if header.action_dims.is_empty() || header.action_dims.contains(&0) {
            return Err(Error::Corrupt(format!(
                "bad action dims {:?}",
                header.action_dims
            )));
        }
        let n_logits = header.action_dims.iter().sum();
        let net = Net::new(header.net.clone(), dim, n_logits, weights)?;
        Ok(Policy { header, norm, net })
    }

    /// Header (specs and provenance).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The frozen observation normaliser.
    pub fn norm(&self) -> &ObsNorm {
        &self.norm
    }

    /// Flat weights.
    pub fn weights(&self) -> &[f32] {
        self.net.weights()
    }

    /// Errors unless this policy reads `obs` and acts in `action_dims`.
    pub fn check(&self, obs: &ObsSpec, action_dims: &[usize]) -> Result<()> {
        self.header.obs_spec.check(obs)?;
        check_action_dims(&self.header.action_dims, action_dims)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(POLICY_MAGIC);
        // Serialising plain data structs cannot fail.
        w.bytes(&serde_json::to_vec(&self.header).unwrap_or_default());
        let mut n = vec![self.norm.count, self.norm.clip];
        n.extend_from_slice(&self.norm.mean);
        n.extend_from_slice(&self.norm.var);
        w.f64s(&n);
        w.f32s(self.net.weights());
        w.finish()
    }

    /// Parses a file's bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Policy> {
        let mut r = Reader::open(data, POLICY_MAGIC, "kis policy file")?;
        let header: Header = serde_json::from_slice(r.bytes()?)
            .map_err(|e| Error::Corrupt(format!("header: {e}")))?;
        let n = r.f64s()?;
        let weights = r.f32s()?;
        r.end()?;
        let dim = header.obs_spec.dim();
        if n.len() != 2 + 2 * dim {
            return Err(Error::Corrupt(format!(
                "normaliser holds {} numbers, {} expected",
                n.len(),
                2 + 2 * dim
            )));
        }
        let norm = ObsNorm {
            count: n[0],
            clip: n[1],
            mean: n[2..2 + dim].to_vec(),
            var: n[2 + dim..].to_vec(),
        };
        Policy::new(header, norm, weights)
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Policy> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::from_bytes(&data).map_err(|e| e.in_file(path))
    }

    /// Writes the policy file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }

    /// Buffers for [`Policy::act`].
    pub fn scratch(&self) -> Scratch {
        Scratch::default()
    }

    /// Normalises `obs` and runs the network: logits land in `s.logits`; returns the value.
    pub fn forward(&self, obs: &[f32], s: &mut Scratch) -> Result<f32> {
        let dim = self.header.obs_spec.dim();
        if obs.len() != dim {
            return Err(Error::Invalid(format!(
                "observation has {} values, the policy reads {dim}",
                obs.len()
            )));
        }
        s.obs.resize(dim, 0.0);
        self.norm.normalize(obs, &mut s.obs);
        Ok(self.net.forward(s))
    }

    /// The greedy action for a raw observation: per dimension, the most likely valid category
    /// (`mask`: true = allowed, concatenated over dimensions; None = all allowed).
    pub fn act(
        &self,
        obs: &[f32],
        mask: Option<&[bool]>,
        s: &mut Scratch,
        out: &mut [usize],
    ) -> Result<()> {
        let dims = &self.header.action_dims;
        let n: usize = dims.iter().sum();
        if mask.is_some_and(|m| m.len() != n) || out.len() != dims.len() {
            return Err(Error::Invalid(format!(
                "mask must have {n} entries and the action {} (got {:?} and {})",
                dims.len(),
                mask.map(|m| m.len()),
                out.len()
            )));
        }
        self.forward(obs, s)?;
        masked_argmax(&s.logits, dims, mask, out);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A small policy with deterministic pseudo-random weights.
    pub(crate) fn policy(obs_dim: usize, dims: &[usize], net: NetConfig) -> Policy {
        let features: Vec<String> = (0..obs_dim).map(|i| format!("f{i}")).collect();
        let header = Header {
            format: POLICY_FORMAT.into(),
            obs_spec: ObsSpec {
                name: "test-obs".into(),
                version: 1,
                features,
            },
            action_dims: dims.to_vec(),
            net: net.clone(),
            provenance: Provenance {
                commit: "abc".into(),
                scenario: "unit".into(),
                seed: 3,
                steps: 1000,
                wall_seconds: 1.5,
                command: "test".into(),
            },
        };
        let n = net.num_params(obs_dim, dims.iter().sum());
        let mut x: u64 = 12345;
        let weights = (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
            })
            .collect();
        let mut norm = ObsNorm::new(obs_dim, 5.0);
        norm.update(&(0..obs_dim * 3).map(|i| i as f32 * 0.1).collect::<Vec<_>>());
        Policy::new(header, norm, weights).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::policy;
    use super::*;

    #[test]
    fn file_round_trips_exactly_and_refuses_damage() {
        let p = policy(10, &[5, 5, 3], NetConfig::default());
        let bytes = p.to_bytes();
        let q = Policy::from_bytes(&bytes).unwrap();
        assert_eq!(q.header(), p.header());
        assert_eq!(q.norm(), p.norm());
        assert_eq!(q.weights(), p.weights());
        let e = Policy::from_bytes(&bytes[..bytes.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum"), "{e}");
        let mut bad = bytes.clone();
        let k = bad.len() - 20;
        bad[k] ^= 0x40;
        assert!(Policy::from_bytes(&bad).is_err());
        assert!(
            Policy::from_bytes(b"")
                .unwrap_err()
                .to_string()
                .contains("not a kis policy")
        );
    }

    #[test]
    fn load_names_the_file_in_one_line() {
        let dir = std::env::temp_dir().join(format!("kis-policy-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.kpol");
        let p = policy(4, &[2], NetConfig::default());
        p.save(&path).unwrap();
        assert_eq!(Policy::load(&path).unwrap().weights(), p.weights());
        std::fs::write(&path, &p.to_bytes()[..100]).unwrap();
        let e = Policy::load(&path).unwrap_err();
        let line = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(
            line.contains("p.kpol") && line.contains("checksum"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let e = Policy::load(&dir.join("none.kpol"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.kpol"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_other_specs_and_bad_buffers() {
        let p = policy(3, &[5, 5, 3], NetConfig::default());
        let spec = p.header().obs_spec.clone();
        p.check(&spec, &[5, 5, 3]).unwrap();
        let mut other = spec.clone();
        other.name = "kis-live".into();
        assert!(p.check(&other, &[5, 5, 3]).is_err());
        assert!(p.check(&spec, &[3, 3, 3]).is_err());
        let mut s = p.scratch();
        let mut a = [0; 3];
        assert!(p.act(&[0.0; 2], None, &mut s, &mut a).is_err());
        assert!(p.act(&[0.0; 3], Some(&[true; 12]), &mut s, &mut a).is_err());
        p.act(&[0.1, 0.2, 0.3], Some(&[true; 13]), &mut s, &mut a)
            .unwrap();
    }

    #[test]
    fn masked_categories_are_never_chosen() {
        let p = policy(3, &[5, 5, 3], NetConfig::paper());
        let mut s = p.scratch();
        let mut a = [0; 3];
        for i in 0..200 {
            let obs = [i as f32 * 0.01, (i % 7) as f32, -(i as f32) * 0.1];
            // Only one valid category per dimension, rotating.
            let mut mask = [false; 13];
            mask[i % 5] = true;
            mask[5 + (i + 2) % 5] = true;
            mask[10 + i % 3] = true;
            p.act(&obs, Some(&mask), &mut s, &mut a).unwrap();
            assert_eq!(a, [i % 5, (i + 2) % 5, i % 3]);
        }
    }
}
