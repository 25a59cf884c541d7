use kis_sim::{
    Autoscaler, Device, Dist, PoolConfig, PoolView, Pools, ServiceProfile, SimConfig, Startup,
    Workload,
};
use kis_traffic::{ArrivalKind, ShapeSpec};

/// One GPU replica (`instances` model instances) serving a constant Poisson load; no CPU replicas.
pub fn single_pool(rate: f64, duration: f64, service: Dist, instances: u32) -> SimConfig {
    let mut gpu = PoolConfig::new(1, ServiceProfile::single(Device::Gpu, service));
    gpu.instances = instances;
    let cpu = PoolConfig::new(0, ServiceProfile::single(Device::Cpu, Dist::constant(0.1)));
    let mut cfg = SimConfig::new(
        Workload::new(ShapeSpec::Constant { rate, duration }, ArrivalKind::Poisson),
        Pools { gpu, cpu },
    );
    cfg.seed = 1;
    cfg
}

/// A cluster with room for `gpus` GPU pods and instant start-up.
pub fn roomy(mut cfg: SimConfig, gpus: u32) -> SimConfig {
    cfg.cluster.gpus_per_node = gpus;
    cfg.cluster.cpus_per_node = 1000.0;
    cfg.pools.gpu.startup = Startup::instant();
    cfg.pools.cpu.startup = Startup::instant();
    cfg
}

/// Replays a fixed schedule of replica counts: `(from_time, replicas)`, sorted by time.
pub struct Script {
    pub steps: Vec<(f64, u32)>,
    pub period: f64,
}

impl Autoscaler for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn period(&self) -> f64 {
        self.period
    }
    fn decide(&mut self, view: &PoolView) -> u32 {
        self.steps
            .iter()
            .rev()
            .find(|(t, _)| view.now >= *t)
            .map_or(view.spec_replicas, |s| s.1)
    }
}

/// The evaluation cluster as the training scenarios set it up: 16 one-GPU nodes, a GPU pool of
/// up to 16 replicas, no CPU replicas.
pub fn gpu16_env() -> kis_sim::env::EnvConfig {
    let mut cfg = kis_sim::env::EnvConfig::default_cluster();
    cfg.sim.cluster.nodes = 16;
    cfg.sim.pools.gpu.max_replicas = 16;
    cfg.sim.pools.cpu.replicas = 0;
    cfg.sim.pools.cpu.min_replicas = 0;
    cfg.sim.pools.cpu.max_replicas = 1;
    cfg
}
