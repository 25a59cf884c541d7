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

/// The per-request overhead measured at one arrival rate (see [`ServiceProfile::network_by_rate`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePoint {
    /// Arrival rate at the replica, req/s (> 0).
    pub rate_rps: f64,
    /// Per-request time outside the server's queue at that rate, seconds.
    pub dist: Dist,
}

/// Default time constant of the replica's arrival-rate estimate, seconds.
pub const DEFAULT_RATE_WINDOW: f64 = 1.0;

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
    /// Per-request overhead as a function of the replica's recent arrival rate, rates strictly
    /// increasing. When present it replaces `network`: the simulator keeps an exponentially weighted
    /// rate estimate per replica (time constant `network_rate_window`) and draws the overhead between
    /// the two neighbouring points, interpolated linearly in rate at one shared quantile rank; below
    /// the first and above the last rate the end point's distribution is used. Empty = `network`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_by_rate: Vec<RatePoint>,
    /// Time constant of the replica's rate estimate for `network_by_rate`, seconds (absent =
    /// [`DEFAULT_RATE_WINDOW`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_rate_window: Option<f64>,
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
            network_by_rate: Vec::new(),
            network_rate_window: None,
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
        let mut prev = 0.0;
        for (i, r) in self.network_by_rate.iter().enumerate() {
            if !(r.rate_rps.is_finite() && r.rate_rps > prev) {
                return Err(Error::invalid(
                    format!("{field}.network_by_rate[{i}].rate_rps"),
                    format!(
                        "rates must be finite, > 0 and strictly increasing, got {} after {prev}",
                        r.rate_rps
                    ),
                ));
            }
            prev = r.rate_rps;
            r.dist
                .validate(&format!("{field}.network_by_rate[{i}].dist"))?;
        }
        if let Some(w) = self.network_rate_window
            && !(w.is_finite() && w > 0.0)
        {
            return Err(Error::invalid(
                format!("{field}.network_rate_window"),
                format!("must be a finite number of seconds > 0, got {w}"),
            ));
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

    /// Mean per-request overhead at a steady arrival rate of `rate` req/s at one replica (0 without
    /// any overhead), interpolated as the simulator does.
    pub fn mean_network_time(&self, rate: f64) -> f64 {
        match self.network_by_rate.as_slice() {
            [] => self.network.as_ref().map_or(0.0, Dist::mean),
            pts => {
                let (i, f) = bracket(pts, rate);
                let a = pts[i].dist.mean();
                match pts.get(i + 1) {
                    Some(b) if f > 0.0 => a + f * (b.dist.mean() - a),
                    _ => a,
                }
            }
        }
    }

    /// The profile with every batch execution time multiplied by `f` (network times unchanged).
    pub fn with_service_scaled(&self, f: f64) -> ServiceProfile {
        let mut p = self.clone();
        for b in &mut p.batches {
            b.latency = b.latency.scaled(f);
        }
        p
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

/// Index `i` of the point at or below `rate` and the fraction `f` of the way to point `i + 1` (0 at
/// and below the first point, 0 with `i` = last above the last).
fn bracket(pts: &[RatePoint], rate: f64) -> (usize, f64) {
    match pts.iter().position(|p| p.rate_rps > rate) {
        Some(0) => (0, 0.0),
        Some(j) => {
            let (a, b) = (pts[j - 1].rate_rps, pts[j].rate_rps);
            (j - 1, (rate - a) / (b - a))
        }
        None => (pts.len() - 1, 0.0),
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
    by_rate: Option<RateNetwork>,
}

/// `network_by_rate`, compiled.
#[derive(Clone, Debug)]
struct RateNetwork {
    points: Vec<RatePoint>,
    samplers: Vec<Sampler>,
    window: f64,
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
            by_rate: (!profile.network_by_rate.is_empty()).then(|| RateNetwork {
                samplers: profile
                    .network_by_rate
                    .iter()
                    .map(|r| r.dist.sampler())
                    .collect(),
                points: profile.network_by_rate.clone(),
                window: profile.network_rate_window.unwrap_or(DEFAULT_RATE_WINDOW),
            }),
        }
    }

    /// The time constant of the replica's rate estimate when the overhead depends on the rate; `None`
    /// when it does not (then the engine keeps no estimate and [`ServiceModel::network_time`] applies).
    #[inline]
    pub fn rate_window(&self) -> Option<f64> {
        self.by_rate.as_ref().map(|b| b.window)
    }

    /// Draws the per-request overhead at a replica whose recent arrival rate is `rate` req/s. Without
    /// `network_by_rate` this is [`ServiceModel::network_time`].
    #[inline]
    pub fn network_time_at<R: rand::Rng + ?Sized>(&self, rate: f64, rng: &mut R) -> f64 {
        let Some(b) = &self.by_rate else {
            return self.network_time(rng);
        };
        let (i, f) = bracket(&b.points, rate);
        let u = crate::dist::unit(rng);
        let lo = b.samplers[i].quantile(u);
        if f > 0.0 {
            // Same rank in both neighbours: the overhead moves smoothly with the rate and its spread
            // stays between theirs (a mixture of the two would widen it).
            lo + f * (b.samplers[i + 1].quantile(u) - lo)
        } else {
            lo
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

    fn by_rate() -> ServiceProfile {
        ServiceProfile {
            network: Some(Dist::constant(0.009)),
            network_by_rate: vec![
                RatePoint {
                    rate_rps: 20.0,
                    dist: Dist::constant(0.003),
                },
                RatePoint {
                    rate_rps: 80.0,
                    dist: Dist::constant(0.0015),
                },
                RatePoint {
                    rate_rps: 150.0,
                    dist: Dist::Quantiles {
                        probs: vec![0.0, 1.0],
                        values: vec![0.0005, 0.0015],
                    },
                },
            ],
            ..profile()
        }
    }

    #[test]
    fn overhead_interpolates_in_rate_and_clamps_at_the_ends() {
        let p = by_rate();
        p.validate("p").unwrap();
        let m = ServiceModel::new(&p, 8);
        assert_eq!(m.rate_window(), Some(DEFAULT_RATE_WINDOW));
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(1);
        let at = |r: f64, rng: &mut rand_pcg::Pcg64Mcg| m.network_time_at(r, rng);
        assert_eq!(
            at(0.0, &mut rng),
            0.003,
            "below the first rate: the first point"
        );
        assert_eq!(at(20.0, &mut rng), 0.003);
        assert!((at(50.0, &mut rng) - 0.00225).abs() < 1e-15, "half way");
        assert_eq!(at(80.0, &mut rng), 0.0015);
        // Between a constant and a quantile table: the same rank in both, so the draw stays
        // between the two distributions' values at that rank.
        for _ in 0..1000 {
            let x = at(115.0, &mut rng);
            assert!((0.001..=0.0015 + 1e-15).contains(&x), "{x}");
            let y = at(1e6, &mut rng);
            assert!((0.0005..=0.0015).contains(&y), "above the last rate: {y}");
        }
        // Means interpolate the same way.
        assert!((p.mean_network_time(50.0) - 0.00225).abs() < 1e-15);
        assert!((p.mean_network_time(115.0) - 0.00125).abs() < 1e-15);
        assert!((p.mean_network_time(500.0) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn without_by_rate_the_constant_overhead_applies() {
        let mut p = profile();
        p.network = Some(Dist::constant(0.004));
        let m = ServiceModel::new(&p, 8);
        assert_eq!(m.rate_window(), None, "no rate estimate is kept");
        let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(1);
        assert_eq!(m.network_time_at(100.0, &mut rng), 0.004);
        assert_eq!(m.network_time(&mut rng), 0.004);
        assert_eq!(p.mean_network_time(100.0), 0.004);
        // An old profile (no new fields) reads and writes back without them.
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("network_by_rate") && !text.contains("network_rate_window"));
        let back: ServiceProfile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        let q = by_rate();
        let back: ServiceProfile =
            serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(back, q);
    }

    #[test]
    fn by_rate_validation_names_the_field() {
        let e = |p: ServiceProfile| p.validate("pools.cpu.profile").unwrap_err().to_string();
        let mut p = by_rate();
        p.network_by_rate[1].rate_rps = 20.0;
        let m = e(p);
        assert!(
            m.contains("pools.cpu.profile.network_by_rate[1].rate_rps") && m.contains("increasing"),
            "{m}"
        );
        let mut p = by_rate();
        p.network_by_rate[0].rate_rps = 0.0;
        assert!(e(p).contains("network_by_rate[0].rate_rps"));
        let mut p = by_rate();
        p.network_by_rate[2].rate_rps = f64::NAN;
        assert!(e(p).contains("network_by_rate[2].rate_rps"));
        let mut p = by_rate();
        p.network_by_rate[1].dist = Dist::constant(-1.0);
        let m = e(p);
        assert!(
            m.contains("pools.cpu.profile.network_by_rate[1].dist.value"),
            "{m}"
        );
        let mut p = by_rate();
        p.network_rate_window = Some(0.0);
        assert!(e(p).contains("pools.cpu.profile.network_rate_window"));
        // Unknown fields inside a point are refused too.
        let err = serde_json::from_str::<RatePoint>(
            r#"{"rate_rps":1,"rate":2,"dist":{"dist":"constant","value":0}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rate"), "{err}");
    }
}
