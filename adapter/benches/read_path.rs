//! Read-path benchmark of the real `kis-adapter` binary over TLS with keep-alive on loopback.
//!
//! Run: `cargo bench -p kis-adapter --bench read_path` (add `-- --quick` for a short run).
//! The adapter runs as its own process with `--worker-threads 1` (one core of serving) and
//! 10,000 targets from a `--targets-file`; the client authenticates with a client-CA
//! certificate (authorization is cached after the first request, as with the HPA). Measures:
//! 1. p50/p99/max latency at an open-loop 2,000 reads/s, 4 connections, measured both from the
//!    scheduled send time (counts queueing and the client's 1 ms timer granularity) and from the
//!    actual send;
//! 2. maximum reads/s, closed loop over 8 connections, plus reads per second of adapter CPU
//!    time (from /proc) since the client shares the 2-core machine;
//! 3. adapter RSS holding 10,000 targets (idle, and after the load).
//!
//! Prints a summary and writes `target/kis-bench/adapter-read-path.json`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kis_adapter::client::TlsClient;
use kis_adapter::pki::Ca;

const TARGETS: usize = 10_000;
const NAMESPACES: usize = 1_000;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Adapter(Child);
impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn path_for(i: usize) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns-{}/kis-replicas?labelSelector=target%3Dt{}",
        i % NAMESPACES,
        (i / NAMESPACES) % (TARGETS / NAMESPACES)
    )
}

/// Writes the serving certificate, the client CA and the targets file into `d`; returns the
/// server CA (which the client trusts) and the client's certificate.
fn write_inputs(d: &Path) -> (Ca, kis_adapter::pki::Pem) {
    let server_ca = Ca::new("bench-server-ca").unwrap();
    let client_ca = Ca::new("bench-client-ca").unwrap();
    let serving = server_ca.server(&["localhost"]).unwrap();
    let user = client_ca.client("bench", &["system:masters"]).unwrap();
    let w = |n: &str, b: &str| std::fs::write(d.join(n), b).unwrap();
    w("tls.crt", &serving.cert);
    w("tls.key", &serving.key);
    w("client-ca.crt", &client_ca.cert_pem);
    let targets: Vec<serde_json::Value> = (0..TARGETS)
        .map(|i| {
            serde_json::json!({"namespace": format!("ns-{}", i % NAMESPACES), "metric": "kis-replicas",
                "labels": {"target": format!("t{}", i / NAMESPACES)}, "value": (i % 50 + 1) as f64})
        })
        .collect();
    w(
        "targets.json",
        &serde_json::json!({ "targets": targets }).to_string(),
    );
    (server_ca, user)
}

/// Starts the real binary on `port` with one worker thread and the inputs in `d`.
fn spawn_adapter(d: &Path, port: u16) -> Child {
    let p = |n: &str| d.join(n).display().to_string();
    Command::new(env!("CARGO_BIN_EXE_kis-adapter"))
        .args([
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            "--worker-threads=1",
        ])
        .arg(format!("--tls-cert-file={}", p("tls.crt")))
        .arg(format!("--tls-private-key-file={}", p("tls.key")))
        .arg(format!("--client-ca-file={}", p("client-ca.crt")))
        .arg(format!("--targets-file={}", p("targets.json")))
        .arg("--no-delegated-authorization")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kis-adapter")
}

/// Waits (bounded) until the adapter serves, then checks that every target is there.
async fn wait_ready(client: &TlsClient) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(mut c) = client.connect().await
            && c.get_ok("/readyz").await.is_ok()
        {
            break c;
        }
        assert!(Instant::now() < deadline, "kis-adapter did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for i in [0, 1, TARGETS / 2, TARGETS - 1] {
        let body = c.get_ok(&path_for(i)).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains("\"items\":[{"),
            "target {i} missing"
        );
    }
}

/// What the open loop measured: latency from the scheduled and from the actual send, errors.
struct OpenLoop {
    sched: Histogram<u64>,
    sent: Histogram<u64>,
    errors: u64,
}

/// Open loop at `rate` reads/s over 4 connections for `secs`.
async fn open_loop(client: &TlsClient, rate: f64, secs: u64) -> OpenLoop {
    let conns = 4;
    let per_conn = (rate / conns as f64 * secs as f64) as usize;
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..conns {
        let mut c = client.connect().await.unwrap();
        tasks.spawn(async move {
            // `sched`: from the scheduled send time (counts queueing, but also tokio's 1 ms
            // timer granularity on the client); `sent`: from the moment the request is sent.
            let mut sched = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut sent = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut errors = 0u64;
            for n in 0..per_conn {
                let at = start + interval * n as u32 + interval.mul_f64(k as f64 / conns as f64);
                tokio::time::sleep_until(at).await;
                let t = tokio::time::Instant::now();
                match c.request("GET", &path_for(n * conns + k), &[], None).await {
                    Ok((200, _)) => {}
                    _ => errors += 1,
                }
                sent.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                sched
                    .record(at.elapsed().as_micros().max(1) as u64)
                    .unwrap();
            }
            OpenLoop {
                sched,
                sent,
                errors,
            }
        });
    }
    let mut all = OpenLoop {
        sched: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
        sent: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
        errors: 0,
    };
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        all.sched.add(r.sched).unwrap();
        all.sent.add(r.sent).unwrap();
        all.errors += r.errors;
    }
    all
}

/// Closed loop over 8 connections for `secs`: (answered, errors, wall seconds).
async fn closed_loop(client: &TlsClient, secs: u64) -> (u64, u64, f64) {
    let conns = 8;
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..conns {
        let mut c = client.connect().await.unwrap();
        tasks.spawn(async move {
            let (mut ok, mut errors, mut n) = (0u64, 0u64, k);
            while Instant::now() < stop {
                match c.request("GET", &path_for(n), &[], None).await {
                    Ok((200, _)) => ok += 1,
                    _ => errors += 1,
                }
                n += conns;
            }
            (ok, errors)
        });
    }
    let (mut ok, mut errors) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (o, e) = r.unwrap();
        ok += o;
        errors += e;
    }
    (ok, errors, t0.elapsed().as_secs_f64())
}

/// Runs both loops against the adapter `pid` and gathers the figures.
async fn measure(
    client: TlsClient,
    pid: u32,
    secs: u64,
) -> BTreeMap<&'static str, serde_json::Value> {
    use serde_json::json;
    wait_ready(&client).await;
    let rss_idle = rss_kib(pid);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // 1. Open loop at 2,000 reads/s over 4 connections.
    let rate = 2_000.0;
    let open_cpu0 = cpu_seconds(pid);
    let open = open_loop(&client, rate, secs).await;
    let open_cpu = cpu_seconds(pid) - open_cpu0;
    // 2. Closed loop, 8 connections.
    let cpu0 = cpu_seconds(pid);
    let (ok, closed_errors, wall) = closed_loop(&client, secs).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let rss_after = rss_kib(pid);
    let load: Vec<&str> = load_before.split_whitespace().take(3).collect();
    let (h, hs) = (&open.sched, &open.sent);
    BTreeMap::from([
        ("targets", json!(TARGETS)),
        ("open_loop_rate_per_s", json!(rate)),
        ("open_loop_requests", json!(h.len())),
        ("open_loop_errors", json!(open.errors)),
        ("open_loop_p50_us", json!(h.value_at_quantile(0.5))),
        ("open_loop_p99_us", json!(h.value_at_quantile(0.99))),
        ("open_loop_max_us", json!(h.max())),
        (
            "open_loop_from_send_p50_us",
            json!(hs.value_at_quantile(0.5)),
        ),
        (
            "open_loop_from_send_p99_us",
            json!(hs.value_at_quantile(0.99)),
        ),
        ("open_loop_from_send_max_us", json!(hs.max())),
        ("open_loop_adapter_cpu_seconds", json!(open_cpu)),
        ("machine_loadavg_before", json!(load.join(" "))),
        ("closed_loop_reads_per_s", json!((ok as f64 / wall).round())),
        ("closed_loop_errors", json!(closed_errors)),
        ("adapter_cpu_seconds", json!(cpu)),
        (
            "reads_per_adapter_cpu_second",
            json!((ok as f64 / cpu.max(1e-9)).round()),
        ),
        ("rss_idle_mib", json!(rss_idle as f64 / 1024.0)),
        ("rss_after_load_mib", json!(rss_after as f64 / 1024.0)),
    ])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 2 } else { 8 };
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, user) = write_inputs(dir.path());
    let port = free_port();
    let child = spawn_adapter(dir.path(), port);
    let pid = child.id();
    let _guard = Adapter(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = TlsClient::new(
        addr,
        "localhost",
        server_ca.cert_pem.as_bytes(),
        Some((user.cert.as_bytes(), user.key.as_bytes())),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(measure(client, pid, secs));
    println!(
        "kis-adapter read path over TLS keep-alive (adapter: 1 worker thread, {TARGETS} targets)"
    );
    for (k, v) in &report {
        println!("  {k:<32} {v}");
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kis-bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("adapter-read-path.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    );
}
