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
// Defined with the results they index (report must not import the simulator); kept here too.
pub use crate::report::{POOLS, pool_index};
use crate::scaler::{Autoscaler, PodView, Pool, PoolView, ScalerContext};
use crate::{Error, Result};

mod cluster;
mod metrics;
mod pods;
mod route;

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
    /// Scratch: the merge of `hists` at the last scrape.
    window: Histogram,
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
            window: Histogram::new(),
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
    rates: Profile,
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
        let rates = cfg
            .workload
            .shape
            .build(cfg.seed)
            .map_err(Error::Workload)?
            .scaled(cfg.workload.scale);
        Self::with_rates(cfg, rates)
    }

    /// Like [`Simulation::new`] with the offered rate over time already built (and scaled).
    pub fn with_rates(cfg: SimConfig, rates: Profile) -> Result<Self> {
        cfg.validate()?;
        // Separate streams so that changing e.g. a service time does not shift every arrival.
        let arrivals = rates.arrivals(cfg.workload.arrivals, cfg.seed ^ crate::ARRIVAL_STREAM);
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
                    rates: &rates,
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
            end: rates.duration(),
            rates,
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

    /// The (scaled) offered rate over time driving the arrivals (a kis-traffic `Profile`; "profile"
    /// alone means the service profile here).
    pub fn rates(&self) -> &Profile {
        &self.rates
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

    /// Latencies recorded since the last reset of the tracker (None when not tracking).
    pub fn step_latency(&self) -> Option<&Histogram> {
        self.step_hist.as_ref()
    }

    /// Empties the step tracker (keeping its allocation).
    pub fn reset_step_latency(&mut self) {
        if let Some(h) = self.step_hist.as_mut() {
            h.clear();
        }
    }

    /// Latencies recorded since the last call (or since tracking started); resets the tracker.
    /// [`Simulation::step_latency`] and [`Simulation::reset_step_latency`] do the same without
    /// copying the histogram.
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
        let ext = &mut self.pools[pool_index(pool)].external;
        // An update in place: the env sets its two targets every step, no new key each time.
        match ext.get_mut(name) {
            Some(v) => *v = value,
            None => {
                ext.insert(name.to_string(), value);
            }
        }
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
}
