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

// === impl Kpa ===

use std::collections::VecDeque;

use crate::hpa::set_condition;
use crate::{Autoscaler, PoolView, ScalerStatus};

/// Knative's autoscaler for one revision: the decider (`pkg/autoscaler/scaling/autoscaler.go`)
/// plus the scale-to-zero grace and min/max-scale bounds of the KPA reconciler.
#[derive(Clone, Debug)]
pub struct Kpa {
    name: String,
    cfg: KpaConfig,
    /// (time, observed concurrency) over the stable window.
    samples: VecDeque<(f64, f64)>,
    panic_time: Option<f64>,
    max_panic_pods: u32,
    /// Since when the decider has wanted zero pods.
    zero_since: Option<f64>,
    status: ScalerStatus,
    last_stable: f64,
    last_panic: f64,
}

impl Kpa {
    /// A KPA for `cfg` (assumed validated).
    pub fn new(name: impl Into<String>, cfg: &KpaConfig) -> Self {
        Kpa {
            name: name.into(),
            cfg: cfg.clone(),
            samples: VecDeque::new(),
            panic_time: None,
            max_panic_pods: 0,
            zero_since: None,
            status: ScalerStatus::default(),
            last_stable: 0.0,
            last_panic: 0.0,
        }
    }

    /// Whether the decider is in panic mode after the last decision.
    pub fn panicking(&self) -> bool {
        self.panic_time.is_some()
    }

    /// Stable- and panic-window averages of the observed concurrency after the last decision.
    pub fn observed(&self) -> (f64, f64) {
        (self.last_stable, self.last_panic)
    }

    fn window_average(&self, now: f64, window: f64) -> f64 {
        let cutoff = now - window;
        let (sum, n) = self
            .samples
            .iter()
            .filter(|&&(t, _)| t > cutoff)
            .fold((0.0, 0usize), |(s, n), &(_, v)| (s + v, n + 1));
        if n == 0 { 0.0 } else { sum / n as f64 }
    }

    /// The decider's `Scale`: desired pods from the two windows, panic mode, rate limits.
    fn scale(&mut self, now: f64, ready: u32) -> u32 {
        let c = &self.cfg;
        let stable = self.window_average(now, c.stable_window);
        let panic = self.window_average(now, c.stable_window * c.panic_window_percentage / 100.0);
        self.last_stable = stable;
        self.last_panic = panic;
        let ready_f = f64::from(ready.max(1));
        let target = c.target_concurrency * c.target_utilization;
        let max_up = (c.max_scale_up_rate * ready_f).ceil();
        let max_down = (ready_f / c.max_scale_down_rate).floor();
        let dspc = (stable / target).ceil();
        let dppc = (panic / target).ceil();
        let mut desired_stable = dspc.max(max_down).min(max_up) as u32;
        let mut desired_panic = dppc.max(max_down).min(max_up) as u32;
        if c.activation_scale > 1 {
            if dspc > 0.0 && c.activation_scale > desired_stable {
                desired_stable = c.activation_scale;
            }
            if dppc > 0.0 && c.activation_scale > desired_panic {
                desired_panic = c.activation_scale;
            }
        }
        let over = dppc / ready_f >= c.panic_threshold_percentage / 100.0;
        match self.panic_time {
            _ if over => self.panic_time = Some(now),
            // Leave panic once the surge has been in the stable window for a whole window.
            Some(t) if t + c.stable_window < now => {
                self.panic_time = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }
        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            desired = desired.max(desired_panic);
            // Never scale down while panicking.
            self.max_panic_pods = self.max_panic_pods.max(desired);
            desired = self.max_panic_pods;
        }
        desired
    }
}

impl Autoscaler for Kpa {
    fn name(&self) -> &str {
        &self.name
    }

    fn period(&self) -> f64 {
        self.cfg.tick
    }

    fn decide(&mut self, view: &PoolView) -> u32 {
        let now = view.now;
        let ready = view.ready_pods();
        // With no Ready pod the activator buffers requests and reports them as concurrency.
        let observed = if ready == 0 {
            view.concurrency.max(view.queue_len)
        } else {
            view.concurrency
        };
        self.samples.push_back((
            now,
            if observed.is_finite() {
                observed.max(0.0)
            } else {
                0.0
            },
        ));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| t <= now - self.cfg.stable_window)
        {
            self.samples.pop_front();
        }
        let mut desired = self.scale(now, ready);
        // Reconciler bounds: min-scale, max-scale (0 = none), scale to zero only when enabled.
        let floor = if self.cfg.enable_scale_to_zero {
            self.cfg.min_scale
        } else {
            self.cfg.min_scale.max(1)
        };
        desired = desired.max(floor);
        if self.cfg.max_scale > 0 {
            desired = desired.min(self.cfg.max_scale);
        }
        let current = view.spec_replicas;
        if desired == 0 && current > 0 {
            // Scale to zero only after wanting zero for the whole grace period.
            let since = *self.zero_since.get_or_insert(now);
            if now - since < self.cfg.scale_to_zero_grace_period {
                desired = current;
            }
        } else if desired > 0 {
            self.zero_since = None;
        }
        self.status.current_replicas = current;
        self.status.desired_replicas = desired;
        if desired != current {
            self.status.last_scale_time = Some(now);
        }
        let panicking = self.panic_time.is_some();
        set_condition(
            &mut self.status.conditions,
            "Panic",
            panicking,
            if panicking { "PanicMode" } else { "StableMode" },
            format!(
                "stable concurrency {:.3}, panic concurrency {:.3}",
                self.last_stable, self.last_panic
            ),
        );
        set_condition(
            &mut self.status.conditions,
            "Active",
            desired > 0,
            if desired > 0 { "Active" } else { "NoTraffic" },
            String::new(),
        );
        desired
    }

    fn status(&self) -> Option<ScalerStatus> {
        Some(self.status.clone())
    }
}
