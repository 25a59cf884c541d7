use kis_sim::{Device, Dist, Pool, PoolConfig, ScalerSpec, ServiceProfile, SimConfig, Simulation};
use kis_traffic::ShapeSpec;

use crate::common::{roomy, single_pool};

/// CPU pool only: 1 replica, 50 ms exponential service (20 req/s per replica), 1 core requested and
/// 1 core used while busy, under a 10 -> 100 -> 10 req/s spike from 450 s to 1050 s of 1500 s.
fn cpu_spike(scaler: &str) -> SimConfig {
    let mut cfg = roomy(single_pool(0.0, 0.0, Dist::constant(0.01), 1), 1);
    cfg.workload.shape = ShapeSpec::Spike {
        base: 10.0,
        peak: 100.0,
        start: 0.3,
        length: 0.4,
        duration: 1500.0,
    };
    cfg.pools.gpu.replicas = 0;
    let mut cpu = PoolConfig::new(
        1,
        ServiceProfile::single(Device::Cpu, Dist::Exponential { mean: 0.05 }),
    );
    cpu.cpu_request = 1.0;
    cpu.profile.cpu_idle_cores = 0.0;
    cpu.profile.cpu_busy_cores_per_instance = 1.0;
    cpu.queue_limit = Some(100);
    cpu.autoscaler = Some(serde_json::from_str::<ScalerSpec>(scaler).unwrap());
    cfg.pools.cpu = cpu;
    cfg.record_series = true;
    cfg.slo = 0.5;
    cfg
}

#[test]
fn cpu_hpa_scales_up_under_a_spike_and_back_down_after_stabilization() {
    let mut sim = Simulation::new(cpu_spike(r#"{"kind":"hpa","max_replicas":10}"#)).unwrap();
    sim.run_until(440.0);
    assert_eq!(
        sim.spec_replicas(Pool::Cpu),
        1,
        "50 % CPU is inside the 80 % target"
    );
    sim.run_until(1000.0);
    let peak = sim.spec_replicas(Pool::Cpu);
    // 100 req/s x 50 ms = 5 busy cores; at an 80 % target the HPA needs 7 replicas.
    assert!((6..=10).contains(&peak), "replicas at the peak: {peak}");
    sim.run_until(1340.0);
    assert_eq!(
        sim.spec_replicas(Pool::Cpu),
        peak,
        "scale-down waits for the 300 s stabilization window"
    );
    let s = sim.run();
    assert!(s.conserved());
    let cpu = s.pool(Pool::Cpu);
    assert!(
        cpu.final_replicas < peak,
        "scaled down after the window: {}",
        cpu.final_replicas
    );
    assert!(cpu.scaling_actions >= 2);
    // Saturated pods report at most 100 % CPU, so the HPA climbs in steps of at most 1.25x per sync
    // (the known CPU-HPA lag); once it gets there the backlog clears and nothing is rejected.
    let late: Vec<_> = sim
        .series()
        .iter()
        .filter(|r| r.t > 990.0 && r.t < 1050.0)
        .collect();
    assert!(
        late.iter().all(|r| r.in_flight < 50 && r.rejected == 0),
        "{late:?}"
    );
    let early = sim.series().iter().find(|r| r.t == 600.0).unwrap();
    assert!(
        early.in_flight > 100,
        "under-provisioned early in the spike: {early:?}"
    );
}

#[test]
fn oracle_meets_the_slo_with_less_than_static_peak_capacity() {
    let s = Simulation::new(cpu_spike(r#"{"kind":"oracle","max_replicas":10}"#))
        .unwrap()
        .run();
    assert!(s.conserved());
    assert!(s.slo_miss_fraction < 0.01, "{}", s.slo_miss_fraction);
    let cpu = s.pool(Pool::Cpu);
    let peak_n = cpu.max_replicas as f64;
    assert!(cpu.replica_seconds < 0.75 * peak_n * 1500.0, "{cpu:?}");
    assert!(cpu.max_replicas >= 6);
}

#[test]
fn knative_kpa_reacts_within_seconds() {
    let mut sim = Simulation::new(cpu_spike(
        r#"{"kind":"knative","target_concurrency":1,"max_scale":10}"#,
    ))
    .unwrap();
    sim.run_until(449.0);
    let before = sim.spec_replicas(Pool::Cpu);
    sim.run_until(520.0);
    let after = sim.spec_replicas(Pool::Cpu);
    assert!(
        after >= before + 3,
        "KPA went {before} -> {after} within 70 s of the spike"
    );
}

#[test]
fn external_target_hpa_follows_the_published_metric() {
    let mut cfg = cpu_spike(r#"{"kind":"external-target","max_replicas":10}"#);
    cfg.pools.cpu.startup = kis_sim::Startup::instant();
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_external(
        Pool::Cpu,
        kis_sim::scaler::TARGET_REPLICAS_METRIC,
        Some(4.0),
    );
    sim.run_until(14.0);
    assert_eq!(
        sim.spec_replicas(Pool::Cpu),
        1,
        "the HPA only acts at its 15 s sync"
    );
    sim.run_until(16.0);
    assert_eq!(sim.spec_replicas(Pool::Cpu), 4);
    assert_eq!(sim.ready_replicas(Pool::Cpu), 4);
}

/// The CPU utilisation the HPA reads covers `metrics.cpu_window` (default 15 s, metrics-server's),
/// not the 60 s rate window: 20 s into a load step, the 15 s window already shows it.
#[test]
fn cpu_utilisation_window_is_configurable_and_defaults_to_metrics_servers() {
    let cpu_at_170 = |window: Option<f64>| {
        let mut cfg = roomy(
            single_pool(0.0, 0.0, Dist::Exponential { mean: 0.02 }, 1),
            1,
        );
        cfg.workload.shape = ShapeSpec::Spike {
            base: 1.0,
            peak: 40.0,
            start: 0.5,
            length: 0.5,
            duration: 300.0,
        };
        cfg.pools.gpu.cpu_request = 1.0;
        if let Some(w) = window {
            cfg.metrics.cpu_window = w;
        }
        let mut sim = Simulation::new(cfg).unwrap();
        sim.run_until(170.0);
        let v = sim.view(Pool::Gpu);
        v.pods[0].cpu_utilization.expect("sampled")
    };
    assert_eq!(kis_sim::MetricsConfig::default().cpu_window, 15.0);
    // 40 req/s at 20 ms = 0.8 busy from 150 s; the last scrape before 170 s is at 165 s.
    let short = cpu_at_170(None);
    let long = cpu_at_170(Some(60.0));
    assert!(short > 0.6, "15 s window: {short}");
    assert!(
        long < 0.35,
        "60 s window still mostly before the step: {long}"
    );
}
