//! Requests per generator CPU-second: kis-loadgen against wrk, side by side in one run, on the
//! same in-process hyper server (a 5-byte 200 answer), plus an open-loop accuracy check.
//!
//! Run (release; pin this process, which hosts the server, away from the generators):
//!     taskset -c 0 cargo bench -p kis-loadgen --bench throughput
//! Generators run on core 1 through `taskset -c 1` when it exists. Their CPU is the growth of
//! this process's waited-for children time (cutime + cstime in /proc/self/stat), and requests are
//! counted by the server, so the ratio is fair on a noisy machine. BENCH_SECS sets each run's
//! length (default 5).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': fields 16 and 17 (cutime, cstime) are at indices 13 and 14.
    (f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap()) / 100.0
}

fn server() -> (String, Arc<AtomicU64>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                let _ = s.set_nodelay(true);
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_r: Request<hyper::body::Incoming>| {
                        c.fetch_add(1, Ordering::Relaxed);
                        async {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"hello"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    });
    (format!("http://{}/", rx.recv().unwrap()), count)
}

fn pinned(prog: &str) -> Command {
    if Command::new("taskset").arg("-V").output().is_ok() {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", prog]);
        c
    } else {
        Command::new(prog)
    }
}

/// Runs `cmd`; returns (server-counted requests, generator CPU seconds, stdout).
fn measure(mut cmd: Command, count: &AtomicU64) -> (u64, f64, String) {
    let (n0, c0) = (count.load(Ordering::Relaxed), children_cpu());
    let out = cmd.output().expect("generator runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = count.load(Ordering::Relaxed) - n0;
    (
        n,
        children_cpu() - c0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (url, count) = server();
    let lg = env!("CARGO_BIN_EXE_kis-loadgen");
    let dir = std::env::temp_dir().join(format!("kis-loadgen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = format!("{secs}s");

    // Closed loop, 64 connections, HDR recording and /metrics on.
    let mut c = pinned(lg);
    let metrics = format!("127.0.0.1:{}", free_port());
    c.args([
        "--url",
        &url,
        "--method",
        "GET",
        "--users",
        "64",
        "--wait",
        "0s",
        "--duration",
        &d,
        "--metrics-addr",
        &metrics,
        "--quiet",
    ]);
    let (n_lg, cpu_lg, _) = measure(c, &count);

    let has_wrk = Command::new("wrk").arg("-v").output().is_ok();
    let (n_wrk, cpu_wrk) = if has_wrk {
        let mut c = pinned("wrk");
        c.args(["-t1", "-c64", &format!("-d{secs}s"), &url]);
        let (n, cpu, _) = measure(c, &count);
        (n, cpu)
    } else {
        (0, 0.0)
    };

    // Open loop at 2,000 req/s: rate fidelity and send lag.
    let json = dir.join("open.json");
    let mut c = pinned(lg);
    c.args([
        "--url",
        &url,
        "--method",
        "GET",
        "--pattern",
        "constant",
        "--rate",
        "2000",
        "--duration",
        &d,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (n_open, cpu_open, _) = measure(c, &count);
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    let per = |n: u64, cpu: f64| if cpu > 0.0 { n as f64 / cpu } else { f64::NAN };
    println!("closed loop, 64 connections, GET 200 (5 B), {secs} s each, server-counted requests");
    println!(
        "{:<34}{:>12}{:>10}{:>14}",
        "generator", "requests", "CPU-s", "req/CPU-s"
    );
    println!(
        "{:<34}{:>12}{:>10.2}{:>14.0}",
        "kis-loadgen (HDR + /metrics)",
        n_lg,
        cpu_lg,
        per(n_lg, cpu_lg)
    );
    if has_wrk {
        println!(
            "{:<34}{:>12}{:>10.2}{:>14.0}",
            "wrk -t1 -c64",
            n_wrk,
            cpu_wrk,
            per(n_wrk, cpu_wrk)
        );
        println!(
            "ratio kis-loadgen / wrk: {:.2}",
            per(n_lg, cpu_lg) / per(n_wrk, cpu_wrk)
        );
    } else {
        println!("wrk not installed: no peer ratio");
    }
    println!(
        "open loop 2000 req/s: {} requests, achieved/intended {:.4}, send lag p50 {:.3} ms p99 {:.3} ms, {:.0} req/CPU-s",
        n_open,
        rep["rates"]["achieved_ratio"].as_f64().unwrap_or(f64::NAN),
        rep["latency"]["send_lag"]["p50_ms"]
            .as_f64()
            .unwrap_or(f64::NAN),
        rep["latency"]["send_lag"]["p99_ms"]
            .as_f64()
            .unwrap_or(f64::NAN),
        per(n_open, cpu_open)
    );
}
