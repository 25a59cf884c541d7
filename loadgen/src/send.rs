//! How a serialised request goes on the wire, and the start-up measurement that picks how.
//!
//! Three ways send the same bytes: `write` from the one shared buffer (the kernel copies it
//! into the socket's buffers), `sendfile` from a memory file holding it (the kernel hands the
//! file's pages to the socket), and `splice`: `vmsplice` of the shared buffer into a pipe of
//! the connection, then `splice` from the pipe to the socket (no user-space copy either). Which
//! is cheapest per request depends on the machine: issue 18 measured `sendfile` of a 602 KB
//! tensor at ~124 µs of CPU per request against ~61 µs for a plain `write` on one 2-core VM,
//! where another VM had it the other way round. So for a request of [`LARGE`] or more,
//! `--send-path auto` (the default) measures each way on a loopback socket at start-up, in
//! CPU time of the sending thread, bounded by [`CALIBRATION_BUDGET`], and takes the cheapest;
//! the report says what was measured and chosen. Smaller requests are always one `write`.
//!
//! `MSG_ZEROCOPY` is not offered: on loopback (where the benches and most tests run) the kernel
//! copies such data anyway before delivering it to the local receiver, and each send would add
//! a completion to read back from the socket's error queue.

use std::collections::BTreeMap;
use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Requests at least this large may leave the plain `write` (see [`SendMode::Auto`]).
pub const LARGE: usize = 64 * 1024;

/// Most wall time the start-up calibration may take.
pub const CALIBRATION_BUDGET: Duration = Duration::from_millis(400);

/// Largest pipe asked for per connection (Linux's default `pipe-max-size` for non-root).
const PIPE_MAX: usize = 1 << 20;

/// `--send-path`: how large requests are sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// Measure each way at start-up and take the cheapest.
    #[default]
    Auto,
    /// One `write` from the shared buffer.
    Write,
    /// `sendfile` from a memory file.
    Sendfile,
    /// `vmsplice` into a pipe, `splice` to the socket.
    Splice,
}

/// One way of sending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendPath {
    /// `write` from the shared buffer.
    #[default]
    Write,
    /// `sendfile` from a memory file.
    Sendfile,
    /// `vmsplice` + `splice` through a pipe.
    Splice,
}

impl SendPath {
    /// Every way, in the order they are measured.
    pub const ALL: [SendPath; 3] = [SendPath::Write, SendPath::Sendfile, SendPath::Splice];

    /// The name used in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SendPath::Write => "write",
            SendPath::Sendfile => "sendfile",
            SendPath::Splice => "splice",
        }
    }
}

/// The way chosen for a run, and why (the report's `send_path`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SendChoice {
    /// The way every request of the run is sent.
    pub path: SendPath,
    /// `small request`, `--send-path`, `calibrated`, or why the calibration failed.
    pub how: String,
    /// Calibration: median CPU microseconds of the sending thread per request, by way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_us: BTreeMap<SendPath, f64>,
    /// Calibration: requests sent per way.
    #[serde(default)]
    pub samples: u32,
    /// Calibration: wall seconds it took.
    #[serde(default)]
    pub calibration_s: f64,
}

impl SendChoice {
    /// One line for the summary.
    pub fn line(&self) -> String {
        let mut s = format!("{} ({})", self.path.as_str(), self.how);
        if !self.cpu_us.is_empty() {
            let costs: Vec<String> = self
                .cpu_us
                .iter()
                .map(|(p, us)| format!("{} {us:.0} µs", p.as_str()))
                .collect();
            s += &format!(
                ": CPU per request {} ({} requests each, {:.2} s)",
                costs.join(", "),
                self.samples,
                self.calibration_s
            );
        }
        s
    }
}

/// A sealed-size anonymous memory file holding `bytes`, or `None` where memfd is unavailable.
pub fn memfd_copy(bytes: &[u8]) -> Option<Arc<std::fs::File>> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Write;
    let fd = memfd_create("kis-loadgen-request", MFdFlags::MFD_CLOEXEC).ok()?;
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).ok()?;
    Some(Arc::new(f))
}

/// A connection's pipe for the `splice` way: read end, write end.
pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

impl Pipe {
    /// A non-blocking pipe sized for `len` bytes (at most [`PIPE_MAX`]; best effort).
    fn new(len: usize) -> io::Result<Pipe> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let want = len.clamp(4096, PIPE_MAX).next_power_of_two().min(PIPE_MAX);
        let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(want as nix::libc::c_int));
        Ok(Pipe { r, w })
    }
}

/// Sends `bytes` on `s` the `path` way (`file`: the memory file for `sendfile`, `pipe`: the
/// connection's pipe for `splice`, made on first use and dropped after an error, when it may
/// hold a part of a request).
pub async fn send(
    s: &mut TcpStream,
    bytes: &[u8],
    path: SendPath,
    file: Option<&std::fs::File>,
    pipe: &mut Option<Pipe>,
) -> io::Result<()> {
    match (path, file) {
        (SendPath::Sendfile, Some(f)) => send_file(s, f, bytes.len()).await,
        (SendPath::Splice, _) => {
            let r = send_spliced(s, bytes, pipe).await;
            if r.is_err() {
                *pipe = None;
            }
            r
        }
        _ => s.write_all(bytes).await,
    }
}

/// Sends `len` bytes of `file` from offset 0 on the non-blocking `s`, waiting for writability.
async fn send_file(s: &TcpStream, file: &std::fs::File, len: usize) -> io::Result<()> {
    let mut off: nix::libc::off_t = 0;
    while (off as usize) < len {
        s.writable().await?;
        let left = len - off as usize;
        match s.try_io(tokio::io::Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(s, file, Some(&mut off), left).map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `vmsplice` the buffer into the pipe (a pipe's worth at a time), `splice` the pipe into `s`.
/// The pages stay referenced until the socket is done with them; the buffer is the run's
/// immutable request, alive for the whole run.
async fn send_spliced(s: &TcpStream, bytes: &[u8], pipe: &mut Option<Pipe>) -> io::Result<()> {
    use nix::fcntl::{SpliceFFlags, splice, vmsplice};
    if pipe.is_none() {
        *pipe = Some(Pipe::new(bytes.len())?);
    }
    let Some(p) = pipe.as_ref() else {
        return Err(io::ErrorKind::BrokenPipe.into());
    };
    let (mut off, mut held) = (0usize, 0usize);
    while off < bytes.len() || held > 0 {
        if held == 0 {
            let n = vmsplice(
                &p.w,
                &[IoSlice::new(&bytes[off..])],
                SpliceFFlags::SPLICE_F_NONBLOCK,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            off += n;
            held = n;
        }
        s.writable().await?;
        match s.try_io(tokio::io::Interest::WRITABLE, || {
            splice(
                &p.r,
                None,
                s,
                None,
                held,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            )
            .map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => held -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default()
}

/// Requests per way in one round of the calibration.
const ROUND: u32 = 4;
/// Most rounds: enough for a stable median, little CPU (about 100 sends of the request in all,
/// a few ms for a 602 KB tensor, charged to the run's generator CPU like any start-up cost).
const MAX_ROUNDS: u32 = 8;

/// Measures the CPU time of sending `bytes` each way in `paths` to a loopback peer that reads
/// and drops them, in interleaved rounds of [`ROUND`] requests until `budget` has passed (at
/// least one round, at most [`MAX_ROUNDS`]): the median CPU per request of each way, and the requests sent
/// per way. Runs on a thread of its own (it builds a runtime).
pub fn measure(
    bytes: &[u8],
    paths: &[SendPath],
    budget: Duration,
) -> io::Result<(BTreeMap<SendPath, f64>, u32)> {
    let bytes = bytes.to_vec();
    let paths = paths.to_vec();
    std::thread::Builder::new()
        .name("kis-calibrate".into())
        .spawn(move || measure_here(&bytes, &paths, budget))?
        .join()
        .map_err(|_| io::Error::other("the calibration thread panicked"))?
}

fn measure_here(
    bytes: &[u8],
    paths: &[SendPath],
    budget: Duration,
) -> io::Result<(BTreeMap<SendPath, f64>, u32)> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sink = std::thread::Builder::new()
        .name("kis-calibrate-sink".into())
        .spawn(move || {
            if let Ok((mut c, _)) = listener.accept() {
                let mut buf = vec![0u8; 1 << 20];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            }
        })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let file = memfd_copy(bytes);
    let res = rt.block_on(async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut pipe = None;
        let mut per: BTreeMap<SendPath, Vec<f64>> = BTreeMap::new();
        let start = Instant::now();
        let mut rounds = 0u32;
        while rounds == 0 || (start.elapsed() < budget && rounds < MAX_ROUNDS) {
            for &p in paths {
                if p == SendPath::Sendfile && file.is_none() {
                    continue;
                }
                let c0 = thread_cpu();
                for _ in 0..ROUND {
                    send(&mut s, bytes, p, file.as_deref(), &mut pipe).await?;
                }
                let us = (thread_cpu() - c0).as_secs_f64() * 1e6 / f64::from(ROUND);
                per.entry(p).or_default().push(us);
            }
            rounds += 1;
        }
        let medians = per
            .into_iter()
            .map(|(p, mut v)| {
                v.sort_by(f64::total_cmp);
                (p, v[v.len() / 2])
            })
            .collect();
        Ok::<_, io::Error>((medians, rounds * ROUND))
    });
    drop(rt);
    let _ = sink.join();
    res
}

/// Whether `connections` pipes sized for a request of `len` bytes fit the per-user pipe budget
/// (`/proc/sys/fs/pipe-user-pages-soft`; beyond it the kernel gives new pipes two pages, and
/// `splice` would move 8 KiB at a time): always for root, else within half the budget.
fn pipes_fit(connections: usize, len: usize) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let soft = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let pages = len.clamp(4096, PIPE_MAX).next_power_of_two().min(PIPE_MAX) / 4096;
    soft == 0 || connections * pages <= soft / 2
}

/// The way to send a request of `bytes` over `connections` connections under `mode`: small
/// requests are one `write`; a fixed mode is taken as is (`sendfile` falls back to `write`
/// without memfd); `auto` calibrates (leaving `splice` out where the connections' pipes would
/// not get their size).
pub fn choose(bytes: &[u8], mode: SendMode, connections: usize) -> SendChoice {
    let fixed = |path, how: &str| SendChoice {
        path,
        how: how.into(),
        ..SendChoice::default()
    };
    if bytes.len() < LARGE {
        return fixed(SendPath::Write, "small request");
    }
    match mode {
        SendMode::Write => fixed(SendPath::Write, "--send-path"),
        SendMode::Sendfile => fixed(SendPath::Sendfile, "--send-path"),
        SendMode::Splice => fixed(SendPath::Splice, "--send-path"),
        SendMode::Auto => {
            let t = Instant::now();
            let (paths, how) = if pipes_fit(connections, bytes.len()) {
                (&SendPath::ALL[..], "calibrated")
            } else {
                (
                    &SendPath::ALL[..2],
                    "calibrated; splice left out: a pipe per connection would pass the per-user pipe budget",
                )
            };
            match measure(bytes, paths, CALIBRATION_BUDGET) {
                Ok((cpu_us, samples)) => SendChoice {
                    path: cpu_us
                        .iter()
                        .min_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(SendPath::Write, |(p, _)| *p),
                    how: how.into(),
                    cpu_us,
                    samples,
                    calibration_s: t.elapsed().as_secs_f64(),
                },
                Err(e) => fixed(SendPath::Write, &format!("calibration failed ({e})")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_are_written_and_fixed_modes_are_kept() {
        assert_eq!(choose(b"GET", SendMode::Auto, 1).path, SendPath::Write);
        let big = vec![7u8; LARGE];
        let c = choose(&big, SendMode::Splice, 1);
        assert_eq!((c.path, c.how.as_str()), (SendPath::Splice, "--send-path"));
        assert!(c.cpu_us.is_empty());
    }

    /// The calibration measures every way, ends within its budget (plus one round), and picks
    /// the cheapest it measured.
    #[test]
    fn calibration_is_bounded_and_picks_the_cheapest() {
        let big: Vec<u8> = (0..602_112u32).map(|i| (i % 253) as u8).collect();
        let t = Instant::now();
        let c = choose(&big, SendMode::Auto, 64);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(c.how.starts_with("calibrated"), "{c:?}");
        assert_eq!(
            c.cpu_us.len(),
            if pipes_fit(64, big.len()) { 3 } else { 2 },
            "{c:?}"
        );
        assert!(c.samples >= ROUND, "{c:?}");
        let min = c.cpu_us.values().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(c.cpu_us[&c.path], min, "{c:?}");
        assert!(c.cpu_us.values().all(|us| *us > 0.0), "{c:?}");
        assert!(c.line().contains("calibrated"), "{}", c.line());
    }
}
