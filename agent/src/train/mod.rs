//! `kis-agent train` (cargo feature `train`, which links libtorch through kis-learn): PPO on a
//! scenario file (a `kis_sim::env::EnvConfig`, JSON or TOML), with periodic greedy evaluation on
//! the validation split, atomic checkpoints and `--resume`, a CSV log and PNG learning curves, all
//! in one run folder:
//!
//! ```text
//! OUT/policy.kpol     the policy (kis-policy file; runs without libtorch)
//! OUT/checkpoint.ckpt everything `--resume` needs
//! OUT/log.csv         one row per iteration
//! OUT/events.out.tfevents.kis  the same scalars for TensorBoard (`tensorboard --logdir OUT`)
//! OUT/curves.png      learning curves
//! OUT/run.json        the command, scenario and settings
//! ```

mod curves;
mod tboard;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kis_learn::{DeviceChoice, IterStats, PpoConfig, SimVecEnv, Trainer};
use kis_policy::codec::write_atomic;
use kis_policy::{NetConfig, Provenance};
use kis_sim::env::EnvConfig;

/// `kis-agent train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The environment to train in: a kis-sim EnvConfig (JSON, or TOML by extension).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Run folder (created; an existing run there is only continued with --resume).
    #[arg(long, default_value = "train-run")]
    pub out: PathBuf,
    /// Environment steps to train (all environments together).
    #[arg(long, default_value_t = 1_000_000)]
    pub steps: u64,
    /// Seed (the same seed on the CPU gives the same run, bit for bit).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Parallel environments.
    #[arg(long, default_value_t = 8)]
    pub envs: usize,
    /// Steps per environment per rollout.
    #[arg(long, default_value_t = 128)]
    pub rollout: usize,
    /// Network: `cleanrl` (separate 64-64 tanh actor and critic) or `paper` (shared 256x3 ReLU).
    #[arg(long, default_value = "cleanrl")]
    pub net: String,
    /// Stop an update's epochs once approx-KL exceeds this.
    #[arg(long)]
    pub target_kl: Option<f64>,
    /// Adam learning rate (annealed linearly to 0); default CleanRL's 2.5e-4.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Minibatches per epoch (the minibatch is envs x rollout / this); default 4.
    #[arg(long)]
    pub minibatches: Option<usize>,
    /// Where to train: auto, cpu or cuda (cuda needs a build with the `cuda` feature).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch threads.
    #[arg(long, default_value_t = 1)]
    pub threads: i32,
    /// Evaluate on the validation split every N iterations (0 = never).
    #[arg(long, default_value_t = 10)]
    pub eval_every: u64,
    /// Validation days replayed (of days 0-7).
    #[arg(long, default_value_t = 1.0)]
    pub eval_days: f64,
    /// Trace seconds per simulated second in validation.
    #[arg(long, default_value_t = 20.0)]
    pub eval_speedup: f64,
    /// Write a checkpoint every N iterations (and at the end).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: u64,
    /// Continue the run in --out from its checkpoint (the PPO settings, --steps included, come
    /// from the checkpoint; --envs must match).
    #[arg(long)]
    pub resume: bool,
    /// Stop this invocation after N iterations, with a checkpoint (continue with --resume).
    #[arg(long)]
    pub pause_after: Option<u64>,
}

/// One CSV row: the iteration's statistics and, when it ran, the validation score.
#[derive(Clone, Debug)]
struct Row {
    s: IterStats,
    eval: Option<validate::Score>,
}

const HEADER: &str = "iteration,steps,lr,episodes,mean_return,recent_return,mean_length,pg_loss,v_loss,entropy,approx_kl,clip_frac,explained_var,epochs,sps,eval_return,eval_slo_miss,eval_gpu_hours";

impl Row {
    fn csv(&self) -> String {
        let s = &self.s;
        let e = |f: fn(&validate::Score) -> f64| {
            self.eval
                .as_ref()
                .map_or(String::new(), |v| f(v).to_string())
        };
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{},{},{}",
            s.iteration,
            s.steps,
            s.lr,
            s.episodes,
            s.mean_return,
            s.recent_return,
            s.mean_length,
            s.pg_loss,
            s.v_loss,
            s.entropy,
            s.approx_kl,
            s.clip_frac,
            s.explained_var,
            s.epochs,
            s.sps,
            e(|v| v.ret),
            e(|v| v.slo_miss),
            e(|v| v.gpu_hours)
        )
    }
}

/// Reads a scenario file and refuses held-out traces.
pub fn load_scenario(path: &Path) -> Result<EnvConfig> {
    let cfg: EnvConfig = crate::files::read_toml_or_json(path, "scenario")?;
    let shapes = std::iter::once(&cfg.sim.workload.shape).chain(&cfg.shapes);
    for shape in shapes {
        kis_sim::split::ensure_shape_not_held_out(shape)
            .with_context(|| format!("scenario {}", path.display()))?;
    }
    cfg.validate()
        .with_context(|| format!("scenario {}", path.display()))?;
    Ok(cfg)
}

fn ppo_config(a: &TrainArgs) -> Result<PpoConfig> {
    let net = match a.net.as_str() {
        "cleanrl" => NetConfig::default(),
        "paper" => NetConfig::paper(),
        other => bail!("--net {other:?}: expected cleanrl or paper"),
    };
    if let Some(t) = a.target_kl
        && !(t > 0.0 && t.is_finite())
    {
        bail!("--target-kl must be positive, got {t}");
    }
    let d = PpoConfig::default();
    let lr = a.lr.unwrap_or(d.lr);
    if !(lr > 0.0 && lr.is_finite()) {
        bail!("--lr must be positive, got {lr}");
    }
    let n_minibatches = a.minibatches.unwrap_or(d.n_minibatches);
    if n_minibatches == 0 || n_minibatches > a.envs.max(1) * a.rollout {
        bail!("--minibatches must be in 1..=envs x rollout, got {n_minibatches}");
    }
    Ok(PpoConfig {
        seed: a.seed,
        total_steps: a.steps,
        n_steps: a.rollout,
        target_kl: a.target_kl,
        lr,
        n_minibatches,
        net,
        threads: a.threads,
        ..d
    })
}

fn provenance(a: &TrainArgs) -> Provenance {
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Provenance {
        commit,
        scenario: a.scenario.display().to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..Provenance::default()
    }
}

fn progress(total: u64) -> ProgressBar {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if ci || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} iterations, {elapsed} elapsed, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Keeps the rows of an earlier run up to the checkpoint's iteration (a crash may have logged more).
fn read_rows(path: &Path, upto: u64) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|i| i.parse::<u64>().ok())
                .is_some_and(|i| i <= upto)
        })
        .map(str::to_string)
        .collect()
}

/// Runs `kis-agent train`.
pub fn run(a: &TrainArgs) -> Result<()> {
    let device = a.device.parse::<DeviceChoice>()?.resolve()?;
    let scenario = load_scenario(&a.scenario)?;
    let eval_env = if a.eval_every > 0 {
        Some(validate::validation_env(
            &scenario,
            a.eval_days,
            a.eval_speedup,
        )?)
    } else {
        None
    };
    let ppo = ppo_config(a)?;
    if a.envs == 0 {
        bail!("--envs must be at least 1");
    }
    let ckpt = a.out.join("checkpoint.ckpt");
    let policy_path = a.out.join("policy.kpol");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let env = SimVecEnv::new(&scenario, a.envs, cores)?;
    let mut trainer = if a.resume {
        Trainer::resume(&ckpt, env, device)?
    } else {
        if ckpt.exists() || policy_path.exists() {
            bail!(
                "{} already holds a run: continue it with --resume or choose another --out",
                a.out.display()
            );
        }
        Trainer::new(ppo, env, device)?
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let prov = provenance(a);
    let run_json = serde_json::json!({
        "command": prov.command, "commit": prov.commit, "device": format!("{device:?}"),
        "scenario": scenario, "ppo": trainer.config(), "envs": a.envs,
    });
    write_atomic(
        &a.out.join("run.json"),
        serde_json::to_string_pretty(&run_json)?.as_bytes(),
    )?;
    let log = a.out.join("log.csv");
    let mut lines = if a.resume {
        read_rows(&log, trainer.iteration())
    } else {
        Vec::new()
    };
    let mut rows: Vec<Row> = Vec::new();
    let iters = trainer.config().iterations(a.envs);
    let bar = progress(iters);
    bar.set_position(trainer.iteration());
    let started = Instant::now();
    let stop_at = a.pause_after.map_or(u64::MAX, |n| trainer.iteration() + n);
    while !trainer.finished() && trainer.iteration() < stop_at {
        let s = trainer.iterate()?;
        let it = s.iteration;
        let eval = match &eval_env {
            Some(cfg) if it % a.eval_every == 0 || it == iters => {
                let p = trainer.policy(prov.clone())?;
                Some(validate::score(&p, cfg, 0)?)
            }
            _ => None,
        };
        let row = Row { s, eval };
        lines.push(row.csv());
        bar.set_message(format!("return {:.2}", row.s.recent_return));
        bar.inc(1);
        rows.push(row);
        let csv = format!("{HEADER}\n{}\n", lines.join("\n"));
        write_atomic(&log, csv.as_bytes())?;
        write_atomic(&a.out.join(TFEVENTS), &tensorboard(&lines))?;
        if it % a.checkpoint_every.max(1) == 0 || trainer.finished() || it == stop_at {
            trainer.save_checkpoint(&ckpt, prov.clone())?;
            trainer.policy(prov.clone())?.save(&policy_path)?;
            write_atomic(&a.out.join("curves.png"), &plot(&lines)?)?;
        }
    }
    bar.finish_and_clear();
    let last = rows.last().map(|r| r.s.recent_return).unwrap_or(f64::NAN);
    let paused = if trainer.finished() {
        ""
    } else {
        " (paused: continue with --resume)"
    };
    println!(
        "trained {} steps{paused} in {:.0} s; recent return {last:.3}; policy {}",
        trainer.steps(),
        started.elapsed().as_secs_f64(),
        policy_path.display()
    );
    Ok(())
}

/// The TensorBoard event file of a run folder.
const TFEVENTS: &str = "events.out.tfevents.kis";

/// The CSV lines as a TensorBoard event file: every column after `steps` a scalar tagged by its
/// header name, at the iteration's environment steps.
fn tensorboard(lines: &[String]) -> Vec<u8> {
    let tags: Vec<&str> = HEADER.split(',').collect();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let rows: Vec<(u64, Vec<(&str, f64)>)> = lines
        .iter()
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let step = v.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let values = tags
                .iter()
                .zip(&v)
                .skip(2)
                .map(|(t, x)| (*t, x.parse().unwrap_or(f64::NAN)))
                .collect();
            (step, values)
        })
        .collect();
    tboard::event_file(wall, &rows)
}

/// The learning curves from the CSV lines (so a resumed run plots its whole history).
fn plot(lines: &[String]) -> Result<Vec<u8>> {
    let cols: Vec<Vec<f64>> = lines
        .iter()
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let col = |i: usize| -> Vec<(f64, f64)> { cols.iter().map(|c| (c[1], c[i])).collect() };
    let panels: Vec<curves::Panel<'_>> = vec![
        (
            "return",
            vec![
                ("training (last 20 episodes)", "#1f77b4", col(5)),
                ("validation", "#d62728", col(15)),
            ],
        ),
        (
            "validation SLO miss fraction",
            vec![("slo miss", "#d62728", col(16))],
        ),
        (
            "validation GPU-hours",
            vec![("gpu-hours", "#2ca02c", col(17))],
        ),
        (
            "losses",
            vec![("policy", "#1f77b4", col(7)), ("value", "#ff7f0e", col(8))],
        ),
        ("entropy", vec![("entropy", "#9467bd", col(9))]),
        ("approx KL", vec![("approx-kl", "#8c564b", col(10))]),
        (
            "explained variance",
            vec![("explained var", "#17becf", col(12))],
        ),
    ];
    curves::render("kis-agent train", &panels)
}
