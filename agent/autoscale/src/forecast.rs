//! A forecasting autoscaler: forecast the arrival rate one cold start ahead, size the pool for the
//! forecast at a target utilisation, scale up early and down late, and execute the target through
//! the same path a learned policy uses (the replica target is published as the External metric
//! `kis-replicas` and a stock HPA, AverageValue 1, follows it).
//!
//! The production systems that save capacity do it this way (AWS predictive scaling launches
//! capacity a buffer time ahead and never scales in on a forecast; SageServe forecasts and then
//! sizes), so a learned policy has to beat this, not only the reactive rules.
//!
//! # Forecast
//! Additive Holt-Winters on the pool's request rate as Prometheus sees it (`PoolView::request_rate`),
//! sampled at every decision (the HPA's sync period):
//! - level `l ← α·(x − s) + (1 − α)·(l + b·Δt)`, trend per second `b ← β·(l − l_prev)/Δt + (1 − β)·b`;
//! - with a `season` (seconds), one seasonal term per decision slot of the season,
//!   `s ← γ·(x − l) + (1 − γ)·s`; without one (the default) this is Holt's linear trend method, since
//!   the season of a replayed trace depends on its time compression;
//! - forecast `lead` seconds ahead: `max(0, l + b·lead + s(t + lead))`.
//!
//! # Sizing
//! Demand = max(forecast, observed rate) + queued requests / `backlog_drain` (the observed rate is a
//! floor: the forecast may scale out but never in, as AWS's predictive scaling). The recommendation
//! is `ceil(demand / (replica_capacity · target_utilization))`; the published target is the largest
//! recommendation of the last `scale_down_delay` seconds, so the pool grows at once and shrinks late.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::hpa::{
    Behavior, Hpa, HpaConfig, PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy,
    TARGET_REPLICAS_METRIC, external_target_hpa,
};
use crate::{Autoscaler, PoolView, ScalerStatus};

/// Settings of the forecasting autoscaler (`{"kind": "forecast", "replica_capacity": 12.9, ...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForecastConfig {
    /// Requests per second one replica serves with every instance busy (> 0; the caller sizes it
    /// from the service profile).
    pub replica_capacity: f64,
    /// Utilisation the pool is sized for, in (0, 1].
    pub target_utilization: f64,
    /// How far ahead to forecast, seconds: one cold start (30 s in the KIS-S deployment) plus the
    /// lag of the rate metric (half its 60 s window).
    pub lead: f64,
    /// Level smoothing α in (0, 1].
    pub alpha: f64,
    /// Trend smoothing β in [0, 1].
    pub beta: f64,
    /// Seasonal smoothing γ in [0, 1] (used only with `season`).
    pub gamma: f64,
    /// Season length in seconds; absent = no seasonal term.
    pub season: Option<f64>,
    /// Seconds the target stays at the largest recommendation made within them (scale down late).
    pub scale_down_delay: f64,
    /// Queued requests are added to the demand as `queue / backlog_drain` req/s (> 0, seconds).
    pub backlog_drain: f64,
    /// The external-target HPA that executes the target; its `metrics` must stay empty. The default
    /// is the exact-N recipe: tolerance 0, no stabilisation windows, up 1000 % and down 100 % per
    /// 15 s, so the HPA reproduces the published count at its next sync.
    pub hpa: HpaConfig,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            replica_capacity: 10.0,
            target_utilization: 0.7,
            lead: 60.0,
            alpha: 0.5,
            beta: 0.2,
            gamma: 0.1,
            season: None,
            scale_down_delay: 300.0,
            backlog_drain: 60.0,
            hpa: exact_n_hpa(),
        }
    }
}

/// The HPA that reproduces a published replica count at its next sync (reference
/// external-metrics-adapter.md §3.6): tolerance 0, windows 0, up 1000 % / 15 s, down 100 % / 15 s.
pub fn exact_n_hpa() -> HpaConfig {
    let rules = |percent: u32| ScalingRules {
        stabilization_window: 0.0,
        select_policy: SelectPolicy::Max,
        policies: vec![ScalingPolicy {
            kind: PolicyKind::Percent,
            value: percent,
            period: 15.0,
        }],
        tolerance: Some(0.0),
    };
    HpaConfig {
        behavior: Some(Behavior {
            scale_up: rules(1000),
            scale_down: rules(100),
        }),
        tolerance: Some(0.0),
        ..HpaConfig::default()
    }
}

/// The forecasting autoscaler of one pool.
#[derive(Clone, Debug)]
pub struct Forecast {
    name: String,
    cfg: ForecastConfig,
    hpa: Hpa,
    level: Option<f64>,
    trend: f64,
    last_t: f64,
    seasonal: Vec<f64>,
    recent: VecDeque<(f64, u32)>,
    last_forecast: f64,
    last_target: u32,
}

impl Forecast {
    /// A fresh forecaster (no history). The config is assumed valid (see `AutoscalerSpec::build`).
    pub fn new(name: impl Into<String>, cfg: &ForecastConfig) -> Self {
        let name = name.into();
        let slots = cfg
            .season
            .map_or(0, |s| (s / cfg.hpa.sync_period).round().max(1.0) as usize);
        Forecast {
            hpa: Hpa::new(name.clone(), &external_target_hpa(&cfg.hpa)),
            name,
            cfg: cfg.clone(),
            level: None,
            trend: 0.0,
            last_t: 0.0,
            seasonal: vec![0.0; slots],
            recent: VecDeque::new(),
            last_forecast: 0.0,
            last_target: 0,
        }
    }

    /// The rate forecast `lead` seconds ahead made at the last decision, req/s.
    pub fn last_forecast(&self) -> f64 {
        self.last_forecast
    }

    /// The replica target published at the last decision.
    pub fn last_target(&self) -> u32 {
        self.last_target
    }

    fn slot(&self, t: f64) -> Option<usize> {
        let season = self.cfg.season?;
        let n = self.seasonal.len();
        let phase = t.rem_euclid(season) / season;
        Some(((phase * n as f64) as usize).min(n - 1))
    }

    /// Updates the smoothed state with the observed rate `x` at time `t`; returns the forecast.
    fn observe(&mut self, t: f64, x: f64) -> f64 {
        let slot = self.slot(t);
        let s_now = slot.map_or(0.0, |i| self.seasonal[i]);
        match self.level {
            None => {
                self.level = Some(x - s_now);
                self.trend = 0.0;
            }
            Some(l) => {
                let dt = (t - self.last_t).max(1e-9);
                let (a, b) = (self.cfg.alpha, self.cfg.beta);
                let new_l = a * (x - s_now) + (1.0 - a) * (l + self.trend * dt);
                self.trend = b * (new_l - l) / dt + (1.0 - b) * self.trend;
                self.level = Some(new_l);
                if let Some(i) = slot {
                    let g = self.cfg.gamma;
                    self.seasonal[i] = g * (x - new_l) + (1.0 - g) * self.seasonal[i];
                }
            }
        }
        self.last_t = t;
        let ahead = self
            .slot(t + self.cfg.lead)
            .map_or(0.0, |i| self.seasonal[i]);
        let l = self.level.unwrap_or(x);
        (l + self.trend * self.cfg.lead + ahead).max(0.0)
    }

    /// Replicas for `demand` req/s at the target utilisation, within the HPA's bounds.
    fn size(&self, demand: f64) -> u32 {
        let per = (self.cfg.replica_capacity * self.cfg.target_utilization).max(1e-9);
        let n = (demand / per).ceil();
        let (lo, hi) = (self.cfg.hpa.min_replicas.max(1), self.cfg.hpa.max_replicas);
        (n.clamp(0.0, hi as f64) as u32).clamp(lo, hi)
    }
}

impl Autoscaler for Forecast {
    fn name(&self) -> &str {
        &self.name
    }

    fn period(&self) -> f64 {
        self.cfg.hpa.sync_period
    }

    fn decide(&mut self, view: &PoolView) -> u32 {
        let mut published = view.clone();
        if view.request_rate.is_finite() {
            let x = view.request_rate.max(0.0);
            let forecast = self.observe(view.now, x);
            self.last_forecast = forecast;
            let queue = if view.queue_len.is_finite() {
                view.queue_len.max(0.0)
            } else {
                0.0
            };
            let demand = forecast.max(x) + queue / self.cfg.backlog_drain;
            let rec = self.size(demand);
            self.recent.push_back((view.now, rec));
            let keep_from = view.now - self.cfg.scale_down_delay;
            while self.recent.front().is_some_and(|&(t, _)| t < keep_from) {
                self.recent.pop_front();
            }
            self.last_target = self.recent.iter().map(|&(_, r)| r).max().unwrap_or(rec);
        }
        // A missing rate never reads as zero load (kubernetes#104387): the last target stands, and
        // before the first one nothing is published, so the HPA keeps the count.
        let value = (self.last_target > 0).then_some(self.last_target as f64);
        // Published as kis-adapter would publish it; the stock HPA then does the scaling.
        published
            .external
            .insert(TARGET_REPLICAS_METRIC.into(), value);
        self.hpa.decide(&published)
    }

    fn status(&self) -> Option<ScalerStatus> {
        self.hpa.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AutoscalerSpec, ExternalTarget, MetricSpec, PodView, Pool};

    /// A pool of `n` Ready pods receiving `rate` req/s at time `t`.
    fn view(t: f64, n: u32, rate: f64) -> PoolView {
        let mut v = PoolView::empty(Pool::Gpu, t, n);
        v.pods = (0..n)
            .map(|_| PodView::ready(0.0, 0.0, Some(0.5)))
            .collect();
        v.request_rate = rate;
        v
    }

    fn cfg() -> ForecastConfig {
        ForecastConfig {
            replica_capacity: 10.0,
            target_utilization: 0.5,
            hpa: HpaConfig {
                max_replicas: 50,
                ..exact_n_hpa()
            },
            ..ForecastConfig::default()
        }
    }

    #[test]
    fn holt_follows_a_linear_ramp_and_forecasts_ahead() {
        let mut f = Forecast::new("forecast", &cfg());
        let mut n = 1;
        for k in 0..40 {
            let t = 15.0 * k as f64;
            n = f.decide(&view(t, n, 0.1 * t));
        }
        // After 40 samples the trend is close to 0.1 req/s per second: the forecast at t = 585 s
        // is close to the rate at 585 + 60 s.
        let want = 0.1 * (585.0 + 60.0);
        assert!(
            (f.last_forecast() - want).abs() < 0.05 * want,
            "forecast {} vs {want}",
            f.last_forecast()
        );
        // 64.5 req/s at 5 req/s per replica: 13 replicas, executed by the HPA at once.
        assert_eq!(f.last_target(), 13);
        assert_eq!(n, 13);
    }

    #[test]
    fn pre_scales_a_ramp_before_a_reactive_hpa_with_the_same_sizing() {
        // The reactive twin: an HPA on the observed request rate with the same per-replica target
        // (AverageValue 5 req/s = capacity 10 × utilisation 0.5).
        let reactive_spec = AutoscalerSpec::Hpa(HpaConfig {
            metrics: vec![MetricSpec::External {
                name: "request_rate".into(),
                target: ExternalTarget::AverageValue(5.0),
            }],
            max_replicas: 50,
            ..HpaConfig::default()
        });
        let mut reactive = reactive_spec.build().unwrap();
        let mut f = Forecast::new("forecast", &cfg());
        let (mut nf, mut nr) = (1, 1);
        let (mut tf, mut tr) = (None, None);
        for k in 1..200 {
            let t = 15.0 * k as f64;
            let rate = (0.1 * (t - 300.0)).max(2.0);
            nf = f.decide(&view(t, nf, rate));
            nr = reactive.decide(&view(t, nr, rate));
            if nf >= 10 && tf.is_none() {
                tf = Some(t);
            }
            if nr >= 10 && tr.is_none() {
                tr = Some(t);
            }
        }
        let (tf, tr) = (tf.unwrap(), tr.unwrap());
        assert!(
            tf + 30.0 <= tr,
            "forecaster at 10 replicas at {tf} s, reactive at {tr} s"
        );
    }

    #[test]
    fn scales_down_only_after_the_delay_and_never_below_the_observed_rate() {
        let mut f = Forecast::new("forecast", &cfg());
        let mut n = 1;
        for k in 0..20 {
            n = f.decide(&view(15.0 * k as f64, n, 50.0));
        }
        assert_eq!(n, 10);
        // The load drops to 5 req/s at t = 300 s: the target holds for 300 s, then follows.
        let mut first_down = None;
        for k in 20..160 {
            let t = 15.0 * k as f64;
            n = f.decide(&view(t, n, 5.0));
            if n < 10 && first_down.is_none() {
                first_down = Some(t);
            }
        }
        let d = first_down.unwrap();
        assert!((600.0..=630.0).contains(&d), "first scale-down at {d} s");
        assert_eq!(n, 1);
    }

    #[test]
    fn seasonal_term_learns_a_repeating_pattern() {
        let mut c = cfg();
        c.season = Some(600.0);
        c.alpha = 0.1;
        c.gamma = 0.5;
        c.beta = 0.0;
        let mut f = Forecast::new("forecast", &c);
        let rate = |t: f64| {
            if t.rem_euclid(600.0) < 300.0 {
                40.0
            } else {
                10.0
            }
        };
        let mut n = 1;
        let mut hits = 0;
        for k in 0..400 {
            let t = 15.0 * k as f64;
            n = f.decide(&view(t, n, rate(t)));
            // After 20 seasons, the forecast 60 s ahead anticipates the level change.
            if k > 320 && (f.last_forecast() - rate(t + 60.0)).abs() < 8.0 {
                hits += 1;
            }
        }
        assert!(hits > 70, "{hits} of 79 forecasts near the coming rate");
    }

    #[test]
    fn a_missing_rate_never_reads_as_zero_load() {
        let mut f = Forecast::new("forecast", &cfg());
        assert_eq!(
            f.decide(&view(15.0, 3, f64::NAN)),
            3,
            "no target yet: count kept"
        );
        let n = f.decide(&view(30.0, 3, 40.0));
        assert_eq!(n, 8);
        for k in 3..60 {
            assert_eq!(
                f.decide(&view(15.0 * k as f64, 8, f64::NAN)),
                8,
                "last target stands"
            );
        }
    }
}
