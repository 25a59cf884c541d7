//! Control steps per second of the RL environment for 1 and 16 environments (the issue-13 figure):
//! `cargo run --release -p kis-sim --example env_steps -- [STEPS] [SCENARIO]`.
//!
//! STEPS (default 2000) is the number of `VecEnv::step` calls per run; SCENARIO (default `default`)
//! one of `kis_sim::env::SCENARIOS`. Each run steps with a fixed cycle of actions, auto-resetting
//! finished episodes, and reports environment steps (control steps of one env) per second of wall
//! clock, overall and per worker thread.
use std::time::Instant;

use kis_sim::env::EnvConfig;
use kis_sim::vec_env::VecEnv;

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = match args.next().map(|s| s.parse()) {
        None => 2000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("error: STEPS must be a positive integer");
            std::process::exit(2);
        }
    };
    let scenario = args.next().unwrap_or_else(|| "default".into());
    let cfg = match EnvConfig::named(&scenario) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("scenario {scenario}, {steps} steps per run, {cores} cores");
    println!("envs,threads,env_steps,seconds,env_steps_per_s,per_thread");
    for n in [1usize, 16] {
        let threads = cores.min(n);
        let mut v = match VecEnv::with_threads(cfg.clone(), n, threads) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let seeds: Vec<u64> = (0..n as u64).collect();
        v.reset(&seeds);
        let t = Instant::now();
        for k in 0..steps {
            let a: Vec<[usize; 3]> = (0..n)
                .map(|i| [(k + i) % 5, (k * 3 + i) % 5, k % 3])
                .collect();
            v.step(&a);
        }
        let dt = t.elapsed().as_secs_f64();
        let total = (steps * n) as f64;
        println!(
            "{n},{threads},{total},{dt:.3},{:.0},{:.0}",
            total / dt,
            total / dt / threads.max(1) as f64
        );
    }
}
