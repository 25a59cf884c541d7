//! `kis-agent demo`: the closed loop on the live testbed, one set-up after another under the same
//! compressed spike. For each set-up it brings the testbed to a known state, starts
//! `kis-agent live --mode full` with it, applies deploy/'s GPU HPA, drives the spike through nginx
//! with kis-loadgen (open loop, bounded), samples the pool's replicas, and stops the agent. Then one
//! comparison table (markdown + CSV) and a plot per set-up, in a dated run folder.
//!
//! - [`args`]: the flags (apart, so that the CLI does not depend on the demo's workings);
//! - [`testbed`]: `kis-e2e testbed up|down` as a subprocess, the known state, the replica sampler,
//!   PID guards and the signal handler;
//! - [`setups`]: the set-ups (shipped policy, best tuned rule; `--all`: forecaster, HPA on queue);
//! - [`results`]: table rows, CSV / markdown, plot series (pure).

mod args;
pub mod results;
pub mod setups;
pub mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use args::DemoArgs;
use setups::SetUp;
use testbed::{GPU_DEPLOYMENT, GPU_MODEL, NS, Sampler, Testbed, Tracked};

/// Paths of the binaries the demo runs.
pub(crate) struct Bins {
    pub(crate) agent: PathBuf,
    pub(crate) kis_e2e: PathBuf,
    pub(crate) loadgen: PathBuf,
}

impl Bins {
    /// This binary and its siblings (`$KIS_E2E_BIN`, `$KIS_LOADGEN_BIN` override).
    pub(crate) fn locate() -> Result<Self> {
        Ok(Bins {
            agent: std::env::current_exe().context("locate kis-agent")?,
            kis_e2e: testbed::sibling_binary("kis-e2e", "KIS_E2E_BIN")?,
            loadgen: testbed::sibling_binary("kis-loadgen", "KIS_LOADGEN_BIN")?,
        })
    }
}

/// `kis-e2e testbed up` with `gpus` emulated GPUs (its log in `out/testbed-up.log`) and the
/// adapter's publish token written to a file for `live --token-file`.
pub(crate) fn bring_up(bins: &Bins, gpus: u32, out: &Path) -> Result<(Testbed, PathBuf)> {
    let tb_dir = std::env::temp_dir().join(format!("kis-demo-{}", std::process::id()));
    let tb = Testbed::up(&bins.kis_e2e, &tb_dir, gpus, &out.join("testbed-up.log"))?;
    let token = tb_dir.join("publish-token");
    std::fs::write(
        &token,
        tb.state.adapter_token.as_deref().unwrap_or_default(),
    )?;
    Ok((tb, token))
}

/// Runs the demo; prints the table and the paths written.
pub fn run(a: &DemoArgs) -> Result<()> {
    if a.max < a.min || a.min <= 0.0 {
        bail!("--min {} / --max {}: need 0 < min <= max", a.min, a.max);
    }
    if a.gpus == 0 {
        bail!("--gpus must be at least 1");
    }
    let mut list = setups::setups(&a.policy, &a.tuned, a.all)?;
    if let Some(only) = &a.only {
        let want: Vec<&str> = only.split(',').map(str::trim).collect();
        list.retain(|s| want.contains(&s.name.as_str()));
        if list.is_empty() {
            bail!("--only {only}: no such set-up");
        }
    }
    let scenario = crate::live::config::load_scenario(&a.scenario)?;
    let slo = scenario.sim.slo;
    let bins = Bins::locate()?;
    let workspace = std::env::current_dir()?;
    if !workspace.join("deploy/v1.20/hpa-gpu.yaml").is_file() {
        bail!("run it from the repository root (deploy/v1.20/hpa-gpu.yaml not found)");
    }
    let out = run_folder(a.out.as_deref())?;
    let argv: Vec<String> = std::env::args().collect();
    std::fs::write(out.join("command.txt"), argv.join(" ") + "\n")?;
    testbed::install_signal_handler();

    let t0 = Instant::now();
    eprintln!(
        "kis-agent demo: {} set-up(s), {:.0} s spike each; run folder {}",
        list.len(),
        a.duration,
        out.display()
    );
    eprintln!("kis-agent demo: bringing the testbed up (kis-e2e testbed up) ...");
    let (tb, token) = bring_up(&bins, a.gpus, &out)?;
    eprintln!(
        "kis-agent demo: testbed up in {:.0} s (logs {})",
        t0.elapsed().as_secs_f64(),
        tb.state.run_dir.display()
    );
    let mut rows = Vec::new();
    for (i, s) in list.iter().enumerate() {
        eprintln!("kis-agent demo: [{}/{}] {}", i + 1, list.len(), s.name);
        let dir = out.join(&s.name);
        std::fs::create_dir_all(&dir)?;
        rows.push(run_setup(a, &bins, &tb, &workspace, &token, s, &dir, slo)?);
    }
    drop(tb);
    std::fs::write(out.join("table.md"), results::markdown(&rows, slo))?;
    std::fs::write(out.join("table.csv"), results::csv(&rows))?;
    write_summary(a, &out, &list, &rows, slo, t0.elapsed().as_secs_f64())?;
    println!("{}", results::markdown(&rows, slo));
    println!("table: {}", out.join("table.md").display());
    for s in &list {
        println!("plot:  {}", out.join(&s.name).join("plot.png").display());
    }
    println!(
        "run folder {} ({:.0} s)",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--out`, or a new dated folder under out/demo/.
fn run_folder(out: Option<&Path>) -> Result<PathBuf> {
    new_run_folder(out, "out/demo")
}

/// `out`, or a new dated folder under `base` (the current directory's); refused when it exists
/// and is not empty.
pub(crate) fn new_run_folder(out: Option<&Path>, base: &str) -> Result<PathBuf> {
    let dir = match out {
        Some(p) => p.to_path_buf(),
        None => {
            let stamp = crate::calibrate::now_utc()
                .trim_end_matches(" UTC")
                .replace([' ', ':'], "-");
            let base = PathBuf::from(base).join(stamp);
            let mut d = base.clone();
            let mut k = 2;
            while d.exists() {
                d = PathBuf::from(format!("{}-{k}", base.display()));
                k += 1;
            }
            d
        }
    };
    if dir.read_dir().is_ok_and(|mut r| r.next().is_some()) {
        bail!("--out {}: exists and is not empty", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// How `live` runs in a set-up: the scenario file and the control period, seconds.
pub(crate) struct LoopSettings<'a> {
    pub(crate) scenario: &'a str,
    pub(crate) period: f64,
}

/// The `kis-agent live` command of a set-up.
fn live_command(
    a: &LoopSettings<'_>,
    bins: &Bins,
    tb: &Testbed,
    token: &Path,
    s: &SetUp,
    dir: &Path,
) -> Command {
    let st = &tb.state;
    let mut c = Command::new(&bins.agent);
    c.arg("live")
        .args(["--prometheus", st.prometheus.as_deref().unwrap_or_default()])
        .arg("--kubeconfig")
        .arg(&st.kubeconfig)
        .args(["--adapter", st.adapter.as_deref().unwrap_or_default()])
        .arg("--adapter-ca")
        .arg(st.adapter_ca())
        .arg("--token-file")
        .arg(token)
        .args(["--scenario", a.scenario])
        .args(["--pool", &format!("gpu={NS}/{GPU_DEPLOYMENT}")])
        // The testbed scrapes every second; two leave room on a busy machine.
        .args(["--scrape-interval", "2s"])
        .args(["--period", &format!("{}s", a.period)])
        .args(["--mode", "full", "--rule", &s.rule])
        .arg("--decisions")
        .arg(dir.join("decisions.jsonl"));
    if let Some(p) = &s.policy {
        c.args(["--policy", p]);
    }
    c
}

/// Starts `kis-agent live --mode full` with set-up `s` (log and decisions in `dir`), waits for
/// its first decision, then applies the GPU HPA; the agent and its command line.
pub(crate) fn start_loop(
    a: &LoopSettings<'_>,
    bins: &Bins,
    tb: &Testbed,
    workspace: &Path,
    token: &Path,
    s: &SetUp,
    dir: &Path,
) -> Result<(Tracked, String)> {
    let mut cmd = live_command(a, bins, tb, token, s, dir);
    let log = std::fs::File::create(dir.join("agent.log"))?;
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let cmds = format!("{cmd:?}\n");
    let mut agent = Tracked::spawn(cmd, "kis-agent live", Duration::from_secs(15))?;
    // The HPA only once the agent has published this set-up's first target, so it never acts
    // on the previous set-up's.
    let decisions = dir.join("decisions.jsonl");
    let t0 = Instant::now();
    while std::fs::read_to_string(&decisions).map_or(true, |d| d.trim().is_empty()) {
        if let Some(st) = agent.exited() {
            bail!(
                "{}: kis-agent live exited ({st}) before its first decision; see {}",
                s.name,
                dir.join("agent.log").display()
            );
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("{}: no decision from kis-agent live in 120 s", s.name);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    tb.apply_hpa(workspace)?;
    Ok((agent, cmds))
}

/// One set-up: known state, agent, HPA, spike, samples; its table row and plot.
#[allow(clippy::too_many_arguments)]
fn run_setup(
    a: &DemoArgs,
    bins: &Bins,
    tb: &Testbed,
    workspace: &Path,
    token: &Path,
    s: &SetUp,
    dir: &Path,
    slo: f64,
) -> Result<results::Row> {
    tb.reset(Duration::from_secs(300))?;
    let settings = LoopSettings {
        scenario: &a.scenario,
        period: a.period,
    };
    let (mut agent, mut cmds) = start_loop(&settings, bins, tb, workspace, token, s, dir)?;
    let sampler = Sampler::start(&tb.state.kubeconfig)?;
    let mut lg = Command::new(&bins.loadgen);
    lg.args(["--url", tb.state.balancer.as_deref().unwrap_or_default()])
        .args(["--model", GPU_MODEL, "--json-body", "--shape", "INPUT0:1,3"])
        .args(["--pattern", "spike", "--min", &a.min.to_string()])
        .args(["--max", &a.max.to_string()])
        .args(["--spike-start", "0.2", "--spike-length", "0.4"])
        .args(["--duration", &format!("{}s", a.duration)])
        .args(["--arrivals", "poisson", "--seed", &a.seed.to_string()])
        .args(["--ready-timeout", "60s", "--timeout", "30", "--quiet"])
        .arg("--json")
        .arg(dir.join("loadgen.json"))
        .arg("--hdr-log")
        .arg(dir.join("loadgen.hlog"))
        .arg("--csv")
        .arg(dir.join("loadgen"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("loadgen.log"))?);
    cmds += &format!("{lg:?}\n");
    std::fs::write(dir.join("commands.txt"), &cmds)?;
    let mut load = Tracked::spawn(lg, "kis-loadgen", Duration::from_secs(10))?;
    let bound = Duration::from_secs_f64(a.duration + 120.0);
    let t1 = Instant::now();
    let status = loop {
        if let Some(st) = load.exited() {
            break st;
        }
        if let Some(st) = agent.exited() {
            bail!(
                "{}: kis-agent live exited ({st}) during the spike; see {}",
                s.name,
                dir.join("agent.log").display()
            );
        }
        if t1.elapsed() > bound {
            bail!(
                "{}: kis-loadgen still running after {} s",
                s.name,
                bound.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let samples = sampler.finish()?;
    agent.stop();
    if !status.success() {
        bail!(
            "{}: kis-loadgen failed ({status}); see {}",
            s.name,
            dir.join("loadgen.log").display()
        );
    }
    results::samples_csv(&samples, &dir.join("replicas.csv"))?;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("loadgen.json"))?)
            .context("kis-loadgen's JSON report")?;
    let hlog = std::fs::read(dir.join("loadgen.hlog"))?;
    let row = results::row(&s.name, &report, &hlog, &samples, slo)?;
    let series = results::series(&report, &samples);
    let title = format!("kis-agent demo on the testbed: {}", s.name);
    crate::plot::write_plot(&dir.join("plot.png"), &title, &series, slo)?;
    eprintln!(
        "kis-agent demo: {}: SLO miss {:.2} %, p95 {:.0} ms, {:.0} GPU replica-s, {} scaling actions, {} lost",
        s.name,
        row.slo_miss_pct,
        row.p95_ms,
        row.gpu_replica_seconds,
        row.scaling_actions,
        row.requests_lost
    );
    Ok(row)
}

/// summary.md: what ran, the table, the plots.
fn write_summary(
    a: &DemoArgs,
    out: &Path,
    list: &[SetUp],
    rows: &[results::Row],
    slo: f64,
    wall_s: f64,
) -> Result<()> {
    let mut s = format!(
        "# kis-agent demo, {}\n\nCommand: `{}`\n\nOn the live testbed (`kis-e2e testbed up`: real apiserver, scheduler, \
         ReplicaSet and HPA controllers, Prometheus, nginx, kis-adapter; a process kubelet and an \
         emulated accelerator stand in for the kubelet and the GPU; one node with {} emulated GPUs). \
         Each set-up ran `kis-agent live --mode full` (period {} s) on `{NS}/{GPU_DEPLOYMENT}` behind \
         deploy/v1.20/hpa-gpu.yaml, from one Ready replica, under the same spike through nginx \
         ({} → {} → {} req/s, Poisson, seed {}, {:.0} s). Wall time {:.0} s.\n\n",
        crate::calibrate::now_utc(),
        std::fs::read_to_string(out.join("command.txt"))?.trim(),
        a.gpus,
        a.period,
        a.min,
        a.max,
        a.min,
        a.seed,
        a.duration,
        wall_s
    );
    s += &results::markdown(rows, slo);
    s += "\n| set-up | policy | rule | plot |\n|---|---|---|---|\n";
    for x in list {
        s += &format!(
            "| {} | {} | `{}` | [{}/plot.png]({}/plot.png) |\n",
            x.name,
            x.policy.as_deref().unwrap_or("-"),
            x.rule,
            x.name,
            x.name
        );
    }
    s += "\nPer set-up folder: `commands.txt`, `agent.log`, `decisions.jsonl`, `loadgen.json`, \
          `loadgen.hlog`, `loadgen_*.csv`, `replicas.csv` (spec and Ready each second), `plot.png`.\n";
    std::fs::write(out.join("summary.md"), s)?;
    Ok(())
}
