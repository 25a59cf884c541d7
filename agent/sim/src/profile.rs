//! Service-time profiles: how long one model instance takes to execute a batch, as measured on a real
//! Triton (`kis-agent calibrate` fills them from kis-loadgen runs). Schema documented in the crate README.

use serde::{Deserialize, Serialize};

use crate::dist::{Dist, Sampler};
use crate::{Error, Result};

/// Schema identifier written in every profile.
pub const PROFILE_SCHEMA: &str = "kis-service-profile/v1";

/// Which device a profile was measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// A GPU replica (one GPU per pod).
    Gpu,
    /// A CPU-only replica.
    Cpu,
}

/// Execution time of one batch of `size` requests on one model instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchPoint {
    /// Batch size (>= 1).
    pub size: u32,
    /// Distribution of the batch's execution time in seconds.
    pub latency: Dist,
}

/// A measured service-time profile for one replica type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceProfile {
    /// Must be [`PROFILE_SCHEMA`].
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Device measured.
    pub device: Device,
    /// Free text: model, hardware, server version, how and when it was measured.
    #[serde(default)]
    pub description: String,
    /// Batch execution times for increasing batch sizes (at least one point); sizes in between are
    /// interpolated linearly in the mean, sizes beyond the last point extrapolated linearly.
    pub batches: Vec<BatchPoint>,
    /// Per-request time spent outside the server queue (transfer, (de)serialisation), added to latency
    /// without occupying an instance. Absent = 0.
    #[serde(default)]
    pub network: Option<Dist>,
    /// CPU cores a pod uses while idle.
    #[serde(default)]
    pub cpu_idle_cores: f64,
    /// Extra CPU cores used by each busy model instance.
    #[serde(default = "one")]
    pub cpu_busy_cores_per_instance: f64,
}

fn default_schema() -> String {
    PROFILE_SCHEMA.to_string()
}
fn one() -> f64 {
    1.0
}

impl ServiceProfile {
    /// A profile with one batch size and constant-free distribution `latency` (used by tests and examples).
    pub fn single(device: Device, latency: Dist) -> Self {
        ServiceProfile {
            schema: default_schema(),
            device,
            description: String::new(),
            batches: vec![BatchPoint { size: 1, latency }],
            network: None,
            cpu_idle_cores: 0.0,
            cpu_busy_cores_per_instance: 1.0,
        }
    }

    /// Checks the schema tag, sizes and distributions; `field` prefixes error paths.
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.schema != PROFILE_SCHEMA {
            return Err(Error::invalid(
                format!("{field}.schema"),
                format!("expected \"{PROFILE_SCHEMA}\", got {:?}", self.schema),
            ));
        }
        if self.batches.is_empty() {
            return Err(Error::invalid(
                format!("{field}.batches"),
                "needs at least one batch point",
            ));
        }
        let mut prev = 0;
        for (i, b) in self.batches.iter().enumerate() {
            if b.size <= prev {
                return Err(Error::invalid(
                    format!("{field}.batches[{i}].size"),
                    format!(
                        "sizes must be >= 1 and strictly increasing, got {} after {prev}",
                        b.size
                    ),
                ));
            }
            prev = b.size;
            b.latency
                .validate(&format!("{field}.batches[{i}].latency"))?;
        }
        if let Some(n) = &self.network {
            n.validate(&format!("{field}.network"))?;
        }
        for (name, v) in [
            ("cpu_idle_cores", self.cpu_idle_cores),
            (
                "cpu_busy_cores_per_instance",
                self.cpu_busy_cores_per_instance,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Mean execution time of a batch of `size`, interpolated as the sampler does.
    pub fn mean_batch_time(&self, size: u32) -> f64 {
        let (i, scale) = self.locate(size);
        self.batches[i].latency.mean() * scale
    }

    /// Point index and scale factor for a batch size.
    fn locate(&self, size: u32) -> (usize, f64) {
        let pts = &self.batches;
        let mean = |i: usize| pts[i].latency.mean();
        let size = size.max(1);
        match pts.iter().position(|p| p.size >= size) {
            Some(0) => (0, 1.0),
            Some(j) if pts[j].size == size => (j, 1.0),
            Some(j) => {
                let (a, b) = (&pts[j - 1], &pts[j]);
                let f = (size - a.size) as f64 / (b.size - a.size) as f64;
                let m = mean(j - 1) + f * (mean(j) - mean(j - 1));
                (j - 1, ratio(m, mean(j - 1)))
            }
            None => {
                let last = pts.len() - 1;
                let m = if last == 0 {
                    // One point: time proportional to size, the conservative choice.
                    mean(0) * size as f64 / pts[0].size as f64
                } else {
                    let (a, b) = (&pts[last - 1], &pts[last]);
                    let slope = (mean(last) - mean(last - 1)) / (b.size - a.size) as f64;
                    mean(last) + slope.max(0.0) * (size - b.size) as f64
                };
                (last, ratio(m, mean(last)))
            }
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 1.0 }
}

/// A profile compiled for batch sizes `1..=max_batch`: one table lookup and one draw per batch.
#[derive(Clone, Debug)]
pub struct ServiceModel {
    samplers: Vec<Sampler>,
    /// Index `size - 1` → (sampler, scale).
    table: Vec<(u32, f64)>,
    network: Option<Sampler>,
}

impl ServiceModel {
    /// Compiles `profile` for batches up to `max_batch`.
    pub fn new(profile: &ServiceProfile, max_batch: u32) -> Self {
        let samplers = profile
            .batches
            .iter()
            .map(|b| b.latency.sampler())
            .collect();
        let table = (1..=max_batch.max(1))
            .map(|s| {
                let (i, f) = profile.locate(s);
                (i as u32, f)
            })
            .collect();
        ServiceModel {
            samplers,
            table,
            network: profile.network.as_ref().map(Dist::sampler),
        }
    }

    /// Draws the execution time of a batch of `size` (1..=max_batch).
    #[inline]
    pub fn batch_time<R: rand::Rng + ?Sized>(&self, size: usize, rng: &mut R) -> f64 {
        let (i, f) = self.table[size - 1];
        self.samplers[i as usize].sample(rng) * f
    }

    /// Draws the per-request time outside the server (0 when the profile has none).
    #[inline]
    pub fn network_time<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match &self.network {
            Some(s) => s.sample(rng),
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ServiceProfile {
        ServiceProfile {
            batches: vec![
                BatchPoint {
                    size: 1,
                    latency: Dist::constant(0.010),
                },
                BatchPoint {
                    size: 8,
                    latency: Dist::constant(0.024),
                },
            ],
            ..ServiceProfile::single(Device::Gpu, Dist::constant(0.0))
        }
    }

    #[test]
    fn interpolates_and_extrapolates_means() {
        let p = profile();
        assert!((p.mean_batch_time(1) - 0.010).abs() < 1e-12);
        assert!((p.mean_batch_time(4) - 0.016).abs() < 1e-12);
        assert!((p.mean_batch_time(8) - 0.024).abs() < 1e-12);
        assert!((p.mean_batch_time(10) - 0.028).abs() < 1e-12);
        let m = ServiceModel::new(&p, 10);
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(1);
        assert!((m.batch_time(4, &mut rng) - 0.016).abs() < 1e-12);
    }

    #[test]
    fn rejects_unsorted_sizes_naming_the_field() {
        let mut p = profile();
        p.batches[1].size = 1;
        let e = p.validate("pools.gpu.profile").unwrap_err().to_string();
        assert!(e.contains("pools.gpu.profile.batches[1].size"), "{e}");
        let mut p = profile();
        p.schema = "v0".into();
        assert!(
            p.validate("p")
                .unwrap_err()
                .to_string()
                .contains("p.schema")
        );
    }
}
