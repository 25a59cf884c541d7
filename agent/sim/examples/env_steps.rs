//! Control steps per second of the RL environment for 1 and 16 environments, the Rust side of the
//! issue-13 bench (its Python twin is agent/gym/bench/steps.py, which runs this example and
//! compares): `cargo run --release -p kis-sim --example env_steps -- [STEPS] [SCENARIO] [THREADS]`.
//!
//! STEPS (default 2000) is the number of `VecEnv::step` calls per run; SCENARIO (default `default`)
//! one of `kis_sim::env::SCENARIOS` or a path to an `EnvConfig` JSON file (the bench's near-empty
//! scenario, which measures what a step costs besides the simulated requests); THREADS (default 1: the calling thread, so the rate is per
//! core) the most worker threads. Environment `i` starts with seed `i` and auto-resets. Actions
//! are random *masked* actions: in each dimension, uniform over the values the current mask allows,
//! drawn from [`draw`] of (step, env, dimension), so that the Python twin, with the same formula,
//! takes exactly the same actions and must see the same rewards (the `reward_sum` column is the
//! check that both stepped the same trajectories).
use std::time::Instant;

use kis_sim::env::EnvConfig;
use kis_sim::vec_env::VecEnv;

/// The action space's dimensions (GPU delta, CPU delta, placement).
const DIMS: [usize; 3] = [5, 5, 3];

/// SplitMix64's finaliser of (step, env, dimension): the bench's shared random source.
fn draw(k: u64, i: u64, d: u64) -> u64 {
    let mut z = ((k << 32) | (i << 8) | d).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniformly drawn allowed value per dimension from one environment's 13 mask flags.
fn masked_action(mask: &[bool], k: u64, i: u64) -> [usize; 3] {
    let mut a = [0usize; 3];
    let mut off = 0;
    for (d, &n) in DIMS.iter().enumerate() {
        let ok: Vec<usize> = (0..n).filter(|&j| mask[off + j]).collect();
        // Holding (the middle value) is always allowed; an empty mask would be a simulator bug.
        a[d] = if ok.is_empty() {
            n / 2
        } else {
            ok[(draw(k, i, d as u64) % ok.len() as u64) as usize]
        };
        off += n;
    }
    a
}

fn parse<T: std::str::FromStr>(arg: Option<String>, default: T, what: &str) -> T {
    match arg.map(|s| s.parse::<T>()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(_)) => {
            eprintln!("error: {what} must be a positive integer");
            std::process::exit(2);
        }
    }
}

/// A named scenario, or an `EnvConfig` JSON file when SCENARIO ends in `.json`.
fn scenario_config(scenario: &str) -> Result<EnvConfig, String> {
    if !scenario.ends_with(".json") {
        return EnvConfig::named(scenario).map_err(|e| e.to_string());
    }
    let text = std::fs::read_to_string(scenario)
        .map_err(|e| format!("cannot read scenario {scenario}: {e}"))?;
    let cfg: EnvConfig = serde_json::from_str(&text)
        .map_err(|e| format!("scenario {scenario} is not an EnvConfig: {e}"))?;
    cfg.validate()
        .map_err(|e| format!("scenario {scenario}: {e}"))?;
    Ok(cfg)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let steps: usize = parse(args.next(), 2000, "STEPS");
    let scenario = args.next().unwrap_or_else(|| "default".into());
    let threads: usize = parse(args.next(), 1, "THREADS");
    if steps == 0 || threads == 0 {
        eprintln!("error: STEPS and THREADS must be positive integers");
        std::process::exit(2);
    }
    let cfg = match scenario_config(&scenario) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("scenario {scenario}, {steps} steps per run, {threads} thread(s), {cores} cores");
    println!("envs,threads,env_steps,seconds,env_steps_per_s,per_thread,reward_sum");
    for n in [1usize, 16] {
        let threads = threads.min(n);
        let mut v = match VecEnv::with_threads(cfg.clone(), n, threads) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let seeds: Vec<u64> = (0..n as u64).collect();
        v.reset(&seeds);
        let mut reward_sum = 0.0f64;
        let mut a = vec![[0usize; 3]; n];
        let t = Instant::now();
        for k in 0..steps {
            let mask = v.mask();
            for (i, ai) in a.iter_mut().enumerate() {
                *ai = masked_action(&mask[i * 13..(i + 1) * 13], k as u64, i as u64);
            }
            v.step(&a);
            reward_sum += v.reward().iter().map(|&r| r as f64).sum::<f64>();
        }
        let dt = t.elapsed().as_secs_f64();
        let total = (steps * n) as f64;
        println!(
            "{n},{threads},{total},{dt:.4},{:.0},{:.0},{reward_sum:.6}",
            total / dt,
            total / dt / threads as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_only_allowed_values() {
        // GPU: only -1 and 0 allowed; CPU: only 0; placement: all.
        let mut mask = [false; 13];
        mask[1] = true;
        mask[2] = true;
        mask[7] = true;
        mask[10..13].fill(true);
        let mut seen = [false; 5];
        for k in 0..200 {
            let a = masked_action(&mask, k, 3);
            assert!(a[0] == 1 || a[0] == 2, "{a:?}");
            assert_eq!(a[1], 2);
            assert!(a[2] < 3);
            seen[a[0]] = true;
        }
        assert!(seen[1] && seen[2], "both allowed GPU values drawn");
    }
}
