//! The testbed side: the calibration of one emulated replica through nginx (`calibrate`'s code),
//! the Pods' start-up measured with `kubectl scale`, and the live validation runs through the
//! closed loop (`demo`'s agent start-up, kis-loadgen in-process with the shape value kis-sim
//! replays).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kis_traffic::{ArrivalKind, ShapeSpec};

use crate::calibrate::{self, Calibration};
use crate::demo::testbed::{GPU_DEPLOYMENT, GPU_MODEL, NS, Sample, Sampler, Testbed, unix_now};
use crate::demo::{self, Bins, LoopSettings, results, setups::SetUp};
use crate::live::apiserver::{self, DeploymentRef};

/// Seconds kis-loadgen waits for answers after the schedule (and kis-sim drains).
pub const DRAIN_S: f64 = 15.0;

/// Requests kis-loadgen keeps in flight in a validation run (its connections).
pub const IN_FLIGHT: usize = 512;

/// Calibrates one replica of the emulated GPU model through nginx (from the known state: one
/// Ready Pod, no HPA).
pub fn calibrate_replica(
    tb: &Testbed,
    levels: Vec<u32>,
    rates: Vec<f64>,
    seconds: f64,
    rounds: u32,
    seed: u64,
) -> Result<Calibration> {
    tb.reset(Duration::from_secs(300))?;
    let url = tb.state.balancer.clone().unwrap_or_default();
    // nginx lists a Ready Pod at its next refresh: wait until it routes the model.
    let client = calibrate::ModelClient::new(&url, GPU_MODEL)?;
    let t0 = Instant::now();
    while let Err(e) = client.config() {
        if t0.elapsed() > Duration::from_secs(90) {
            bail!("nginx does not route {GPU_MODEL} 90 s after its Pod turned Ready: {e}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = calibrate::Options {
        url,
        model: GPU_MODEL.into(),
        levels,
        duration: seconds,
        open_rates: rates,
        open_duration: seconds,
        open_rounds: rounds,
        warmup: 2.0,
        seed,
    };
    calibrate::calibrate(&o).context("calibration through nginx")
}

/// One measured start-up: a Pod from `kubectl scale` to Ready.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StartUp {
    /// Replicas before and after the scale.
    pub from: u32,
    /// See `from`.
    pub to: u32,
    /// The Pod.
    pub pod: String,
    /// Seconds from the scale command to the Pod seen Ready.
    pub seconds: f64,
}

/// The Pod start-up, `rounds` times 1 → 2 → 3 → 1 (no load, no HPA): for each new Pod the time
/// from `kubectl scale` to the apiserver showing it Ready (polled every 250 ms). One Pod per
/// step, as the validation runs' rule steps; the scale-down waits for the known state (one Pod,
/// none terminating), so every start is cold.
pub fn measure_startup(tb: &Testbed, rounds: u32) -> Result<Vec<StartUp>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let api = rt
        .block_on(apiserver::connect(
            Some(&tb.state.kubeconfig),
            None,
            Duration::from_secs(10),
        ))
        .map_err(|e| anyhow::anyhow!("apiserver: {e}"))?;
    let d = DeploymentRef {
        namespace: NS.into(),
        name: GPU_DEPLOYMENT.into(),
    };
    let mut out = Vec::new();
    tb.reset(Duration::from_secs(300))?;
    let mut current = 1;
    for _ in 0..rounds {
        for to in [2u32, 3, 1] {
            if to < current {
                tb.reset(Duration::from_secs(300))?;
                current = to;
                continue;
            }
            let before: Vec<String> = rt
                .block_on(api.pool(&d))
                .map_err(|e| anyhow::anyhow!(e))?
                .pods
                .into_iter()
                .map(|p| p.name)
                .collect();
            let t0 = unix_now();
            tb.kubectl(&[
                "-n",
                NS,
                "scale",
                "deployment",
                GPU_DEPLOYMENT,
                &format!("--replicas={to}"),
            ])?;
            let start = Instant::now();
            let mut seen: Vec<String> = Vec::new();
            while seen.len() < (to - current) as usize {
                if start.elapsed() > Duration::from_secs(180) {
                    bail!("{current} → {to}: new Pods not Ready in 180 s");
                }
                std::thread::sleep(Duration::from_millis(250));
                let Ok(p) = rt.block_on(api.pool(&d)) else {
                    continue;
                };
                for pod in p.pods.iter().filter(|p| p.ready) {
                    if !before.contains(&pod.name) && !seen.contains(&pod.name) {
                        seen.push(pod.name.clone());
                        out.push(StartUp {
                            from: current,
                            to,
                            pod: pod.name.clone(),
                            seconds: unix_now() - t0,
                        });
                    }
                }
            }
            current = to;
        }
    }
    tb.reset(Duration::from_secs(300))?;
    Ok(out)
}

/// What a live validation run recorded.
pub struct LiveRun {
    /// kis-loadgen's JSON report.
    pub report: serde_json::Value,
    /// Its table row (SLO miss, p95, ...), as the demo computes it.
    pub row: results::Row,
    /// Replica samples.
    pub samples: Vec<Sample>,
    /// Unix seconds of the schedule's start.
    pub start: f64,
    /// Seconds from the start to the agent's first decision in the run, modulo its period.
    pub phase: f64,
}

/// Everything a live run needs from the caller.
pub(crate) struct LiveContext<'a> {
    /// Binaries.
    pub(crate) bins: &'a Bins,
    /// The testbed.
    pub(crate) tb: &'a Testbed,
    /// The repository root.
    pub(crate) workspace: &'a Path,
    /// The adapter token file.
    pub(crate) token: &'a Path,
    /// Scenario and period of `live`.
    pub(crate) settings: LoopSettings<'a>,
    /// The rule.
    pub(crate) rule: &'a str,
    /// The SLO, seconds.
    pub(crate) slo: f64,
    /// The arrivals' seed.
    pub(crate) seed: u64,
}

/// One validation run live: known state, `live --mode full` with the rule, the GPU HPA, `shape`
/// (`seconds` long) through nginx (kis-loadgen in-process, Poisson, `seed`), replicas sampled every second.
pub(crate) fn live_run(
    c: &LiveContext<'_>,
    name: &str,
    shape: &ShapeSpec,
    seconds: f64,
    dir: &Path,
) -> Result<LiveRun> {
    c.tb.reset(Duration::from_secs(300))?;
    let setup = SetUp {
        name: name.into(),
        policy: None,
        rule: c.rule.into(),
    };
    let (mut agent, cmds) =
        demo::start_loop(&c.settings, c.bins, c.tb, c.workspace, c.token, &setup, dir)?;
    let sampler = Sampler::start_every(&c.tb.state.kubeconfig, Duration::from_millis(250))?;
    let target = kis_loadgen::config::Target::kserve(
        c.tb.state.balancer.as_deref().unwrap_or_default(),
        GPU_MODEL,
    )?;
    let mut cfg = kis_loadgen::Config::open_loop(target, shape.clone(), ArrivalKind::Poisson)
        .with_seed(c.seed)
        .quiet();
    // Every arrival is sent at its time, as kis-sim's open loop has it: with kis-loadgen's
    // default cap (64 in flight) a backlog would wait in the client and nginx would spread it
    // over the new Pods, while in kis-sim (and with many independent clients) it waits in the
    // queue of the Pod it was routed to.
    cfg.connections = IN_FLIGHT;
    if let kis_loadgen::config::Load::Open { max_in_flight, .. } = &mut cfg.load {
        *max_in_flight = IN_FLIGHT;
    }
    cfg.timeout_s = 30.0;
    cfg.grace_s = DRAIN_S;
    cfg.ready_timeout_s = 60.0;
    cfg.outputs.json = Some(dir.join("loadgen.json"));
    cfg.outputs.hdr_log = Some(dir.join("loadgen.hlog"));
    std::fs::write(
        dir.join("commands.txt"),
        format!(
            "{cmds}kis-loadgen in-process: {}\n",
            serde_json::to_string(&cfg)?
        ),
    )?;
    let load = std::thread::spawn(move || kis_loadgen::run(cfg));
    let bound = Duration::from_secs_f64(seconds + DRAIN_S + 120.0);
    let t0 = Instant::now();
    while !load.is_finished() {
        if let Some(st) = agent.exited() {
            bail!("{name}: kis-agent live exited ({st}) during the run");
        }
        if t0.elapsed() > bound {
            bail!(
                "{name}: kis-loadgen still running after {} s",
                bound.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let samples = sampler.finish()?;
    agent.stop();
    load.join()
        .map_err(|_| anyhow::anyhow!("{name}: kis-loadgen panicked"))?
        .with_context(|| format!("{name}: kis-loadgen"))?;
    results::samples_csv(&samples, &dir.join("replicas.csv"))?;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("loadgen.json"))?)
            .context("kis-loadgen's JSON report")?;
    let hlog = std::fs::read(dir.join("loadgen.hlog"))?;
    let row = results::row(name, &report, &hlog, &samples, c.slo)?;
    let start = report["started_unix_s"]
        .as_f64()
        .context("kis-loadgen's report has no started_unix_s")?;
    let phase = first_decision_after(&dir.join("decisions.jsonl"), start)?
        .map_or(0.0, |t| (t - start).rem_euclid(c.settings.period));
    Ok(LiveRun {
        report,
        row,
        samples,
        start,
        phase,
    })
}

/// The first decision's time at or after `start` (Unix seconds) in a `--decisions` file.
fn first_decision_after(path: &Path, start: f64) -> Result<Option<f64>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["t"].as_f64())
        .find(|t| *t >= start))
}
