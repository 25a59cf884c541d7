//! Autoscalers as the simulator runs them: the rule-based ones from kis-autoscale, plus the
//! perfect-foresight oracle, which lives here because it needs the future load and the service model.

use serde::{Deserialize, Deserializer, Serialize};

pub use kis_autoscale::{
    Autoscaler, AutoscalerSpec, PodView, Pool, PoolView, TARGET_REPLICAS_METRIC,
};
use kis_traffic::Profile;

use crate::config::{PoolConfig, SimConfig};
use crate::queueing::mmc_wait_tail;
use crate::{Error, Result};

/// Any autoscaler a pool can run: `{"kind":"oracle", ...}` or any kis-autoscale kind
/// (`{"kind":"hpa", ...}`, `keda`, `knative`, `fixed`, `static`, `external-target`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ScalerSpec {
    /// The perfect-foresight oracle.
    Oracle(OracleConfig),
    /// A rule-based autoscaler from kis-autoscale.
    Rule(AutoscalerSpec),
}

impl<'de> Deserialize<'de> for ScalerSpec {
    // Dispatch on `kind` by hand: an untagged derive would hide the real field error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("kind").and_then(|k| k.as_str()) == Some("oracle") {
            OracleConfig::deserialize(v)
                .map(ScalerSpec::Oracle)
                .map_err(D::Error::custom)
        } else {
            AutoscalerSpec::deserialize(v)
                .map(ScalerSpec::Rule)
                .map_err(D::Error::custom)
        }
    }
}

/// What building an autoscaler may look at.
pub struct ScalerContext<'a> {
    /// The pool it scales.
    pub pool: Pool,
    /// The whole run's configuration.
    pub config: &'a SimConfig,
    /// The (scaled) rate profile: only the oracle reads it.
    pub profile: &'a Profile,
}

impl ScalerSpec {
    /// Short label for tables.
    pub fn label(&self) -> String {
        match self {
            ScalerSpec::Oracle(_) => "oracle".into(),
            ScalerSpec::Rule(r) => r.label(),
        }
    }

    /// Builds a fresh autoscaler.
    pub fn build(&self, ctx: &ScalerContext<'_>) -> Result<Box<dyn Autoscaler>> {
        let field = format!("pools.{}.autoscaler", pool_name(ctx.pool));
        match self {
            ScalerSpec::Rule(r) => r
                .build()
                .map_err(|e| Error::invalid(format!("{field}.{}", e.field), e.problem)),
            ScalerSpec::Oracle(o) => Ok(Box::new(Oracle::new(o, ctx, &field)?)),
        }
    }
}

fn pool_name(p: Pool) -> &'static str {
    match p {
        Pool::Gpu => "gpu",
        Pool::Cpu => "cpu",
    }
}

/// Settings of the perfect-foresight oracle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// Always `"oracle"`.
    pub kind: OracleKind,
    /// Fraction of the total offered load this pool must carry.
    #[serde(default = "one")]
    pub share: f64,
    /// Decision period in seconds.
    #[serde(default = "default_period")]
    pub period: f64,
    /// Allowed probability that a request's queueing wait exceeds its budget (SLO minus twice the
    /// mean service time), approximating each replica as an M/G/c queue (c = its instances) fed an
    /// equal share of the rate: Erlang C with Kingman's variability correction of the tail.
    #[serde(default = "default_miss")]
    pub miss_probability: f64,
    /// Fewest replicas.
    #[serde(default = "one_u32")]
    pub min_replicas: u32,
    /// Most replicas.
    #[serde(default = "default_max")]
    pub max_replicas: u32,
}

/// The tag value of [`OracleConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OracleKind {
    /// `"oracle"`.
    Oracle,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            kind: OracleKind::Oracle,
            share: 1.0,
            period: default_period(),
            miss_probability: default_miss(),
            min_replicas: 1,
            max_replicas: default_max(),
        }
    }
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_period() -> f64 {
    5.0
}
fn default_miss() -> f64 {
    0.01
}
fn default_max() -> u32 {
    100
}

/// Fewest replicas in `[min, max]` of a pool that serve `rate` req/s with
/// P(queueing wait > SLO − 2 × mean service) <= `miss`: the oracle's sizing rule, also used to size
/// static provisioning at the peak or the mean.
pub fn replicas_for_rate(
    pool: &PoolConfig,
    slo: f64,
    rate: f64,
    miss: f64,
    min: u32,
    max: u32,
) -> u32 {
    let q = Queueing::of(pool, slo);
    size_for_rate(rate, &q, miss, min, max)
}

/// A replica as the sizing rule sees it.
#[derive(Clone, Copy, Debug)]
struct Queueing {
    servers: u32,
    mu: f64,
    budget: f64,
    /// Kingman's correction of the exponential tail for service variability: 2 / (1 + cs²).
    decay: f64,
}

impl Queueing {
    fn of(pool: &PoolConfig, slo: f64) -> Self {
        let s = pool.profile.mean_batch_time(1).max(1e-9);
        // The largest mean overhead over the measured rates: the oracle must not count on warm threads.
        let net = pool
            .profile
            .network_by_rate
            .iter()
            .map(|r| r.dist.mean())
            .fold(pool.profile.mean_network_time(0.0), f64::max);
        let scv = pool.profile.batches[0].latency.scv();
        Queueing {
            servers: pool.instances,
            mu: 1.0 / s,
            budget: (slo - 2.0 * s - net).max(0.0),
            decay: 2.0 / (1.0 + scv),
        }
    }
}

fn size_for_rate(rate: f64, q: &Queueing, miss: f64, min: u32, max: u32) -> u32 {
    if rate <= 0.0 {
        return min;
    }
    let mut n = min.max(1);
    // Each replica has its own queue served by its instances; the Service splits the rate evenly.
    // Erlang C for the probability of waiting, the M/M/c tail rate stretched by Kingman's factor
    // for the service-time variability (exact for exponential service).
    while n < max {
        if mmc_wait_tail(q.servers, rate / n as f64, q.mu, q.budget * q.decay) <= miss {
            break;
        }
        n += 1;
    }
    n
}

/// Knows the future rate and the service model; keeps, at every moment, the fewest replicas that will
/// meet the SLO once the pods it starts now are Ready. A lower bound on cost at (near) zero SLO misses
/// for the rule-based autoscalers to be compared against.
pub struct Oracle {
    cfg: OracleConfig,
    profile: Profile,
    lead: f64,
    q: Queueing,
}

impl Oracle {
    fn new(cfg: &OracleConfig, ctx: &ScalerContext<'_>, field: &str) -> Result<Self> {
        let pool = match ctx.pool {
            Pool::Gpu => &ctx.config.pools.gpu,
            Pool::Cpu => &ctx.config.pools.cpu,
        };
        if !(cfg.share.is_finite() && cfg.share >= 0.0) {
            return Err(Error::invalid(
                format!("{field}.share"),
                format!("must be finite and >= 0, got {}", cfg.share),
            ));
        }
        if !(cfg.period.is_finite() && cfg.period > 0.0) {
            return Err(Error::invalid(
                format!("{field}.period"),
                format!("must be finite and > 0, got {}", cfg.period),
            ));
        }
        if !(cfg.miss_probability > 0.0 && cfg.miss_probability < 1.0) {
            return Err(Error::invalid(
                format!("{field}.miss_probability"),
                format!("must be in (0, 1), got {}", cfg.miss_probability),
            ));
        }
        if cfg.min_replicas > cfg.max_replicas {
            return Err(Error::invalid(
                format!("{field}.min_replicas"),
                format!(
                    "must be <= max_replicas ({}), got {}",
                    cfg.max_replicas, cfg.min_replicas
                ),
            ));
        }
        Ok(Oracle {
            cfg: cfg.clone(),
            profile: ctx.profile.clone(),
            // Pods started now serve from now + start-up (+ a scrape of slack) until the next decision.
            lead: pool.startup.mean() + cfg.period + ctx.config.metrics.scrape_interval,
            q: Queueing::of(pool, ctx.config.slo),
        })
    }

    /// Fewest replicas that keep P(wait > budget) within the target at `rate` req/s.
    pub fn replicas_for(&self, rate: f64) -> u32 {
        size_for_rate(
            rate,
            &self.q,
            self.cfg.miss_probability,
            self.cfg.min_replicas,
            self.cfg.max_replicas,
        )
    }
}

impl Autoscaler for Oracle {
    fn name(&self) -> &str {
        "oracle"
    }

    fn period(&self) -> f64 {
        self.cfg.period
    }

    fn decide(&mut self, view: &PoolView) -> u32 {
        // Peak rate over the lead window, sampled every second (and at its end).
        let (t0, t1) = (view.now, view.now + self.lead);
        let mut peak: f64 = 0.0;
        let mut t = t0;
        while t < t1 {
            peak = peak.max(self.profile.rate(t));
            t += 1.0;
        }
        peak = peak.max(self.profile.rate(t1));
        self.replicas_for(peak * self.cfg.share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_and_rule_specs_parse() {
        let s: ScalerSpec = serde_json::from_str(r#"{"kind":"oracle","share":0.5}"#).unwrap();
        assert!(matches!(s, ScalerSpec::Oracle(ref o) if o.share == 0.5));
        let s: ScalerSpec = serde_json::from_str(r#"{"kind":"fixed","replicas":3}"#).unwrap();
        assert_eq!(s.label(), "fixed-3");
        let e = serde_json::from_str::<ScalerSpec>(r#"{"kind":"oracle","shar":0.5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("shar"), "{e}");
    }
}
