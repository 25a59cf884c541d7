//! The shipped default policy (agent/policies/default.kpol, see its README for the command that
//! trained it): it loads without libtorch and, on the spike shape, scores a better objective than
//! the paper's fixed GPU replica and the untuned CPU-HPA over the same paired seeds.

use kis_agent::eval::policy::builtin;
use kis_agent::eval::results::objective_for;
use kis_agent::eval::setup::{Setup, base_config_for, fixed_gpu_1, run_one};
use kis_agent::scenario::parse_autoscaler;

use super::eval::{no_flags, spike};

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/default.kpol");
const SEEDS: u64 = 3;

#[test]
fn the_shipped_policy_beats_fixed_1_and_the_untuned_hpa_on_a_spike() {
    let base = base_config_for(&no_flags()).unwrap();
    let sc = spike(900.0);
    let obj = objective_for(&base, &sc).unwrap();
    let policy = Setup::policy(builtin(POLICY).unwrap());
    let hpa = Setup::gpu(
        "hpa-cpu",
        1,
        parse_autoscaler("hpa-cpu", &base.pools.gpu, base.slo).unwrap(),
    );
    let mean = |s: &Setup| {
        let v: Vec<f64> = (0..SEEDS)
            .map(|seed| {
                let r = run_one(&base, &sc, s, seed).unwrap();
                assert!(r.conserved(), "{}: {r:?}", s.label);
                obj.value(r.slo_miss_fraction, r.gpu_hours)
            })
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (p, f, h) = (mean(&policy), mean(&fixed_gpu_1()), mean(&hpa));
    eprintln!("spike objective: policy {p:.2}, fixed-1 {f:.2}, hpa-cpu {h:.2}");
    assert!(p < f, "policy objective {p} not below fixed-1's {f}");
    assert!(
        p < h,
        "policy objective {p} not below the untuned CPU-HPA's {h}"
    );
}
