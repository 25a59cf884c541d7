use kis_sim::{Dist, SimConfig, Simulation};

use crate::common::single_pool;

fn err(cfg: SimConfig) -> String {
    match Simulation::new(cfg) {
        Ok(_) => panic!("config accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_values_name_their_field() {
    let base = single_pool(10.0, 10.0, Dist::constant(0.01), 1);
    let mut c = base.clone();
    c.pools.gpu.instances = 0;
    assert!(err(c).contains("pools.gpu.instances"));
    let mut c = base.clone();
    c.pools.cpu.max_queue_delay = -1.0;
    assert!(err(c).contains("pools.cpu.max_queue_delay"));
    let mut c = base.clone();
    c.metrics.rate_window = 5.0;
    assert!(err(c).contains("metrics.rate_window"));
    let mut c = base.clone();
    c.pools.gpu.profile.batches[0].latency = Dist::Lognormal {
        mean: 0.01,
        cv: -1.0,
    };
    assert!(err(c).contains("pools.gpu.profile.batches[0].latency.cv"));
    let mut c = base.clone();
    c.slo = 0.0;
    assert!(err(c).contains("slo"));
}

#[test]
fn config_parses_from_json_and_toml_with_defaults() {
    let json = r#"{
        "seed": 3,
        "workload": {"shape": {"pattern": "spike"}},
        "pools": {
            "gpu": {"replicas": 1, "profile": {"device": "gpu",
                    "batches": [{"size": 1, "latency": {"dist": "constant", "value": 0.01}}]}},
            "cpu": {"replicas": 2, "profile": {"device": "cpu",
                    "batches": [{"size": 1, "latency": {"dist": "exponential", "mean": 0.05}}]},
                    "autoscaler": {"kind": "fixed", "replicas": 2}}
        }
    }"#;
    let c: SimConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.metrics.scrape_interval, 15.0);
    assert_eq!(c.pools.gpu.grace_period, 30.0);
    let s = Simulation::new(c.clone()).unwrap().run();
    assert!(s.conserved());
    assert!(s.arrivals > 0);
    let bad = json.replace("\"seed\": 3", "\"sead\": 3");
    let e = serde_json::from_str::<SimConfig>(&bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sead"), "{e}");
}
