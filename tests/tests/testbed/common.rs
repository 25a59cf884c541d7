//! The shared testbed and helpers to read Pods.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use kis_e2e::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// The repository root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

/// The kis-e2e binary cargo built for these tests.
pub fn kis_e2e() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kis-e2e"))
}

/// One test at a time: each runs up to three Tritons, or a whole second testbed.
pub fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The testbed shared by this binary's in-process tests (with kis-adapter registered), started
/// on first use.
pub fn testbed() -> &'static Testbed {
    static TB: OnceLock<Result<Testbed, String>> = OnceLock::new();
    let tb = TB.get_or_init(|| {
        let t0 = std::time::Instant::now();
        let config = TestbedConfig::new(workspace(), kis_e2e());
        let tb = Testbed::start(&config).map_err(|e| e.to_string());
        eprintln!(
            "kis-e2e: testbed start took {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        tb
    });
    match tb {
        Ok(tb) => tb,
        Err(e) => panic!("the testbed did not start: {e}"),
    }
}

/// Bound for Tritons to start and pass readiness on a busy 2-core machine.
pub const READY_BOUND: Duration = Duration::from_secs(240);

/// The Pods in `ns` with label `app=APP`.
pub fn pods(tb: &Testbed, ns: &str, app: &str) -> Vec<Value> {
    tb.cp
        .admin
        .json(&["-n", ns, "get", "pods", "-l", &format!("app={app}")])
        .map(|l| l["items"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// Whether a Pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The PID in a Pod's `containerID` (`kis-process://PID`).
pub fn container_pid(pod: &Value) -> Option<u32> {
    pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()?
        .strip_prefix("kis-process://")?
        .parse()
        .ok()
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// One inference on the model `model` of the Triton at `ip:8000`; the echoed output.
pub fn infer(ip: &str, model: &str) -> Result<Value, String> {
    infer_at(&format!("http://{ip}:8000"), model)
}

/// One inference on the model `model` behind the base URL `url` (a Triton, or the load
/// balancer); the echoed output.
pub fn infer_at(url: &str, model: &str) -> Result<Value, String> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-X", "POST"])
        .arg(format!("{url}/v2/models/{model}/infer"))
        .args([
            "-d",
            r#"{"inputs":[{"name":"INPUT0","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{e}: {} (curl: {})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok(body["outputs"][0]["data"].clone())
}

/// Deletes the Deployment(s) and waits until no Pod of `app` is left (bounded).
pub fn clean_up(tb: &Testbed, ns: &str, apps: &[&str]) {
    for app in apps {
        let _ = tb
            .cp
            .admin
            .run(&["-n", ns, "delete", "deployment", app, "--wait=false"]);
    }
    kis_e2e::wait_until("the Pods to be removed", READY_BOUND, || {
        let left: usize = apps.iter().map(|a| pods(tb, ns, a).len()).sum();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} Pods left"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits (bounded) until exactly `n` Pods of `app` in `ns` are Ready and nginx routes `model` to
/// exactly `n` backends; returns those Pods.
pub fn wait_serving(tb: &Testbed, ns: &str, app: &str, model: &str, n: usize) -> Vec<Value> {
    let lb = tb.balancer.as_ref().expect("the shared testbed runs nginx");
    kis_e2e::wait_until(
        &format!("{n} Ready {app} Pods behind the load balancer"),
        READY_BOUND,
        || {
            let ready: Vec<Value> = pods(tb, ns, app).into_iter().filter(is_ready).collect();
            let behind = lb.backends().get(model).map_or(0, Vec::len);
            if ready.len() == n && behind == n {
                Ok(ready)
            } else {
                Err(format!("{} Ready, {behind} behind nginx", ready.len()))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `kubectl scale deployment NAME --replicas=N` in `ns`.
pub fn scale(tb: &Testbed, ns: &str, deployment: &str, replicas: u32) {
    let n = format!("--replicas={replicas}");
    tb.cp
        .admin
        .run(&["-n", ns, "scale", "deployment", deployment, &n])
        .unwrap_or_else(|e| panic!("scaling {deployment} to {replicas}: {e}"));
}

/// The kis-loadgen binary next to this test binary (`cargo test --workspace` builds it).
pub fn loadgen() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/..")
        .join("kis-loadgen");
    assert!(
        bin.is_file(),
        "{} not found: `cargo build -p kis-loadgen` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A kis-loadgen run through the load balancer at `url` against the emulated CPU model, its JSON
/// report in a temporary directory.
pub struct Load {
    child: std::process::Child,
    report: PathBuf,
    _dir: tempfile::TempDir,
}

impl Load {
    /// Starts `shape` (e.g. `["--pattern", "constant", "--rate", "8"]`) for `duration`, with
    /// `extra` flags.
    pub fn start(url: &str, shape: &[&str], duration: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let report = dir.path().join("report.json");
        let child = std::process::Command::new(loadgen())
            .args(["--url", url, "--model", kis_e2e::emulated::CPU_MODEL])
            .args(["--json-body", "--shape", "INPUT0:1,3"])
            .args(shape)
            .args(["--duration", duration, "--timeout", "30", "--quiet"])
            .args(extra)
            .arg("--json")
            .arg(&report)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start kis-loadgen");
        Self {
            child,
            report,
            _dir: dir,
        }
    }

    /// Waits for the run to end (it must succeed) and returns its report.
    pub fn finish(self) -> Value {
        let out = self.child.wait_with_output().expect("wait for kis-loadgen");
        assert!(
            out.status.success(),
            "kis-loadgen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&self.report).expect("kis-loadgen's report");
        serde_json::from_str(&text).expect("kis-loadgen's report is JSON")
    }
}

/// Creates the namespace deploy/serving/ uses, `kis-serving` (idempotent).
pub fn serving_namespace(tb: &Testbed) {
    tb.cp
        .admin
        .apply(r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kis-serving"}}"#)
        .expect("create namespace kis-serving");
}
