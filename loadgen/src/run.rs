//! Runs a configured load test end to end: prepare the target, start the generator threads,
//! collect a window a second (metrics, live line, HDR log), stop on schedule end or signal,
//! drain within `--grace`, and write every output.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use indicatif::{ProgressBar, ProgressStyle};
use kis_traffic::Profile;
use tokio::task::JoinSet;

use crate::config::{Config, InputData, Load, Target};
use crate::diag;
use crate::engine::{Engine, Plan, PlanLoad, Snapshot};
use crate::error::{Error, Result};
use crate::http::Template;
use crate::kserve::{self, ServerStats};
use crate::metrics::Metrics;
use crate::record::{Counts, Hists, Percentiles, Window};
use crate::report::{self, Collected, History, Report, WindowRow, Windows};

/// Runs `cfg` and returns the report (outputs already written). The calling thread runs the
/// collector (set-up calls, windows, /metrics, signals); `cfg.threads` generator threads of
/// their own send the load.
pub fn run(cfg: Config) -> Result<Report> {
    // The collector gets a thread of its own at a lower priority (nice +10), so that its
    // once-a-second work never delays a generator thread's send on a shared core (and the
    // caller's thread keeps its priority).
    std::thread::Builder::new()
        .name("kis-collector".into())
        .spawn(move || {
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
            rt.block_on(run_async(cfg))
        })
        .map_err(|e| Error::Usage(format!("cannot start the collector thread: {e}")))?
        .join()
        .unwrap_or_else(|_| Err(Error::Usage("the collector thread panicked".into())))
}

struct Prepared {
    template: Template,
    describe: String,
    method: String,
    name: String,
    stats: Option<(crate::config::Endpoint, String, Option<String>)>,
}

/// How long to wait for the target to be ready: `--ready-timeout`, or until `--start-at` when
/// that is later (the readiness gate before a shared start).
fn ready_bound(cfg: &Config) -> Duration {
    let until_start = cfg
        .start_at_unix_s
        .map_or(0.0, |at| (at - unix_now()).max(0.0));
    Duration::from_secs_f64(cfg.ready_timeout_s.max(until_start))
}

async fn prepare(cfg: &Config) -> Result<Prepared> {
    let ready = ready_bound(cfg);
    match &cfg.target {
        Target::Kserve {
            endpoint,
            model,
            version,
            binary,
            input,
            shapes,
        } => {
            let (meta, max_batch) =
                kserve::prepare(endpoint, model, version.as_deref(), ready).await?;
            let template = kserve::infer_template(
                endpoint,
                model,
                version.as_deref(),
                &meta,
                max_batch,
                shapes,
                input,
                *binary,
                cfg.seed,
                &cfg.headers,
            )?;
            let input_desc = match input {
                InputData::File(p) => p.display().to_string(),
                InputData::Random => "random".into(),
                InputData::Zero => "zero".into(),
            };
            Ok(Prepared {
                describe: format!(
                    "http://{} model {model} ({}, {} input, {} B body)",
                    endpoint.authority,
                    if *binary {
                        "binary tensors"
                    } else {
                        "JSON tensors"
                    },
                    input_desc,
                    template.body.len()
                ),
                method: "POST".into(),
                name: template.uri.path().to_string(),
                template,
                stats: Some((endpoint.clone(), model.clone(), version.clone())),
            })
        }
        Target::Http {
            endpoint,
            method,
            body_file,
        } => {
            let body = match body_file {
                Some(p) => Bytes::from(std::fs::read(p).map_err(|source| Error::File {
                    flag: "--body-file",
                    path: p.clone(),
                    source,
                })?),
                None => Bytes::new(),
            };
            // Plain targets get a bounded reachability check: a TCP connect.
            let start = Instant::now();
            loop {
                match tokio::net::TcpStream::connect(&endpoint.authority).await {
                    Ok(_) => break,
                    Err(e) if start.elapsed() >= ready => {
                        return Err(Error::Unreachable {
                            url: format!("http://{}{}", endpoint.authority, endpoint.path),
                            reason: e.to_string(),
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            let m = hyper::Method::from_bytes(method.as_bytes())
                .map_err(|_| Error::Usage(format!("--method {method:?} is not an HTTP method")))?;
            let template =
                Template::new(m, &endpoint.authority, &endpoint.path, body, &cfg.headers);
            Ok(Prepared {
                describe: format!("{method} http://{}{}", endpoint.authority, endpoint.path),
                method: method.clone(),
                name: endpoint.path.clone(),
                template,
                stats: None,
            })
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Accumulates windows into the run's cumulative state.
struct Collector {
    t0: Instant,
    last: Instant,
    last_cpu: Option<f64>,
    last_scheduled: u64,
    last_dropped: u64,
    last_server: Option<ServerStats>,
    /// `success + fail` of the server's counters before the run.
    server_base: Option<u64>,
    total_hists: Hists,
    total_counts: Counts,
    rows: Windows,
    warnings: Vec<String>,
    warned_late: bool,
    warned_cpu: bool,
    warned_saturated: bool,
    last_backlog: u64,
    totals: Snapshot,
    /// Unix seconds each failure label was first and last seen (window start, window end).
    failures_seen: BTreeMap<String, (f64, f64)>,
}

/// The run once started: what the collection loop works with.
struct Running {
    /// The open loop's rate shape.
    profile: Option<Profile>,
    /// The closed loop's active-user shape.
    users_profile: Option<Profile>,
    prepared: Prepared,
    engine: Engine,
    metrics: Arc<Metrics>,
    background: JoinSet<()>,
    t0: Instant,
    /// Time zero on the wall clock.
    t0_sys: SystemTime,
    /// Warning when the run started after its `--start-at` (the schedule is not shifted).
    late_start: Option<String>,
    duration_s: f64,
    /// How the requests are sent, and the calibration that chose it.
    send: crate::send::SendChoice,
}

/// Input files must be readable before the target is contacted (the flag is named if not).
fn check_inputs(cfg: &Config) -> Result<()> {
    let file = match &cfg.target {
        Target::Kserve {
            input: InputData::File(p),
            ..
        } => Some(("--input", p)),
        Target::Http {
            body_file: Some(p), ..
        } => Some(("--body-file", p)),
        _ => None,
    };
    if let Some((flag, path)) = file {
        std::fs::File::open(path).map_err(|source| Error::File {
            flag,
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

async fn run_async(cfg: Config) -> Result<Report> {
    cfg.check()?;
    check_inputs(&cfg)?;
    report::finish::check_outputs(&cfg.outputs)?;
    let running = start(&cfg).await?;
    let collected = collect(&cfg, running).await?;
    report::finish(collected)
}

/// Highest rate an open loop accepts, req/s: send times are nanoseconds, so arrivals closer
/// than 1 ns cannot be told apart. (Far below it the generator falls behind, which the report
/// shows; at any rate the schedule is walked lazily and counted in closed form.)
pub(crate) const MAX_RATE: f64 = 1e9;

/// The open loop's rate profile and the closed loop's active-user profile, checked before the
/// target is contacted so that bad input fails fast and offline.
fn profiles(cfg: &Config) -> Result<(Option<Profile>, Option<Profile>)> {
    match &cfg.load {
        Load::Open { shape, .. } => {
            let p = shape.build(cfg.seed)?;
            if p.peak_rate() > MAX_RATE {
                return Err(Error::Usage(format!(
                    "the shape peaks at {:e} req/s, above the {MAX_RATE:e} req/s that can be scheduled (arrivals 1 ns apart, the clock's resolution)",
                    p.peak_rate()
                )));
            }
            if p.total() < 0.5 {
                return Err(Error::Usage(format!(
                    "the shape schedules no requests (mean rate {:.3}/s over {:.1} s)",
                    p.mean_rate(),
                    p.duration()
                )));
            }
            Ok((Some(p), None))
        }
        Load::Closed {
            shape: Some(s),
            users,
            ..
        } => {
            let p = s.build(cfg.seed)?;
            if p.peak_rate().round() > f64::from(*users) {
                return Err(Error::Usage(format!(
                    "--pattern {} peaks at {:.0} active users, more than --users {users}",
                    s.pattern(),
                    p.peak_rate()
                )));
            }
            Ok((None, Some(p)))
        }
        Load::Closed { shape: None, .. } => Ok((None, None)),
    }
}

/// What the generator threads run, starting at `t0`.
fn plan_load(
    cfg: &Config,
    profile: Option<&Profile>,
    users_profile: Option<Profile>,
    t0: Instant,
) -> Result<PlanLoad> {
    Ok(match (&cfg.load, profile) {
        (
            Load::Open {
                arrivals, overflow, ..
            },
            Some(p),
        ) => PlanLoad::Open {
            profile: p.clone(),
            kind: *arrivals,
            seed: cfg.seed,
            // HTTP/1.1 carries one request per connection: the in-flight limit is the number of
            // connections that take arrivals.
            connections: cfg.connections_used(),
            overflow: *overflow,
        },
        (
            Load::Closed {
                users,
                wait,
                duration_s,
                ..
            },
            _,
        ) => PlanLoad::Closed {
            users: *users,
            shape: users_profile,
            wait: *wait,
            deadline: t0 + Duration::from_secs_f64(*duration_s),
            seed: cfg.seed,
        },
        (Load::Open { .. }, None) => {
            return Err(Error::Usage("open loop without a shape".into()));
        }
    })
}

/// Checks the shape, prepares the target, serves /metrics and starts the generator threads.
async fn start(cfg: &Config) -> Result<Running> {
    let (profile, users_profile) = profiles(cfg)?;
    let prepared = prepare(cfg).await?;
    // Before time zero is set, so it costs the schedule nothing (at most about half a second).
    let wire = prepared.template.wire();
    let send = crate::send::choose(&wire.bytes, cfg.send_path, cfg.connections_used());
    let wire = wire.sending(send.path);
    tracing::debug!("send path: {}", send.line());
    let metrics = Arc::new(Metrics::new());
    let mut background = JoinSet::new();
    if let Some(addr) = &cfg.outputs.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("--metrics-addr {addr}: cannot listen ({e})")))?;
        background.spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let duration_s = match (&cfg.load, &profile) {
        (Load::Closed { duration_s, .. }, _) => *duration_s,
        (_, Some(p)) => p.duration(),
        _ => 0.0,
    };
    // Warm-up: open every connection before time zero so the first sends are not charged for it.
    // With --start-at, time zero is that instant, after the readiness wait above; a shard that
    // is ready only after it keeps the schedule (its due arrivals go out late, counted as such).
    let (t0, t0_sys, late_start) = time_zero(cfg, profile.as_ref());
    let load = plan_load(cfg, profile.as_ref(), users_profile.clone(), t0)?;
    let authority = prepared
        .template
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let engine = Engine::start(Plan {
        wire,
        authority,
        timeout: Duration::from_secs_f64(cfg.timeout_s),
        t0,
        threads: cfg.threads.max(1),
        busy_poll: cfg.load.busy_poll(),
        shard: cfg.shard,
        load,
    })
    .map_err(|e| Error::Usage(format!("cannot start the generator threads: {e}")))?;
    Ok(Running {
        profile,
        users_profile,
        prepared,
        engine,
        metrics,
        background,
        t0,
        t0_sys,
        late_start,
        duration_s,
        send,
    })
}

/// Time between start-up and the schedule's time zero, for the connections to open.
const WARM_UP: Duration = Duration::from_millis(200);

/// The schedule's time zero (monotonic and wall clock) and, when `--start-at` has already
/// passed, the warning that says how late this process is and how many arrivals were due.
fn time_zero(cfg: &Config, profile: Option<&Profile>) -> (Instant, SystemTime, Option<String>) {
    let (now, now_sys) = (Instant::now(), SystemTime::now());
    let Some(at) = cfg.start_at_unix_s else {
        return (now + WARM_UP, now_sys + WARM_UP, None);
    };
    let at_sys = UNIX_EPOCH + Duration::from_secs_f64(at);
    match at_sys.duration_since(now_sys) {
        Ok(ahead) => (now + ahead, at_sys, None),
        Err(e) => {
            let late = e.duration();
            let due = profile.map_or(0.0, |p| {
                p.cumulative(late.as_secs_f64().min(p.duration())) / f64::from(cfg.shard.count)
            });
            let w = format!(
                "started {:.3} s after --start-at: about {due:.0} arrivals were already due; they are sent late and counted as late sends (the schedule is not shifted)",
                late.as_secs_f64()
            );
            tracing::warn!("{w}");
            (now.checked_sub(late).unwrap_or(now), at_sys, Some(w))
        }
    }
}

/// The live status line: on a terminal and not `--quiet`.
fn progress_bar(quiet: bool, duration_s: f64) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new((duration_s * 1000.0) as u64);
    b.set_style(
        ProgressStyle::with_template("{bar:30} {elapsed_precise}/{duration_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

fn file_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        flag: "--hdr-log",
        path: path.to_path_buf(),
        source,
    }
}

/// Collects a window a second until the schedule ends (or a signal), drains within `--grace`,
/// and hands over what the run collected.
async fn collect(cfg: &Config, mut run: Running) -> Result<Collected> {
    let (t0, duration_s) = (run.t0, run.duration_s);
    let started_unix = run
        .t0_sys
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let bar = progress_bar(cfg.outputs.quiet, duration_s);
    // HDR interval log, written as windows close.
    let mut hdr_file = match &cfg.outputs.hdr_log {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).map_err(file_err(p))?,
        )),
        None => None,
    };
    let mut ser = V2DeflateSerializer::new();
    let start_sys = run.t0_sys;
    let mut hdr = match hdr_file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment("kis-loadgen interval log; values in microseconds; tags corrected, service, lag")
                .add_comment(&crate::merge::log_identity(cfg))
                .with_start_time(start_sys)
                .with_base_time(start_sys)
                .with_max_value_divisor(1000.0)
                .begin_log_with(f, &mut ser)
                .map_err(|e| Error::Output {
                    what: "HDR log",
                    reason: e.to_string(),
                })?,
        ),
        None => None,
    };
    let server0 = match &run.prepared.stats {
        Some((ep, m, v)) => ServerStats::fetch(ep, m, v.as_deref()).await,
        None => None,
    };
    let cpu0 = diag::cpu_seconds();
    let mut col = Collector {
        t0,
        last: t0,
        last_cpu: cpu0,
        last_scheduled: 0,
        last_dropped: 0,
        server_base: server0.as_ref().map(|s| s.success + s.fail),
        last_server: server0,
        total_hists: Hists::default(),
        total_counts: Counts::default(),
        rows: Windows::new(),
        warnings: run.late_start.take().into_iter().collect(),
        warned_late: false,
        warned_cpu: false,
        warned_saturated: false,
        last_backlog: 0,
        totals: Snapshot::default(),
        failures_seen: BTreeMap::new(),
    };
    let ctx = WindowCtx {
        engine: &run.engine,
        metrics: &run.metrics,
        profile: run.profile.as_ref(),
        users_profile: run.users_profile.as_ref(),
        prepared: &run.prepared,
        cfg,
        bar: &bar,
    };
    let interrupted = collect_until_done(&mut col, &ctx, &mut hdr, t0 + secs(duration_s)).await;
    collect_window(&mut col, &ctx, hdr.as_mut()).await;
    run.engine.join();
    bar.finish_and_clear();
    drop(hdr);
    if let (Some(mut f), Some(p)) = (hdr_file, &cfg.outputs.hdr_log) {
        f.flush().map_err(file_err(p))?;
    }
    run.background.abort_all();
    let elapsed = col.last.saturating_duration_since(t0).as_secs_f64();
    let cpu = match (cpu0, diag::cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    // Arrivals taken from the schedule plus the due ones a stop left unsent.
    let scheduled = col.totals.consumed + col.totals.cancelled;
    let intended_total = match &run.profile {
        // A shard intends its 1/N of the global schedule.
        Some(p) => p.cumulative(elapsed.max(1e-9).min(p.duration())) / f64::from(cfg.shard.count),
        None => scheduled as f64,
    };
    Ok(Collected {
        config: cfg.clone(),
        request: report::Request {
            method: run.prepared.method.clone(),
            name: run.prepared.name.clone(),
            bytes: run.prepared.template.body.len() as u64,
            target: format!(
                "{} → {}",
                describe_load(cfg, run.profile.as_ref()),
                run.prepared.describe
            ),
            send: Some(run.send.clone()),
        },
        started_unix_s: started_unix,
        elapsed_s: elapsed,
        last_send_s: col.totals.last_send_s.unwrap_or(0.0),
        duration_s,
        interrupted,
        hists: col.total_hists,
        counts: col.total_counts,
        scheduled,
        dropped: col.totals.dropped,
        cancelled: col.totals.cancelled,
        intended_total,
        windows: col.rows,
        cpu_seconds: cpu,
        warnings: col.warnings,
        failures_seen: col.failures_seen,
    })
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

type HdrLog<'a, 'b, W> =
    hdrhistogram::serialization::interval_log::IntervalLogWriter<'a, 'b, W, V2DeflateSerializer>;

/// Collects windows once a second until the generator threads are done: at the schedule's end
/// (or a signal) they get `--grace` to drain, then what is still on the wire is aborted.
/// Returns whether a signal stopped the run.
async fn collect_until_done<W: Write>(
    col: &mut Collector,
    ctx: &WindowCtx<'_>,
    hdr: &mut Option<HdrLog<'_, '_, W>>,
    schedule_end: Instant,
) -> bool {
    let engine = ctx.engine;
    let grace = secs(ctx.cfg.grace_s);
    let mut drain_deadline: Option<Instant> = None;
    let mut interrupted = false;
    let mut tick = tokio::time::interval_at(
        (col.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        if drain_deadline.is_none() && Instant::now() >= schedule_end {
            // Whatever is on the wire, or due and waiting for a connection, gets --grace.
            drain_deadline = Some(Instant::now() + grace);
        }
        let dd = drain_deadline.unwrap_or(schedule_end);
        tokio::select! {
            _ = tick.tick() => collect_window(col, ctx, hdr.as_mut()).await,
            _ = engine.wait_finished() => break,
            _ = &mut signal, if !interrupted => {
                interrupted = true;
                engine.stop();
                drain_deadline = Some(Instant::now() + grace);
            }
            _ = tokio::time::sleep_until(dd.into()), if drain_deadline.is_some() => {
                // Drain bound reached: whatever is still on the wire is aborted and counted.
                engine.abort();
                engine.wait_finished().await;
                break;
            }
            _ = tokio::time::sleep_until(schedule_end.into()), if drain_deadline.is_none() => {}
        }
    }
    interrupted
}

fn describe_load(cfg: &Config, profile: Option<&Profile>) -> String {
    let whole = describe_whole_load(cfg, profile);
    if cfg.shard.is_whole() {
        whole
    } else {
        format!("shard {} of {whole}", cfg.shard)
    }
}

/// The load of the whole (unsharded) run, in words.
fn describe_whole_load(cfg: &Config, profile: Option<&Profile>) -> String {
    match (&cfg.load, profile) {
        (
            Load::Open {
                shape, arrivals, ..
            },
            Some(p),
        ) => format!(
            "{} {:.1}..{:.1} req/s (mean {:.1}) over {:.0} s, {} arrivals",
            shape.pattern(),
            p.low_rate(),
            p.peak_rate(),
            p.mean_rate(),
            p.duration(),
            arrivals.as_str()
        ),
        (
            Load::Closed {
                users,
                wait,
                duration_s,
                shape,
            },
            _,
        ) => format!(
            "{users} closed-loop users{}, wait {}..{} s, {duration_s:.0} s",
            shape
                .as_ref()
                .map(|s| format!(" (active count follows {})", s.pattern()))
                .unwrap_or_default(),
            wait.min_s,
            wait.max_s
        ),
        _ => String::new(),
    }
}

/// What every window's collection reads.
struct WindowCtx<'a> {
    engine: &'a Engine,
    metrics: &'a Metrics,
    profile: Option<&'a Profile>,
    users_profile: Option<&'a Profile>,
    prepared: &'a Prepared,
    cfg: &'a Config,
    bar: &'a ProgressBar,
}

/// Mean server-side queue and compute time per request (ms) and successes between two readings
/// of Triton's statistics.
fn server_delta(
    a: Option<&ServerStats>,
    b: Option<&ServerStats>,
) -> (Option<f64>, Option<f64>, Option<u64>) {
    match (a, b) {
        (Some(a), Some(b)) if b.success >= a.success => {
            let n = b.success - a.success;
            let per =
                |x: u64, y: u64| (n > 0).then(|| (y.saturating_sub(x)) as f64 / n as f64 / 1e6);
            (
                per(a.queue_ns, b.queue_ns),
                per(a.compute_infer_ns, b.compute_infer_ns),
                Some(n),
            )
        }
        _ => (None, None, None),
    }
}

/// Takes a window from the generator threads, adds it to the run, and updates /metrics, the
/// warnings, the HDR log, the live line and the window rows.
async fn collect_window<W: Write>(
    col: &mut Collector,
    ctx: &WindowCtx<'_>,
    hdr: Option<&mut HdrLog<'_, '_, W>>,
) {
    let now = Instant::now();
    let snap = ctx.engine.collect().await;
    let win: &Window = &snap.window;
    let dt = now.saturating_duration_since(col.last).as_secs_f64();
    let (t_a, t_b) = (
        col.last.saturating_duration_since(col.t0).as_secs_f64(),
        now.saturating_duration_since(col.t0).as_secs_f64(),
    );
    let intended = match ctx.profile {
        Some(p) => (p.cumulative(t_b) - p.cumulative(t_a)) / f64::from(ctx.cfg.shard.count),
        None => (snap.consumed - col.last_scheduled) as f64,
    };
    let cpu_now = diag::cpu_seconds();
    let cpu_ratio = match (col.last_cpu, cpu_now) {
        (Some(a), Some(b)) if dt > 0.0 => Some((b - a) / dt),
        _ => None,
    };
    let server = match (&ctx.prepared.stats, col.server_base) {
        // The last window: Triton records the last answers just after sending them.
        (Some((ep, m, v)), Some(base)) if ctx.engine.finished() => {
            let answered = base + col.total_counts.ok + win.counts.ok;
            ServerStats::fetch_settled(ep, m, v.as_deref(), answered).await
        }
        (Some((ep, m, v)), _) => ServerStats::fetch(ep, m, v.as_deref()).await,
        (None, _) => None,
    };
    let (sq, sc, ss) = server_delta(col.last_server.as_ref(), server.as_ref());
    col.total_hists.add(&win.hists);
    col.total_counts.add(&win.counts);
    let per_s = |n: f64| if dt > 0.0 { n / dt } else { 0.0 };
    let row = WindowRow {
        t_s: t_b,
        dt_s: dt,
        unix_s: unix_now(),
        intended,
        scheduled: snap.consumed - col.last_scheduled,
        sent: win.counts.sent,
        completed: win.counts.completed,
        ok: win.counts.ok,
        errors: win.counts.errors,
        dropped: snap.dropped - col.last_dropped,
        late_sends: win.counts.late_sends,
        dispatcher_gaps: win.counts.dispatcher_gaps.clone(),
        intended_rps: per_s(intended),
        achieved_rps: per_s(win.counts.sent as f64),
        in_flight: snap.in_flight,
        users: match &ctx.cfg.load {
            Load::Closed { users, .. } => Some(ctx.users_profile.map_or(u64::from(*users), |p| {
                crate::engine::active_at(p, t_b, *users) as u64
            })),
            Load::Open { .. } => None,
        },
        backlog: snap.backlog,
        corrected: Percentiles::of(&win.hists.corrected),
        service: Percentiles::of(&win.hists.service),
        send_lag: Percentiles::of(&win.hists.lag),
        cpu_ratio,
        server_queue_ms: sq,
        server_compute_ms: sc,
        server_success: ss,
    };
    ctx.metrics.observe(&row, &win.counts);
    ctx.metrics.observe_latency(&win.hists);
    let window_start = row.unix_s - dt;
    for (label, _) in win.counts.failures() {
        col.failures_seen
            .entry(label)
            .or_insert((window_start, row.unix_s))
            .1 = row.unix_s;
    }
    warn_about(col, ctx.cfg, &row, win, dt);
    if let Some(log) = hdr {
        let (start, d) = (secs(t_a), secs(dt));
        let _ = log.write_histogram(&win.hists.corrected, start, d, Tag::new("corrected"));
        let _ = log.write_histogram(&win.hists.service, start, d, Tag::new("service"));
        let _ = log.write_histogram(&win.hists.lag, start, d, Tag::new("lag"));
    }
    ctx.bar.set_position((t_b * 1000.0) as u64);
    ctx.bar.set_message(format!(
        "intended {:.0}/s achieved {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {} in flight {}",
        row.intended_rps,
        row.achieved_rps,
        row.corrected.p50_ms,
        row.corrected.p99_ms,
        col.total_counts.errors,
        row.in_flight
    ));
    col.last = now;
    col.last_cpu = cpu_now;
    col.last_scheduled = snap.consumed;
    col.last_dropped = snap.dropped;
    if server.is_some() {
        col.last_server = server;
    }
    let history = History {
        locust: if win.hists.corrected.is_empty() {
            Vec::new()
        } else {
            report::finish::locust_percentiles(&win.hists.corrected)
        },
        total: Percentiles::of(&col.total_hists.corrected),
        total_counts: (
            col.total_counts.completed,
            col.total_counts.errors,
            col.total_counts.bytes_in,
        ),
    };
    col.rows.push(&row, &history);
    col.totals = Snapshot {
        window: Window::default(),
        ..snap
    };
}

/// Self-diagnosis of one window, each kind of warning given once (then it is in every window
/// row anyway).
fn warn_about(col: &mut Collector, cfg: &Config, row: &WindowRow, win: &Window, dt: f64) {
    let floor = &col.total_hists.service;
    let ev = diag::Evidence {
        t_s: row.t_s,
        dt_s: dt,
        sent: row.sent,
        late: row.late_sends,
        late_waited: win.counts.late_waited,
        lag_p99_ms: row.send_lag.p99_ms,
        in_flight: row.in_flight,
        connections: cfg.connections_used() as u64,
        backlog_before: col.last_backlog,
        backlog: row.backlog,
        service_p50_ms: row.service.p50_ms,
        service_floor_ms: if floor.is_empty() {
            0.0
        } else {
            crate::record::ms(floor.min())
        },
        server_queue_ms: row.server_queue_ms,
        server_compute_ms: row.server_compute_ms,
        // The drain's last sliver of a window divides set-up and shutdown CPU by a few ms.
        cpu: row.cpu_ratio.filter(|_| dt >= 0.5),
        threads: cfg.threads,
        busy_poll: cfg.load.busy_poll(),
        gaps_us: row.dispatcher_gaps.total_us,
    };
    for w in diag::window_warnings(&ev) {
        let late = w.contains("lagged");
        let warned = if late {
            &mut col.warned_late
        } else {
            &mut col.warned_cpu
        };
        if !*warned {
            *warned = true;
            tracing::warn!("{w}");
            col.warnings.push(w);
        }
    }
    if !col.warned_saturated
        && matches!(cfg.load, Load::Open { .. })
        && let Some(w) = diag::saturation_warning(&ev)
    {
        col.warned_saturated = true;
        tracing::warn!("{w}");
        col.warnings.push(w);
    }
    col.last_backlog = row.backlog;
}
