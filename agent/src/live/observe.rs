//! From Prometheus and apiserver readings to what the rule and the policy read: a
//! [`PoolView`] per pool (the same view the simulator hands its autoscalers) and the rate
//! history of [`kis_autoscale::obs`], plus the checks that send a decision to the rule: a failed
//! query, a Ready pod whose series is stale or missing, a NaN.
//!
//! The queries read Triton's own metrics (`nv_inference_*`, reference triton-cpu.md §2):
//! pending requests (queue), success/failure counters (completions, arrivals = completions +
//! failures + change in the queue), `rate()` of the request-duration counter (mean requests in
//! the pod, Little's law), the 0.95 quantile of the request summary (p95; Triton with
//! `--metrics-config=summary_latencies=true`) and the GPU utilisation where Triton exports it.

use std::collections::BTreeMap;

use kis_autoscale::{PodView, Pool, PoolView};

use super::apiserver::PoolState;
use super::prom::{PromError, Prometheus};
use super::safety::{Reason, is_stale};

/// One pool's Prometheus readings, per pod where the query is per pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolMetrics {
    /// Pending requests per pod.
    pub queue: BTreeMap<String, f64>,
    /// Time of each pod's latest queue sample (Unix seconds).
    pub sampled_at: BTreeMap<String, f64>,
    /// Cumulative successful requests per pod.
    pub success: BTreeMap<String, f64>,
    /// Cumulative failed requests per pod.
    pub failure: BTreeMap<String, f64>,
    /// Mean requests in each pod over the rate window.
    pub concurrency: BTreeMap<String, f64>,
    /// GPU busy fraction per pod (where exported).
    pub gpu_util: BTreeMap<String, f64>,
    /// Completed req/s of the pool over the rate window; None when no series has two samples in
    /// the window yet (new pods), which is unknown, not 0.
    pub request_rate: Option<f64>,
    /// The largest pod p95, seconds; NaN when no pod served a request in the summary's window.
    pub p95: f64,
}

/// The queries of one pool.
#[derive(Clone, Debug)]
pub struct Queries {
    /// Label matchers (no braces).
    pub selector: String,
    /// The pod label.
    pub pod_label: String,
    /// `rate()` window, seconds.
    pub window: f64,
}

impl Queries {
    fn q(&self, template: &str) -> String {
        template
            .replace("SEL", &self.selector)
            .replace("{P}", &self.pod_label)
            .replace("{W}", &format!("{}s", self.window.round().max(1.0)))
    }

    /// Runs every query of the pool (blocking).
    pub fn read(&self, prom: &Prometheus) -> Result<PoolMetrics, PromError> {
        let by_pod = |template: &str| -> Result<BTreeMap<String, f64>, PromError> {
            let l = &self.pod_label;
            Ok(prom
                .query(&self.q(template))?
                .into_iter()
                .filter_map(|s| Some((s.labels.get(l)?.clone(), s.value)))
                .collect())
        };
        // An empty vector is None: no series (no pods, or none with two samples in the window).
        let scalar = |template: &str| -> Result<Option<f64>, PromError> {
            Ok(prom.query(&self.q(template))?.first().map(|s| s.value))
        };
        let rate = scalar("sum(rate(nv_inference_request_success{SEL}[{W}]))")?;
        Ok(PoolMetrics {
            queue: by_pod("sum by ({P}) (nv_inference_pending_request_count{SEL})")?,
            sampled_at: by_pod(
                "max by ({P}) (timestamp(nv_inference_pending_request_count{SEL}))",
            )?,
            success: by_pod("sum by ({P}) (nv_inference_request_success{SEL})")?,
            failure: by_pod("sum by ({P}) (nv_inference_request_failure{SEL})")?,
            concurrency: by_pod(
                "sum by ({P}) (rate(nv_inference_request_duration_us{SEL}[{W}])) / 1e6",
            )?,
            gpu_util: by_pod("avg by ({P}) (nv_gpu_utilization{SEL})")?,
            request_rate: rate,
            p95: scalar("max(nv_inference_request_summary_us{SEL,quantile=\"0.95\"}) / 1e6")?
                .unwrap_or(f64::NAN),
        })
    }
}

/// Problems with a pool's readings that make the policy's observation untrustworthy.
pub fn assess(
    state: &PoolState,
    m: &PoolMetrics,
    now: f64,
    scrape_interval: f64,
    grace: f64,
) -> Vec<(Reason, String)> {
    let mut out = Vec::new();
    for p in state.pods.iter().filter(|p| p.ready) {
        // A pod that just turned Ready may not be scraped yet (service discovery lag).
        let since = p.ready_since.unwrap_or(p.started);
        match m.sampled_at.get(&p.name) {
            Some(&t) if is_stale(now - t, scrape_interval) => out.push((
                Reason::Stale,
                format!("pod {}: last sample {:.1} s old", p.name, now - t),
            )),
            None if now - since > grace => out.push((
                Reason::Stale,
                format!("pod {}: Ready {:.0} s, no series", p.name, now - since),
            )),
            _ => {}
        }
    }
    let nan = |v: f64| !v.is_finite();
    for (what, map) in [
        ("queue", &m.queue),
        ("success", &m.success),
        ("failure", &m.failure),
        ("concurrency", &m.concurrency),
    ] {
        if let Some((pod, _)) = map.iter().find(|(_, v)| nan(**v)) {
            out.push((Reason::Nan, format!("{what} of pod {pod} is NaN")));
        }
    }
    if m.request_rate.is_some_and(nan) {
        out.push((Reason::Nan, "request rate is NaN".into()));
    }
    out
}

/// The pool as its autoscaler sees it. `m` None (the queries failed): the metric-backed fields
/// are missing (External `None`, rate NaN), never 0, so a rule holds its count.
pub fn view(pool: Pool, state: &PoolState, m: Option<&PoolMetrics>, now: f64) -> PoolView {
    let mut v = PoolView::empty(pool, now, state.spec_replicas);
    let get = |map: Option<&BTreeMap<String, f64>>, pod: &str| {
        map.and_then(|x| x.get(pod))
            .copied()
            .filter(|x| x.is_finite())
    };
    v.pods = state
        .pods
        .iter()
        .map(|p| {
            let queue = get(m.map(|m| &m.queue), &p.name).unwrap_or(0.0).max(0.0);
            let conc = get(m.map(|m| &m.concurrency), &p.name)
                .unwrap_or(0.0)
                .max(0.0);
            PodView {
                ready: p.ready,
                created_at: p.started,
                ready_since: p.ready_since,
                // No metrics-server here: the CPU-HPA rule sees no CPU samples.
                cpu_utilization: None,
                gpu_utilization: get(m.map(|m| &m.gpu_util), &p.name),
                queue_len: queue.round() as u32,
                in_flight: queue.max(conc).round() as u32,
            }
        })
        .collect();
    match m {
        Some(m) => {
            // `+ 0.0` turns a sum of -0 into 0 for the logs.
            v.queue_len = m.queue.values().filter(|x| x.is_finite()).sum::<f64>() + 0.0;
            v.concurrency = m.concurrency.values().filter(|x| x.is_finite()).sum();
            v.request_rate = match m.request_rate {
                Some(r) if r.is_finite() => r,
                // No pod at all: no load reaches the pool.
                None if m.success.is_empty() => 0.0,
                _ => {
                    v.external.insert("request_rate".into(), None);
                    f64::NAN
                }
            };
            v.p95_latency = Some(m.p95).filter(|p| p.is_finite());
        }
        None => {
            v.request_rate = f64::NAN;
            v.queue_len = f64::NAN;
            v.concurrency = f64::NAN;
            for name in ["queue_len", "p95_latency", "request_rate", "concurrency"] {
                v.external.insert(name.into(), None);
            }
        }
    }
    v
}

/// Cumulative counters of a pool kept across pod restarts and scale-downs: the sum of each pod's
/// increases since it was first seen (a counter that went down restarted from 0).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    last: BTreeMap<String, f64>,
    total: f64,
    started: bool,
}

impl Counters {
    /// Adds this reading's increases; returns the running total. The first reading is the
    /// baseline; a pod first seen later counts from 0 (it started after the agent).
    pub fn update(&mut self, now: &BTreeMap<String, f64>) -> f64 {
        for (pod, &v) in now {
            if !v.is_finite() {
                continue;
            }
            let inc = match self.last.get(pod) {
                Some(&prev) if v >= prev => v - prev,
                Some(_) => v,
                None if self.started => v,
                None => 0.0,
            };
            self.total += inc;
            self.last.insert(pod.clone(), v);
        }
        self.last.retain(|p, _| now.contains_key(p));
        self.started = true;
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::apiserver::PodInfo;

    fn state(ready: &[(&str, bool, f64)]) -> PoolState {
        PoolState {
            spec_replicas: ready.len() as u32,
            pods: ready
                .iter()
                .map(|&(n, r, since)| PodInfo {
                    name: n.into(),
                    ready: r,
                    started: since - 5.0,
                    ready_since: r.then_some(since),
                })
                .collect(),
        }
    }

    fn metrics(pods: &[(&str, f64)]) -> PoolMetrics {
        let mut m = PoolMetrics {
            request_rate: Some(4.0),
            p95: 0.2,
            ..PoolMetrics::default()
        };
        for &(p, t) in pods {
            m.queue.insert(p.into(), 1.0);
            m.sampled_at.insert(p.into(), t);
            m.success.insert(p.into(), 10.0);
            m.failure.insert(p.into(), 0.0);
            m.concurrency.insert(p.into(), 1.5);
        }
        m
    }

    #[test]
    fn fresh_series_pass_and_stale_or_missing_ones_do_not() {
        let s = state(&[("a", true, 0.0), ("b", true, 0.0), ("c", false, 0.0)]);
        let now = 100.0;
        assert!(assess(&s, &metrics(&[("a", 99.0), ("b", 98.0)]), now, 1.0, 30.0).is_empty());
        // b's last sample 2.5 scrape intervals old.
        let r = assess(&s, &metrics(&[("a", 99.0), ("b", 97.5)]), now, 1.0, 30.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, Reason::Stale);
        assert!(r[0].1.contains("pod b"), "{r:?}");
        // b Ready for 100 s with no series at all.
        let r = assess(&s, &metrics(&[("a", 99.0)]), now, 1.0, 30.0);
        assert_eq!(r[0].0, Reason::Stale);
        assert!(r[0].1.contains("no series"), "{r:?}");
        // ... but not within the discovery grace.
        let s2 = state(&[("a", true, 0.0), ("b", true, 90.0)]);
        assert!(assess(&s2, &metrics(&[("a", 99.0)]), now, 1.0, 30.0).is_empty());
        // Not Ready pods need no series.
        let s3 = state(&[("a", true, 0.0), ("c", false, 0.0)]);
        assert!(assess(&s3, &metrics(&[("a", 99.5)]), now, 1.0, 30.0).is_empty());
    }

    #[test]
    fn nan_values_are_reported() {
        let s = state(&[("a", true, 0.0)]);
        let mut m = metrics(&[("a", 99.5)]);
        m.queue.insert("a".into(), f64::NAN);
        let r = assess(&s, &m, 100.0, 1.0, 30.0);
        assert_eq!(r, vec![(Reason::Nan, "queue of pod a is NaN".into())]);
        let mut m = metrics(&[("a", 99.5)]);
        m.request_rate = Some(f64::NAN);
        assert_eq!(assess(&s, &m, 100.0, 1.0, 30.0)[0].0, Reason::Nan);
        // New pods: no rate yet, unknown but not a fault; the rule sees it missing.
        m.request_rate = None;
        assert!(assess(&s, &m, 100.0, 1.0, 30.0).is_empty());
        let v = view(Pool::Cpu, &s, Some(&m), 100.0);
        assert_eq!(v.external_metric("request_rate"), None);
        // An idle pool's p95 is NaN: no sample, not a fault.
        let mut m = metrics(&[("a", 99.5)]);
        m.p95 = f64::NAN;
        assert!(assess(&s, &m, 100.0, 1.0, 30.0).is_empty());
    }

    #[test]
    fn views_from_readings_and_missing_readings() {
        let s = state(&[("a", true, 10.0), ("b", false, 0.0)]);
        let m = metrics(&[("a", 99.5)]);
        let v = view(Pool::Cpu, &s, Some(&m), 100.0);
        assert_eq!(v.spec_replicas, 2);
        assert_eq!(v.ready_pods(), 1);
        assert_eq!(v.queue_len, 1.0);
        assert_eq!(v.request_rate, 4.0);
        assert_eq!(v.p95_latency, Some(0.2));
        assert_eq!(v.pods[0].in_flight, 2);
        assert_eq!(v.external_metric("queue_len"), Some(1.0));
        // Failed queries: every metric missing, never 0.
        let v = view(Pool::Cpu, &s, None, 100.0);
        for name in ["queue_len", "p95_latency", "request_rate", "concurrency"] {
            assert_eq!(v.external_metric(name), None, "{name}");
        }
        assert!(v.request_rate.is_nan());
        assert_eq!(v.spec_replicas, 2);
    }

    #[test]
    fn counters_survive_restarts_and_scale_down() {
        let mut c = Counters::default();
        let m = |xs: &[(&str, f64)]| xs.iter().map(|(p, v)| (p.to_string(), *v)).collect();
        assert_eq!(c.update(&m(&[("a", 100.0)])), 0.0, "baseline");
        assert_eq!(c.update(&m(&[("a", 110.0)])), 10.0);
        // b appears (counts from 0), a restarts (counts from 0).
        assert_eq!(c.update(&m(&[("a", 3.0), ("b", 5.0)])), 18.0);
        // a leaves: nothing lost, nothing added.
        assert_eq!(c.update(&m(&[("b", 6.0)])), 19.0);
    }
}
