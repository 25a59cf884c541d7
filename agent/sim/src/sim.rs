//! The discrete-event engine: arrivals from a kis-traffic schedule, a Service routing over Ready pods,
//! per-pod dynamic-batching queues served by model instances, the pod lifecycle on a finite cluster,
//! Prometheus-like scrapes and the per-pool autoscaler loops.
//!
//! Arrivals are not put in the heap: the engine merges the (sorted) arrival stream with the event
//! heap, so the heap only holds batch completions, timers and periodic events and stays small.

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use kis_traffic::{Arrivals, Profile};

use crate::config::{PoolConfig, Routing, SimConfig};
use crate::dist::Sampler;
use crate::histogram::Histogram;
use crate::profile::ServiceModel;
use crate::queue::{Ev, EventQueue};
use crate::report::{PoolSummary, SeriesRow, Summary};
use crate::scaler::{Autoscaler, PodView, Pool, PoolView, ScalerContext};
use crate::{Error, Result};

/// Both pools in index order (0 = GPU, 1 = CPU).
pub const POOLS: [Pool; 2] = [Pool::Gpu, Pool::Cpu];

/// Index of a pool in [`POOLS`].
pub fn pool_index(p: Pool) -> usize {
    match p {
        Pool::Gpu => 0,
        Pool::Cpu => 1,
    }
}

/// Pod samples spanning the CPU utilisation window: whole scrape intervals, at least one, plus one.
fn cpu_slots(m: &crate::config::MetricsConfig) -> usize {
    ((m.cpu_window / m.scrape_interval).round() as usize).max(1) + 1
}

/// Where a pod is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Created, waiting for a node with a free GPU / enough CPU.
    Pending,
    /// Scheduled: pulling the image, loading the model, warming up.
    Starting,
    /// Receiving traffic.
    Ready,
    /// Removed from the endpoints, finishing its in-flight requests.
    Terminating,
    /// Slot free.
    Gone,
}

const NO_NODE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct PodSample {
    t: f64,
    busy: f64,
    queue: u32,
    in_flight: u32,
}

#[derive(Debug)]
struct Pod {
    pool: u8,
    phase: Phase,
    epoch: u32,
    node: u32,
    created_at: f64,
    ready_since: Option<f64>,
    queue: VecDeque<f64>,
    free: Vec<u32>,
    batches: Vec<Vec<f64>>,
    executing: u32,
    timer_at: f64,
    busy: f64,
    samples: VecDeque<PodSample>,
    /// Arrival-rate estimate (req/s) as of `rate_t`, kept only when the profile's overhead depends on
    /// the rate: an exponentially weighted count, `rate <- rate * exp(-dt / window) + 1 / window` per
    /// arrival, whose expectation under a steady rate is that rate.
    rate: f64,
    rate_t: f64,
}

impl Pod {
    #[inline]
    fn in_flight(&self) -> u32 {
        self.queue.len() as u32 + self.executing
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PoolScrape {
    t: f64,
    arrivals: u64,
    inflight_area: f64,
    queue: u64,
}

struct PoolRt {
    cfg: PoolConfig,
    model: ServiceModel,
    startup: [Sampler; 3],
    gpus: u32,
    spec: u32,
    endpoints: Vec<u32>,
    rr: usize,
    live: Vec<u32>,
    arrivals: u64,
    completed: u64,
    rejected: u64,
    killed: u64,
    over_slo: u64,
    inflight: u64,
    inflight_area: f64,
    inflight_t: f64,
    held: u32,
    ready: u32,
    held_area: f64,
    ready_area: f64,
    area_t: f64,
    busy: f64,
    wait_sum: f64,
    waited: u64,
    latency: Histogram,
    interval: Histogram,
    scrapes: VecDeque<PoolScrape>,
    hists: VecDeque<Histogram>,
    p95: Option<f64>,
    actions: u64,
    max_live: u32,
    scaler: Option<Box<dyn Autoscaler>>,
    scaler_name: String,
    external: BTreeMap<String, Option<f64>>,
}

impl PoolRt {
    fn new(cfg: &PoolConfig, pool: Pool) -> Self {
        PoolRt {
            model: ServiceModel::new(&cfg.profile, cfg.max_batch),
            startup: [
                cfg.startup.image_pull.sampler(),
                cfg.startup.model_load.sampler(),
                cfg.startup.warmup.sampler(),
            ],
            gpus: u32::from(pool == Pool::Gpu),
            spec: 0,
            endpoints: Vec::new(),
            rr: 0,
            live: Vec::new(),
            arrivals: 0,
            completed: 0,
            rejected: 0,
            killed: 0,
            over_slo: 0,
            inflight: 0,
            inflight_area: 0.0,
            inflight_t: 0.0,
            held: 0,
            ready: 0,
            held_area: 0.0,
            ready_area: 0.0,
            area_t: 0.0,
            busy: 0.0,
            wait_sum: 0.0,
            waited: 0,
            latency: Histogram::new(),
            interval: Histogram::new(),
            scrapes: VecDeque::new(),
            hists: VecDeque::new(),
            p95: None,
            actions: 0,
            max_live: 0,
            scaler: None,
            scaler_name: "fixed".into(),
            external: BTreeMap::new(),
            cfg: cfg.clone(),
        }
    }

    #[inline]
    fn touch_inflight(&mut self, now: f64) {
        self.inflight_area += self.inflight as f64 * (now - self.inflight_t);
        self.inflight_t = now;
    }

    fn touch_pods(&mut self, now: f64) {
        let dt = now - self.area_t;
        self.held_area += self.held as f64 * dt;
        self.ready_area += self.ready as f64 * dt;
        self.area_t = now;
    }
}

#[derive(Clone, Copy, Debug)]
struct Node {
    free_gpus: u32,
    free_cpus: f64,
}

/// Counters of the previous series row.
#[derive(Clone, Copy, Debug, Default)]
struct SeriesPrev {
    t: f64,
    arrivals: u64,
    completed: u64,
    rejected: u64,
    busy: [f64; 2],
}

/// One simulated cluster. Build with [`Simulation::new`], advance with [`Simulation::run`] or
/// [`Simulation::run_until`], read results with [`Simulation::summary`].
pub struct Simulation {
    cfg: SimConfig,
    profile: Profile,
    now: f64,
    end: f64,
    rng: Pcg64Mcg,
    events: EventQueue,
    arrivals: Arrivals,
    next_arrival: f64,
    pods: Vec<Pod>,
    free_slots: Vec<u32>,
    pending: VecDeque<(u32, u32)>,
    nodes: Vec<Node>,
    provisioning: u32,
    pools: [PoolRt; 2],
    total_arrivals: u64,
    no_endpoint: u64,
    events_done: u64,
    series: Option<Vec<SeriesRow>>,
    prev: SeriesPrev,
    step_hist: Option<Histogram>,
    cohorts: Option<Cohorts>,
    scraped: ScrapedTotals,
    swrr: [f64; 2],
}

/// Service-wide request counters as of the last scrape (what Prometheus holds).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScrapedTotals {
    /// Time of the scrape, seconds.
    pub t: f64,
    /// Requests offered so far.
    pub arrivals: u64,
    /// Requests completed so far.
    pub completed: u64,
}

/// Running totals of a simulation since its start (index 0 = GPU pool, 1 = CPU pool).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Requests offered.
    pub arrivals: u64,
    /// Requests completed (in time or late).
    pub completed: u64,
    /// Requests rejected (queue full or no endpoint).
    pub rejected: u64,
    /// Requests killed at a pod's grace deadline.
    pub killed: u64,
    /// Pod-seconds held on nodes (what a cluster bills).
    pub replica_seconds: [f64; 2],
    /// Pod-seconds Ready.
    pub ready_replica_seconds: [f64; 2],
    /// Busy seconds per model instance (started batches' execution time / instances).
    pub busy_seconds: [f64; 2],
}

/// Arrival times of the requests not yet assigned to a closed cohort, and of those among them that
/// completed within the SLO (see [`Simulation::take_cohort`]).
#[derive(Debug, Default)]
struct Cohorts {
    arrivals: VecDeque<f64>,
    met: Vec<f64>,
}

impl Simulation {
    /// Validates `cfg`, builds its workload from kis-traffic and its autoscalers.
    pub fn new(cfg: SimConfig) -> Result<Self> {
        cfg.validate()?;
        let profile = cfg
            .workload
            .shape
            .build(cfg.seed)
            .map_err(Error::Workload)?
            .scaled(cfg.workload.scale);
        Self::with_profile(cfg, profile)
    }

    /// Like [`Simulation::new`] with an already built (and scaled) rate profile.
    pub fn with_profile(cfg: SimConfig, profile: Profile) -> Result<Self> {
        cfg.validate()?;
        // Separate streams so that changing e.g. a service time does not shift every arrival.
        let arrivals = profile.arrivals(cfg.workload.arrivals, cfg.seed ^ crate::ARRIVAL_STREAM);
        let rng = Pcg64Mcg::seed_from_u64(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x51);
        let mut pools = [
            PoolRt::new(&cfg.pools.gpu, Pool::Gpu),
            PoolRt::new(&cfg.pools.cpu, Pool::Cpu),
        ];
        for (i, pool) in pools.iter_mut().enumerate() {
            if let Some(spec) = &pool.cfg.autoscaler {
                let ctx = ScalerContext {
                    pool: POOLS[i],
                    config: &cfg,
                    profile: &profile,
                };
                let s = spec.build(&ctx)?;
                pool.scaler_name = s.name().to_string();
                pool.scaler = Some(s);
            }
        }
        let nodes = (0..cfg.cluster.nodes)
            .map(|_| Node {
                free_gpus: cfg.cluster.gpus_per_node,
                free_cpus: cfg.cluster.cpus_per_node,
            })
            .collect();
        let mut sim = Simulation {
            end: profile.duration(),
            profile,
            now: 0.0,
            rng,
            events: EventQueue::default(),
            arrivals,
            next_arrival: f64::INFINITY,
            pods: Vec::new(),
            free_slots: Vec::new(),
            pending: VecDeque::new(),
            nodes,
            provisioning: 0,
            pools,
            total_arrivals: 0,
            no_endpoint: 0,
            events_done: 0,
            series: cfg.record_series.then(Vec::new),
            prev: SeriesPrev::default(),
            step_hist: None,
            cohorts: None,
            scraped: ScrapedTotals::default(),
            swrr: [0.0; 2],
            cfg,
        };
        sim.next_arrival = sim.arrivals.next().unwrap_or(f64::INFINITY);
        for pi in 0..2 {
            let n = sim.pools[pi].cfg.replicas;
            sim.pools[pi].spec = n;
            sim.pools[pi].max_live = n;
            for _ in 0..n {
                sim.create_pod(pi);
            }
        }
        // The initial replicas that fit start Ready (a warmed-up cluster); the rest stay Pending.
        sim.schedule_pending(true);
        sim.events.push(0.0, Ev::Scrape);
        for pi in 0..2 {
            if let Some(s) = &sim.pools[pi].scaler {
                let p = s.period().max(1e-3);
                sim.events.push(p, Ev::Control(pi as u8));
            }
        }
        Ok(sim)
    }

    /// The configuration this run was built from.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The (scaled) rate profile driving the arrivals.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Current simulated time in seconds.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// End of the workload in seconds.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// Starts (or restarts) a histogram of every latency from now on, for per-step rewards.
    pub fn track_step_latency(&mut self) {
        self.step_hist = Some(Histogram::new());
    }

    /// Latencies recorded since the last call (or since tracking started); resets the tracker.
    pub fn take_step_latency(&mut self) -> Histogram {
        match self.step_hist.as_mut() {
            Some(h) => {
                let out = h.clone();
                h.clear();
                out
            }
            None => Histogram::new(),
        }
    }

    /// Starts (or restarts) recording arrival cohorts for [`Simulation::take_cohort`].
    pub fn track_cohorts(&mut self) {
        self.cohorts = Some(Cohorts::default());
    }

    /// Closes the cohort of requests that arrived before `until` (and after the previous cohort):
    /// returns (arrivals, of which completed within the SLO). Every other request of the cohort
    /// missed: rejected, killed, still waiting or late. Exact when `until <= now() - slo`, as a
    /// request can only meet the SLO by completing before its arrival + slo. (0, 0) when not
    /// tracking.
    pub fn take_cohort(&mut self, until: f64) -> (u64, u64) {
        let Some(c) = self.cohorts.as_mut() else {
            return (0, 0);
        };
        let mut n = 0;
        while c.arrivals.front().is_some_and(|&a| a < until) {
            c.arrivals.pop_front();
            n += 1;
        }
        let before = c.met.len();
        c.met.retain(|&a| a >= until);
        (n, (before - c.met.len()) as u64)
    }

    /// A pool's p95 latency over the latency window as of the last scrape (`PoolView::p95_latency`
    /// without building the view).
    pub fn scraped_p95(&self, pool: Pool) -> Option<f64> {
        self.pools[pool_index(pool)].p95
    }

    /// The request counters as of the last scrape.
    pub fn scraped_totals(&self) -> ScrapedTotals {
        self.scraped
    }

    /// Running totals, cheaply (what [`Simulation::summary`] reports, without its histograms).
    pub fn totals(&self) -> Totals {
        let now = self.now;
        let mut t = Totals {
            arrivals: self.total_arrivals,
            rejected: self.no_endpoint,
            ..Totals::default()
        };
        for (i, p) in self.pools.iter().enumerate() {
            let dt = now - p.area_t;
            t.completed += p.completed;
            t.rejected += p.rejected;
            t.killed += p.killed;
            t.replica_seconds[i] = p.held_area + p.held as f64 * dt;
            t.ready_replica_seconds[i] = p.ready_area + p.ready as f64 * dt;
            t.busy_seconds[i] = p.busy / p.cfg.instances.max(1) as f64;
        }
        t
    }

    /// Requests waiting or executing anywhere.
    pub fn in_flight(&self) -> u64 {
        self.pools[0].inflight + self.pools[1].inflight
    }

    /// Sets (or clears, with None) an external metric of `pool` as an external-metrics adapter would
    /// serve it to that pool's autoscaler.
    pub fn set_external(&mut self, pool: Pool, name: &str, value: Option<f64>) {
        self.pools[pool_index(pool)]
            .external
            .insert(name.to_string(), value);
    }

    /// Sets the routing weight of each pod of `pool` (the placement preference).
    pub fn set_weight(&mut self, pool: Pool, weight: f64) {
        self.pools[pool_index(pool)].cfg.weight = weight.max(0.0);
    }

    /// Replaces a pool's autoscaler (e.g. with a scripted one in tests); it first runs one period from now.
    pub fn set_autoscaler(&mut self, pool: Pool, scaler: Box<dyn Autoscaler>) {
        let pi = pool_index(pool);
        let had = self.pools[pi].scaler.is_some();
        let period = scaler.period().max(1e-3);
        self.pools[pi].scaler_name = scaler.name().to_string();
        self.pools[pi].scaler = Some(scaler);
        if !had {
            self.events.push(self.now + period, Ev::Control(pi as u8));
        }
    }

    /// Current spec.replicas of a pool.
    pub fn spec_replicas(&self, pool: Pool) -> u32 {
        self.pools[pool_index(pool)].spec
    }

    /// Ready replicas of a pool.
    pub fn ready_replicas(&self, pool: Pool) -> u32 {
        self.pools[pool_index(pool)].ready
    }

    /// Pods of a pool by phase (Pending, Starting, Ready, Terminating).
    pub fn pod_phases(&self, pool: Pool) -> [u32; 4] {
        let pi = pool_index(pool) as u8;
        let mut out = [0; 4];
        for p in self.pods.iter().filter(|p| p.pool == pi) {
            match p.phase {
                Phase::Pending => out[0] += 1,
                Phase::Starting => out[1] += 1,
                Phase::Ready => out[2] += 1,
                Phase::Terminating => out[3] += 1,
                Phase::Gone => {}
            }
        }
        out
    }

    /// Nodes in the cluster (not counting ones still provisioning).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Runs the whole workload (and the drain phase if configured).
    pub fn run(&mut self) -> Summary {
        self.run_until(self.end);
        if self.cfg.drain {
            let stop = self.end + self.cfg.drain_limit;
            while self.in_flight() > 0 && self.now < stop {
                if !self.step_one(stop) {
                    break;
                }
            }
        }
        self.summary()
    }

    /// Processes every arrival and event before `t` (exclusive); afterwards `now() == t`.
    pub fn run_until(&mut self, t: f64) {
        while self.step_one(t) {}
        if t > self.now {
            self.now = t;
        }
    }

    /// Processes the next arrival or event if it is before `stop`; false when there is none.
    #[inline]
    fn step_one(&mut self, stop: f64) -> bool {
        let te = self.events.next_time();
        let ta = self.next_arrival;
        if ta <= te {
            if ta >= stop {
                return false;
            }
            self.now = ta;
            self.next_arrival = self.arrivals.next().unwrap_or(f64::INFINITY);
            self.on_arrival(ta);
        } else {
            if te >= stop {
                return false;
            }
            let Some((t, ev)) = self.events.pop() else {
                return false;
            };
            self.now = t;
            self.on_event(ev);
        }
        self.events_done += 1;
        true
    }

    fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::Done { pod, inst, epoch } => self.on_done(pod, inst, epoch),
            Ev::Timer { pod, epoch } => {
                let p = &mut self.pods[pod as usize];
                if p.epoch == epoch && p.timer_at == self.now {
                    p.timer_at = f64::INFINITY;
                    self.dispatch(pod);
                }
            }
            Ev::Ready { pod, epoch } => self.on_ready(pod, epoch),
            Ev::Deadline { pod, epoch } => self.on_deadline(pod, epoch),
            Ev::Scrape => self.on_scrape(),
            Ev::Control(pi) => self.on_control(pi as usize),
            Ev::NodeUp => {
                self.provisioning -= 1;
                self.nodes.push(Node {
                    free_gpus: self.cfg.cluster.gpus_per_node,
                    free_cpus: self.cfg.cluster.cpus_per_node,
                });
                self.schedule_pending(false);
            }
        }
    }

    // === requests ===

    fn route(&mut self) -> Option<(usize, u32)> {
        let g = self.pools[0].endpoints.len();
        let c = self.pools[1].endpoints.len();
        let pi = match (g, c) {
            (0, 0) => return None,
            (_, 0) => 0,
            (0, _) => 1,
            _ => {
                // Smooth weighted round robin between the pools (nginx's algorithm): with equal pod
                // weights this interleaves exactly like one round robin over every Ready pod.
                let wg = self.pools[0].cfg.weight * g as f64;
                let wc = self.pools[1].cfg.weight * c as f64;
                self.swrr[0] += wg;
                self.swrr[1] += wc;
                let pick = usize::from(self.swrr[1] > self.swrr[0]);
                self.swrr[pick] -= wg + wc;
                pick
            }
        };
        let pool = &mut self.pools[pi];
        let pod = match self.cfg.routing {
            Routing::RoundRobin => {
                pool.rr += 1;
                if pool.rr >= pool.endpoints.len() {
                    pool.rr = 0;
                }
                pool.endpoints[pool.rr]
            }
            Routing::LeastOutstanding => {
                // Start the scan after the last pick so that ties rotate instead of piling on one pod.
                let n = pool.endpoints.len();
                pool.rr = (pool.rr + 1) % n;
                let mut best = pool.endpoints[pool.rr];
                let mut best_n = self.pods[best as usize].in_flight();
                for k in 1..n {
                    let id = pool.endpoints[(pool.rr + k) % n];
                    let f = self.pods[id as usize].in_flight();
                    if f < best_n {
                        best = id;
                        best_n = f;
                    }
                }
                best
            }
        };
        Some((pi, pod))
    }

    fn on_arrival(&mut self, t: f64) {
        self.total_arrivals += 1;
        if let Some(c) = self.cohorts.as_mut() {
            c.arrivals.push_back(t);
        }
        let Some((pi, id)) = self.route() else {
            self.no_endpoint += 1;
            return;
        };
        let pool = &mut self.pools[pi];
        pool.arrivals += 1;
        let pod = &mut self.pods[id as usize];
        if let Some(w) = pool.model.rate_window() {
            pod.rate = pod.rate * (-(t - pod.rate_t) / w).exp() + 1.0 / w;
            pod.rate_t = t;
        }
        if let Some(limit) = pool.cfg.queue_limit
            && pod.queue.len() >= limit as usize
        {
            pool.rejected += 1;
            return;
        }
        pool.touch_inflight(t);
        pool.inflight += 1;
        pod.queue.push_back(t);
        self.dispatch(id);
    }

    /// Starts batches on free instances as the dynamic batcher would.
    fn dispatch(&mut self, id: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        let pool = &mut self.pools[pod.pool as usize];
        let max_batch = pool.cfg.max_batch as usize;
        let delay = pool.cfg.max_queue_delay;
        while !pod.free.is_empty() && !pod.queue.is_empty() {
            let n = pod.queue.len();
            if n < max_batch && delay > 0.0 {
                let deadline = pod.queue[0] + delay;
                if now < deadline {
                    if pod.timer_at != deadline {
                        pod.timer_at = deadline;
                        self.events.push(
                            deadline,
                            Ev::Timer {
                                pod: id,
                                epoch: pod.epoch,
                            },
                        );
                    }
                    return;
                }
            }
            let b = n.min(max_batch);
            let Some(inst) = pod.free.pop() else { return };
            let batch = &mut pod.batches[inst as usize];
            if b == 1 {
                // Fast path of the common unbatched case.
                if let Some(a) = pod.queue.pop_front() {
                    pool.wait_sum += now - a;
                    batch.push(a);
                }
            } else {
                for a in pod.queue.drain(..b) {
                    pool.wait_sum += now - a;
                    batch.push(a);
                }
            }
            pool.waited += b as u64;
            let st = pool.model.batch_time(b, &mut self.rng);
            pod.busy += st;
            pool.busy += st;
            pod.executing += b as u32;
            self.events.push(
                now + st,
                Ev::Done {
                    pod: id,
                    inst,
                    epoch: pod.epoch,
                },
            );
        }
    }

    fn on_done(&mut self, id: u32, inst: u32, epoch: u32) {
        let now = self.now;
        let slo = self.cfg.slo;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch {
            return; // the pod was killed at its grace deadline; those requests are counted there
        }
        let pool = &mut self.pools[pod.pool as usize];
        let batch = &mut pod.batches[inst as usize];
        let b = batch.len();
        // The replica's arrival rate now, when the overhead depends on it (one exp per batch).
        let rate = pool
            .model
            .rate_window()
            .map(|w| pod.rate * (-(now - pod.rate_t) / w).exp());
        for &a in batch.iter() {
            let net = match rate {
                Some(r) => pool.model.network_time_at(r, &mut self.rng),
                None => pool.model.network_time(&mut self.rng),
            };
            let lat = now - a + net;
            pool.latency.record(lat);
            pool.interval.record(lat);
            if let Some(h) = self.step_hist.as_mut() {
                h.record(lat);
            }
            if lat > slo {
                pool.over_slo += 1;
            } else if let Some(c) = self.cohorts.as_mut() {
                c.met.push(a);
            }
        }
        batch.clear();
        pod.free.push(inst);
        pod.executing -= b as u32;
        pool.completed += b as u64;
        pool.touch_inflight(now);
        pool.inflight -= b as u64;
        if pod.phase == Phase::Terminating && pod.in_flight() == 0 {
            self.release(id);
            self.schedule_pending(false);
        } else {
            self.dispatch(id);
        }
    }

    // === pods ===

    /// Sets spec.replicas and creates or removes pods to match, as the ReplicaSet controller would.
    fn set_spec(&mut self, pi: usize, n: u32, count_action: bool) {
        if n != self.pools[pi].spec && count_action {
            self.pools[pi].actions += 1;
        }
        self.pools[pi].spec = n;
        let live = self.pools[pi].live.len() as u32;
        if n > live {
            for _ in live..n {
                self.create_pod(pi);
            }
            self.schedule_pending(false);
        } else {
            for _ in n..live {
                if let Some(v) = self.pick_victim(pi) {
                    self.terminate(v);
                }
            }
            self.schedule_pending(false);
        }
        let pool = &mut self.pools[pi];
        pool.max_live = pool.max_live.max(pool.live.len() as u32);
    }

    fn create_pod(&mut self, pi: usize) {
        let pool = &self.pools[pi];
        let k = pool.cfg.instances;
        let pod = Pod {
            pool: pi as u8,
            phase: Phase::Pending,
            epoch: 0,
            node: NO_NODE,
            created_at: self.now,
            ready_since: None,
            queue: VecDeque::new(),
            free: (0..k).rev().collect(),
            batches: (0..k)
                .map(|_| Vec::with_capacity(pool.cfg.max_batch as usize))
                .collect(),
            executing: 0,
            timer_at: f64::INFINITY,
            busy: 0.0,
            samples: VecDeque::new(),
            rate: 0.0,
            rate_t: self.now,
        };
        let id = match self.free_slots.pop() {
            Some(id) => {
                let epoch = self.pods[id as usize].epoch;
                self.pods[id as usize] = Pod { epoch, ..pod };
                id
            }
            None => {
                self.pods.push(pod);
                (self.pods.len() - 1) as u32
            }
        };
        self.pending.push_back((id, self.pods[id as usize].epoch));
        self.pools[pi].live.push(id);
    }

    /// ReplicaSet deletion order: unscheduled first, then not-ready, then the most recently ready,
    /// then the newest.
    fn pick_victim(&self, pi: usize) -> Option<u32> {
        let rank = |p: &Pod| match p.phase {
            Phase::Pending => 0,
            Phase::Starting => 1,
            _ => 2,
        };
        self.pools[pi].live.iter().copied().min_by(|&a, &b| {
            let (pa, pb) = (&self.pods[a as usize], &self.pods[b as usize]);
            rank(pa)
                .cmp(&rank(pb))
                .then(
                    pb.ready_since
                        .unwrap_or(0.0)
                        .total_cmp(&pa.ready_since.unwrap_or(0.0)),
                )
                .then(pb.created_at.total_cmp(&pa.created_at))
                .then(b.cmp(&a))
        })
    }

    fn terminate(&mut self, id: u32) {
        let now = self.now;
        let pi = self.pods[id as usize].pool as usize;
        let pool = &mut self.pools[pi];
        pool.live.retain(|&x| x != id);
        let pod = &mut self.pods[id as usize];
        match pod.phase {
            Phase::Pending => self.release(id),
            Phase::Starting => self.release(id),
            Phase::Ready => {
                if let Some(pos) = pool.endpoints.iter().position(|&x| x == id) {
                    pool.endpoints.swap_remove(pos);
                }
                pool.touch_pods(now);
                pool.ready -= 1;
                pod.phase = Phase::Terminating;
                if pod.in_flight() == 0 {
                    self.release(id);
                } else {
                    let deadline = now + pool.cfg.grace_period;
                    self.events.push(
                        deadline,
                        Ev::Deadline {
                            pod: id,
                            epoch: pod.epoch,
                        },
                    );
                }
            }
            Phase::Terminating | Phase::Gone => {}
        }
    }

    fn on_deadline(&mut self, id: u32, epoch: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch || pod.phase != Phase::Terminating {
            return;
        }
        let killed = pod.in_flight() as u64;
        pod.queue.clear();
        for b in pod.batches.iter_mut() {
            b.clear();
        }
        pod.executing = 0;
        let pool = &mut self.pools[pod.pool as usize];
        pool.killed += killed;
        pool.touch_inflight(now);
        pool.inflight -= killed;
        self.release(id);
        self.schedule_pending(false);
    }

    /// Frees the pod's node resources and its slot; pending events of the slot become stale.
    fn release(&mut self, id: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        let pool = &mut self.pools[pod.pool as usize];
        if pod.node != NO_NODE {
            let node = &mut self.nodes[pod.node as usize];
            node.free_gpus += pool.gpus;
            node.free_cpus += pool.cfg.cpu_request;
            pod.node = NO_NODE;
            pool.touch_pods(now);
            pool.held -= 1;
        }
        pod.phase = Phase::Gone;
        pod.epoch = pod.epoch.wrapping_add(1);
        pod.timer_at = f64::INFINITY;
        pod.samples.clear();
        self.free_slots.push(id);
    }

    fn fit(&self, gpus: u32, cpus: f64) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.free_gpus >= gpus && n.free_cpus + 1e-9 >= cpus)
    }

    /// Binds Pending pods to nodes in creation order; asks the node autoscaler for more if some still
    /// do not fit. `warm` makes scheduled pods Ready at once (the initial replicas at t = 0).
    fn schedule_pending(&mut self, warm: bool) {
        let now = self.now;
        let mut i = 0;
        while i < self.pending.len() {
            let (id, epoch) = self.pending[i];
            let pod = &self.pods[id as usize];
            if pod.epoch != epoch || pod.phase != Phase::Pending {
                self.pending.remove(i);
                continue;
            }
            let pi = pod.pool as usize;
            let (gpus, cpus) = (self.pools[pi].gpus, self.pools[pi].cfg.cpu_request);
            let Some(n) = self.fit(gpus, cpus) else {
                i += 1;
                continue;
            };
            self.pending.remove(i);
            self.nodes[n].free_gpus -= gpus;
            self.nodes[n].free_cpus -= cpus;
            let pool = &mut self.pools[pi];
            pool.touch_pods(now);
            pool.held += 1;
            let pod = &mut self.pods[id as usize];
            pod.node = n as u32;
            if warm {
                pod.phase = Phase::Starting;
                self.on_ready(id, epoch);
            } else {
                pod.phase = Phase::Starting;
                let d: f64 = pool.startup.iter().map(|s| s.sample(&mut self.rng)).sum();
                self.events.push(now + d, Ev::Ready { pod: id, epoch });
            }
        }
        self.autoscale_nodes();
    }

    fn autoscale_nodes(&mut self) {
        let Some(na) = self.cfg.cluster.node_autoscaler.clone() else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        let (gpn, cpn) = (
            self.cfg.cluster.gpus_per_node,
            self.cfg.cluster.cpus_per_node,
        );
        // Pack the pending pods that fit an empty node onto fresh virtual nodes, first fit.
        let mut fresh: Vec<Node> = Vec::new();
        for &(id, epoch) in &self.pending {
            let pod = &self.pods[id as usize];
            if pod.epoch != epoch || pod.phase != Phase::Pending {
                continue;
            }
            let pool = &self.pools[pod.pool as usize];
            let (g, c) = (pool.gpus, pool.cfg.cpu_request);
            if g > gpn || c > cpn {
                continue; // would never fit: the cluster autoscaler leaves it Pending too
            }
            match fresh
                .iter_mut()
                .find(|n| n.free_gpus >= g && n.free_cpus + 1e-9 >= c)
            {
                Some(n) => {
                    n.free_gpus -= g;
                    n.free_cpus -= c;
                }
                None => fresh.push(Node {
                    free_gpus: gpn - g,
                    free_cpus: cpn - c,
                }),
            }
        }
        let have = self.nodes.len() as u32 + self.provisioning;
        let want = (fresh.len() as u32).saturating_sub(self.provisioning);
        let add = want.min(na.max_nodes.saturating_sub(have));
        let delay = na.provision_delay.sampler();
        for _ in 0..add {
            let d = delay.sample(&mut self.rng);
            self.provisioning += 1;
            self.events.push(self.now + d, Ev::NodeUp);
        }
    }

    fn on_ready(&mut self, id: u32, epoch: u32) {
        let now = self.now;
        let pod = &mut self.pods[id as usize];
        if pod.epoch != epoch || pod.phase != Phase::Starting {
            return;
        }
        pod.phase = Phase::Ready;
        pod.ready_since = Some(now);
        let pool = &mut self.pools[pod.pool as usize];
        pool.touch_pods(now);
        pool.ready += 1;
        pool.endpoints.push(id);
    }

    // === metrics and control ===

    fn on_scrape(&mut self) {
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
            let mut merged = Histogram::new();
            for h in &pool.hists {
                merged.merge(h);
            }
            pool.p95 = merged.quantile(0.95);
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

    fn push_series_row(&mut self) {
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

    fn on_control(&mut self, pi: usize) {
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

    // === results ===

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
