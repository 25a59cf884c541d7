#[path = "../support/noise.rs"]
mod noise;

use kis_learn::{PpoConfig, Trainer};
use kis_policy::{NetConfig, Provenance};
use noise::Noise;
use tch::{Device, Tensor};

fn check(net: NetConfig) {
    let cfg = PpoConfig {
        net,
        n_steps: 32,
        total_steps: 4 * 32 * 3,
        ..PpoConfig::default()
    };
    let mut t = Trainer::new(cfg, Noise::new(4, 0), Device::Cpu).unwrap();
    // Train a little so the weights and the normaliser are not at their initial values.
    for _ in 0..2 {
        t.iterate().unwrap();
    }
    let p = t.policy(Provenance::default()).unwrap();
    let mut s = p.scratch();
    let mut rng = Noise::new(1, 99);
    let mut worst = 0.0f32;
    for _ in 0..50 {
        let raw: Vec<f32> = (0..10).map(|_| rng.next() * 1.4 - 0.2).collect();
        let v_rust = p.forward(&raw, &mut s).unwrap();
        let mut x = vec![0.0; 10];
        t.norm().normalize(&raw, &mut x);
        let (logits, v) =
            tch::no_grad(|| t.model().forward(&Tensor::from_slice(&x).reshape([1, 10])));
        let logits: Vec<f32> = Vec::try_from(logits.flatten(0, -1)).unwrap();
        let v: Vec<f32> = Vec::try_from(v).unwrap();
        assert_eq!(logits.len(), s.logits.len());
        for (a, b) in logits.iter().zip(&s.logits) {
            worst = worst.max((a - b).abs());
        }
        worst = worst.max((v[0] - v_rust).abs());
    }
    assert!(worst <= 1e-5, "largest difference {worst}");
}

#[test]
fn pure_rust_forward_equals_tch_cleanrl_net() {
    check(NetConfig::default());
}

#[test]
fn pure_rust_forward_equals_tch_paper_net() {
    check(NetConfig::paper());
}
