//! The standard performance scenario, shared by the criterion bench and `kis-agent bench`.

use kis_traffic::{ArrivalKind, ShapeSpec};

use crate::config::{PoolConfig, Pools, SimConfig, Workload};
use crate::dist::Dist;
use crate::profile::{Device, ServiceProfile};

/// One simulated hour at 1,000 req/s (Poisson) over 20 GPU replicas, exponential 10 ms service
/// (about 50 % busy), no CPU replicas, fixed replica counts, default 15 s scrapes.
pub fn hour_at_1000_rps() -> SimConfig {
    let gpu = PoolConfig::new(
        20,
        ServiceProfile::single(Device::Gpu, Dist::Exponential { mean: 0.010 }),
    );
    let cpu = PoolConfig::new(
        0,
        ServiceProfile::single(Device::Cpu, Dist::Exponential { mean: 0.05 }),
    );
    let mut cfg = SimConfig::new(
        Workload::new(
            ShapeSpec::Constant {
                rate: 1000.0,
                duration: 3600.0,
            },
            ArrivalKind::Poisson,
        ),
        Pools { gpu, cpu },
    );
    cfg.cluster.gpus_per_node = 20;
    cfg.seed = 7;
    cfg
}
