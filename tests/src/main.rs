//! `kis-e2e`: the live testbed on one machine (`testbed up|down|status`), the process kubelet it
//! runs (`kubelet`, a stand-in), and the emulated accelerator's latency table (`emulated-table`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use kis_e2e::emulated::EmulatedModel;
use kis_e2e::kubelet::{KubeletConfig, NodeSpec};
use kis_e2e::testbed::{State, Testbed, TestbedConfig};

#[derive(Debug, Parser)]
#[command(
    name = "kis-e2e",
    about = "KIS live testbed: real control plane and Triton, process kubelet"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bring a testbed up or down, or report on it.
    Testbed {
        #[command(subcommand)]
        action: TestbedCmd,
    },
    /// Run the process kubelet (a stand-in for a real kubelet; the testbed starts it).
    Kubelet(KubeletArgs),
    /// Print the emulated accelerator's latency table (JSON) for a service profile.
    EmulatedTable {
        /// A kis-service-profile/v1 file (default: the built-in KIS-S MobileNetV4 GPU figures).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Largest batch.
        #[arg(long, default_value_t = 8)]
        max_batch: u32,
    },
}

#[derive(Debug, Subcommand)]
enum TestbedCmd {
    /// Start a testbed in the background and print where everything is.
    Up(UpArgs),
    /// Stop the testbed in DIR (every process by PID) and remove DIR.
    Down(DirArgs),
    /// Report whether the testbed in DIR is up, its nodes and Pods.
    Status(DirArgs),
    /// Hold a testbed until SIGTERM (what `up` runs in the background).
    #[command(hide = true)]
    Serve(UpArgs),
}

#[derive(Debug, Clone, Args)]
struct DirArgs {
    /// State directory (state.json, serve.log).
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
    /// Bound on waiting, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Debug, Clone, Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// A node of the process kubelet: NAME[:cpu=8,memory=16Gi,gpu=1,pods=110] (repeatable).
    #[arg(long = "node", default_value = "kis-node-1:cpu=8,memory=16Gi,gpu=1")]
    nodes: Vec<NodeSpec>,
    /// Profile of the emulated GPU model (default: the KIS-S MobileNetV4 GPU figures).
    #[arg(long)]
    gpu_profile: Option<PathBuf>,
    /// Do not register kis-adapter.
    #[arg(long)]
    no_adapter: bool,
    /// Do not run Prometheus.
    #[arg(long)]
    no_prometheus: bool,
    /// Do not run the load balancer.
    #[arg(long)]
    no_balancer: bool,
}

#[derive(Debug, Args)]
struct KubeletArgs {
    /// Its kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A node: NAME[:cpu=8,memory=16Gi,gpu=1,pods=110] (repeatable).
    #[arg(long = "node", required = true)]
    nodes: Vec<NodeSpec>,
    /// Pod IPs are 127.A.B.N.
    #[arg(long, value_parser = parse_network)]
    pod_network: [u8; 2],
    /// The Triton launcher.
    #[arg(long)]
    launcher: PathBuf,
    /// A model repository added to every Triton.
    #[arg(long)]
    repository: Option<PathBuf>,
    /// Where container logs go.
    #[arg(long)]
    log_dir: PathBuf,
    /// Node status and lease period, seconds.
    #[arg(long, default_value_t = 10)]
    heartbeat: u64,
}

fn default_dir() -> PathBuf {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    std::env::temp_dir().join(format!("kis-testbed-{user}"))
}

fn parse_network(s: &str) -> Result<[u8; 2], String> {
    let bad = || format!("{s:?} is not A.B (two numbers 0-255; Pod IPs are 127.A.B.N)");
    let (a, b) = s.split_once('.').ok_or_else(bad)?;
    Ok([a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?])
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Cmd::Testbed { action } => match action {
            TestbedCmd::Up(a) => up(&a),
            TestbedCmd::Down(a) => down(&a),
            TestbedCmd::Status(a) => status(&a),
            TestbedCmd::Serve(a) => serve(&a),
        },
        Cmd::Kubelet(a) => kubelet(a),
        Cmd::EmulatedTable { profile, max_batch } => emulated_table(profile.as_deref(), max_batch),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kis-e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn read_state(dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

fn up(a: &UpArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.dir.dir;
    if let Some(s) = read_state(dir)
        && alive(s.pid)
    {
        bail!(
            "a testbed is already up in {} (pid {}); run `kis-e2e testbed down --dir {}` first",
            dir.display(),
            s.pid,
            dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let log = dir.join("serve.log");
    let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let exe = std::env::current_exe().context("locate kis-e2e")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["testbed", "serve", "--dir"])
        .arg(dir)
        .arg(format!("--timeout={}", a.dir.timeout));
    for n in &a.nodes {
        cmd.arg(format!(
            "--node={}:cpu={},memory={},gpu={},pods={}",
            n.name, n.cpu, n.memory, n.gpus, n.pods
        ));
    }
    if let Some(p) = &a.gpu_profile {
        cmd.arg("--gpu-profile").arg(p);
    }
    if a.no_adapter {
        cmd.arg("--no-adapter");
    }
    if a.no_prometheus {
        cmd.arg("--no-prometheus");
    }
    if a.no_balancer {
        cmd.arg("--no-balancer");
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("start kis-e2e testbed serve")?;
    let t0 = Instant::now();
    loop {
        if let Some(s) = read_state(dir) {
            print!("{}", s.render());
            println!(
                "  up in {:.1} s; stop with: kis-e2e testbed down --dir {}",
                t0.elapsed().as_secs_f64(),
                dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "the testbed did not come up ({st}); {}:\n{}",
                log.display(),
                kis_e2e::proc::log_tail(&log, 4000)
            );
        }
        if t0.elapsed() > Duration::from_secs(a.dir.timeout) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
            bail!(
                "the testbed was not up after {} s (stopped it); {}:\n{}",
                a.dir.timeout,
                log.display(),
                kis_e2e::proc::log_tail(&log, 4000)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn serve(a: &UpArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.dir.dir;
    let exe = std::env::current_exe().context("locate kis-e2e")?;
    let mut config = TestbedConfig::new(&workspace(), &exe);
    config.nodes = a.nodes.clone();
    config.adapter = !a.no_adapter;
    config.prometheus = !a.no_prometheus;
    if a.no_balancer {
        config.balance = None;
    }
    config.ready_timeout = Duration::from_secs(a.dir.timeout);
    if let Some(p) = &a.gpu_profile {
        let m = EmulatedModel::from_profile_file(p)?;
        config.models[0] = EmulatedModel {
            name: config.models[0].name.clone(),
            ..m
        };
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Signals first, so a `down` during start-up is not lost.
    let mut term = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    })?;
    let mut int = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    })?;
    let mut tb = Testbed::start(&config)?;
    let state = tb.summary(std::process::id());
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&state)?)?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    eprintln!("{}", state.render());
    rt.block_on(async {
        let mut check = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = check.tick() => if let Err(e) = tb.check_running() {
                    eprintln!("kis-e2e testbed: a process is down: {e}");
                },
            }
        }
    });
    eprintln!("kis-e2e testbed: stopping");
    tb.stop();
    let _ = std::fs::remove_file(dir.join("state.json"));
    Ok(ExitCode::SUCCESS)
}

/// Processes whose command line mentions `needle` (the run directory or the Pod network).
fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

fn down(a: &DirArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.dir;
    let Some(state) = read_state(dir) else {
        println!("no testbed in {} (nothing to stop)", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        return Ok(ExitCode::SUCCESS);
    };
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    let t0 = Instant::now();
    let bound = Duration::from_secs(a.timeout);
    if alive(state.pid) {
        let _ = kill(Pid::from_raw(state.pid as i32), Signal::SIGTERM);
    }
    while alive(state.pid) && t0.elapsed() < bound {
        std::thread::sleep(Duration::from_millis(200));
    }
    if alive(state.pid) {
        eprintln!(
            "kis-e2e: the testbed did not stop in {} s: killing it",
            a.timeout
        );
        let _ = killpg(Pid::from_raw(state.pid as i32), Signal::SIGKILL);
    }
    // The watchdogs stop what the serve process could not; wait for them, then kill stragglers.
    let prefix = state.pod_network.trim_end_matches("0/24").to_string();
    let run_dir = state.run_dir.display().to_string();
    let leftovers = || {
        let mut v = processes_with(&run_dir);
        v.extend(processes_with(&format!("--http-address={prefix}")));
        v.extend(
            state
                .processes
                .iter()
                .map(|(_, p)| *p)
                .filter(|p| alive(*p)),
        );
        v.sort_unstable();
        v.dedup();
        v
    };
    let settle = Instant::now();
    while !leftovers().is_empty() && settle.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = leftovers();
    for pid in &left {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    let _ = std::fs::remove_dir_all(dir);
    if left.is_empty() {
        println!(
            "testbed down in {:.1} s: every process stopped, {} removed",
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("kis-e2e: killed leftover processes {left:?}");
        Ok(ExitCode::FAILURE)
    }
}

fn status(a: &DirArgs) -> anyhow::Result<ExitCode> {
    let Some(state) = read_state(&a.dir) else {
        println!("no testbed in {}", a.dir.display());
        return Ok(ExitCode::from(3));
    };
    let mut ok = alive(state.pid);
    println!(
        "testbed in {}: serve pid {} {}",
        a.dir.display(),
        state.pid,
        if ok { "running" } else { "GONE" }
    );
    for (name, pid) in &state.processes {
        let up = alive(*pid);
        ok &= up;
        println!(
            "  {:<45} pid {pid:<8} {}",
            name,
            if up { "running" } else { "GONE" }
        );
    }
    let kubectl = kis_e2e::cluster::KubeBinaries::locate()?.kubectl;
    let k = kis_e2e::kubectl::Kubectl::new(&kubectl, &state.kubeconfig);
    match k.run(&["get", "--raw", "/readyz"]) {
        Ok(r) => println!("  apiserver {} /readyz: {}", state.server, r.trim()),
        Err(e) => {
            ok = false;
            println!("  apiserver {}: {e}", state.server);
        }
    }
    if let Ok(out) = k.run(&["get", "nodes,pods", "-A", "-o", "wide"]) {
        // A closed pipe (`| head`) is not an error worth a panic.
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{out}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn kubelet(a: KubeletArgs) -> anyhow::Result<ExitCode> {
    let config = KubeletConfig {
        kubeconfig: a.kubeconfig,
        nodes: a.nodes,
        pod_network: a.pod_network,
        launcher: a.launcher,
        repository: a.repository,
        log_dir: a.log_dir,
        heartbeat: Duration::from_secs(a.heartbeat.max(1)),
        sync: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(10),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        };
        kis_e2e::kubelet::run(config, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn emulated_table(profile: Option<&Path>, max_batch: u32) -> anyhow::Result<ExitCode> {
    let mut m = match profile {
        Some(p) => EmulatedModel::from_profile_file(p)?,
        None => EmulatedModel::default(),
    };
    m.max_batch = max_batch;
    println!("{}", serde_json::to_string(&m.table(1)?)?);
    Ok(ExitCode::SUCCESS)
}
