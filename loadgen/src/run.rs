//! Runs a configured load test end to end: prepare the target, start the generator threads,
//! collect a window a second (metrics, live line, HDR log), stop on schedule end or signal,
//! drain within `--grace`, and write every output.

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
use crate::metrics::{Metrics, OutcomeLabels, QuantileLabels};
use crate::record::{Counts, Hists, Percentiles, Window, ms};
use crate::report::{self, Generator, History, Latency, Rates, Report, Totals, WindowRow, Windows};

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

async fn prepare(cfg: &Config) -> Result<Prepared> {
    let ready = Duration::from_secs_f64(cfg.ready_timeout_s);
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
                    Err(e) if start.elapsed().as_secs_f64() >= cfg.ready_timeout_s => {
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
}

async fn run_async(cfg: Config) -> Result<Report> {
    // The shape is checked before the target is contacted: bad input fails fast and offline.
    let profile: Option<Profile> = match &cfg.load {
        Load::Open { shape, .. } => Some(shape.build(cfg.seed)?),
        Load::Closed { .. } => None,
    };
    // Closed loop with a shape: the shape counts active users.
    let users_profile: Option<Profile> = match &cfg.load {
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
            Some(p)
        }
        _ => None,
    };
    let prepared = prepare(&cfg).await?;
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
    if let Some(p) = &profile
        && p.total() < 0.5
    {
        return Err(Error::Usage(format!(
            "the shape schedules no requests (mean rate {:.3}/s over {:.1} s)",
            p.mean_rate(),
            p.duration()
        )));
    }

    // Warm-up: open every connection before time zero so the first sends are not charged for it.
    let warm = Duration::from_millis(200);
    let t0 = Instant::now() + warm;
    let load = match (&cfg.load, &profile) {
        (
            Load::Open {
                arrivals,
                max_in_flight,
                overflow,
                ..
            },
            Some(p),
        ) => PlanLoad::Open {
            profile: p.clone(),
            kind: *arrivals,
            seed: cfg.seed,
            // HTTP/1.1 carries one request per connection: the in-flight limit is the number of
            // connections that take arrivals.
            connections: (*max_in_flight).min(cfg.connections),
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
            shape: users_profile.clone(),
            wait: *wait,
            deadline: t0 + Duration::from_secs_f64(*duration_s),
            seed: cfg.seed,
        },
        (Load::Open { .. }, None) => {
            return Err(Error::Usage("open loop without a shape".into()));
        }
    };
    let authority = prepared
        .template
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let engine = Engine::start(Plan {
        wire: prepared.template.wire(),
        authority,
        timeout: Duration::from_secs_f64(cfg.timeout_s),
        t0,
        threads: cfg.threads.max(1),
        busy_poll: cfg.load.busy_poll(),
        load,
    })
    .map_err(|e| Error::Usage(format!("cannot start the generator threads: {e}")))?;

    let started_unix = unix_now() + warm.as_secs_f64();
    let bar = if !cfg.outputs.quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::new((duration_s * 1000.0) as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {elapsed_precise}/{duration_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    // HDR interval log, written as windows close.
    let mut hdr_file = match &cfg.outputs.hdr_log {
        Some(p) => Some(BufWriter::new(std::fs::File::create(p).map_err(
            |source| Error::File {
                path: p.clone(),
                source,
            },
        )?)),
        None => None,
    };
    let mut ser = V2DeflateSerializer::new();
    let start_sys = SystemTime::now() + warm;
    let mut hdr = match hdr_file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment("kis-loadgen interval log; values in microseconds; tags corrected, service, lag")
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

    let server0 = match &prepared.stats {
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
        warnings: Vec::new(),
        warned_late: false,
        warned_cpu: false,
        warned_saturated: false,
        last_backlog: 0,
    };

    let schedule_end = t0 + Duration::from_secs_f64(duration_s);
    let mut drain_deadline: Option<Instant> = None;
    let mut interrupted = false;
    let mut snap_totals = Snapshot::default();
    let mut tick =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        if drain_deadline.is_none() && Instant::now() >= schedule_end {
            // Whatever is on the wire, or due and waiting for a connection, gets --grace.
            drain_deadline = Some(Instant::now() + Duration::from_secs_f64(cfg.grace_s));
        }
        let dd = drain_deadline.unwrap_or(schedule_end);
        tokio::select! {
            _ = tick.tick() => {
                collect_window(&mut col, &engine, &mut snap_totals, &metrics, profile.as_ref(), &prepared, &cfg, hdr.as_mut(), &bar).await;
            }
            _ = engine.wait_finished() => break,
            _ = &mut signal, if !interrupted => {
                interrupted = true;
                engine.stop();
                drain_deadline = Some(Instant::now() + Duration::from_secs_f64(cfg.grace_s));
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
    collect_window(
        &mut col,
        &engine,
        &mut snap_totals,
        &metrics,
        profile.as_ref(),
        &prepared,
        &cfg,
        hdr.as_mut(),
        &bar,
    )
    .await;
    engine.join();
    bar.finish_and_clear();
    drop(hdr);
    if let Some(mut f) = hdr_file {
        f.flush().map_err(|source| Error::File {
            path: cfg.outputs.hdr_log.clone().unwrap_or_default(),
            source,
        })?;
    }
    background.abort_all();

    let elapsed = col
        .last
        .saturating_duration_since(t0)
        .as_secs_f64()
        .max(1e-9);
    let cpu = match (cpu0, diag::cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    // Arrivals taken from the schedule plus the due ones a stop left unsent.
    let scheduled = snap_totals.consumed + snap_totals.cancelled;
    let intended_total = match &profile {
        Some(p) => p.cumulative(elapsed.min(p.duration())),
        None => scheduled as f64,
    };
    if let Some(w) = diag::run_warning(
        col.total_counts.sent,
        col.total_counts.late_sends,
        &col.total_counts.dispatcher_gaps,
    ) {
        tracing::warn!("{w}");
        col.warnings.push(w);
    }
    let c = &col.total_counts;
    let rates = Rates {
        intended_total,
        intended_rps: intended_total / elapsed.min(duration_s.max(1e-9)),
        achieved_rps: c.sent as f64 / elapsed.min(duration_s.max(1e-9)),
        achieved_ratio: if intended_total > 0.0 {
            c.sent as f64 / intended_total
        } else {
            0.0
        },
    };
    let locust: Vec<f64> = report::LOCUST_PERCENTILES
        .iter()
        .map(|q| {
            if col.total_hists.corrected.is_empty() {
                0.0
            } else {
                ms(col.total_hists.corrected.value_at_quantile(*q))
            }
        })
        .collect();
    let report = Report {
        tool: format!("kis-loadgen {}", env!("CARGO_PKG_VERSION")),
        config: cfg.clone(),
        started_unix_s: started_unix,
        elapsed_s: elapsed,
        interrupted,
        totals: Totals::from_counts(c, scheduled, snap_totals.dropped, snap_totals.cancelled),
        rates,
        latency: Latency {
            corrected: Percentiles::of(&col.total_hists.corrected),
            service: Percentiles::of(&col.total_hists.service),
            send_lag: Percentiles::of(&col.total_hists.lag),
        },
        windows: std::mem::replace(&mut col.rows, Windows::in_memory()),
        generator: Generator {
            cpu_seconds: cpu,
            requests_per_cpu_second: if cpu > 0.0 {
                c.completed as f64 / cpu
            } else {
                0.0
            },
            warnings: std::mem::take(&mut col.warnings),
        },
        request_bytes: prepared.template.body.len() as u64,
        target: format!(
            "{} → {}",
            describe_load(&cfg, profile.as_ref()),
            prepared.describe
        ),
    };
    // Every output is attempted; the first failure is reported after the others were written.
    let mut first_err: Option<Error> = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r
            && first_err.is_none()
        {
            first_err = Some(e);
        }
    };
    if let Some(p) = &cfg.outputs.json {
        keep(report.write_json(p));
    }
    if let Some(p) = &cfg.outputs.csv {
        keep(report::csv::write_all(
            &report,
            p,
            &prepared.method,
            &prepared.name,
            &locust,
        ));
    }
    if let Some(p) = &cfg.outputs.plot {
        keep(report::plot::write(&report, p));
    }
    if !cfg.outputs.quiet {
        print!("{}", report.summary());
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn describe_load(cfg: &Config, profile: Option<&Profile>) -> String {
    match (&cfg.load, profile) {
        (
            Load::Open {
                shape, arrivals, ..
            },
            Some(p),
        ) => format!(
            "{} {:.1}..{:.1} req/s (mean {:.1}) over {:.0} s, {} arrivals",
            shape.pattern(),
            p.rate(0.0),
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

#[allow(clippy::too_many_arguments)]
async fn collect_window<W: Write>(
    col: &mut Collector,
    engine: &Engine,
    totals: &mut Snapshot,
    metrics: &Metrics,
    profile: Option<&Profile>,
    prepared: &Prepared,
    cfg: &Config,
    hdr: Option<
        &mut hdrhistogram::serialization::interval_log::IntervalLogWriter<
            '_,
            '_,
            W,
            V2DeflateSerializer,
        >,
    >,
    bar: &ProgressBar,
) {
    let now = Instant::now();
    let snap = engine.collect().await;
    let win: Window = snap.window;
    let dt = now.saturating_duration_since(col.last).as_secs_f64();
    let (t_a, t_b) = (
        col.last.saturating_duration_since(col.t0).as_secs_f64(),
        now.saturating_duration_since(col.t0).as_secs_f64(),
    );
    let scheduled = snap.consumed;
    let dropped = snap.dropped;
    totals.consumed = snap.consumed;
    totals.dropped = snap.dropped;
    totals.cancelled = snap.cancelled;
    totals.backlog = snap.backlog;
    let intended = match profile {
        Some(p) => p.cumulative(t_b) - p.cumulative(t_a),
        None => (scheduled - col.last_scheduled) as f64,
    };
    let cpu_now = diag::cpu_seconds();
    let cpu_ratio = match (col.last_cpu, cpu_now) {
        (Some(a), Some(b)) if dt > 0.0 => Some((b - a) / dt),
        _ => None,
    };
    let server = match (&prepared.stats, col.server_base) {
        // The last window: Triton records the last answers just after sending them.
        (Some((ep, m, v)), Some(base)) if engine.finished() => {
            let answered = base + col.total_counts.ok + win.counts.ok;
            ServerStats::fetch_settled(ep, m, v.as_deref(), answered).await
        }
        (Some((ep, m, v)), _) => ServerStats::fetch(ep, m, v.as_deref()).await,
        (None, _) => None,
    };
    let (sq, sc, ss) = match (&col.last_server, &server) {
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
    };
    col.total_hists.add(&win.hists);
    col.total_counts.add(&win.counts);
    let in_flight = snap.in_flight;
    let backlog = snap.backlog;
    let corrected = Percentiles::of(&win.hists.corrected);
    let row = WindowRow {
        t_s: t_b,
        dt_s: dt,
        unix_s: unix_now(),
        intended,
        scheduled: scheduled - col.last_scheduled,
        sent: win.counts.sent,
        completed: win.counts.completed,
        ok: win.counts.ok,
        errors: win.counts.errors,
        dropped: dropped - col.last_dropped,
        late_sends: win.counts.late_sends,
        dispatcher_gaps: win.counts.dispatcher_gaps.clone(),
        intended_rps: if dt > 0.0 { intended / dt } else { 0.0 },
        achieved_rps: if dt > 0.0 {
            win.counts.sent as f64 / dt
        } else {
            0.0
        },
        in_flight,
        backlog,
        corrected,
        service: Percentiles::of(&win.hists.service),
        send_lag: Percentiles::of(&win.hists.lag),
        cpu_ratio,
        server_queue_ms: sq,
        server_compute_ms: sc,
        server_success: ss,
    };
    // Metrics.
    for (k, v) in &win.counts.by_status {
        let outcome = if (200..300).contains(k) {
            "ok"
        } else {
            "status"
        };
        metrics
            .requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
                code: k.to_string(),
            })
            .inc_by(*v);
    }
    for (k, v) in &win.counts.by_kind {
        if *k != crate::record::ErrorKind::Status {
            metrics
                .requests
                .get_or_create(&OutcomeLabels {
                    outcome: k.as_str().into(),
                    code: String::new(),
                })
                .inc_by(*v);
        }
    }
    for (kind, p) in [
        ("corrected", &row.corrected),
        ("service", &row.service),
        ("send_lag", &row.send_lag),
    ] {
        for (q, v) in [("0.5", p.p50_ms), ("0.95", p.p95_ms), ("0.99", p.p99_ms)] {
            metrics
                .latency
                .get_or_create(&QuantileLabels { kind, quantile: q })
                .set(v / 1000.0);
        }
    }
    metrics.in_flight.set(in_flight as i64);
    metrics.queued.set(backlog as i64);
    metrics.intended_rate.set(row.intended_rps);
    metrics.achieved_rate.set(row.achieved_rps);
    metrics.dropped.inc_by(row.dropped);
    metrics.late_sends.inc_by(row.late_sends);
    metrics.dispatcher_gaps.inc_by(row.dispatcher_gaps.count);
    metrics
        .dispatcher_gap_seconds
        .inc_by(row.dispatcher_gaps.total_us as f64 / 1e6);
    if let Some(c) = cpu_ratio {
        metrics.cpu_ratio.set(c);
    }
    if let Some(q) = sq {
        metrics.server_queue.set(q / 1000.0);
    }
    if let Some(c) = sc {
        metrics.server_compute.set(c / 1000.0);
    }
    // Self-diagnosis, each kind reported once (then it is in every window row anyway).
    let busy_poll = cfg.load.busy_poll();
    for w in diag::window_warnings(
        t_b,
        row.sent,
        row.late_sends,
        // The drain's last sliver of a window divides set-up and shutdown CPU by a few ms.
        cpu_ratio.filter(|_| dt >= 0.5),
        cfg.threads,
        busy_poll,
    ) {
        let late = w.contains("lagged");
        if (late && !col.warned_late) || (!late && !col.warned_cpu) {
            if late {
                col.warned_late = true;
            } else {
                col.warned_cpu = true;
            }
            tracing::warn!("{w}");
            col.warnings.push(w);
        }
    }
    if !col.warned_saturated
        && let Load::Open { max_in_flight, .. } = &cfg.load
        && let Some(w) = diag::saturation_warning(
            t_b,
            col.last_backlog,
            backlog,
            row.send_lag.p99_ms,
            in_flight,
            (*max_in_flight).min(cfg.connections) as u64,
        )
    {
        col.warned_saturated = true;
        tracing::warn!("{w}");
        col.warnings.push(w);
    }
    col.last_backlog = backlog;
    if let Some(log) = hdr {
        let start = Duration::from_secs_f64(t_a);
        let d = Duration::from_secs_f64(dt);
        let _ = log.write_histogram(&win.hists.corrected, start, d, Tag::new("corrected"));
        let _ = log.write_histogram(&win.hists.service, start, d, Tag::new("service"));
        let _ = log.write_histogram(&win.hists.lag, start, d, Tag::new("lag"));
    }
    bar.set_position((t_b * 1000.0) as u64);
    bar.set_message(format!(
        "intended {:.0}/s achieved {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {} in flight {}",
        row.intended_rps,
        row.achieved_rps,
        row.corrected.p50_ms,
        row.corrected.p99_ms,
        col.total_counts.errors,
        in_flight
    ));
    col.last = now;
    col.last_cpu = cpu_now;
    col.last_scheduled = scheduled;
    col.last_dropped = dropped;
    if server.is_some() {
        col.last_server = server;
    }
    let history = History {
        locust: if win.hists.corrected.is_empty() {
            Vec::new()
        } else {
            report::LOCUST_PERCENTILES
                .iter()
                .map(|q| ms(win.hists.corrected.value_at_quantile(*q)))
                .collect()
        },
        total: Percentiles::of(&col.total_hists.corrected),
        total_counts: (
            col.total_counts.completed,
            col.total_counts.errors,
            col.total_counts.bytes_in,
        ),
    };
    col.rows.push(&row, &history);
}
