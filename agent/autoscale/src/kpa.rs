//! Knative Serving's KPA (`pkg/autoscaler/scaling`): concurrency averaged over a stable and a
//! panic window, panic mode, rate limits and scale to zero after a grace period.

use serde::{Deserialize, Serialize};

/// Knative autoscaler settings (`config-autoscaler` keys and per-revision annotations).
/// Defaults are Knative's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpaConfig {
    /// `container-concurrency-target-default` / `autoscaling.knative.dev/target` (100).
    pub target_concurrency: f64,
    /// `container-concurrency-target-percentage` as a fraction (0.7).
    pub target_utilization: f64,
    /// `stable-window`, seconds (60).
    pub stable_window: f64,
    /// `panic-window-percentage` (10 → 6 s).
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage` (200).
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate` (1000).
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate` (2).
    pub max_scale_down_rate: f64,
    /// `scale-to-zero-grace-period`, seconds (30).
    pub scale_to_zero_grace_period: f64,
    /// `enable-scale-to-zero` (true).
    pub enable_scale_to_zero: bool,
    /// `min-scale` (0).
    pub min_scale: u32,
    /// `max-scale` (0 = unbounded).
    pub max_scale: u32,
    /// `activation-scale` (1): the least replicas when scaling up from zero.
    pub activation_scale: u32,
    /// Autoscaler tick, seconds (2).
    pub tick: f64,
}

impl Default for KpaConfig {
    fn default() -> Self {
        KpaConfig {
            target_concurrency: 100.0,
            target_utilization: 0.7,
            stable_window: 60.0,
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace_period: 30.0,
            enable_scale_to_zero: true,
            min_scale: 0,
            max_scale: 0,
            activation_scale: 1,
            tick: 2.0,
        }
    }
}
