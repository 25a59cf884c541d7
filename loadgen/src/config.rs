//! The checked run configuration, built once from the flags; every report embeds it.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use kis_traffic::{ArrivalKind, Pattern, ShapeSpec};
use serde::{Deserialize, Serialize};

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::shard::Shard;

/// An `http://host:port` endpoint and the path below it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    /// `host:port` to connect to and send as `Host`.
    pub authority: String,
    /// Path (and query) without a trailing `/` for a base URL.
    pub path: String,
}

impl Endpoint {
    /// Parses an `http://` URL; anything else is one clear error.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| Error::Usage(format!("--url {url:?} is not a URL ({e})")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(Error::Usage(format!(
                    "--url {url:?}: scheme {other:?} is not supported (only http://)"
                )));
            }
            None => {
                return Err(Error::Usage(format!(
                    "--url {url:?} needs a scheme (http://host:port)"
                )));
            }
        }
        let host = uri
            .host()
            .ok_or_else(|| Error::Usage(format!("--url {url:?} has no host")))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Endpoint {
            authority: format!("{host}:{port}"),
            path: path.to_string(),
        })
    }

    /// The base path without a trailing slash (for joining KServe routes).
    pub fn base(&self) -> &str {
        self.path.trim_end_matches('/')
    }
}

/// Where the input tensor data comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum InputData {
    /// Seeded uniform random values.
    Random,
    /// All zeros.
    Zero,
    /// Raw little-endian bytes from a file.
    File(PathBuf),
}

/// What is being driven.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// A KServe-v2 model: the request is built from its metadata.
    Kserve {
        /// Server.
        endpoint: Endpoint,
        /// Model name.
        model: String,
        /// Model version, if pinned.
        version: Option<String>,
        /// Binary tensor extension (true) or JSON tensors.
        binary: bool,
        /// Input data.
        input: InputData,
        /// Shape overrides `(input name, dims)`.
        shapes: Vec<(String, Vec<i64>)>,
    },
    /// Plain HTTP requests.
    Http {
        /// Target URL.
        endpoint: Endpoint,
        /// Method.
        method: String,
        /// Body file, if any.
        body_file: Option<PathBuf>,
    },
}

/// Closed-loop think time, seconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Wait {
    /// Lower bound.
    pub min_s: f64,
    /// Upper bound.
    pub max_s: f64,
}

/// What to do with an arrival when the in-flight limit is reached.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Wait for a free slot; latency is still charged from the intended time.
    Queue,
    /// Do not send; counted as dropped.
    Drop,
}

/// The load model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Load {
    /// Arrivals at a rate that does not depend on the server (the default).
    Open {
        /// The rate shape (requests/s).
        shape: ShapeSpec,
        /// Uniform or Poisson spacing.
        arrivals: ArrivalKind,
        /// In-flight limit.
        max_in_flight: usize,
        /// Overflow policy.
        overflow: Overflow,
        /// Poll instead of sleeping between sends.
        busy_poll: bool,
    },
    /// Users that wait for their answer and think (Locust parity).
    Closed {
        /// Number of users (connections); with a shape, the most that are active at once.
        users: u32,
        /// The number of active users over time (the shape's value, rounded), like a Locust
        /// load shape; `None`: all users for the whole run.
        shape: Option<ShapeSpec>,
        /// Think time.
        wait: Wait,
        /// Run length, seconds.
        duration_s: f64,
    },
}

impl Load {
    /// An open loop whose dispatcher polls instead of sleeping (`--busy-poll`).
    pub fn busy_poll(&self) -> bool {
        matches!(
            self,
            Load::Open {
                busy_poll: true,
                ..
            }
        )
    }
}

/// Output files and endpoints.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outputs {
    /// JSON report.
    pub json: Option<PathBuf>,
    /// Locust CSV prefix.
    pub csv: Option<PathBuf>,
    /// HdrHistogram interval log.
    pub hdr_log: Option<PathBuf>,
    /// Plot file (.png/.svg).
    pub plot: Option<PathBuf>,
    /// Prometheus /metrics address.
    pub metrics_addr: Option<String>,
    /// No live line and no summary.
    pub quiet: bool,
}

/// Everything a run needs, checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// What to drive.
    pub target: Target,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Load model.
    pub load: Load,
    /// Seed for everything random.
    pub seed: u64,
    /// Connection pool size (open loop).
    pub connections: usize,
    /// Generator threads.
    pub threads: usize,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
    /// Drain bound, seconds.
    pub grace_s: f64,
    /// Readiness wait bound, seconds.
    pub ready_timeout_s: f64,
    /// This process's share of the schedule (`--shard K/N`; `0/1`: all of it).
    #[serde(default)]
    pub shard: Shard,
    /// Time zero of the schedule on the wall clock, Unix seconds (`--start-at`); `None`: as
    /// soon as the target is ready.
    #[serde(default)]
    pub start_at_unix_s: Option<f64>,
    /// Names the run all shards belong to (`--run-id`), checked by `kis-loadgen merge`.
    #[serde(default)]
    pub run_id: Option<String>,
    /// How large requests are sent (`--send-path`; [`crate::send`]).
    #[serde(default)]
    pub send_path: crate::send::SendMode,
    /// Outputs.
    pub outputs: Outputs,
}

/// Environment variable for `--run-id` (an Indexed Job sets it from its own name).
pub const RUN_ID_ENV: &str = "KIS_LOADGEN_RUN_ID";

/// Longest `--timeout`: latencies are recorded up to [`crate::record::MAX_US`] (1 h).
pub const MAX_TIMEOUT_S: f64 = 3600.0;

/// Defaults of a [`Config`] built by [`Config::open_loop`] or [`Config::closed_loop`]: the
/// flags' defaults (`--connections`, `--threads`, `--timeout`, `--grace`, `--ready-timeout`,
/// `--seed`; a unit test keeps the two equal).
pub mod defaults {
    /// `--connections`.
    pub const CONNECTIONS: usize = 64;
    /// `--threads`.
    pub const THREADS: usize = 1;
    /// `--timeout`, seconds.
    pub const TIMEOUT_S: f64 = 60.0;
    /// `--grace`, seconds.
    pub const GRACE_S: f64 = 5.0;
    /// `--ready-timeout`, seconds.
    pub const READY_TIMEOUT_S: f64 = 10.0;
    /// `--seed`.
    pub const SEED: u64 = 1;
}

impl Target {
    /// A KServe-v2 model at the server base URL `url`: binary tensors, seeded random input, the
    /// model's own shapes (variable dims become 1).
    pub fn kserve(url: &str, model: &str) -> Result<Target> {
        Ok(Target::Kserve {
            endpoint: Endpoint::parse(url)?,
            model: model.to_string(),
            version: None,
            binary: true,
            input: InputData::Random,
            shapes: Vec::new(),
        })
    }

    /// Plain HTTP `method` requests to the full URL `url`, without a body.
    pub fn http(url: &str, method: &str) -> Result<Target> {
        hyper::Method::from_bytes(method.as_bytes())
            .map_err(|_| usage(format!("--method {method:?} is not an HTTP method")))?;
        Ok(Target::Http {
            endpoint: Endpoint::parse(url)?,
            method: method.to_string(),
            body_file: None,
        })
    }
}

impl Wait {
    /// No think time: a closed-loop user sends again as soon as its answer is in.
    pub const NONE: Wait = Wait {
        min_s: 0.0,
        max_s: 0.0,
    };
}

impl Config {
    /// An open loop: arrivals follow `shape` (requests/s) with `arrivals` spacing, on the
    /// default connections (all of them usable, due arrivals queue for a free one).
    pub fn open_loop(target: Target, shape: ShapeSpec, arrivals: ArrivalKind) -> Config {
        Config::with_load(
            target,
            Load::Open {
                shape,
                arrivals,
                max_in_flight: defaults::CONNECTIONS,
                overflow: Overflow::Queue,
                busy_poll: false,
            },
        )
    }

    /// A closed loop of `users` users, each sending, waiting for its answer, then thinking for
    /// `wait`, for `duration_s` seconds.
    pub fn closed_loop(target: Target, users: u32, wait: Wait, duration_s: f64) -> Config {
        Config::with_load(
            target,
            Load::Closed {
                users,
                shape: None,
                wait,
                duration_s,
            },
        )
    }

    fn with_load(target: Target, load: Load) -> Config {
        Config {
            target,
            headers: Vec::new(),
            load,
            seed: defaults::SEED,
            connections: defaults::CONNECTIONS,
            threads: defaults::THREADS,
            timeout_s: defaults::TIMEOUT_S,
            grace_s: defaults::GRACE_S,
            ready_timeout_s: defaults::READY_TIMEOUT_S,
            shard: Shard::WHOLE,
            run_id: None,
            start_at_unix_s: None,
            send_path: crate::send::SendMode::Auto,
            outputs: Outputs::default(),
        }
    }

    /// Connections the run opens: `min(--connections, --max-in-flight)` in an open loop (HTTP/1.1
    /// carries one request per connection), one per user in a closed loop.
    pub fn connections_used(&self) -> usize {
        match &self.load {
            Load::Open { max_in_flight, .. } => (*max_in_flight).min(self.connections),
            Load::Closed { users, .. } => *users as usize,
        }
    }

    /// The same configuration with `seed` for everything random.
    pub fn with_seed(mut self, seed: u64) -> Config {
        self.seed = seed;
        self
    }

    /// The same configuration sending only `shard`'s share of the schedule and users.
    pub fn with_shard(mut self, shard: Shard) -> Config {
        self.shard = shard;
        self
    }

    /// The same configuration without the live line and the summary table.
    pub fn quiet(mut self) -> Config {
        self.outputs.quiet = true;
        self
    }

    /// Checks the values that do not depend on how the configuration was built (flags or the
    /// constructors); [`crate::run`] checks again before it starts.
    pub fn check(&self) -> Result<()> {
        if self.connections == 0 {
            return Err(usage("--connections must be at least 1"));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err(usage(format!(
                "--threads must be in 1..=64, got {}",
                self.threads
            )));
        }
        let t = positive("--timeout", self.timeout_s)?;
        if t > MAX_TIMEOUT_S {
            return Err(usage(format!(
                "--timeout {t} s is over 1 h, the top of the latency histograms"
            )));
        }
        for (name, v) in [
            ("--grace", self.grace_s),
            ("--ready-timeout", self.ready_timeout_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(usage(format!("{name} must be >= 0, got {v}")));
            }
        }
        match &self.load {
            Load::Open { max_in_flight, .. } => {
                if *max_in_flight == 0 {
                    return Err(usage("--max-in-flight must be at least 1"));
                }
                if *max_in_flight > self.connections {
                    return Err(usage(format!(
                        "--max-in-flight {max_in_flight} exceeds --connections {} (HTTP/1.1: one request per connection)",
                        self.connections
                    )));
                }
            }
            Load::Closed {
                users,
                wait,
                duration_s,
                ..
            } => {
                if *users == 0 {
                    return Err(usage("--users must be at least 1"));
                }
                positive("--duration", *duration_s)?;
                let ordered = wait.min_s >= 0.0 && wait.min_s <= wait.max_s;
                if !(ordered && wait.max_s.is_finite()) {
                    return Err(usage(format!(
                        "--wait {}..{} s: need 0 <= lower <= upper",
                        wait.min_s, wait.max_s
                    )));
                }
            }
        }
        Ok(())
    }
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

fn positive(name: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(usage(format!("{name} must be > 0, got {v}")))
    }
}

/// Longest a `--start-at` may lie ahead.
pub const MAX_START_AHEAD_S: f64 = 86_400.0;

/// Parses `--start-at`: an RFC 3339 time (`2026-12-03T13:00:00Z`) or `+DURATION` from `now`;
/// returns Unix seconds. A time already past, or more than a day ahead, is refused.
pub fn parse_start_at(s: &str, now: SystemTime) -> Result<f64> {
    let t = s.trim();
    let at = if let Some(rel) = t.strip_prefix('+') {
        let d =
            kis_units::parse_duration(rel).map_err(|e| usage(format!("--start-at {s:?}: {e}")))?;
        now + d
    } else {
        humantime::parse_rfc3339_weak(t).map_err(|e| {
            usage(format!(
                "--start-at {s:?} is neither an RFC 3339 time (2026-12-03T13:00:00Z) nor +DURATION ({e})"
            ))
        })?
    };
    let unix = |x: SystemTime| {
        x.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let ahead = unix(at) - unix(now);
    if ahead < 0.0 {
        return Err(usage(format!(
            "--start-at {s:?} is {:.1} s in the past",
            -ahead
        )));
    }
    if ahead > MAX_START_AHEAD_S {
        return Err(usage(format!(
            "--start-at {s:?} is {:.0} s ahead, more than a day",
            ahead
        )));
    }
    Ok(unix(at))
}

/// Parses `A..B`, `A` (both durations).
pub fn parse_wait(s: &str) -> Result<Wait> {
    let bad = |e: kis_units::DurationError| usage(format!("--wait {s:?}: {e}"));
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (
            kis_units::parse_secs(a).map_err(bad)?,
            kis_units::parse_secs(b).map_err(bad)?,
        ),
        None => {
            let v = kis_units::parse_secs(s).map_err(bad)?;
            (v, v)
        }
    };
    if a > b {
        return Err(usage(format!(
            "--wait {s:?}: lower bound above upper bound"
        )));
    }
    Ok(Wait { min_s: a, max_s: b })
}

fn parse_shape_override(s: &str) -> Result<(String, Vec<i64>)> {
    let bad = || {
        usage(format!(
            "--shape {s:?}: expected NAME:D1,D2,... with dims >= 1"
        ))
    };
    let (name, dims) = s.rsplit_once(':').ok_or_else(bad)?;
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<i64>().ok().filter(|d| *d >= 1))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    if name.is_empty() || dims.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), dims))
}

/// A shape flag that does not apply to `pattern` is an error naming it and those that do.
fn check_shape_flags(cli: &Cli, pattern: Pattern) -> Result<()> {
    let given: [(&str, bool); 11] = [
        ("--rate", cli.rate.is_some()),
        ("--min", cli.min.is_some()),
        ("--max", cli.max.is_some()),
        ("--steps", cli.steps.is_some()),
        ("--cycles", cli.cycles.is_some()),
        ("--interval", cli.interval.is_some()),
        ("--spike-start", cli.spike_start.is_some()),
        ("--spike-length", cli.spike_length.is_some()),
        ("--trace", cli.trace.is_some()),
        ("--trace-scale", cli.trace_scale.is_some()),
        (
            "--trace-speedup",
            cli.trace_speedup.is_some() || cli.trace_offset.is_some(),
        ),
    ];
    let allowed: &[&str] = match pattern {
        Pattern::Constant => &["--rate"],
        Pattern::Ramp => &["--min", "--max", "--steps"],
        Pattern::Periodic => &["--min", "--max", "--cycles"],
        Pattern::Random => &["--min", "--max", "--interval"],
        Pattern::Spike => &["--min", "--max", "--spike-start", "--spike-length"],
        Pattern::Trace => &["--trace", "--trace-scale", "--trace-speedup"],
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    if let Some((flag, _)) = given.iter().find(|(f, on)| *on && !allowed.contains(f)) {
        return Err(usage(format!(
            "{flag} does not apply to --pattern {pattern} (it takes {})",
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// The shape from --pattern and its parameter flags; a flag that does not apply is an error.
fn shape(cli: &Cli) -> Result<ShapeSpec> {
    let name = cli.pattern.as_deref().unwrap_or("ramp");
    let pattern = Pattern::from_str(name).map_err(|_| {
        usage(format!(
            "unknown pattern {name:?} (expected constant, ramp, periodic, random, spike or trace)"
        ))
    })?;
    check_shape_flags(cli, pattern)?;
    let mut spec = ShapeSpec::default_for(pattern);
    let lo = |v: &mut f64| {
        if let Some(x) = cli.min {
            *v = x;
        }
    };
    let hi = |v: &mut f64| {
        if let Some(x) = cli.max {
            *v = x;
        }
    };
    match &mut spec {
        ShapeSpec::Constant { rate, .. } => {
            if let Some(r) = cli.rate {
                *rate = r;
            }
        }
        ShapeSpec::Ramp {
            start, end, steps, ..
        } => {
            lo(start);
            hi(end);
            if let Some(s) = cli.steps {
                *steps = s;
            }
        }
        ShapeSpec::Periodic {
            min, max, cycles, ..
        } => {
            lo(min);
            hi(max);
            if let Some(c) = cli.cycles {
                *cycles = c;
            }
        }
        ShapeSpec::Random {
            min, max, interval, ..
        } => {
            lo(min);
            hi(max);
            if let Some(i) = cli.interval {
                *interval = i;
            }
        }
        ShapeSpec::Spike {
            base,
            peak,
            start,
            length,
            ..
        } => {
            lo(base);
            hi(peak);
            if let Some(s) = cli.spike_start {
                *start = s;
            }
            if let Some(l) = cli.spike_length {
                *length = l;
            }
        }
        ShapeSpec::Trace {
            path,
            scale,
            speedup,
            offset,
            ..
        } => {
            *path = cli
                .trace
                .clone()
                .ok_or_else(|| usage("--pattern trace needs --trace FILE"))?;
            if let Some(s) = cli.trace_scale {
                *scale = s;
            }
            if let Some(s) = cli.trace_speedup {
                *speedup = s;
            }
            if let Some(o) = cli.trace_offset {
                *offset = o;
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    // Last, once a trace's speedup is known: --duration is wall-clock time for every pattern
    // (a trace then plays duration x speedup seconds of trace time).
    if let Some(d) = cli.duration {
        spec = spec.with_duration(positive("--duration", d)?);
    }
    Ok(spec)
}

fn parse_header(h: &str) -> Result<(String, String)> {
    let (n, v) = h
        .split_once(':')
        .ok_or_else(|| usage(format!("--header {h:?}: expected `Name: value`")))?;
    let n = n.trim();
    if n.is_empty() || hyper::header::HeaderName::from_bytes(n.as_bytes()).is_err() {
        return Err(usage(format!("--header {h:?}: invalid header name")));
    }
    let v = v.trim();
    if hyper::header::HeaderValue::from_str(v).is_err() {
        return Err(usage(format!("--header {h:?}: invalid header value")));
    }
    Ok((n.to_string(), v.to_string()))
}

/// The target from the target flags: KServe when `--model` is given or neither `--url` nor a
/// plain-HTTP flag is.
fn target(cli: &Cli) -> Result<Target> {
    let plain = cli.method.is_some() || cli.body_file.is_some();
    let kserve = cli.model.is_some() || (cli.url.is_none() && !plain);
    if cli.model.is_some() && plain {
        return Err(usage(
            "--model (KServe mode) cannot be combined with --method/--body-file (plain HTTP)",
        ));
    }
    let url = cli.url.as_deref().unwrap_or("http://127.0.0.1:8000");
    if kserve {
        let mut target = Target::kserve(url, cli.model.as_deref().unwrap_or("image"))?;
        if let Target::Kserve {
            version,
            binary,
            input,
            shapes,
            ..
        } = &mut target
        {
            *version = cli.model_version.clone();
            *binary = !cli.json_body;
            *input = match cli.input.as_str() {
                "random" => InputData::Random,
                "zero" => InputData::Zero,
                f => InputData::File(PathBuf::from(f)),
            };
            *shapes = cli
                .shape
                .iter()
                .map(|s| parse_shape_override(s))
                .collect::<Result<_>>()?;
        }
        return Ok(target);
    }
    if cli.json_body || !cli.shape.is_empty() || cli.input != "random" {
        return Err(usage(
            "--json-body/--shape/--input need a KServe model (--model); plain HTTP uses --body-file",
        ));
    }
    let method = cli.method.as_deref().unwrap_or(if cli.body_file.is_some() {
        "POST"
    } else {
        "GET"
    });
    let mut target = Target::http(url, method)?;
    if let Target::Http { body_file, .. } = &mut target {
        body_file.clone_from(&cli.body_file);
    }
    Ok(target)
}

/// The closed loop from `--users` and its flags.
fn closed_loop(cli: &Cli, target: Target, users: u32) -> Result<Config> {
    let shaped = cli.pattern.is_some();
    let shape_flag = [
        cli.rate.is_some(),
        cli.min.is_some(),
        cli.max.is_some(),
        cli.steps.is_some(),
        cli.cycles.is_some(),
        cli.interval.is_some(),
        cli.spike_start.is_some(),
        cli.spike_length.is_some(),
        cli.trace.is_some(),
    ]
    .contains(&true);
    if !shaped && shape_flag {
        return Err(usage(
            "shape flags with --users need --pattern (the number of active users follows it)",
        ));
    }
    if cli.max_in_flight.is_some() {
        return Err(usage(
            "--max-in-flight applies to the open loop; with --users the users are the limit",
        ));
    }
    if cli.busy_poll {
        return Err(usage(
            "--busy-poll applies to the open loop; with --users each user waits for its answer",
        ));
    }
    if users == 0 {
        return Err(usage("--users must be at least 1"));
    }
    let shape = if shaped { Some(shape(cli)?) } else { None };
    let duration_s = match &shape {
        Some(s) => s.build(cli.seed)?.duration(),
        None => positive("--duration", cli.duration.unwrap_or(60.0))?,
    };
    let mut cfg = Config::closed_loop(target, users, parse_wait(&cli.wait)?, duration_s);
    if let Load::Closed { shape: s, .. } = &mut cfg.load {
        *s = shape;
    }
    Ok(cfg)
}

/// The open loop from `--pattern` and its flags.
fn open_loop(cli: &Cli, target: Target) -> Result<Config> {
    let overflow = match cli.overflow.as_str() {
        "queue" => Overflow::Queue,
        "drop" => Overflow::Drop,
        o => {
            return Err(usage(format!("--overflow {o:?}: expected queue or drop")));
        }
    };
    let arrivals = ArrivalKind::from_str(&cli.arrivals).map_err(|_| {
        usage(format!(
            "--arrivals {:?}: expected uniform or poisson",
            cli.arrivals
        ))
    })?;
    let mut cfg = Config::open_loop(target, shape(cli)?, arrivals);
    if let Load::Open {
        max_in_flight,
        overflow: o,
        busy_poll,
        ..
    } = &mut cfg.load
    {
        *max_in_flight = cli.max_in_flight.unwrap_or(cli.connections);
        *o = overflow;
        *busy_poll = cli.busy_poll;
    }
    Ok(cfg)
}

impl TryFrom<Cli> for Config {
    type Error = Error;

    fn try_from(cli: Cli) -> Result<Config> {
        let target = target(&cli)?;
        let mut cfg = match cli.users {
            Some(users) => closed_loop(&cli, target, users)?,
            None => open_loop(&cli, target)?,
        };
        cfg.headers = cli
            .header
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<_>>()?;
        cfg.seed = cli.seed;
        cfg.connections = cli.connections;
        cfg.threads = cli.threads;
        cfg.timeout_s = cli.timeout;
        cfg.grace_s = cli.grace;
        cfg.ready_timeout_s = cli.ready_timeout;
        cfg.send_path = cli.send_path;
        cfg.run_id = cli
            .run_id
            .or_else(|| std::env::var(RUN_ID_ENV).ok())
            .filter(|s| !s.is_empty());
        cfg.start_at_unix_s = match &cli.start_at {
            Some(s) => Some(parse_start_at(s, SystemTime::now())?),
            None => None,
        };
        cfg.shard = Shard::resolve(cli.shard.as_deref(), cli.shards, |k| std::env::var(k).ok())?;
        cfg.outputs = Outputs {
            json: cli.json,
            csv: cli.csv,
            hdr_log: cli.hdr_log,
            plot: cli.plot,
            metrics_addr: cli.metrics_addr,
            quiet: cli.quiet,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<Config> {
        let mut v = vec!["kis-loadgen"];
        v.extend_from_slice(args);
        Config::try_from(Cli::parse_from(v))
    }

    #[test]
    fn start_at_parses_both_forms_and_refuses_the_past() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(parse_start_at("+30s", now).unwrap(), 1_800_000_030.0);
        // 1_800_000_000 is 2027-01-15T08:00:00Z.
        let t = parse_start_at("2027-01-15T08:01:00Z", now).unwrap();
        assert_eq!(t, 1_800_000_060.0);
        for bad in ["2000-01-01T00:00:00Z", "soon", "+x", "2030-01-01T00:00:00Z"] {
            let e = parse_start_at(bad, now).unwrap_err().to_string();
            assert!(e.contains("--start-at") && !e.contains('\n'), "{bad}: {e}");
        }
        assert!(
            parse_start_at("2000-01-01T00:00:00Z", now)
                .unwrap_err()
                .to_string()
                .contains("in the past")
        );
    }

    #[test]
    fn no_flags_means_the_local_image_model_with_a_ramp() {
        let c = cfg(&[]).unwrap();
        match c.target {
            Target::Kserve {
                endpoint,
                model,
                binary,
                ..
            } => {
                assert_eq!(endpoint.authority, "127.0.0.1:8000");
                assert_eq!(model, "image");
                assert!(binary);
            }
            t => panic!("{t:?}"),
        }
        match c.load {
            Load::Open { shape, .. } => assert_eq!(shape.pattern(), Pattern::Ramp),
            l => panic!("{l:?}"),
        }
    }

    #[test]
    fn url_with_method_is_plain_http() {
        let c = cfg(&["--url", "http://localhost:9/x?y=1", "--method", "GET"]).unwrap();
        match c.target {
            Target::Http { endpoint, .. } => {
                assert_eq!(endpoint.authority, "localhost:9");
                assert_eq!(endpoint.path, "/x?y=1");
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn flags_that_do_not_fit_the_pattern_are_refused() {
        let e = cfg(&["--pattern", "periodic", "--steps", "4"]).unwrap_err();
        assert!(e.to_string().contains("--steps"), "{e}");
        let e = cfg(&["--pattern", "zigzag"]).unwrap_err();
        assert!(e.to_string().contains("zigzag"), "{e}");
        assert!(cfg(&["--max-in-flight", "100", "--connections", "10"]).is_err());
        assert!(cfg(&["--url", "https://x"]).is_err());
        assert!(cfg(&["--wait", "2s..1s", "--users", "2"]).is_err());
    }

    #[test]
    fn overrides_reach_the_shape() {
        let c = cfg(&[
            "--pattern",
            "spike",
            "--min",
            "5",
            "--max",
            "50",
            "--duration",
            "10s",
        ])
        .unwrap();
        let Load::Open { shape, .. } = c.load else {
            panic!()
        };
        let p = shape.build(1).unwrap();
        assert!((p.duration() - 10.0).abs() < 1e-9);
        assert!((p.peak_rate() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn trace_duration_is_wall_time_whatever_the_speedup() {
        let dir = std::env::temp_dir().join(format!("kis-loadgen-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("t.csv");
        // 100 s of trace at 10 req/s.
        let rows: String = (0..100).map(|t| format!("{t},10\n")).collect();
        std::fs::write(&trace, format!("t_seconds,rate_rps\n{rows}")).unwrap();
        let c = cfg(&[
            "--pattern",
            "trace",
            "--trace",
            trace.to_str().unwrap(),
            "--trace-speedup",
            "10",
            "--duration",
            "2s",
        ])
        .unwrap();
        let Load::Open { shape, .. } = c.load else {
            panic!()
        };
        let p = shape.build(1).unwrap();
        // 2 s of wall time play 20 s of the trace, ten times faster (its rates unchanged).
        assert!((p.duration() - 2.0).abs() < 1e-9, "{}", p.duration());
        assert!((p.mean_rate() - 10.0).abs() < 1e-9, "{}", p.mean_rate());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wait_forms() {
        assert_eq!(
            parse_wait("1s..2s").unwrap(),
            Wait {
                min_s: 1.0,
                max_s: 2.0
            }
        );
        assert_eq!(parse_wait("0s").unwrap().max_s, 0.0);
    }

    #[test]
    fn users_follow_a_pattern_only_when_one_is_given() {
        let c = cfg(&["--users", "50", "--pattern", "ramp", "--duration", "30s"]).unwrap();
        let Load::Closed {
            users,
            shape: Some(shape),
            duration_s,
            ..
        } = c.load
        else {
            panic!("{:?}", c.load)
        };
        assert_eq!(users, 50);
        assert_eq!(shape.pattern(), Pattern::Ramp);
        assert!((duration_s - 30.0).abs() < 1e-9);
        let c = cfg(&["--users", "5"]).unwrap();
        assert!(matches!(c.load, Load::Closed { shape: None, .. }));
        let e = cfg(&["--users", "5", "--max", "10"]).unwrap_err();
        assert!(e.to_string().contains("--pattern"), "{e}");
    }

    #[test]
    fn constructor_defaults_are_the_flags_defaults() {
        let flags = cfg(&["--url", "http://127.0.0.1:9/", "--method", "GET"]).unwrap();
        let built = Config::open_loop(
            Target::http("http://127.0.0.1:9/", "GET").unwrap(),
            ShapeSpec::default_for(Pattern::Ramp),
            ArrivalKind::Uniform,
        );
        assert_eq!(
            serde_json::to_value(&flags).unwrap(),
            serde_json::to_value(&built).unwrap()
        );
        let flags = cfg(&["--model", "m", "--users", "3", "--wait", "0s"]).unwrap();
        let built = Config::closed_loop(
            Target::kserve("http://127.0.0.1:8000", "m").unwrap(),
            3,
            Wait::NONE,
            60.0,
        );
        assert_eq!(
            serde_json::to_value(&flags).unwrap(),
            serde_json::to_value(&built).unwrap()
        );
        // The constructors' values are checked like the flags'.
        let mut bad = built.clone();
        bad.connections = 0;
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("--connections")
        );
    }

    #[test]
    fn timeouts_up_to_an_hour() {
        assert_eq!(cfg(&["--timeout", "10m"]).unwrap().timeout_s, 600.0);
        let e = cfg(&["--timeout", "2h"]).unwrap_err();
        assert!(e.to_string().contains("--timeout"), "{e}");
    }
}
