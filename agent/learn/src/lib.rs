//! PPO for the learned autoscaler, in tch (libtorch): the one crate of the workspace that links
//! libtorch.
//!
//! # Brief overview
//! - [`Trainer`] with [`PpoConfig`]: rollouts over a [`VecEnv`], GAE, the clipped PPO update, the
//!   running observation normaliser, atomic checkpoints and bit-identical resume on the CPU
//!   ([`Trainer::save_checkpoint`], [`Trainer::resume`]); [`Trainer::policy`] exports a
//!   [`kis_policy::Policy`] that runs without libtorch.
//! - [`VecEnv`] / [`StepBuf`]: the flat-buffer vectorised environment interface (masks,
//!   terminated vs truncated, final observations for bootstrapping).
//! - [`CartPole`]: CartPole-v1 from the published dynamics, the learner's correctness check.
//! - [`SimVecEnv`]: today's simulator environment behind [`VecEnv`].
//! - [`DeviceChoice`]: `--device auto|cpu|cuda`.
//!
//! # Example
//! ```no_run
//! use kis_learn::{CartPole, PpoConfig, Trainer};
//! let cfg = PpoConfig { total_steps: 100_000, ..PpoConfig::default() };
//! let mut t = Trainer::new(cfg, CartPole::new(8), tch::Device::Cpu)?;
//! while !t.finished() {
//!     let s = t.iterate()?;
//!     println!("{} steps, recent return {:.1}", s.steps, s.recent_return);
//! }
//! # Ok::<(), kis_learn::Error>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod cartpole;
pub mod checkpoint;
pub mod device;
pub mod dist;
pub mod env;
mod error;
pub mod gae;
pub mod model;
pub mod ppo;
pub mod rng;
pub mod sim_adapter;

pub use cartpole::CartPole;
pub use device::DeviceChoice;
pub use env::{StepBuf, VecEnv};
pub use error::{Error, Result};
pub use ppo::{IterStats, PpoConfig, Trainer};
pub use sim_adapter::SimVecEnv;
/// The tch version this crate links (for callers that pick a device).
pub use tch;
