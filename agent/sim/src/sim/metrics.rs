//! What is observed: Prometheus-like scrapes, the per-scrape time series, the autoscaler loops'
//! views and decisions, and the run's summary.

use super::*;

impl Simulation {
    pub(super) fn on_scrape(&mut self) {
        let now = self.now;
        let m = self.cfg.metrics.clone();
        let rate_slots = (m.rate_window / m.scrape_interval).round() as usize + 1;
        let lat_slots = ((m.latency_window / m.scrape_interval).round() as usize).max(1);
        let pod_slots = rate_slots.max(cpu_slots(&m));
        for pod in self.pods.iter_mut() {
            if matches!(
                pod.phase,
                Phase::Starting | Phase::Ready | Phase::Terminating
            ) {
                if pod.samples.len() >= pod_slots {
                    pod.samples.pop_front();
                }
                pod.samples.push_back(PodSample {
                    t: now,
                    busy: pod.busy,
                    queue: pod.queue.len() as u32,
                    in_flight: pod.in_flight(),
                });
            }
        }
        for pi in 0..2 {
            let queue: u64 = self.pods[..]
                .iter()
                .filter(|p| p.pool as usize == pi && p.phase != Phase::Gone)
                .map(|p| p.queue.len() as u64)
                .sum();
            let pool = &mut self.pools[pi];
            pool.touch_inflight(now);
            pool.touch_pods(now);
            if pool.scrapes.len() >= rate_slots {
                pool.scrapes.pop_front();
            }
            pool.scrapes.push_back(PoolScrape {
                t: now,
                arrivals: pool.arrivals,
                inflight_area: pool.inflight_area,
                queue,
            });
            let mut h = if pool.hists.len() >= lat_slots {
                pool.hists.pop_front().unwrap_or_default()
            } else {
                Histogram::new()
            };
            std::mem::swap(&mut h, &mut pool.interval);
            pool.interval.clear();
            pool.hists.push_back(h);
            // The window's histogram is rebuilt in place (no allocation; the histograms' occupied
            // ranges keep the merge to the buckets in use).
            pool.window.clear();
            for h in &pool.hists {
                pool.window.merge(h);
            }
            pool.p95 = pool.window.quantile(0.95);
        }
        self.scraped = ScrapedTotals {
            t: now,
            arrivals: self.total_arrivals,
            completed: self.pools.iter().map(|p| p.completed).sum(),
        };
        if self.series.is_some() {
            self.push_series_row();
        }
        self.events.push(now + m.scrape_interval, Ev::Scrape);
    }

    pub(super) fn push_series_row(&mut self) {
        let now = self.now;
        let prev = self.prev;
        let dt = (now - prev.t).max(1e-9);
        let completed: u64 = self.pools.iter().map(|p| p.completed).sum();
        let rejected: u64 = self.pools.iter().map(|p| p.rejected).sum::<u64>() + self.no_endpoint;
        let mut interval = Histogram::new();
        for p in &self.pools {
            if let Some(h) = p.hists.back() {
                interval.merge(h);
            }
        }
        let util = |pi: usize| {
            let p = &self.pools[pi];
            let cap = p.ready as f64 * p.cfg.instances as f64 * dt;
            if cap > 0.0 {
                ((p.busy - prev.busy[pi]) / cap).min(1.0)
            } else {
                0.0
            }
        };
        let row = SeriesRow {
            t: now,
            offered_rps: if now > 0.0 {
                (self.total_arrivals - prev.arrivals) as f64 / dt
            } else {
                0.0
            },
            throughput_rps: if now > 0.0 {
                (completed - prev.completed) as f64 / dt
            } else {
                0.0
            },
            rejected: rejected - prev.rejected,
            p50: interval.quantile(0.5),
            p95: interval.quantile(0.95),
            gpu_spec: self.pools[0].spec,
            gpu_ready: self.pools[0].ready,
            cpu_spec: self.pools[1].spec,
            cpu_ready: self.pools[1].ready,
            gpu_util: util(0),
            cpu_util: util(1),
            queue: self
                .pools
                .iter()
                .filter_map(|p| p.scrapes.back())
                .map(|s| s.queue)
                .sum(),
            in_flight: self.in_flight(),
        };
        self.prev = SeriesPrev {
            t: now,
            arrivals: self.total_arrivals,
            completed,
            rejected,
            busy: [self.pools[0].busy, self.pools[1].busy],
        };
        if let Some(s) = self.series.as_mut() {
            s.push(row);
        }
    }

    pub(super) fn on_control(&mut self, pi: usize) {
        let view = self.view(POOLS[pi]);
        let Some(mut scaler) = self.pools[pi].scaler.take() else {
            return;
        };
        let n = scaler.decide(&view);
        let period = scaler.period().max(1e-3);
        self.pools[pi].scaler = Some(scaler);
        self.set_spec(pi, n, true);
        self.events.push(self.now + period, Ev::Control(pi as u8));
    }

    /// What an autoscaler of `pool` sees now: values as of the last scrape, windowed as configured.
    pub fn view(&self, pool: Pool) -> PoolView {
        let pi = pool_index(pool);
        let p = &self.pools[pi];
        let (rate, concurrency, queue) = match (p.scrapes.front(), p.scrapes.back()) {
            (Some(a), Some(b)) if b.t > a.t => {
                let dt = b.t - a.t;
                (
                    (b.arrivals - a.arrivals) as f64 / dt,
                    (b.inflight_area - a.inflight_area) / dt,
                    b.queue as f64,
                )
            }
            (_, Some(b)) => (0.0, 0.0, b.queue as f64),
            _ => (0.0, 0.0, 0.0),
        };
        let prof = &p.cfg.profile;
        let m = &self.cfg.metrics;
        let rate_slots = (m.rate_window / m.scrape_interval).round() as usize + 1;
        let cpu_slots = cpu_slots(m);
        // Busy fraction of the pod's instances between the sample `slots - 1` scrapes back and the last.
        let busy_rate = |pod: &Pod, slots: usize| {
            let n = pod.samples.len();
            match (pod.samples.get(n.saturating_sub(slots)), pod.samples.back()) {
                (Some(a), Some(b)) if b.t > a.t => Some((b.busy - a.busy) / (b.t - a.t)),
                _ => None,
            }
        };
        let pods = p
            .live
            .iter()
            .map(|&id| {
                let pod = &self.pods[id as usize];
                let cpu = busy_rate(pod, cpu_slots)
                    .filter(|_| p.cfg.cpu_request > 0.0)
                    .map(|r| {
                        (prof.cpu_idle_cores
                            + r.min(p.cfg.instances as f64) * prof.cpu_busy_cores_per_instance)
                            / p.cfg.cpu_request
                    });
                let gpu = busy_rate(pod, rate_slots)
                    .filter(|_| pool == Pool::Gpu)
                    .map(|r| (r / p.cfg.instances as f64).min(1.0));
                let last = pod.samples.back();
                PodView {
                    ready: pod.phase == Phase::Ready,
                    created_at: pod.created_at,
                    ready_since: pod.ready_since,
                    cpu_utilization: cpu,
                    gpu_utilization: gpu,
                    queue_len: last.map_or(0, |s| s.queue),
                    in_flight: last.map_or(0, |s| s.in_flight),
                }
            })
            .collect();
        // Built-in names (queue_len, p95_latency, ...) are resolved by PoolView::external_metric.
        let external = p.external.clone();
        PoolView {
            pool,
            now: self.now,
            spec_replicas: p.spec,
            pods,
            request_rate: rate,
            concurrency,
            p95_latency: p.p95,
            queue_len: queue,
            external,
        }
    }

    /// The time series recorded so far (empty unless `record_series`).
    pub fn series(&self) -> &[SeriesRow] {
        self.series.as_deref().unwrap_or(&[])
    }

    /// Latency histogram of completed requests over both pools.
    pub fn latency(&self) -> Histogram {
        let mut h = self.pools[0].latency.clone();
        h.merge(&self.pools[1].latency);
        h
    }

    /// Results so far.
    pub fn summary(&self) -> Summary {
        let now = self.now;
        let lat = self.latency();
        let pools: Vec<PoolSummary> = (0..2)
            .map(|pi| {
                let p = &self.pools[pi];
                let dt = now - p.area_t;
                let held = p.held_area + p.held as f64 * dt;
                let ready = p.ready_area + p.ready as f64 * dt;
                PoolSummary {
                    pool: POOLS[pi],
                    autoscaler: p.scaler_name.clone(),
                    arrivals: p.arrivals,
                    completed: p.completed,
                    rejected: p.rejected,
                    killed: p.killed,
                    in_flight: p.inflight,
                    over_slo: p.over_slo,
                    replica_seconds: held,
                    ready_replica_seconds: ready,
                    mean_replicas: if now > 0.0 { held / now } else { 0.0 },
                    max_replicas: p.max_live,
                    final_replicas: p.spec,
                    scaling_actions: p.actions,
                    utilization: if ready > 0.0 {
                        (p.busy / (ready * p.cfg.instances as f64)).min(1.0)
                    } else {
                        0.0
                    },
                    mean_wait: (p.waited > 0).then(|| p.wait_sum / p.waited as f64),
                    waited: p.waited,
                    wait_seconds: p.wait_sum,
                    p95: p.latency.quantile(0.95),
                }
            })
            .collect();
        let completed: u64 = pools.iter().map(|p| p.completed).sum();
        let rejected: u64 = pools.iter().map(|p| p.rejected).sum::<u64>() + self.no_endpoint;
        let killed: u64 = pools.iter().map(|p| p.killed).sum();
        let over: u64 = pools.iter().map(|p| p.over_slo).sum();
        let waited: u64 = self.pools.iter().map(|p| p.waited).sum();
        let wait_sum: f64 = self.pools.iter().map(|p| p.wait_sum).sum();
        Summary {
            seed: self.cfg.seed,
            simulated_seconds: now,
            arrivals: self.total_arrivals,
            completed,
            rejected,
            rejected_no_endpoint: self.no_endpoint,
            killed,
            in_flight: self.in_flight(),
            mean_latency: lat.mean(),
            p50: lat.quantile(0.5),
            p95: lat.quantile(0.95),
            p99: lat.quantile(0.99),
            max_latency: lat.max(),
            mean_wait: (waited > 0).then(|| wait_sum / waited as f64),
            slo: self.cfg.slo,
            over_slo_fraction: if completed > 0 {
                over as f64 / completed as f64
            } else {
                0.0
            },
            // Requests still queued or executing when the run stops count as missed: in an
            // under-provisioned run they are the backlog that never got an answer, and leaving them
            // out made a pool that served a tenth of its load look good (issue 13).
            slo_miss_fraction: if self.total_arrivals > 0 {
                (over + rejected + killed + self.in_flight()) as f64 / self.total_arrivals as f64
            } else {
                0.0
            },
            gpu_hours: pools[0].replica_seconds / 3600.0,
            events: self.events_done,
            pools,
        }
    }
}
