//! The stock HorizontalPodAutoscaler v2 controller (kube-controller-manager
//! `pkg/controller/podautoscaler`): metric proposals, tolerance, readiness handling,
//! stabilization windows, rate policies and min/max, as one pure state machine.

use serde::{Deserialize, Serialize};

/// `autoscaling/v2` HPA spec plus the controller-manager flags that shape its loop.
/// Defaults are the upstream defaults (see the crate README for sources).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaConfig {
    /// `spec.minReplicas` (upstream default 1). 0 needs `scale_to_zero` and an External metric.
    pub min_replicas: u32,
    /// `spec.maxReplicas` (required upstream; 10 here).
    pub max_replicas: u32,
    /// `spec.metrics`; empty = the upstream default, CPU Utilization 80 %.
    pub metrics: Vec<MetricSpec>,
    /// `spec.behavior`. `None` (no behavior in the HPA, as `kubectl autoscale` makes it) runs the
    /// controller's legacy normalisation: scale-down stabilization over `downscale_stabilization`,
    /// scale-up at most max(2 × current, 4) per sync, no scale-down rate limit. `Some` runs the
    /// behavior path with its policies; `{}` gives the documented default behavior.
    pub behavior: Option<Behavior>,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, seconds: the legacy path's window
    /// (and the scale-down window a behavior without one would get).
    pub downscale_stabilization: f64,
    /// `--horizontal-pod-autoscaler-sync-period`, seconds.
    pub sync_period: f64,
    /// `--horizontal-pod-autoscaler-tolerance`; `None` = 0.1 (0 for the external-target autoscaler).
    pub tolerance: Option<f64>,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`, seconds.
    pub cpu_initialization_period: f64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`, seconds.
    pub initial_readiness_delay: f64,
    /// The metrics-server sample window, seconds (a CPU sample taken less than one window after the
    /// pod became Ready is ignored during the initialization period).
    pub cpu_metric_window: f64,
    /// The `HPAScaleToZero` alpha feature gate (off upstream).
    pub scale_to_zero: bool,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            min_replicas: 1,
            max_replicas: 10,
            metrics: Vec::new(),
            behavior: None,
            downscale_stabilization: 300.0,
            sync_period: 15.0,
            tolerance: None,
            cpu_initialization_period: 300.0,
            initial_readiness_delay: 30.0,
            cpu_metric_window: 15.0,
            scale_to_zero: false,
        }
    }
}

/// One entry of `spec.metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MetricSpec {
    /// `type: Resource`, `resource.name: cpu`, `target.type: Utilization`: integer percent of the
    /// CPU request, averaged over the pods.
    CpuUtilization {
        /// `target.averageUtilization`, percent.
        average_utilization: u32,
    },
    /// `type: External` with `target.type` `AverageValue` or `Value`. The value is read with
    /// [`crate::PoolView::external_metric`].
    External {
        /// `metric.name`.
        name: String,
        /// `target`: per pod or as a whole.
        target: ExternalTarget,
    },
}

/// `target` of an External metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum ExternalTarget {
    /// `averageValue`: the metric divided by the pod count.
    AverageValue(f64),
    /// `value`: the metric as a whole.
    Value(f64),
}

/// `spec.behavior`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// `scaleUp` (default: the upstream 0 s window, max of 100 % or 4 pods per 15 s).
    pub scale_up: ScalingRules,
    /// `scaleDown` (default: the upstream 300 s window, 100 % per 15 s).
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::default_down(),
        }
    }
}

/// `HPAScalingRules`: one direction of `behavior`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds` (0..=3600).
    pub stabilization_window: f64,
    /// `selectPolicy`: which policy's limit wins (default `Max`).
    #[serde(default)]
    pub select_policy: SelectPolicy,
    /// `policies`: each a limit on the change per period.
    pub policies: Vec<ScalingPolicy>,
    /// Per-direction `tolerance` (KEP-4951 `HPAConfigurableTolerance`); `None` = the global one.
    #[serde(default)]
    pub tolerance: Option<f64>,
}

impl ScalingRules {
    /// Upstream scale-up default: no window, max of +100 % and +4 pods per 15 s.
    pub fn default_up() -> Self {
        ScalingRules {
            stabilization_window: 0.0,
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: 15.0,
                },
                ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: 15.0,
                },
            ],
            tolerance: None,
        }
    }

    /// Upstream scale-down default: 300 s window, −100 % per 15 s.
    pub fn default_down() -> Self {
        ScalingRules {
            stabilization_window: 300.0,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period: 15.0,
            }],
            tolerance: None,
        }
    }
}

/// `selectPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (upstream default).
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `HPAScalingPolicy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    /// `type`: the value counts pods or percent.
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// Pods, or percent of the replicas at the start of the period (> 0).
    pub value: u32,
    /// `periodSeconds` (1..=1800).
    pub period: f64,
}

/// `HPAScalingPolicy.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    /// `value` pods.
    Pods,
    /// `value` percent of the replicas at the start of the period.
    Percent,
}

/// The External metric that carries a policy's replica target (what kis-adapter publishes).
pub const TARGET_REPLICAS_METRIC: &str = "kis-replicas";

/// The HPA config the external-target autoscaler runs: `kis-replicas` AverageValue 1,
/// tolerance 0 unless set.
pub fn external_target_hpa(c: &HpaConfig) -> HpaConfig {
    let mut h = c.clone();
    h.metrics = vec![MetricSpec::External {
        name: TARGET_REPLICAS_METRIC.into(),
        target: ExternalTarget::AverageValue(1.0),
    }];
    h.tolerance = Some(c.tolerance.unwrap_or(0.0));
    h
}

/// `spec.metrics` with the upstream default (CPU Utilization 80 %) filled in.
pub fn hpa_metrics(c: &HpaConfig) -> Vec<MetricSpec> {
    if c.metrics.is_empty() {
        vec![MetricSpec::CpuUtilization {
            average_utilization: 80,
        }]
    } else {
        c.metrics.clone()
    }
}

// === impl Hpa ===

use crate::{Autoscaler, Condition, MetricStatus, PodView, PoolView, ScalerStatus};

/// CPU request per pod in millicores. The HPA's utilisation is Σusage·100 / Σrequest over the
/// pods with samples; with equal requests (one Deployment) the request size cancels out, so any
/// value works; 1000 m keeps the milli-quantisation of usage close to metrics-server's.
const CPU_REQUEST_MILLI: i64 = 1000;

/// The stock HPA v2 controller for one target. Keeps the recommendation history (for the
/// stabilization windows) and the scale events (for the rate policies) between syncs.
#[derive(Clone, Debug)]
pub struct Hpa {
    name: String,
    cfg: HpaConfig,
    metrics: Vec<MetricSpec>,
    tol_up: f64,
    tol_down: f64,
    /// (time, unstabilized recommendation).
    recommendations: Vec<(f64, u32)>,
    /// (time, pods added) and (time, pods removed).
    up_events: Vec<(f64, u32)>,
    down_events: Vec<(f64, u32)>,
    status: ScalerStatus,
}

/// Why a metric produced no proposal (becomes the `ScalingActive=False` reason).
struct Invalid {
    reason: &'static str,
    message: String,
}

impl Hpa {
    /// A controller for `cfg` (assumed validated); `tolerance: None` means 0.1.
    pub fn new(name: impl Into<String>, cfg: &HpaConfig) -> Self {
        let tol = cfg.tolerance.unwrap_or(0.1);
        Hpa {
            name: name.into(),
            metrics: hpa_metrics(cfg),
            tol_up: cfg
                .behavior
                .as_ref()
                .and_then(|b| b.scale_up.tolerance)
                .unwrap_or(tol),
            tol_down: cfg
                .behavior
                .as_ref()
                .and_then(|b| b.scale_down.tolerance)
                .unwrap_or(tol),
            cfg: cfg.clone(),
            recommendations: Vec::new(),
            up_events: Vec::new(),
            down_events: Vec::new(),
            status: ScalerStatus::default(),
        }
    }

    /// Upstream `Tolerances.isWithin`: inclusive on both sides.
    fn within(&self, ratio: f64) -> bool {
        (1.0 - self.tol_down) <= ratio && ratio <= (1.0 + self.tol_up)
    }

    fn set_condition(&mut self, kind: &str, status: bool, reason: &str, message: String) {
        set_condition(&mut self.status.conditions, kind, status, reason, message);
    }

    /// `computeReplicasForMetrics`: the max proposal over valid metrics, or `Err` when every
    /// metric is invalid or some are and the valid ones would scale down.
    fn compute_replicas(&mut self, view: &PoolView) -> Result<u32, Invalid> {
        let spec = view.spec_replicas;
        let mut best: Option<u32> = None;
        let mut first_invalid: Option<Invalid> = None;
        let mut invalid = 0usize;
        let mut statuses = Vec::with_capacity(self.metrics.len());
        for m in &self.metrics.clone() {
            let (name, r) = match m {
                MetricSpec::CpuUtilization {
                    average_utilization,
                } => (
                    "cpu".to_string(),
                    self.cpu_replicas(view, *average_utilization),
                ),
                MetricSpec::External { name, target } => {
                    (name.clone(), self.external_replicas(view, name, target))
                }
            };
            match r {
                Ok((proposal, value)) => {
                    statuses.push(MetricStatus {
                        name,
                        value: Some(value),
                        proposal: Some(proposal),
                    });
                    best = Some(best.map_or(proposal, |b| b.max(proposal)));
                }
                Err(e) => {
                    statuses.push(MetricStatus {
                        name,
                        value: None,
                        proposal: None,
                    });
                    invalid += 1;
                    first_invalid.get_or_insert(e);
                }
            }
        }
        self.status.current_metrics = statuses;
        let replicas = best.unwrap_or(0);
        if invalid >= self.metrics.len() || (invalid > 0 && replicas < spec) {
            let e = first_invalid.expect("an invalid metric was counted");
            return Err(Invalid {
                reason: e.reason,
                message: format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                    self.metrics.len(),
                    e.message
                ),
            });
        }
        Ok(replicas)
    }

    /// `GetResourceReplicas` for CPU with `groupPods`' readiness rules. Returns the proposal and
    /// the current average utilisation in (integer) percent.
    fn cpu_replicas(&self, view: &PoolView, target: u32) -> Result<(u32, f64), Invalid> {
        let current = view.spec_replicas;
        if view.pods.is_empty() {
            return Err(Invalid {
                reason: "FailedGetResourceMetric",
                message: "no pods returned by selector while calculating replica count".into(),
            });
        }
        let mut samples: Vec<i64> = Vec::new();
        let mut unready = 0usize;
        let mut missing = 0usize;
        for p in &view.pods {
            match self.classify(p, view.now) {
                PodClass::Unready => unready += 1,
                PodClass::Missing => missing += 1,
                PodClass::Ready(milli) => samples.push(milli),
            }
        }
        if samples.is_empty() {
            return Err(Invalid {
                reason: "FailedGetResourceMetric",
                message: "did not receive metrics for targeted pods (pods might be unready)".into(),
            });
        }
        let ready_count = samples.len();
        let (ratio, utilization) = utilization_ratio(&samples, target);
        let scale_up_with_unready = unready > 0 && ratio > 1.0;
        if !scale_up_with_unready && missing == 0 {
            if self.within(ratio) {
                return Ok((current, utilization as f64));
            }
            return Ok((ceil_u32(ratio * ready_count as f64), utilization as f64));
        }
        if missing > 0 {
            if ratio < 1.0 {
                // Scale-down: a pod without a sample counts as using max(100 %, target) of its request.
                let fallback = CPU_REQUEST_MILLI * i64::from(target.max(100)) / 100;
                samples.extend(std::iter::repeat_n(fallback, missing));
            } else if ratio > 1.0 {
                // Scale-up: it counts as idle.
                samples.extend(std::iter::repeat_n(0, missing));
            }
        }
        if scale_up_with_unready {
            samples.extend(std::iter::repeat_n(0, unready));
        }
        let (new_ratio, _) = utilization_ratio(&samples, target);
        if self.within(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            // Too small a change, or the fill-ins flipped the direction: keep the count.
            return Ok((current, utilization as f64));
        }
        let new_replicas = ceil_u32(new_ratio * samples.len() as f64);
        if (new_ratio < 1.0 && new_replicas > current)
            || (new_ratio > 1.0 && new_replicas < current)
        {
            return Ok((current, utilization as f64));
        }
        Ok((new_replicas, utilization as f64))
    }

    /// `groupPods` for CPU. `PodView` has no phase: a pod that has never been Ready and has no CPU
    /// sample is taken as Pending (unready); `created_at` stands in for `status.startTime`, and the
    /// sample is taken as fresh at `now`.
    fn classify(&self, p: &PodView, now: f64) -> PodClass {
        let Some(u) = p.cpu_utilization else {
            return if !p.ready && p.ready_since.is_none() {
                PodClass::Unready
            } else {
                PodClass::Missing
            };
        };
        let start = p.created_at;
        let unready = if start + self.cfg.cpu_initialization_period > now {
            // Within the initialization period: ignore unless Ready for at least one sample window.
            let became_ready = p.ready_since.unwrap_or(start);
            !p.ready || now < became_ready + self.cfg.cpu_metric_window
        } else {
            // Later: ignore only pods that are unready and have never been Ready (their Ready
            // condition last changed within the initial readiness delay of the start).
            // A never-Ready pod's condition last changed at its start, so `start + delay > start`
            // holds for any delay > 0. `PodView` keeps no time of becoming unready again, so a pod
            // that was Ready once is counted.
            !p.ready && p.ready_since.is_none() && self.cfg.initial_readiness_delay > 0.0
        };
        if unready {
            PodClass::Unready
        } else {
            PodClass::Ready((u * CPU_REQUEST_MILLI as f64).round().max(0.0) as i64)
        }
    }

    /// External metric: `GetExternalPerPodMetricReplicas` (AverageValue, against
    /// `status.replicas` = the pods that exist) or `GetExternalMetricReplicas` (Value, against
    /// the Ready pods). Values are quantised to milli-units as `Quantity::MilliValue` does.
    fn external_replicas(
        &self,
        view: &PoolView,
        name: &str,
        target: &ExternalTarget,
    ) -> Result<(u32, f64), Invalid> {
        let Some(value) = view.external_metric(name) else {
            return Err(Invalid {
                reason: "FailedGetExternalMetric",
                message: format!("unable to get external metric {name}: no value"),
            });
        };
        let usage = milli(value) as f64;
        match target {
            ExternalTarget::AverageValue(t) => {
                let t = milli(*t) as f64;
                let status_replicas = view.pods.len() as u32;
                let ratio = usage / (t * f64::from(status_replicas));
                let proposal = if self.within(ratio) {
                    status_replicas
                } else {
                    ceil_u32(usage / t)
                };
                let avg = if status_replicas == 0 {
                    value
                } else {
                    (usage / f64::from(status_replicas)).ceil() / 1000.0
                };
                Ok((proposal, avg))
            }
            ExternalTarget::Value(t) => {
                let ratio = usage / milli(*t) as f64;
                let spec = view.spec_replicas;
                if spec == 0 {
                    return Ok((ceil_u32(ratio), value));
                }
                if self.within(ratio) {
                    return Ok((spec, value));
                }
                if view.pods.is_empty() {
                    return Err(Invalid {
                        reason: "FailedGetExternalMetric",
                        message: "no pods returned by selector while calculating replica count"
                            .into(),
                    });
                }
                Ok((ceil_u32(ratio * f64::from(view.ready_pods())), value))
            }
        }
    }

    /// `stabilizeRecommendationWithBehaviors`: clamp to [min over the up-window, max over the
    /// down-window] of past raw recommendations, then record this one.
    fn stabilize(&mut self, b: &Behavior, now: f64, current: u32, desired: u32) -> u32 {
        let up_cutoff = now - b.scale_up.stabilization_window;
        let down_cutoff = now - b.scale_down.stabilization_window;
        let mut up_rec = desired;
        let mut down_rec = desired;
        for &(t, r) in &self.recommendations {
            if t > up_cutoff {
                up_rec = up_rec.min(r);
            }
            if t > down_cutoff {
                down_rec = down_rec.max(r);
            }
        }
        let mut rec = current;
        if rec < up_rec {
            rec = up_rec;
        }
        if rec > down_rec {
            rec = down_rec;
        }
        // Samples older than both windows can never count again (upstream reuses their slot).
        self.recommendations
            .retain(|&(t, _)| !(t < up_cutoff && t < down_cutoff));
        self.recommendations.push((now, desired));
        rec
    }

    /// `convertDesiredReplicasWithBehaviorRate`: cap the change by the policies over their periods
    /// and by min/max. Returns the count and the `ScalingLimited` reason.
    fn rate_limit(
        &self,
        b: &Behavior,
        now: f64,
        current: u32,
        desired: u32,
    ) -> (u32, &'static str) {
        let (min, max) = (self.cfg.min_replicas, self.cfg.max_replicas);
        if desired > current {
            let limit = self
                .scale_up_limit(&b.scale_up, now, current)
                .max(i64::from(current));
            let (allowed, reason) = if i64::from(max) > limit {
                (limit as u32, "ScaleUpLimit")
            } else {
                (max, "TooManyReplicas")
            };
            if desired > allowed {
                return (allowed, reason);
            }
        } else if desired < current {
            let limit = self
                .scale_down_limit(&b.scale_down, now, current)
                .min(i64::from(current));
            let (allowed, reason) = if i64::from(min) < limit {
                (limit as u32, "ScaleDownLimit")
            } else {
                (min, "TooFewReplicas")
            };
            if desired < allowed {
                return (allowed, reason);
            }
        }
        (desired, "DesiredWithinRange")
    }

    fn period_start(&self, now: f64, period: f64, current: u32) -> i64 {
        let cutoff = now - period;
        let sum = |ev: &[(f64, u32)]| -> i64 {
            ev.iter()
                .filter(|&&(t, _)| t > cutoff)
                .map(|&(_, n)| i64::from(n))
                .sum()
        };
        i64::from(current) - sum(&self.up_events) + sum(&self.down_events)
    }

    /// `calculateScaleUpLimitWithScalingRules`.
    fn scale_up_limit(&self, rules: &ScalingRules, now: f64, current: u32) -> i64 {
        let pick: fn(i64, i64) -> i64 = match rules.select_policy {
            SelectPolicy::Disabled => return i64::from(current),
            SelectPolicy::Min => i64::min,
            SelectPolicy::Max => i64::max,
        };
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let start = self.period_start(now, p.period, current);
            let proposed = match p.kind {
                PolicyKind::Pods => start + i64::from(p.value),
                // Rounded up so that a small percentage still adds a pod.
                PolicyKind::Percent => {
                    (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
                }
            };
            result = Some(result.map_or(proposed, |r| pick(r, proposed)));
        }
        result.unwrap_or(i64::from(current))
    }

    /// `calculateScaleDownLimitWithBehaviors`.
    fn scale_down_limit(&self, rules: &ScalingRules, now: f64, current: u32) -> i64 {
        let pick: fn(i64, i64) -> i64 = match rules.select_policy {
            SelectPolicy::Disabled => return i64::from(current),
            // For scale-down the smallest change is the largest count.
            SelectPolicy::Min => i64::max,
            SelectPolicy::Max => i64::min,
        };
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let start = self.period_start(now, p.period, current);
            let proposed = match p.kind {
                PolicyKind::Pods => start - i64::from(p.value),
                // Truncated, as upstream's int32 conversion does.
                PolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
            };
            result = Some(result.map_or(proposed, |r| pick(r, proposed)));
        }
        result.unwrap_or(i64::from(current))
    }

    /// `storeScaleEvent`, dropping events older than the longest policy period.
    fn store_event(&mut self, now: f64, prev: u32, new: u32) {
        // Upstream stores no events without a behavior: nothing reads them.
        let Some(b) = &self.cfg.behavior else {
            return;
        };
        let longest = |r: &ScalingRules| r.policies.iter().map(|p| p.period).fold(0.0, f64::max);
        let up_keep = now - longest(&b.scale_up);
        let down_keep = now - longest(&b.scale_down);
        self.up_events.retain(|&(t, _)| t >= up_keep);
        self.down_events.retain(|&(t, _)| t >= down_keep);
        if new > prev {
            self.up_events.push((now, new - prev));
        } else {
            self.down_events.push((now, prev - new));
        }
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilize, then rate-limit and clamp.
    fn normalize_with_behaviors(
        &mut self,
        b: &Behavior,
        now: f64,
        current: u32,
        proposal: u32,
    ) -> u32 {
        let stabilized = self.stabilize(b, now, current, proposal);
        if stabilized != proposal {
            let (reason, msg) = if proposal >= current {
                (
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation",
                )
            } else {
                (
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest recent recommendation",
                )
            };
            self.set_condition("AbleToScale", true, reason, msg.into());
        } else {
            self.set_condition(
                "AbleToScale",
                true,
                "ReadyForNewScale",
                "recommended size matches current size".into(),
            );
        }
        let (limited, reason) = self.rate_limit(b, now, current, stabilized);
        self.set_condition(
            "ScalingLimited",
            limited != stabilized,
            reason,
            limit_message(reason).into(),
        );
        limited
    }

    /// `normalizeDesiredReplicas` (no behavior in the spec): the max recommendation of the last
    /// `downscale_stabilization` seconds, then `convertDesiredReplicasWithRules`.
    fn normalize_legacy(&mut self, now: f64, current: u32, proposal: u32) -> u32 {
        // `stabilizeRecommendation`: samples before the cutoff are stale; the rest bound from below.
        let cutoff = now - self.cfg.downscale_stabilization;
        let stabilized = self
            .recommendations
            .iter()
            .filter(|&&(t, _)| t >= cutoff)
            .fold(proposal, |m, &(_, r)| m.max(r));
        self.recommendations.retain(|&(t, _)| t >= cutoff);
        self.recommendations.push((now, proposal));
        if stabilized != proposal {
            self.set_condition(
                "AbleToScale",
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation".into(),
            );
        } else {
            self.set_condition(
                "AbleToScale",
                true,
                "ReadyForNewScale",
                "recommended size matches current size".into(),
            );
        }
        // Scale-up at most to max(2 × current, 4) per sync; no scale-down limit beyond min.
        let up_limit = (2 * current).max(4);
        let (max_allowed, up_reason) = if self.cfg.max_replicas > up_limit {
            (up_limit, "ScaleUpLimit")
        } else {
            (self.cfg.max_replicas, "TooManyReplicas")
        };
        let (desired, reason) = if stabilized < self.cfg.min_replicas {
            (self.cfg.min_replicas, "TooFewReplicas")
        } else if stabilized > max_allowed {
            (max_allowed, up_reason)
        } else {
            (stabilized, "DesiredWithinRange")
        };
        self.set_condition(
            "ScalingLimited",
            desired != stabilized,
            reason,
            limit_message(reason).into(),
        );
        desired
    }

    /// The whole sync (`reconcileAutoscaler`).
    fn reconcile(&mut self, view: &PoolView) -> u32 {
        let now = view.now;
        let current = view.spec_replicas;
        let (min, max) = (self.cfg.min_replicas, self.cfg.max_replicas);
        self.status.current_replicas = current;
        self.set_condition(
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let desired = if current == 0 && min != 0 {
            self.set_condition(
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
            self.status.desired_replicas = 0;
            return current;
        } else if current > max {
            max
        } else if current < min {
            min
        } else {
            let proposal = match self.compute_replicas(view) {
                Ok(p) => p,
                Err(e) => {
                    // No scaling at all this sync: replicas stay where they are.
                    self.set_condition("ScalingActive", false, e.reason, e.message);
                    self.status.desired_replicas = current;
                    return current;
                }
            };
            self.set_condition(
                "ScalingActive",
                true,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count".into(),
            );
            match self.cfg.behavior.clone() {
                Some(b) => self.normalize_with_behaviors(&b, now, current, proposal),
                None => self.normalize_legacy(now, current, proposal),
            }
        };
        if desired != current {
            self.store_event(now, current, desired);
            self.status.last_scale_time = Some(now);
            self.set_condition(
                "AbleToScale",
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
        }
        self.status.desired_replicas = desired;
        desired
    }
}

impl Autoscaler for Hpa {
    fn name(&self) -> &str {
        &self.name
    }

    fn period(&self) -> f64 {
        self.cfg.sync_period
    }

    fn decide(&mut self, view: &PoolView) -> u32 {
        self.reconcile(view)
    }

    fn status(&self) -> Option<ScalerStatus> {
        Some(self.status.clone())
    }
}

enum PodClass {
    Unready,
    Missing,
    /// Usage in millicores.
    Ready(i64),
}

/// The `ScalingLimited` message for a reason.
fn limit_message(reason: &str) -> &'static str {
    match reason {
        "ScaleUpLimit" => {
            "the desired replica count is increasing faster than the maximum scale rate"
        }
        "TooManyReplicas" => "the desired replica count is more than the maximum replica count",
        "ScaleDownLimit" => {
            "the desired replica count is decreasing faster than the maximum scale rate"
        }
        "TooFewReplicas" => "the desired replica count is less than the minimum replica count",
        _ => "the desired count is within the acceptable range",
    }
}

/// `GetResourceUtilizationRatio`: utilisation as integer percent (Go integer division), and its
/// ratio to the target.
fn utilization_ratio(samples: &[i64], target: u32) -> (f64, i64) {
    let total: i64 = samples.iter().sum();
    let requests = CPU_REQUEST_MILLI * samples.len() as i64;
    let utilization = total * 100 / requests;
    (utilization as f64 / f64::from(target), utilization)
}

/// `Quantity.MilliValue()`: rounds up to a whole milli-unit.
fn milli(v: f64) -> i64 {
    (v * 1000.0).ceil() as i64
}

/// `int32(math.Ceil(x))`, saturating (NaN → 0).
fn ceil_u32(x: f64) -> u32 {
    let c = x.ceil();
    if c.is_nan() || c <= 0.0 {
        0
    } else if c >= f64::from(i32::MAX) {
        i32::MAX as u32
    } else {
        c as u32
    }
}

/// Sets (or replaces) the condition of this type.
pub(crate) fn set_condition(
    list: &mut Vec<Condition>,
    kind: &str,
    status: bool,
    reason: &str,
    message: String,
) {
    let c = Condition {
        kind: kind.into(),
        status,
        reason: reason.into(),
        message,
    };
    match list.iter_mut().find(|x| x.kind == kind) {
        Some(x) => *x = c,
        None => list.push(c),
    }
}
