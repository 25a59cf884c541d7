//! `kis-agent live` on the testbed, through the real binary: it reads the real Prometheus and
//! apiserver, publishes through the registered kis-adapter, and deploy/'s example HPA
//! (`deploy/v1.20/hpa-cpu.yaml`) scales `triton-cpu`. Short periods (2–3 s) keep the wall time
//! modest; everything asynchronous is waited for with bounded polls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kis_e2e::testbed::Testbed;
use kis_e2e::wait_until;
use serde_json::Value;

use crate::common::{
    Load, READY_BOUND, clean_up, is_ready, pods, serving_namespace, testbed, turn, workspace,
};

const NS: &str = "kis-serving";
const APP: &str = "triton-cpu";
const METRIC_PATH: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/kis-serving/kis-replicas?labelSelector=target%3Dtriton-cpu";

/// The `kis-agent` binary next to this test binary (`cargo build -p kis-agent`), or
/// `$KIS_AGENT_BIN`.
fn agent_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KIS_AGENT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("kis-agent");
    assert!(
        bin.is_file(),
        "{} not found: build it with `cargo build -p kis-agent` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A running agent, killed on drop if still running.
struct Agent {
    child: Child,
    log: PathBuf,
    decisions: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Agent {
    fn decisions(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.decisions)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit; its status.
    fn wait_exit(&mut self, bound: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        let r = wait_until("kis-agent to exit", bound, || match child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("running".into()),
            Err(e) => Err(e.to_string()),
        });
        r.unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    fn sigterm(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }
}

/// Flags pointing the agent at the testbed, the CPU pool, a scenario whose CPU pool is 1..=3.
fn base_args(tb: &Testbed, dir: &Path) -> Vec<String> {
    let adapter = tb.adapter.as_ref().expect("the testbed runs kis-adapter");
    let token = dir.join("token");
    std::fs::write(&token, &adapter.token).unwrap();
    let mut scenario = kis_sim::env::EnvConfig::default_cluster();
    scenario.sim.pools.cpu.max_replicas = 3;
    let sc = dir.join("scenario.json");
    std::fs::write(&sc, serde_json::to_string(&scenario).unwrap()).unwrap();
    let prom = tb.prometheus.as_ref().expect("the testbed runs Prometheus");
    [
        "live",
        "--prometheus",
        &prom.url,
        "--kubeconfig",
        &tb.cp.admin.kubeconfig().display().to_string(),
        "--adapter",
        &format!("https://127.0.0.1:{}", adapter.port),
        "--adapter-ca",
        &adapter.serving_ca.display().to_string(),
        "--token-file",
        &token.display().to_string(),
        "--scenario",
        &sc.display().to_string(),
        "--pool",
        "cpu=kis-serving/triton-cpu",
        // The testbed scrapes every second; two seconds leave room on a busy machine.
        "--scrape-interval",
        "2s",
        "--decisions",
        &dir.join("decisions.jsonl").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_agent(tb: &Testbed, extra: &[&str]) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(tb, dir.path());
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = dir.path().join("agent.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(agent_bin())
        .args(&args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start kis-agent");
    Agent {
        child,
        decisions: dir.path().join("decisions.jsonl"),
        log,
        _dir: dir,
    }
}

/// `triton-cpu` with one Ready Pod and deploy/'s HPA on it.
fn serving(tb: &Testbed) {
    serving_namespace(tb);
    tb.apply_tritons(workspace(), NS, &[(APP, 1)]).unwrap();
    let hpa = workspace().join("deploy/v1.20/hpa-cpu.yaml");
    tb.cp
        .admin
        .run(&["apply", "-f", hpa.to_str().unwrap()])
        .unwrap();
    wait_spec(tb, 1, true);
}

fn spec_replicas(tb: &Testbed) -> i64 {
    tb.cp
        .admin
        .json(&["-n", NS, "get", "deployment", APP])
        .map(|d| d["spec"]["replicas"].as_i64().unwrap_or(-1))
        .unwrap_or(-1)
}

/// Waits until the Deployment has `n` replicas (and, with `ready`, as many Ready Pods).
fn wait_spec(tb: &Testbed, n: i64, ready: bool) {
    wait_until(&format!("triton-cpu at {n}"), READY_BOUND, || {
        tb.check_running().map_err(|e| e.to_string())?;
        let spec = spec_replicas(tb);
        let r = pods(tb, NS, APP).iter().filter(|p| is_ready(p)).count() as i64;
        if spec == n && (!ready || r == n) {
            Ok(())
        } else {
            Err(format!(
                "spec.replicas={spec}, {r} Ready; HPA {}",
                hpa_status(tb)
            ))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Withdraws the agent's last target (so no later test's HPA reads it within its TTL), then
/// removes the HPA and the Deployment.
fn tear_down(tb: &Testbed) {
    if let Some(a) = &tb.adapter {
        let _ = a.withdraw(NS, "kis-replicas", &[("target", APP)]);
    }
    let _ = tb.cp.admin.run(&["-n", NS, "delete", "hpa", APP]);
    clean_up(tb, NS, &[APP]);
}

/// The published target as the HPA reads it through the aggregator: Ok(value) or Err(error).
fn read_target(tb: &Testbed) -> Result<f64, String> {
    let v = tb
        .cp
        .admin
        .raw_json(METRIC_PATH)
        .map_err(|e| e.to_string())?;
    let q = v["items"][0]["value"]
        .as_str()
        .ok_or_else(|| format!("no value in {v}"))?;
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().map(|x| x / 1000.0),
        None => q.parse(),
    }
    .map_err(|e| format!("{q}: {e}"))
}

fn published(d: &Value) -> i64 {
    d["pools"][0]["published"].as_i64().unwrap_or(-1)
}

#[test]
fn live_full_follows_a_scripted_policy_through_the_hpa() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    // Up 2, then up 2 again (masked: past the scenario's max of 3, so held), then hold.
    let mut agent = start_agent(
        tb,
        &[
            "--mode",
            "full",
            "--policy",
            "scripted:2,4,1;2,4,1",
            "--rule",
            "fixed:2",
            "--period",
            "2s",
        ],
    );
    // The loop closes: published 3 -> the HPA -> spec.replicas 3, read back by the agent.
    wait_until("the agent to read spec.replicas 3", READY_BOUND, || {
        let d = agent.decisions();
        if d.iter().any(|x| x["pools"][0]["spec"] == 3) {
            Ok(())
        } else {
            Err(format!("{} decisions; HPA: {}", d.len(), hpa_status(tb)))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    agent.sigterm();
    assert!(agent.wait_exit(Duration::from_secs(30)).success());
    let log = agent.log();
    let d = agent.decisions();
    for x in &d {
        assert_eq!(x["fallback"], Value::Null, "no fallback expected: {x}");
        assert_eq!(x["pools"][0]["source"], "policy", "{x}");
        assert_eq!(x["pools"][0]["publish_ok"], true, "{x}");
        assert_eq!(x["pools"][0]["rule"], 2, "{x}");
        assert_eq!(published(x), 3, "{x}");
    }
    // Every decision is one log line with its inputs.
    let lines = log.lines().filter(|l| l.contains(" decision ")).count();
    assert_eq!(lines, d.len(), "{log}");
    assert!(log.contains("obs=") && log.contains("queue="), "{log}");

    // A second agent on the running pool: down 2 (to the min 1).
    let mut agent = start_agent(
        tb,
        &[
            "--mode",
            "full",
            "--policy",
            "scripted:2,0,1",
            "--rule",
            "fixed:2",
            "--period",
            "2s",
            "--max-decisions",
            "3",
        ],
    );
    let status = agent.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{status}\n{}", agent.log());
    let got: Vec<i64> = agent.decisions().iter().map(published).collect();
    assert_eq!(got, [1, 1, 1], "{}", agent.log());
    wait_spec(tb, 1, false);
    tear_down(tb);
}

/// The HPA's status, for failure messages.
fn hpa_status(tb: &Testbed) -> String {
    tb.cp
        .admin
        .json(&["-n", NS, "get", "hpa", APP])
        .map(|h| h["status"].to_string())
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn live_shadow_publishes_the_rule_and_scale_up_only_never_less() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let shadow = &[
        "--mode",
        "shadow",
        "--policy",
        "scripted:2,3,1;2,1,1",
        "--rule",
        "fixed:2",
        "--period",
        "2s",
        "--max-decisions",
        "4",
    ];
    let mut agent = start_agent(tb, shadow);
    let status = agent.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{status}\n{}", agent.log());
    let d = agent.decisions();
    assert_eq!(d.len(), 4);
    for x in &d {
        assert_eq!(published(x), 2, "shadow publishes the rule's value: {x}");
        assert_eq!(x["pools"][0]["source"], "rule", "{x}");
    }
    // The policy's own proposals were different (logged, not published).
    assert!(d.iter().any(|x| x["pools"][0]["policy"] != 2), "{d:?}");
    assert_eq!(read_target(tb), Ok(2.0));

    // Scale-up-only: policy below the rule (2 - 1 < 2) is ignored, above it (2 + 1 > 2) taken.
    let up = &[
        "--mode",
        "scale-up-only",
        "--policy",
        "scripted:2,1,1;2,1,1;2,3,1;2,2,1",
        "--rule",
        "fixed:2",
        "--period",
        "2s",
        "--max-decisions",
        "4",
    ];
    let mut agent = start_agent(tb, up);
    let status = agent.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{status}\n{}", agent.log());
    let d = agent.decisions();
    assert_eq!(d.len(), 4);
    for x in &d {
        let p = &x["pools"][0];
        assert!(
            published(x) >= p["rule"].as_i64().unwrap(),
            "scale-up-only published below the rule: {x}"
        );
        assert_eq!(p["source"], "max", "{x}");
    }
    assert!(
        d.iter().any(|x| x["pools"][0]["policy"].as_i64() < Some(2)),
        "{d:?}"
    );
    assert!(d.iter().any(|x| published(x) == 3), "{d:?}");
    wait_spec(tb, 3, false);
    tear_down(tb);
}

/// Resumes a stopped process when dropped (even if the test fails).
struct Stopped(i32);

impl Stopped {
    fn stop(pid: u32) -> Self {
        let p = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        Stopped(pid as i32)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let p = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT);
    }
}

#[test]
fn live_falls_back_to_the_rule_within_two_periods_when_prometheus_stalls() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let prom_pid = tb.prometheus.as_ref().unwrap().pid();
    // Full trust in a policy that holds 1; the rule says 2.
    let port = kis_fixtures::free_port().to_string();
    let metrics_addr = format!("127.0.0.1:{port}");
    let agent = start_agent(
        tb,
        &[
            "--mode",
            "full",
            "--policy",
            "hold",
            "--rule",
            "fixed:2",
            "--period",
            "2s",
            "--request-timeout",
            "1s",
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    let bound = Duration::from_secs(60);
    wait_until("policy decisions", bound, || {
        let d = agent.decisions();
        match d.last() {
            Some(x) if x["pools"][0]["source"] == "policy" && published(x) == 1 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let before = agent.decisions().len();
    let stalled = Stopped::stop(prom_pid);
    // Within two periods of the stall: a decision that fell back to the rule, saying why.
    let fell_back = wait_until("a fallback", Duration::from_secs(30), || {
        let d = agent.decisions();
        d.iter()
            .skip(before)
            .find(|x| x["fallback"] == "query_failed")
            .cloned()
            .ok_or_else(|| format!("{} decisions since the stall", d.len() - before))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let d = agent.decisions();
    let first = d
        .iter()
        .skip(before)
        .position(|x| x["fallback"] == "query_failed")
        .unwrap();
    assert!(
        first <= 2,
        "fell back only at the {}th decision after the stall",
        first + 1
    );
    assert_eq!(published(&fell_back), 2, "{fell_back}");
    assert_eq!(fell_back["pools"][0]["source"], "fallback");
    assert!(
        fell_back["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("Prometheus")),
        "{fell_back}"
    );
    assert!(
        agent.log().contains("fallback=\"query_failed\"")
            || agent.log().contains("fallback=query_failed")
    );
    drop(stalled);
    // Data back: the policy again.
    let n = agent.decisions().len();
    wait_until("the policy again", bound, || {
        let d = agent.decisions();
        d.iter()
            .skip(n)
            .find(|x| x["fallback"].is_null() && x["pools"][0]["source"] == "policy")
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    // Its /metrics counted the fallback and the decisions.
    let text = metrics_text(&metrics_addr);
    let fallbacks = metric_value(&text, "kis_agent_fallbacks_total{reason=\"query_failed\"}");
    assert!(fallbacks >= 1.0, "{text}");
    assert!(
        metric_value(
            &text,
            "kis_agent_decisions_total{pool=\"cpu\",source=\"policy\"}"
        ) >= 1.0
    );
    assert!(
        text.contains("kis_agent_observation{feature=\"queue\"}"),
        "{text}"
    );
    assert!(text.contains("kis_agent_decision_seconds_bucket"), "{text}");

    // The adapter stalls: publishes fail and are counted, decisions go on, and resume after.
    let adapter = Stopped::stop(tb.adapter.as_ref().unwrap().pid());
    let n = agent.decisions().len();
    wait_until("a failed publish", Duration::from_secs(30), || {
        let d = agent.decisions();
        d.iter()
            .skip(n)
            .find(|x| x["pools"][0]["publish_ok"] == false)
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    drop(adapter);
    let n = agent.decisions().len();
    wait_until("publishing again", bound, || {
        let d = agent.decisions();
        d.iter()
            .skip(n)
            .find(|x| x["pools"][0]["publish_ok"] == true)
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let text = metrics_text(&metrics_addr);
    assert!(
        metric_value(&text, "kis_agent_publish_errors_total{pool=\"cpu\"}") >= 1.0,
        "{text}"
    );
    drop(agent);
    tear_down(tb);
}

/// The agent's /metrics text.
fn metrics_text(addr: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample `series` (name and labels as printed) in an exposition; NaN if absent.
fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn live_sigterm_leaves_a_target_that_expires_into_an_error_not_zero() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let mut agent = start_agent(tb, &["--rule", "fixed:2", "--period", "2s", "--ttl", "5s"]);
    wait_until(
        "the target to be published",
        Duration::from_secs(60),
        || read_target(tb).and_then(|v| if v == 2.0 { Ok(()) } else { Err(v.to_string()) }),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    wait_spec(tb, 2, false);
    agent.sigterm();
    let status = agent.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", agent.log());
    assert!(agent.log().contains("stopping"), "{}", agent.log());
    // Until it expires the target reads 2, then an error: never 0.
    let err = wait_until(
        "the target to expire",
        Duration::from_secs(60),
        || match read_target(tb) {
            Ok(v) => {
                assert_ne!(v, 0.0, "an expired target read as 0");
                Err(format!("still {v}"))
            }
            Err(e) => Ok(e),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!err.is_empty());
    // The HPA holds its count (the metric is unavailable, not 0).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(spec_replicas(tb), 2);
    tear_down(tb);
}

#[test]
fn live_bad_input_is_one_line_and_exit_1() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let cases: [(&[&str], &str); 3] = [
        (
            &["--prometheus", "http://127.0.0.1:1"],
            "Prometheus at http://127.0.0.1:1 unreachable",
        ),
        (
            &["--adapter", "https://127.0.0.1:1"],
            "cannot publish the first target",
        ),
        (&["--token-file", "WRONG"], "refused the publish token"),
    ];
    for (flags, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args = base_args(tb, dir.path());
        for pair in flags.chunks(2) {
            let value = if pair[1] == "WRONG" {
                let p = dir.path().join("wrong-token");
                std::fs::write(&p, "not-the-token").unwrap();
                p.display().to_string()
            } else {
                pair[1].to_string()
            };
            let i = args.iter().position(|a| a == pair[0]).unwrap();
            args[i + 1] = value;
        }
        args.extend(["--period", "2s"].map(String::from));
        let out = Command::new(agent_bin())
            .args(&args)
            .output()
            .expect("run kis-agent");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(
            last.starts_with("kis-agent: ") && last.contains(want),
            "{flags:?}: {err}"
        );
    }
    tear_down(tb);
}

#[test]
fn live_falls_back_to_the_rule_within_two_periods_when_a_series_goes_stale() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    // A Triton that hangs keeps its Pod Ready here (the probe tolerates it for 10 minutes), so
    // only its metrics go stale: Prometheus's scrapes time out and the series disappear.
    let patch = r#"[{"op": "replace", "path": "/spec/template/spec/containers/0/readinessProbe/failureThreshold", "value": 600}]"#;
    tb.cp
        .admin
        .run(&[
            "-n",
            NS,
            "patch",
            "deployment",
            APP,
            "--type=json",
            "-p",
            patch,
        ])
        .unwrap();
    wait_until("the patched Pod alone", READY_BOUND, || {
        let p = pods(tb, NS, APP);
        let patched = p
            .iter()
            .all(|p| p["spec"]["containers"][0]["readinessProbe"]["failureThreshold"] == 600);
        if p.len() == 1 && patched && is_ready(&p[0]) {
            Ok(())
        } else {
            Err(format!("{} Pods", p.len()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pid = crate::common::container_pid(&pods(tb, NS, APP)[0]).expect("a Triton PID");
    let agent = start_agent(
        tb,
        &[
            "--mode",
            "full",
            "--policy",
            "hold",
            "--rule",
            "fixed:2",
            "--period",
            "2s",
            "--discovery-grace",
            "5s",
        ],
    );
    let bound = Duration::from_secs(90);
    wait_until("policy decisions", bound, || {
        match agent.decisions().last() {
            Some(x) if x["pools"][0]["source"] == "policy" && x["fallback"].is_null() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let stalled = Stopped::stop(pid);
    let before = agent.decisions().len();
    let stale = wait_until("a stale fallback", Duration::from_secs(30), || {
        let d = agent.decisions();
        d.iter()
            .skip(before)
            .position(|x| x["fallback"] == "stale")
            .map(|i| (i, d[before + i].clone()))
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    // The scrape timeout (1 s) plus two periods: within the third decision after the stall.
    assert!(
        stale.0 <= 2,
        "stale only at decision {} after the stall",
        stale.0 + 1
    );
    assert_eq!(stale.1["pools"][0]["source"], "fallback", "{}", stale.1);
    assert_eq!(published(&stale.1), 2, "{}", stale.1);
    drop(stalled);
    let n = agent.decisions().len();
    wait_until("the policy again", bound, || {
        let d = agent.decisions();
        d.iter()
            .skip(n)
            .find(|x| x["fallback"].is_null() && x["pools"][0]["source"] == "policy")
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    drop(agent);
    tear_down(tb);
}

#[test]
fn live_under_a_short_spike_scales_up_and_back_down_losing_nothing() {
    let _turn = turn();
    let tb = testbed();
    let lb = tb.balancer.as_ref().expect("the testbed runs nginx");
    serving(tb);
    // The HPA-on-queue rule (2 waiting requests per Pod), at most 3 Pods, scaling down after 10 s
    // instead of 300 s so the test sees the way back.
    let rule = r#"{"kind":"hpa","min_replicas":1,"max_replicas":3,"downscale_stabilization":10,"metrics":[{"type":"external","name":"queue_len","target":{"type":"average-value","value":2}}]}"#;
    let agent = start_agent(tb, &["--rule", rule, "--period", "2s"]);
    wait_until("the first decision", Duration::from_secs(60), || {
        (!agent.decisions().is_empty())
            .then_some(())
            .ok_or_else(|| agent.log())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    // 4 req/s, 24 req/s (twice one emulated CPU replica's ~12/s) for 24 s, then 4 req/s.
    let r = Load::start(
        &lb.url,
        &["--pattern", "spike", "--min", "4", "--max", "24"],
        "60s",
        &["--spike-start", "0.2", "--spike-length", "0.4"],
    )
    .finish();
    // It scaled up: the agent published more than one and read the HPA's spec back.
    let d = agent.decisions();
    let peak = d.iter().map(published).max().unwrap_or(0);
    let spec = d
        .iter()
        .map(|x| x["pools"][0]["spec"].as_i64().unwrap_or(0))
        .max();
    assert!(
        peak >= 2 && spec >= Some(2),
        "peak published {peak}, spec {spec:?}\n{}",
        agent.log()
    );
    // Back down to one Pod once the queue is gone.
    wait_spec(tb, 1, true);
    assert_eq!(
        agent.decisions().last().map(published),
        Some(1),
        "{}",
        agent.log()
    );
    drop(agent);
    let t = &r["totals"];
    assert_eq!(t["errors"], 0, "requests lost: {t}");
    assert_eq!(t["dropped"], 0, "{t}");
    assert_eq!(t["ok"], t["scheduled"], "{t}");
    assert!(t["ok"].as_u64().unwrap() >= 400, "too few requests: {t}");
    tear_down(tb);
}

/// An agent running the rule `fixed:2` every 2 s, once it has published 2.
fn start_fixed_two(tb: &Testbed) -> Agent {
    let agent = start_agent(
        tb,
        &[
            "--rule",
            "fixed:2",
            "--period",
            "2s",
            "--request-timeout",
            "1s",
        ],
    );
    wait_until(
        "rule decisions publishing 2",
        Duration::from_secs(60),
        || match agent.decisions().last() {
            Some(x) if published(x) == 2 && x["pools"][0]["publish_ok"] == true => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    agent
}

#[test]
fn live_holds_its_targets_while_the_apiserver_is_unreachable() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let apiserver = tb
        .cp
        .pids()
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "kube-apiserver")
        })
        .expect("the kube-apiserver PID");
    let agent = start_fixed_two(tb);
    let bound = Duration::from_secs(60);
    let stalled = Stopped::stop(apiserver);
    let before = agent.decisions().len();
    // Blind, it keeps the last target alive in the adapter (never 0, never dropped).
    let held = wait_until("a held decision", Duration::from_secs(30), || {
        let d = agent.decisions();
        d.iter()
            .skip(before)
            .find(|x| x["fallback"] == "apiserver")
            .cloned()
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    assert_eq!(held["pools"][0]["source"], "hold", "{held}");
    assert_eq!(published(&held), 2, "{held}");
    assert_eq!(held["pools"][0]["publish_ok"], true, "{held}");
    assert!(
        held["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("triton-cpu")),
        "{held}"
    );
    drop(stalled);
    let n = agent.decisions().len();
    wait_until("reading the apiserver again", bound, || {
        let d = agent.decisions();
        d.iter()
            .skip(n)
            .find(|x| x["fallback"].is_null() && x["pools"][0]["source"] == "rule")
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    drop(agent);
    tear_down(tb);
}

#[test]
fn live_rides_out_an_apiserver_restart_never_publishing_zero() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let mut agent = start_fixed_two(tb);
    let bound = Duration::from_secs(60);
    // A real restart (SIGTERM, the same binary and flags on the same port), not a stall.
    tb.cp.restart_apiserver(Duration::from_secs(120)).unwrap();
    let after = agent.decisions().len();
    wait_until("rule decisions from a fresh apiserver read", bound, || {
        let d = agent.decisions();
        d.iter()
            .skip(after)
            .find(|x| {
                x["fallback"].is_null()
                    && x["pools"][0]["source"] == "rule"
                    && x["pools"][0]["publish_ok"] == true
            })
            .map(|_| ())
            .ok_or_else(|| format!("{:?}", d.last()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    // Through the whole restart every decision published the rule's 2 or held it: never 0.
    let all = agent.decisions();
    assert!(
        all.iter().all(|x| published(x) == 2),
        "a decision published another value: {:?}",
        all.iter().map(published).collect::<Vec<_>>()
    );
    assert!(agent.is_running(), "the agent exited: {}", agent.log());
    drop(agent);
    tear_down(tb);
}

#[test]
fn live_runs_the_shipped_policy_file_in_shadow() {
    let _turn = turn();
    let tb = testbed();
    serving(tb);
    let policy = workspace().join("agent/policies/default.kpol");
    let mut agent = start_agent(
        tb,
        &[
            "--policy",
            &policy.display().to_string(),
            "--mode",
            "shadow",
            "--rule",
            "fixed:1",
            "--period",
            "2s",
            "--max-decisions",
            "3",
        ],
    );
    let status = agent.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{status}\n{}", agent.log());
    let d = agent.decisions();
    assert_eq!(d.len(), 3);
    for x in &d {
        // The pure-Rust forward pass proposed a target on the live observation (18 features).
        assert!(x["pools"][0]["policy"].as_i64().is_some(), "{x}");
        assert_eq!(x["obs"].as_array().map(Vec::len), Some(18), "{x}");
        assert_eq!(published(x), 1, "shadow publishes the rule: {x}");
    }
    tear_down(tb);
}
