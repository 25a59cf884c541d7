//! The control loop: every period read the apiserver and Prometheus, build the pools' views and
//! the policy's observation (`kis_autoscale::obs`, the builder training used), ask the rule and
//! the policy, pick and clamp per the mode ([`super::safety`]), publish through kis-adapter, and
//! record the decision (one log line, `/metrics`, optionally a JSON line).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use kis_autoscale::obs::{self, MAX_DELTA, ObsInput, RateHistory};
use kis_autoscale::{Autoscaler, Pool, PoolView};
use serde::Serialize;

use super::apiserver::{Apiserver, PoolState};
use super::config::LiveConfig;
use super::metrics::Metrics;
use super::observe::{self, Counters, PoolMetrics, Queries};
use super::prom::{PromError, Prometheus};
use super::publish::{PublishError, Publisher};
use super::safety::{self, Mode, Reason, Source};

/// One pool's part of a decision.
#[derive(Clone, Debug, Serialize)]
pub struct PoolDecision {
    /// gpu or cpu.
    pub pool: Pool,
    /// Deployment `spec.replicas` read this period.
    pub spec: u32,
    /// Ready pods.
    pub ready: u32,
    /// Pending requests in the pool (NaN when unread).
    pub queue: f64,
    /// Completed req/s (NaN when unread).
    pub request_rate: f64,
    /// The rule's target.
    pub rule: Option<u32>,
    /// The policy's target.
    pub policy: Option<u32>,
    /// What was published.
    pub published: u32,
    /// Where it came from.
    pub source: Source,
    /// Whether the publish reached the adapter.
    pub publish_ok: bool,
}

/// One decision, as written to `--decisions` (one JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// Unix seconds at the start of the period.
    pub t: f64,
    /// The mode.
    pub mode: Mode,
    /// Why the rule decided instead of the policy.
    pub fallback: Option<Reason>,
    /// What failed, one line each.
    pub problems: Vec<String>,
    /// Per managed pool.
    pub pools: Vec<PoolDecision>,
    /// The observation the policy read.
    pub obs: Vec<f32>,
    /// Seconds from the start of the period to the targets published.
    pub latency_s: f64,
}

/// A failure that stops the agent (the caller prints it as one line and exits 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The loop's state.
pub struct Agent {
    cfg: LiveConfig,
    prom: Prometheus,
    api: Apiserver,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    rules: [Option<Box<dyn Autoscaler>>; 2],
    queries: [Option<Queries>; 2],
    /// What was last published per pool (the policy's `target` input); None before the first read.
    targets: Option<[u32; 2]>,
    history: RateHistory,
    success: [Counters; 2],
    failure: [Counters; 2],
    arrivals: f64,
    published_once: bool,
    out: Option<std::fs::File>,
}

type Readings = [Option<Result<PoolMetrics, String>>; 2];

impl Agent {
    /// A loop over connected clients.
    pub fn new(
        cfg: LiveConfig,
        prom: Prometheus,
        api: Apiserver,
        publisher: Publisher,
        metrics: Arc<Metrics>,
        out: Option<std::fs::File>,
    ) -> Self {
        let rules = [cfg.build_rule(0), cfg.build_rule(1)];
        let queries = [0, 1].map(|i| {
            cfg.pools[i].as_ref().map(|p| Queries {
                selector: p.selector.clone(),
                pod_label: cfg.args.pod_label.clone(),
                window: cfg.rate_window,
            })
        });
        Agent {
            cfg,
            prom,
            api,
            publisher,
            metrics,
            rules,
            queries,
            targets: None,
            history: RateHistory::new(),
            success: Default::default(),
            failure: Default::default(),
            arrivals: 0.0,
            published_once: false,
            out,
        }
    }

    /// Reads every managed pool from the apiserver.
    async fn read_pools(&self) -> Result<[Option<PoolState>; 2], String> {
        let mut states = [None, None];
        for (i, p) in self.cfg.pools.iter().enumerate() {
            if let Some(p) = p {
                states[i] = Some(self.api.pool(&p.deployment).await?);
            }
        }
        Ok(states)
    }

    /// Runs the pools' Prometheus queries on a blocking thread.
    async fn read_metrics(&self) -> Readings {
        let (prom, queries) = (self.prom.clone(), self.queries.clone());
        tokio::task::spawn_blocking(move || {
            queries.map(|q| q.map(|q| q.read(&prom).map_err(|e: PromError| e.to_string())))
        })
        .await
        .unwrap_or_else(|e| [Some(Err(format!("query task: {e}"))), None])
    }

    /// Feeds the rate history from this period's counters (all pools read).
    fn push_history(&mut self, now: f64, m: &[Option<&PoolMetrics>; 2], p95: Option<f64>) {
        let (mut done, mut failed, mut queue) = (0.0, 0.0, 0.0);
        for i in 0..2 {
            if let Some(m) = m[i] {
                done += self.success[i].update(&m.success);
                failed += self.failure[i].update(&m.failure);
                queue += m.queue.values().filter(|x| x.is_finite()).sum::<f64>();
            }
        }
        // Arrivals = completed + failed + what is still queued: Triton counts no arrivals itself.
        let total = done + failed + queue;
        self.arrivals = self.arrivals.max(total);
        self.history.push_counters(now, self.arrivals, done, p95);
    }

    /// One period: read, decide, publish, record.
    pub async fn step(&mut self) -> Result<Decision, Fatal> {
        let t0 = Instant::now();
        let now = unix_now();
        let states = match self.read_pools().await {
            Ok(s) => s,
            Err(e) => return self.hold(now, t0, e).await,
        };
        let targets = *self.targets.get_or_insert_with(|| {
            [0, 1].map(|i| states[i].as_ref().map_or(0, |s| s.spec_replicas))
        });
        let readings = self.read_metrics().await;
        let mut problems: Vec<(Reason, String)> = Vec::new();
        let mut ok: [Option<&PoolMetrics>; 2] = [None, None];
        for i in 0..2 {
            match (&readings[i], &states[i]) {
                (Some(Ok(m)), Some(s)) => {
                    problems.extend(observe::assess(
                        s,
                        m,
                        now,
                        self.cfg.args.scrape_interval,
                        self.cfg.args.discovery_grace,
                    ));
                    ok[i] = Some(m);
                }
                (Some(Err(e)), _) => problems.push((Reason::QueryFailed, e.clone())),
                _ => {}
            }
        }
        let pools = [Pool::Gpu, Pool::Cpu];
        let views: [PoolView; 2] = [0, 1].map(|i| match &states[i] {
            Some(s) => observe::view(pools[i], s, ok[i], now),
            None => PoolView::empty(pools[i], now, 0),
        });
        let all_read = (0..2).all(|i| states[i].is_none() || ok[i].is_some());
        let p95 = obs::combined_p95(views[0].p95_latency, views[1].p95_latency);
        if all_read {
            self.push_history(now, &ok, p95);
        }
        let input = ObsInput {
            gpu: &views[0],
            cpu: &views[1],
            target: targets,
            history: &self.history,
        };
        let o = obs::observation(self.cfg.obs, &self.cfg.capacity, &input);
        let policy = self.policy_targets(&o, targets);
        if policy.is_some()
            && let Some(n) = &self.cfg.norm
            && let Some((i, x, z)) = safety::out_of_range(&o, n)
        {
            let name = self.cfg.obs.names().get(i).copied().unwrap_or("?");
            problems.push((
                Reason::OutOfRange,
                format!("{name} = {x:.4} is {z:.1} standard deviations from the training mean"),
            ));
        }
        let reasons: Vec<Reason> = problems.iter().map(|p| p.0).collect();
        let fallback = safety::first_reason(&reasons);
        let mut decision = Decision {
            t: now,
            mode: self.cfg.mode,
            fallback,
            problems: problems.into_iter().map(|p| p.1).collect(),
            pools: Vec::new(),
            obs: o,
            latency_s: 0.0,
        };
        let mut next = targets;
        for i in 0..2 {
            let Some(pc) = &self.cfg.pools[i] else {
                continue;
            };
            let rule = self.rules[i].as_mut().map(|r| r.decide(&views[i]));
            let c = safety::choose(
                self.cfg.mode,
                rule.unwrap_or(targets[i]),
                policy.map(|p| p[i]),
                fallback,
                &pc.bounds,
            );
            next[i] = c.target;
            decision.pools.push(PoolDecision {
                pool: pools[i],
                spec: views[i].spec_replicas,
                ready: views[i].ready_pods(),
                queue: views[i].queue_len,
                request_rate: views[i].request_rate,
                rule,
                policy: policy.map(|p| p[i]),
                published: c.target,
                source: c.source,
                publish_ok: false,
            });
        }
        self.publish_all(&mut decision).await?;
        self.targets = Some(next);
        decision.latency_s = t0.elapsed().as_secs_f64();
        self.record(&decision);
        Ok(decision)
    }

    /// The policy's target per pool from the last targets (None without a policy): its delta
    /// per pool, masked (an unmanaged pool is held) and clamped to the trained step and bounds.
    fn policy_targets(&mut self, o: &[f32], targets: [u32; 2]) -> Option<[u32; 2]> {
        let policy = self.cfg.policy.as_mut()?;
        let cap = &self.cfg.capacity;
        let mut mask = cap.action_mask(targets);
        for i in 0..2 {
            if self.cfg.pools[i].is_none() {
                for k in 0..5 {
                    mask[i * 5 + k] = k == MAX_DELTA as usize;
                }
            }
        }
        let mut a = policy.act(o, &mask);
        for (d, idx) in a.iter_mut().take(2).enumerate() {
            if !mask.get(d * 5 + *idx).copied().unwrap_or(false) {
                *idx = MAX_DELTA as usize;
            }
        }
        Some([0, 1].map(|i| cap.apply_delta(i, targets[i], a[i] as i64 - MAX_DELTA)))
    }

    /// Nothing could be read: republish the last targets (if any) so the HPA keeps them.
    async fn hold(&mut self, now: f64, t0: Instant, err: String) -> Result<Decision, Fatal> {
        let mut decision = Decision {
            t: now,
            mode: self.cfg.mode,
            fallback: Some(Reason::Apiserver),
            problems: vec![err],
            pools: Vec::new(),
            obs: Vec::new(),
            latency_s: 0.0,
        };
        if let Some(targets) = self.targets {
            for i in 0..2 {
                if self.cfg.pools[i].is_some() {
                    decision.pools.push(PoolDecision {
                        pool: [Pool::Gpu, Pool::Cpu][i],
                        spec: 0,
                        ready: 0,
                        queue: f64::NAN,
                        request_rate: f64::NAN,
                        rule: None,
                        policy: None,
                        published: targets[i],
                        source: Source::Hold,
                        publish_ok: false,
                    });
                }
            }
            self.publish_all(&mut decision).await?;
        }
        decision.latency_s = t0.elapsed().as_secs_f64();
        self.record(&decision);
        Ok(decision)
    }

    /// Publishes each pool's target; a refused token, or an adapter never reached, is fatal.
    async fn publish_all(&mut self, d: &mut Decision) -> Result<(), Fatal> {
        let ttl = self.cfg.ttl.ceil() as u64;
        for pd in &mut d.pools {
            let i = if pd.pool == Pool::Gpu { 0 } else { 1 };
            let Some(pc) = &self.cfg.pools[i] else {
                continue;
            };
            let labels = [("target".to_string(), pc.deployment.name.clone())].into();
            let r = self
                .publisher
                .publish(
                    &pc.deployment.namespace,
                    &self.cfg.args.metric,
                    &labels,
                    pd.published as f64,
                    ttl,
                )
                .await;
            match r {
                Ok(_) => {
                    pd.publish_ok = true;
                    self.published_once = true;
                }
                Err(e @ PublishError::Refused { .. }) => return Err(Fatal(e.to_string())),
                Err(e) if !self.published_once => {
                    return Err(Fatal(format!("cannot publish the first target: {e}")));
                }
                Err(e) => {
                    let name = pool_name(pd.pool);
                    self.metrics.publish_error(name);
                    tracing::warn!(
                        pool = name,
                        "publish failed (the adapter's last target expires after its TTL; the HPA then holds): {e}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Metrics, the log line and the JSON line of a decision.
    fn record(&mut self, d: &Decision) {
        let m = &self.metrics;
        if let Some(r) = d.fallback {
            m.fallback(r);
        }
        let mut parts = Vec::new();
        for p in &d.pools {
            let name = pool_name(p.pool);
            m.decision(name, p.source.as_str());
            m.target(name, "published", p.published as f64);
            if let Some(r) = p.rule {
                m.target(name, "rule", r as f64);
            }
            if let Some(x) = p.policy {
                m.target(name, "policy", x as f64);
            }
            parts.push(format!(
                "{name}: spec={} ready={} queue={:.1} rate={:.2} rule={} policy={} published={} source={}{}",
                p.spec,
                p.ready,
                p.queue,
                p.request_rate,
                p.rule.map_or("-".into(), |x| x.to_string()),
                p.policy.map_or("-".into(), |x| x.to_string()),
                p.published,
                p.source.as_str(),
                if p.publish_ok { "" } else { " (not published)" },
            ));
        }
        let names = self.cfg.obs.names();
        m.observe(names, &d.obs);
        m.latency.observe(d.latency_s);
        let features: Vec<String> = names
            .iter()
            .zip(&d.obs)
            .map(|(n, v)| format!("{n}={v:.3}"))
            .collect();
        tracing::info!(
            mode = %d.mode,
            fallback = d.fallback.map_or("none", Reason::as_str),
            problems = %d.problems.join("; "),
            pools = %parts.join("; "),
            obs = %features.join(" "),
            latency_ms = (d.latency_s * 1000.0).round(),
            "decision"
        );
        if let Some(f) = &mut self.out {
            let line = serde_json::to_string(d).unwrap_or_default();
            if let Err(e) = writeln!(f, "{line}") {
                tracing::warn!("--decisions: {e}");
            }
        }
    }
}

fn pool_name(p: Pool) -> &'static str {
    match p {
        Pool::Gpu => "gpu",
        Pool::Cpu => "cpu",
    }
}

/// Runs the loop until SIGTERM / SIGINT (or `--max-decisions`); the targets are left to expire.
pub async fn run_loop(mut agent: Agent) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| anyhow!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| anyhow!("SIGINT handler: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(agent.cfg.period));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let max = agent.cfg.args.max_decisions;
    let ttl = agent.cfg.ttl;
    let mut n = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {}
        }
        agent.step().await.map_err(|e| anyhow!(e))?;
        n += 1;
        if max.is_some_and(|m| n >= m) {
            break;
        }
    }
    tracing::info!(
        decisions = n,
        "stopping: the last targets expire in kis-adapter after {ttl} s (then an error the HPA answers by holding its count, never 0)"
    );
    Ok(())
}
