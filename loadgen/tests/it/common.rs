//! In-process HTTP servers on port 0 (plain, stalling, slow, KServe-shaped), and helpers to run
//! kis-loadgen in-process or as the real binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// How the test server answers.
#[derive(Clone, Copy, Debug)]
pub enum Behavior {
    /// 200 with a small body, at once.
    Fast,
    /// Every request waits `ms` milliseconds.
    Slow { ms: u64 },
    /// Requests arriving in `[first + at, first + at + len)` are held until its end (a frozen server).
    Stall { at: Duration, len: Duration },
    /// A tiny KServe-v2 server with one model `m` (input `INPUT0` FP32 [-1], max batch 8).
    Kserve,
    /// One request at a time, each taking `ms` milliseconds (a server with one worker: the
    /// others queue, as in Triton with one model instance).
    Serial { ms: u64 },
    /// 200 with a small body, except every `n`-th request: 500.
    FailEvery { n: u64 },
}

/// A running test server; it stops with the test process.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts a server on 127.0.0.1:0 on its own runtime thread.
pub fn start(behavior: Behavior) -> Server {
    let requests = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = requests.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let first: Arc<std::sync::OnceLock<Instant>> = Arc::default();
            let worker: Arc<tokio::sync::Mutex<()>> = Arc::default();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                let (counter, first, worker) = (counter.clone(), first.clone(), worker.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (counter, first, worker) =
                            (counter.clone(), first.clone(), worker.clone());
                        async move {
                            let arrived = Instant::now();
                            let seq = counter.fetch_add(1, Ordering::Relaxed) + 1;
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let resp = match behavior {
                                Behavior::FailEvery { n } if seq % n == 0 => {
                                    reply(StatusCode::INTERNAL_SERVER_ERROR, "hello")
                                }
                                Behavior::Serial { ms } => {
                                    let _busy = worker.lock().await;
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    reply(StatusCode::OK, "serial")
                                }
                                _ => answer(behavior, &parts, body, arrived, &first).await,
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    let addr = rx.recv().unwrap();
    Server { addr, requests }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn answer(
    behavior: Behavior,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    arrived: Instant,
    first: &std::sync::OnceLock<Instant>,
) -> Response<Full<Bytes>> {
    match behavior {
        Behavior::Fast | Behavior::FailEvery { .. } => reply(StatusCode::OK, "hello"),
        Behavior::Slow { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(StatusCode::OK, "slow")
        }
        Behavior::Stall { at, len } => {
            let f = *first.get_or_init(|| arrived);
            let (a, b) = (f + at, f + at + len);
            if arrived >= a && arrived < b {
                tokio::time::sleep_until(b.into()).await;
            }
            reply(StatusCode::OK, "ok")
        }
        Behavior::Kserve => kserve(parts, body),
        Behavior::Serial { .. } => unreachable!("answered by the server loop"),
    }
}

fn kserve(parts: &hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let unknown = |name: &str| {
        reply(
            StatusCode::BAD_REQUEST,
            format!("{{\"error\":\"Request for unknown model: '{name}' is not found\"}}"),
        )
    };
    let path = parts.uri.path();
    match path {
        "/v2/health/ready" | "/v2/models/m/ready" => reply(StatusCode::OK, ""),
        "/v2/models/m" => reply(
            StatusCode::OK,
            r#"{"name":"m","versions":["1"],"platform":"test","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1,-1]}],"outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[-1,-1]}]}"#,
        ),
        "/v2/models/m/config" => reply(StatusCode::OK, r#"{"name":"m","max_batch_size":8}"#),
        "/v2/models/m/stats" => reply(
            StatusCode::OK,
            r#"{"model_stats":[{"name":"m","version":"1","execution_count":0,"inference_stats":{"success":{"count":0,"ns":0},"queue":{"count":0,"ns":0},"compute_infer":{"count":0,"ns":0}}}]}"#,
        ),
        "/v2/models/m/infer" => {
            // Binary requests must carry the header length; JSON requests must parse.
            let ok = match parts.headers.get("inference-header-content-length") {
                Some(h) => {
                    let n: usize = h.to_str().unwrap().parse().unwrap();
                    serde_json::from_slice::<serde_json::Value>(&body[..n]).is_ok()
                }
                None => serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            };
            if ok {
                reply(StatusCode::OK, r#"{"model_name":"m","outputs":[]}"#)
            } else {
                reply(StatusCode::BAD_REQUEST, r#"{"error":"bad body"}"#)
            }
        }
        p => {
            let name = p
                .trim_start_matches("/v2/models/")
                .split('/')
                .next()
                .unwrap_or("");
            unknown(name)
        }
    }
}

/// Runs kis-loadgen in-process with these flags (plus `--quiet`).
pub fn run(args: &[&str]) -> kis_loadgen::Report {
    let mut v = vec!["kis-loadgen", "--quiet"];
    v.extend_from_slice(args);
    let cfg = kis_loadgen::Config::try_from(kis_loadgen::cli::Cli::parse_from(v)).unwrap();
    kis_loadgen::run(cfg).unwrap()
}

/// The flags of an open-loop GET of `{base}/` at a constant `rate` (req/s) for `duration`.
pub fn constant_get(base: &str, rate: &str, duration: &str) -> Vec<String> {
    let url = format!("{base}/");
    [
        "--url",
        &url,
        "--method",
        "GET",
        "--pattern",
        "constant",
        "--rate",
        rate,
        "--duration",
        duration,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs [`constant_get`] in-process with `extra` flags (plus `--quiet`).
pub fn run_get(base: &str, rate: &str, duration: &str, extra: &[&str]) -> kis_loadgen::Report {
    let flags = constant_get(base, rate, duration);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    run(&args)
}

/// A fresh temporary directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kis-loadgen-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The kis-loadgen binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_kis-loadgen"))
}
