//! Autoscaling algorithms as pure decision logic: the stock HPA v2 controller, KEDA, Knative's KPA,
//! fixed and static replicas, a forecasting autoscaler, and the "external target" autoscaler that
//! follows a policy through kis-adapter + HPA.
//!
//! # Brief overview
//! The simulator (kis-sim) builds a [`PoolView`] per pool at each controller period and applies the
//! replica count returned by [`Autoscaler::decide`] as the Deployment's `spec.replicas`. Nothing here
//! does IO or reads a clock: time comes in [`PoolView::now`]. Every autoscaler is configured by an
//! [`AutoscalerSpec`] (serde, `{"kind": "hpa", ...}`) whose defaults are the upstream defaults, and
//! exposes its tunable parameters through [`AutoscalerSpec::param_space`] /
//! [`AutoscalerSpec::with_params`] for `kis-agent tune`.
//!
//! ```
//! use kis_autoscale::{AutoscalerSpec, Pool, PoolView};
//! let spec: AutoscalerSpec = serde_json::from_str(r#"{"kind":"fixed","replicas":3}"#).unwrap();
//! let mut a = spec.build().unwrap();
//! assert_eq!(a.decide(&PoolView::empty(Pool::Cpu, 0.0, 1)), 3);
//! ```

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

pub mod fixed;
pub mod forecast;
pub mod hpa;
pub mod keda;
pub mod kpa;
pub mod obs;
pub mod spec;
pub mod view;

use serde::{Deserialize, Serialize};

pub use fixed::{Fixed, StaticBasis};
pub use forecast::{Forecast, ForecastConfig};
pub use hpa::Hpa;
pub use hpa::{
    Behavior, ExternalTarget, HpaConfig, MetricSpec, PolicyKind, ScalingPolicy, ScalingRules,
    SelectPolicy,
};
pub use keda::Keda;
pub use keda::{KedaConfig, KedaMetricType};
pub use kpa::Kpa;
pub use kpa::KpaConfig;
pub use obs::{
    ACTION_DIMS, Capacity, MASK_LEN, OBS_SPEC_VERSION, ObsInput, ObsSet, RateHistory, StepSample,
};
pub use spec::{AutoscalerSpec, ConfigError, Param, TARGET_REPLICAS_METRIC};
pub use view::{PodView, Pool, PoolView};

/// One autoscaler instance for one pool. It keeps its own history (recommendations, scale events,
/// windows) between calls.
pub trait Autoscaler: Send {
    /// The label outputs show for this instance (e.g. `hpa-cpu`).
    fn name(&self) -> &str;
    /// Controller period in seconds (HPA 15, KEDA polling 30, Knative 2, ...).
    fn period(&self) -> f64;
    /// The new `spec.replicas` for this pool (may equal the current one).
    fn decide(&mut self, view: &PoolView) -> u32;
    /// What the controller would publish in its status after the last `decide`, for the
    /// simulator's outputs. `None` for autoscalers with no status of their own.
    fn status(&self) -> Option<ScalerStatus> {
        None
    }
}

/// A controller's status after a decision (modelled on `HorizontalPodAutoscalerStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalerStatus {
    /// Replicas the controller saw (`spec.replicas` of the target).
    pub current_replicas: u32,
    /// Replicas it asked for.
    pub desired_replicas: u32,
    /// When it last changed the replica count.
    pub last_scale_time: Option<f64>,
    /// One entry per metric, in spec order.
    pub current_metrics: Vec<MetricStatus>,
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited` for the HPA; `Active`/`Panic` for others.
    pub conditions: Vec<Condition>,
}

/// The value a metric had at the last decision and the replica count it proposed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricStatus {
    /// The metric's name (`cpu`, or the External metric's name).
    pub name: String,
    /// Current value (average utilisation in percent, average value, or value); `None` = missing.
    pub value: Option<f64>,
    /// Replica count this metric alone asked for; `None` = invalid metric.
    pub proposal: Option<u32>,
}

/// A status condition as the API would show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited`, `Active`, `Panic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the condition holds (`True`).
    pub status: bool,
    /// A CamelCase reason, as the controller sets it.
    pub reason: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ScalerStatus {
    /// The condition of this type, if set.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}
