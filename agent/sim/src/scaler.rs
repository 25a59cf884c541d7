//! Autoscalers as the simulator runs them: the rule-based ones from kis-autoscale, plus the
//! perfect-foresight oracle, which lives here because it needs the future load and the service model.

pub use kis_autoscale::{
    Autoscaler, AutoscalerSpec, PodView, Pool, PoolView, TARGET_REPLICAS_METRIC,
};
use kis_traffic::Profile;

// The spec types live in config (a run's description must not import the runtime); kept here too.
pub use crate::config::{OracleConfig, OracleKind, ScalerSpec};
use crate::config::{PoolConfig, SimConfig};
use crate::queueing::mmc_wait_tail;
use crate::{Error, Result};

/// What building an autoscaler may look at.
pub struct ScalerContext<'a> {
    /// The pool it scales.
    pub pool: Pool,
    /// The whole run's configuration.
    pub config: &'a SimConfig,
    /// The (scaled) offered rate over time: only the oracle reads it.
    pub rates: &'a Profile,
}

impl ScalerSpec {
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
    rates: Profile,
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
            rates: ctx.rates.clone(),
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
            peak = peak.max(self.rates.rate(t));
            t += 1.0;
        }
        peak = peak.max(self.rates.rate(t1));
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
