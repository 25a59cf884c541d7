//! The trained autoscaler policy, without libtorch.
//!
//! # Brief overview
//! - [`Policy`]: a policy file (`*.kpol`) loaded and checked; [`Policy::act`] gives the greedy
//!   multi-discrete action for a raw observation under the environment's action mask, in plain Rust
//!   (used by `evaluate`, `compare` and the live loop; kis-learn trains and writes these files).
//! - [`ObsSpec`], [`AUTOSCALER_ACTION_DIMS`], [`NetConfig`]: what a policy reads, how it acts and
//!   how its network is laid out; a policy only runs where they match.
//! - [`ObsNorm`]: the running observation normaliser, saved with the weights.
//! - [`codec`]: the checksummed binary container (also used by kis-learn's checkpoints).
//!
//! # Example
//! ```no_run
//! use kis_policy::{AUTOSCALER_ACTION_DIMS, Policy};
//! let p = Policy::load("agent/policies/default.kpol".as_ref())?;
//! p.check(&p.header().obs_spec.clone(), &AUTOSCALER_ACTION_DIMS)?;
//! let (mut scratch, mut action) = (p.scratch(), [0usize; 3]);
//! p.act(&[0.5; 10], None, &mut scratch, &mut action)?;
//! # Ok::<(), kis_policy::Error>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod codec;
mod error;
pub mod net;
mod norm;
mod policy;
mod spec;

pub use error::{Error, Result};
pub use net::{Net, Scratch, masked_argmax};
pub use norm::{NORM_EPS, ObsNorm};
pub use policy::{Header, POLICY_FORMAT, POLICY_MAGIC, Policy, Provenance};
pub use spec::{
    AUTOSCALER_ACTION_DIMS, Activation, MASK_LOGIT, NetConfig, ObsSpec, check_action_dims,
};
