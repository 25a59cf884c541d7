//! Latency of one policy decision without libtorch (issue 14: p99 <= 50 us): `Policy::act`, i.e.
//! normalise the raw observation, run the network, take the masked argmax per action dimension.
//! Each call is timed on its own; p50 / p90 / p99 / p99.9 / max are reported for
//! - `shipped`: a policy file, by default agent/policies/default.kpol (`--policy FILE` for another);
//! - `paper`: the paper-sized network (shared 256x3 ReLU, 137,998 parameters) with random weights,
//!   the largest layout kis-learn trains.
//!
//! Observations are random in [0, 1.2) (the live range plus overshoot), masks random with the hold
//! action always allowed, both drawn before the timed loop.
//! `cargo bench -p kis-policy --bench decide [-- --quick] [--n 100000] [--policy FILE]`; one line
//! `decide,<name>,<parameters>,<calls>,<p50_us>,<p90_us>,<p99_us>,<p999_us>,<max_us>` per policy
//! is for scripts.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use kis_policy::{
    AUTOSCALER_ACTION_DIMS, Header, NetConfig, ObsNorm, ObsSpec, POLICY_FORMAT, Policy, Provenance,
};

/// A 32-bit LCG in [0, 1): the bench's only randomness.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 8) as f32 / (1u32 << 24) as f32
    }
}

fn paper_policy() -> Policy {
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
    let mut r = Lcg(1);
    let weights = (0..net.num_params(10, 13))
        .map(|_| r.next() * 0.2 - 0.1)
        .collect();
    Policy::new(header, ObsNorm::new(10, 10.0), weights).expect("bench policy")
}

/// Times `n` decisions after `warm` untimed ones; returns the sorted latencies in nanoseconds.
fn time_decisions(p: &Policy, warm: usize, n: usize) -> Vec<u64> {
    let dim = p.header().obs_spec.dim();
    let dims = p.header().action_dims.clone();
    let width: usize = dims.iter().sum();
    let mut r = Lcg(7);
    let total = warm + n;
    let obs: Vec<f32> = (0..total * dim).map(|_| r.next() * 1.2).collect();
    let mut masks = vec![true; total * width];
    for (k, m) in masks.iter_mut().enumerate() {
        let mut off = 0;
        let j = k % width;
        // The middle category of each dimension (hold, balanced placement) stays allowed.
        let hold = dims.iter().any(|&d| {
            let hit = j == off + d / 2;
            off += d;
            hit
        });
        *m = hold || r.next() < 0.8;
    }
    let (mut s, mut a) = (p.scratch(), vec![0usize; dims.len()]);
    let mut lat = Vec::with_capacity(n);
    for i in 0..total {
        let o = &obs[i * dim..(i + 1) * dim];
        let m = &masks[i * width..(i + 1) * width];
        let t = Instant::now();
        p.act(black_box(o), Some(black_box(m)), &mut s, &mut a)
            .expect("act");
        let dt = t.elapsed();
        black_box(&a);
        if i >= warm {
            lat.push(dt.as_nanos() as u64);
        }
    }
    lat.sort_unstable();
    lat
}

fn report(name: &str, p: &Policy, lat: &[u64]) {
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f).round() as usize] as f64 / 1000.0;
    let params = p.weights().len();
    println!(
        "decide {name} ({}, {params} parameters, {} calls): p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        p.header().obs_spec.name,
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0)
    );
    println!(
        "decide,{name},{params},{},{:.3},{:.3},{:.3},{:.3},{:.3}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let n = match value("--n").map(|v| v.parse::<usize>()) {
        None => {
            if quick {
                2_000
            } else {
                100_000
            }
        }
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("decide: --n must be a positive integer");
            std::process::exit(2);
        }
    };
    let warm = (n / 10).clamp(100, 5_000);
    let path = value("--policy").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/default.kpol")
    });
    let shipped = match Policy::load(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("decide: {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    report("shipped", &shipped, &time_decisions(&shipped, warm, n));
    let paper = paper_policy();
    report("paper", &paper, &time_decisions(&paper, warm, n));
}
