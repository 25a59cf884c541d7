//! `kis-agent demo` end to end through the real binary: it brings up its own testbed with
//! `kis-e2e testbed up`, runs one set-up under a short spike, writes the table and the plot, and
//! tears the testbed down by PID, also when it fails midway (its agent killed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kis_e2e::wait_until;
use serde_json::Value;

use crate::common::{alive, turn, workspace};

/// The `kis-agent` binary next to this test binary (`cargo build -p kis-agent`), which finds
/// `kis-e2e` and `kis-loadgen` beside itself.
pub(crate) fn agent_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    for b in ["kis-agent", "kis-loadgen", "kis-e2e", "kis-adapter"] {
        assert!(
            dir.join(b).is_file(),
            "{} not found: `cargo build -p kis-agent -p kis-loadgen -p kis-adapter` (cargo test --workspace does)",
            dir.join(b).display()
        );
    }
    dir.join("kis-agent")
}

/// `kis-agent demo --only policy` with a short spike into `out`; its stderr goes to `out.log`.
fn start_demo(out: &Path, duration: &str) -> Child {
    let log = std::fs::File::create(out.with_extension("log")).unwrap();
    Command::new(agent_bin())
        .current_dir(workspace())
        .args(["demo", "--only", "policy", "--duration", duration])
        .args(["--period", "3s", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start kis-agent demo")
}

pub(crate) fn wait_exit(
    child: &mut Child,
    bound: Duration,
    log: &Path,
) -> std::process::ExitStatus {
    wait_until("kis-agent demo to exit", bound, || match child.try_wait() {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err("running".into()),
        Err(e) => Err(e.to_string()),
    })
    .unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("{e}\n{}", std::fs::read_to_string(log).unwrap_or_default())
    })
}

/// PIDs of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(needle)
            && alive(pid)
        {
            v.push(pid);
        }
    }
    v
}

/// The testbed's run directory, from the summary `testbed up` printed into the run folder.
pub(crate) fn testbed_run_dir(out: &Path) -> Option<String> {
    let log = std::fs::read_to_string(out.join("testbed-up.log")).ok()?;
    log.lines()
        .find_map(|l| l.trim().strip_prefix("logs"))
        .map(|s| s.trim().to_string())
}

/// Nothing the demo started is left: no testbed process, no Triton, no agent or load generator.
pub(crate) fn assert_nothing_left(out: &Path, state_dir: &Path, run_dir: &str) {
    wait_until("every process to be gone", Duration::from_secs(60), || {
        let mut left = processes_with(run_dir);
        left.extend(processes_with(&state_dir.display().to_string()));
        left.extend(processes_with(&out.display().to_string()));
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left: {left:?}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!state_dir.exists(), "{} left behind", state_dir.display());
}

#[test]
fn demo_writes_a_table_row_per_set_up_and_its_plot() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let log = out.with_extension("log");
    let mut demo = start_demo(&out, "45s");
    let state_dir = std::env::temp_dir().join(format!("kis-demo-{}", demo.id()));
    let status = wait_exit(&mut demo, Duration::from_secs(480), &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}\n{text}");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 1, "{csv}");
    let r = &rows[0];
    assert_eq!(r[0], "policy", "{csv}");
    let num = |i: usize| r[i].parse::<f64>().unwrap_or(f64::NAN);
    // 45 s of 4 -> 30 -> 4 req/s: about 0.6 x 45 x 4 + 0.4 x 45 x 30 = 648 arrivals.
    assert!((400.0..=900.0).contains(&num(1)), "requests: {csv}");
    assert!((0.0..=100.0).contains(&num(2)), "SLO miss %: {csv}");
    assert!(num(3) > 0.0 && num(3) < 60_000.0, "p95 ms: {csv}");
    // At least the one Ready replica throughout, at most the node's 3 emulated GPUs.
    assert!(
        (0.8 * 45.0..=3.2 * 45.0).contains(&num(4)),
        "GPU replica-s: {csv}"
    );
    // The policy scales (the shipped one up to the GPU pool's maximum).
    assert!(num(5) >= 1.0, "scaling actions: {csv}");
    assert!(num(6) <= 0.1 * num(1), "requests lost: {csv}");
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(md.contains("| policy |"), "{md}");
    assert!(text.contains("| policy |"), "the table is printed: {text}");
    let png = std::fs::read(out.join("policy/plot.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    for f in [
        "command.txt",
        "summary.md",
        "policy/decisions.jsonl",
        "policy/replicas.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let d = std::fs::read_to_string(out.join("policy/decisions.jsonl")).unwrap();
    let first: Value = serde_json::from_str(d.lines().next().unwrap()).unwrap();
    assert_eq!(first["mode"], "full", "{first}");
    let run_dir = testbed_run_dir(&out).expect("the testbed's summary");
    assert_nothing_left(&out, &state_dir, &run_dir);
}

#[test]
fn demo_failing_midway_tears_everything_down() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let log = out.with_extension("log");
    let mut demo = start_demo(&out, "90s");
    let state_dir = std::env::temp_dir().join(format!("kis-demo-{}", demo.id()));
    let decisions = out.join("policy/decisions.jsonl");
    // Midway: the agent is running its set-up.
    wait_until(
        "the agent's first decision",
        Duration::from_secs(400),
        || {
            if let Ok(Some(s)) = demo.try_wait() {
                return Ok(Err(s));
            }
            match std::fs::read_to_string(&decisions) {
                Ok(d) if !d.trim().is_empty() => Ok(Ok(())),
                _ => Err("no decision yet".to_string()),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))
    .unwrap_or_else(|s| {
        panic!(
            "the demo ended early ({s})\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("state.json")).unwrap())
            .unwrap();
    let pids: Vec<u32> = state["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[1].as_u64().map(|x| x as u32))
        .chain(state["pid"].as_u64().map(|x| x as u32))
        .collect();
    assert!(pids.len() >= 5 && pids.iter().all(|p| alive(*p)), "{state}");
    let agent = processes_with(&decisions.display().to_string());
    assert_eq!(agent.len(), 1, "the agent process: {agent:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = wait_exit(&mut demo, Duration::from_secs(240), &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("kis-agent live exited"), "{text}");
    for p in &pids {
        assert!(!alive(*p), "pid {p} of the testbed still runs\n{state}");
    }
    let run_dir = state["run_dir"].as_str().unwrap().to_string();
    let pod_net = state["pod_network"]
        .as_str()
        .unwrap()
        .trim_end_matches("0/24");
    assert!(processes_with(pod_net).is_empty(), "a Triton is left");
    assert_nothing_left(&out, &state_dir, &run_dir);
    assert!(
        !out.join("table.csv").exists(),
        "no table from a failed run"
    );
}
