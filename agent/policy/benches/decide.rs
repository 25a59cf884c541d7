//! Latency of one policy decision (normalise, paper-sized network, masked argmax) without
//! libtorch: each call timed on its own, p50 / p99 / max reported. The bound is p99 <= 50 us.
//! `cargo bench -p kis-policy --bench decide [-- --quick]`.

use std::hint::black_box;
use std::time::Instant;

use kis_policy::{
    AUTOSCALER_ACTION_DIMS, Header, NetConfig, ObsNorm, ObsSpec, POLICY_FORMAT, Policy, Provenance,
};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (warm, n) = if quick { (100, 1_000) } else { (2_000, 20_000) };
    let net = NetConfig::paper();
    let features: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    let header = Header {
        format: POLICY_FORMAT.into(),
        obs_spec: ObsSpec {
            name: "bench".into(),
            version: 1,
            features,
        },
        action_dims: AUTOSCALER_ACTION_DIMS.to_vec(),
        net: net.clone(),
        provenance: Provenance::default(),
    };
    let mut x: u32 = 1;
    let weights = (0..net.num_params(10, 13))
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 * 0.2 - 0.1
        })
        .collect();
    let p = Policy::new(header, ObsNorm::new(10, 10.0), weights).expect("bench policy");
    let (mut s, mut a) = (p.scratch(), [0usize; 3]);
    let mask = [true; 13];
    let mut lat = Vec::with_capacity(n);
    for i in 0..warm + n {
        let obs = [(i % 100) as f32 * 0.01; 10];
        let t = Instant::now();
        p.act(black_box(&obs), Some(&mask), &mut s, &mut a)
            .expect("act");
        let dt = t.elapsed();
        black_box(a);
        if i >= warm {
            lat.push(dt.as_nanos() as u64);
        }
    }
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize] as f64 / 1000.0;
    println!(
        "decide (paper net, 137,998 parameters, {n} calls): p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        q(0.5),
        q(0.99),
        q(1.0)
    );
}
