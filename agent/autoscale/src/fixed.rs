//! Fixed replicas (the paper's GPU-only 1 and CPU-only 3) and static provisioning (a count the
//! caller computed from the peak or the mean load): the autoscaler always answers the same number.

use serde::{Deserialize, Serialize};

use crate::{Autoscaler, PoolView};

/// What a static count was provisioned for (for labels in outputs only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaticBasis {
    /// Sized for the peak load.
    Peak,
    /// Sized for the mean load.
    Mean,
}

/// Always `replicas`.
#[derive(Clone, Debug)]
pub struct Fixed {
    name: String,
    replicas: u32,
    period: f64,
}

impl Fixed {
    /// Always `replicas`, labelled `name` in outputs.
    pub fn new(name: impl Into<String>, replicas: u32) -> Self {
        // The period only decides how often the simulator asks; 15 s matches the HPA so that a
        // fixed pool is corrected at the same cadence after a pod is lost.
        Fixed {
            name: name.into(),
            replicas,
            period: 15.0,
        }
    }
}

impl Autoscaler for Fixed {
    fn name(&self) -> &str {
        &self.name
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, _view: &PoolView) -> u32 {
        self.replicas
    }
}
