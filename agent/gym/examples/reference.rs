//! The Rust side of the binding's equivalence test (tests/test_env.py): runs kis-sim's `SimEnv` or
//! `VecEnv` directly for a scenario, seeds and actions read from stdin as JSON, and prints what it
//! saw as JSON, so the test can compare the Python binding value for value.
//!
//! Input: `{"scenario": <EnvConfig>, "mode": "single" | "vec", "seeds": [u64], "actions": [...],
//! "threads": k}`.
//! - `single`: reset with `seeds[0]`, then apply `actions` (`[[gpu, cpu, placement], ...]`); after an
//!   episode ends, reset with the previous seed + 1 (the binding's rule for `reset()` without a
//!   seed). Prints `{"events": [{"reset": {"seed", "obs", "mask"}} | {"step": <kis_sim Step>}]}`.
//! - `vec`: `VecEnv` of `seeds.len()` environments on `threads` workers, reset with `seeds`, then
//!   one `step` per element of `actions` (`[[[g, c, p] per env] per step]`). Prints `{"reset":
//!   {"obs", "mask"}, "steps": [{"obs", "final_obs", "reward", "terminated", "truncated", "mask",
//!   "infos"}]}` with the flat buffers as they are.
//!
//! Run: `cargo run -q -p kis-gym --example reference < input.json`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use kis_sim::env::{Action, Env, EnvConfig, SimEnv};
use kis_sim::vec_env::VecEnv;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    scenario: EnvConfig,
    mode: String,
    seeds: Vec<u64>,
    actions: Value,
    #[serde(default = "one")]
    threads: usize,
}

fn one() -> usize {
    1
}

fn main() -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading stdin")?;
    let input: Input = serde_json::from_str(&text).context("input JSON")?;
    let out = match input.mode.as_str() {
        "single" => single(&input)?,
        "vec" => vectorised(&input)?,
        m => bail!("unknown mode {m:?}; expected single or vec"),
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn single(input: &Input) -> Result<Value> {
    let actions: Vec<[usize; 3]> = serde_json::from_value(input.actions.clone())?;
    let mut env = SimEnv::new(input.scenario.clone())?;
    let mut seed = *input.seeds.first().context("no seed")?;
    let mut events = Vec::new();
    let reset = |env: &mut SimEnv, seed: u64, events: &mut Vec<Value>| {
        let obs = env.reset(seed);
        events.push(json!({"reset": {"seed": seed, "obs": obs, "mask": env.mask()}}));
    };
    reset(&mut env, seed, &mut events);
    for a in actions {
        let s = env.step(Action::from_indices(a));
        let done = s.terminated || s.truncated;
        events.push(json!({ "step": s }));
        if done {
            seed += 1;
            reset(&mut env, seed, &mut events);
        }
    }
    Ok(json!({ "events": events }))
}

fn vectorised(input: &Input) -> Result<Value> {
    let actions: Vec<Vec<[usize; 3]>> = serde_json::from_value(input.actions.clone())?;
    let mut v = VecEnv::with_threads(input.scenario.clone(), input.seeds.len(), input.threads)?;
    v.reset(&input.seeds);
    let first = json!({"obs": v.obs(), "mask": v.mask()});
    let mut steps = Vec::new();
    for a in actions {
        v.step(&a);
        steps.push(json!({
            "obs": v.obs(), "final_obs": v.final_obs(), "reward": v.reward(),
            "terminated": v.terminated(), "truncated": v.truncated(), "mask": v.mask(),
            "infos": v.infos(),
        }));
    }
    Ok(json!({"reset": first, "steps": steps}))
}
