use kis_learn::{CartPole, PpoConfig, Trainer};
use kis_policy::Provenance;
use tch::Device;

fn cfg() -> PpoConfig {
    PpoConfig {
        seed: 5,
        n_steps: 64,
        total_steps: 4 * 64 * 6,
        target_kl: Some(0.5),
        ..PpoConfig::default()
    }
}

#[test]
fn resume_continues_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("kis-learn-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("run.ckpt");

    // Straight through: 6 iterations.
    let mut a = Trainer::new(cfg(), CartPole::new(4), Device::Cpu).unwrap();
    let mut straight = Vec::new();
    while !a.finished() {
        straight.push(a.iterate().unwrap());
    }
    // 3 iterations, checkpoint, a new trainer from the file, 3 more.
    let mut b = Trainer::new(cfg(), CartPole::new(4), Device::Cpu).unwrap();
    for _ in 0..3 {
        b.iterate().unwrap();
    }
    b.save_checkpoint(&ckpt, Provenance::default()).unwrap();
    drop(b);
    let mut c = Trainer::resume(&ckpt, CartPole::new(4), Device::Cpu).unwrap();
    assert_eq!(c.iteration(), 3);
    let mut resumed = Vec::new();
    while !c.finished() {
        resumed.push(c.iterate().unwrap());
    }
    assert_eq!(resumed.len(), 3);
    for (x, y) in straight[3..].iter().zip(&resumed) {
        assert_eq!(x.steps, y.steps);
        assert_eq!(x.pg_loss.to_bits(), y.pg_loss.to_bits(), "{x:?} vs {y:?}");
        assert_eq!(x.v_loss.to_bits(), y.v_loss.to_bits());
        assert_eq!(x.approx_kl.to_bits(), y.approx_kl.to_bits());
        assert_eq!(x.mean_return.to_bits(), y.mean_return.to_bits());
    }
    let wa = a.policy(Provenance::default()).unwrap();
    let wc = c.policy(Provenance::default()).unwrap();
    let bits = |w: &[f32]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(wa.weights()),
        bits(wc.weights()),
        "final weights differ"
    );
    assert_eq!(wa.norm(), wc.norm());

    // A damaged checkpoint is refused with one line naming the file.
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() - 100]).unwrap();
    let e = Trainer::resume(&ckpt, CartPole::new(4), Device::Cpu)
        .err()
        .unwrap();
    let msg = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        msg.contains("run.ckpt") && msg.contains("checksum"),
        "{msg}"
    );
    // Another environment count is refused.
    std::fs::write(&ckpt, &bytes).unwrap();
    let e = Trainer::resume(&ckpt, CartPole::new(2), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("4 environments"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
