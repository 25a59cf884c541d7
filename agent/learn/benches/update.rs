//! Time of one PPO update as the issue specifies it (2048 transitions, 4 epochs, minibatch 64, the
//! paper-sized 137,998-parameter network, 1 libtorch thread): the median of repeated updates on one
//! stored rollout of a stand-in environment (random observations; the update's cost does not depend
//! on them). Its peer is `ppo_update.py` beside it (the same update in PyTorch, same torch build);
//! agent/bench/run.sh runs both in the same session. The stand-in environment is
//! tests/support/noise.rs. `cargo bench -p kis-learn --bench update [-- --quick]`; the lines
//! `median_ms,<ms>` (wall clock) and `cpu_ms,<ms>` (this thread's CPU time, the median too: on a
//! busy machine it stays near the quiet wall time while the wall time does not) are for scripts.

use std::time::Instant;

#[path = "../tests/support/noise.rs"]
mod noise;

use kis_learn::{PpoConfig, Trainer};
use kis_policy::NetConfig;
use noise::Noise;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 2 } else { 6 };
    let cfg = PpoConfig {
        n_steps: 256,
        n_minibatches: 32,
        update_epochs: 4,
        total_steps: 2048 * 100,
        anneal_lr: false,
        net: NetConfig::paper(),
        threads: 1,
        ..PpoConfig::default()
    };
    let env = Noise::new(8, 0);
    let mut t = Trainer::new(cfg, env, tch::Device::Cpu).expect("trainer");
    t.iterate().expect("first iteration");
    let (mut ms, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (start, c0) = (Instant::now(), thread_cpu_ms());
        t.update_again().expect("update");
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        cpu.push(thread_cpu_ms() - c0);
    }
    // The first is a warm-up.
    let mut timed = ms[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    let mut cpu = cpu[1..].to_vec();
    cpu.sort_by(f64::total_cmp);
    println!(
        "ppo update (2048 x 4 epochs, minibatch 64, 137,998 parameters, 1 thread): median {:.0} ms of {:?}",
        timed[timed.len() / 2],
        timed.iter().map(|m| m.round()).collect::<Vec<_>>()
    );
    println!("cpu_ms,{:.3}", cpu[cpu.len() / 2]);
    println!("median_ms,{:.3}", timed[timed.len() / 2]);
}

/// CPU time of this thread so far, ms (Linux's /proc/thread-self/schedstat; NaN elsewhere).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}
