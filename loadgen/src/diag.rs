//! Self-diagnosis: the generator's own CPU time (from /proc/self/stat) and the warnings that say
//! when the numbers describe the client more than the server.

use crate::record::Gaps;

/// Clock ticks per second in /proc (USER_HZ, 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds this process has used, or `None` off Linux.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// utime + stime from a /proc/PID/stat line, in seconds.
pub fn parse_stat(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Share of sends that may lag more than 1 ms before we warn (perf_analyzer's threshold).
pub const LATE_SHARE: f64 = 0.01;
/// CPU share of one core above which we warn (Locust's threshold).
pub const CPU_SHARE: f64 = 0.90;

/// Fewest sends in a window before its late share means anything.
pub const MIN_SENDS: u64 = 50;

/// What a window tells about which side limits: the tool's own numbers, nothing guessed.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Window end, seconds since the start.
    pub t_s: f64,
    /// Window length, seconds.
    pub dt_s: f64,
    /// Sends in the window.
    pub sent: u64,
    /// Of those, more than 1 ms late.
    pub late: u64,
    /// Of the late ones, those whose arrival waited for a busy connection.
    pub late_waited: u64,
    /// Send lag p99, ms.
    pub lag_p99_ms: f64,
    /// Requests on the wire at the window end.
    pub in_flight: u64,
    /// Connections that take arrivals.
    pub connections: u64,
    /// Due arrivals waiting for a connection at the previous window's end.
    pub backlog_before: u64,
    /// And at this window's end.
    pub backlog: u64,
    /// Service time (send to answer) p50 in the window, ms.
    pub service_p50_ms: f64,
    /// The run's fastest answer so far, ms: the server's service time without a queue.
    pub service_floor_ms: f64,
    /// Triton's mean queue time per request in the window, ms.
    pub server_queue_ms: Option<f64>,
    /// Triton's mean compute time per request in the window, ms.
    pub server_compute_ms: Option<f64>,
    /// Generator CPU, cores busy.
    pub cpu: Option<f64>,
    /// Generator threads.
    pub threads: usize,
    /// `--busy-poll` (its threads are busy by design).
    pub busy_poll: bool,
    /// Time the busy-polling dispatcher did not run in the window, µs.
    pub gaps_us: u64,
}

/// The side that holds the load back when due arrivals wait.
#[derive(Clone, Debug, PartialEq)]
pub enum Limit {
    /// The generator's own time: its CPU, or stalls of its dispatcher.
    Generator(String),
    /// Too few connections for a server that answers in steady time.
    Connections(String),
    /// The server: answers take far longer than its fastest, or it queues requests.
    Server(String),
}

/// How much slower than its fastest answer the server's median must be to count as queueing.
const QUEUEING: f64 = 4.0;

impl Evidence {
    fn cpu_share(&self) -> Option<f64> {
        self.cpu
            .filter(|_| !self.busy_poll)
            .map(|c| c / self.threads.max(1) as f64)
    }

    /// Which side limits, from the evidence: the generator when its CPU is nearly all used or
    /// its dispatcher stalled for a tenth of the window; else the server when its median answer
    /// takes several times its fastest (or Triton reports more queue than compute time); else
    /// the connections.
    pub fn limit(&self) -> Limit {
        if let Some(c) = self.cpu_share().filter(|c| *c > CPU_SHARE) {
            return Limit::Generator(format!(
                "its CPU is at {:.0}% of its {} thread(s)",
                100.0 * c,
                self.threads
            ));
        }
        if self.gaps_us as f64 > 0.1 * self.dt_s * 1e6 {
            return Limit::Generator(format!(
                "its dispatcher did not run for {:.1} ms of the window",
                self.gaps_us as f64 / 1e3
            ));
        }
        let (p50, floor) = (self.service_p50_ms, self.service_floor_ms);
        let queueing = p50 >= QUEUEING * floor && p50 - floor >= 1.0;
        let triton = match (self.server_queue_ms, self.server_compute_ms) {
            (Some(q), Some(c)) if q > c && q >= 1.0 => {
                format!("; Triton queues each request {q:.1} ms for {c:.1} ms of compute")
            }
            _ => String::new(),
        };
        if queueing || !triton.is_empty() {
            return Limit::Server(format!(
                "its answers take {p50:.1} ms at the median against {floor:.1} ms at its fastest{triton}"
            ));
        }
        Limit::Connections(format!(
            "the server answers in a steady {p50:.1} ms, so {} connections carry about {:.0} req/s",
            self.connections,
            self.connections as f64 * 1e3 / p50.max(1e-3)
        ))
    }

    /// Every connection is busy, the backlog of due arrivals grew over the window and sends
    /// lag by more than 1 ms at p99. (A due arrival caught between two polls while connections
    /// are free is not a backlog.)
    pub fn saturated(&self) -> bool {
        self.backlog > self.backlog_before
            && self.backlog > 0
            && self.lag_p99_ms > 1.0
            && self.in_flight >= self.connections
    }
}

/// The warnings of one window: late sends (blamed on the side that made them late) and the
/// generator's CPU (not judged with `busy_poll`, whose threads are busy by design).
pub fn window_warnings(ev: &Evidence) -> Vec<String> {
    let mut w = Vec::new();
    let t_s = ev.t_s;
    if ev.sent >= MIN_SENDS && ev.late as f64 > LATE_SHARE * ev.sent as f64 {
        let share = 100.0 * ev.late as f64 / ev.sent as f64;
        // Mostly arrivals that waited for a busy connection: the lag is the busy side's.
        if ev.late_waited * 2 > ev.late {
            let limit = ev.limit();
            let (head, why, advice) = blame(&limit);
            w.push(format!(
                "t={t_s:.0}s: {share:.1}% of sends lagged more than 1 ms behind schedule, waiting for a busy connection: {head} ({why}); {advice}",
            ));
        } else {
            w.push(format!(
                "t={t_s:.0}s: {share:.1}% of sends lagged more than 1 ms behind schedule with a connection free: the generator was late{}",
                if ev.busy_poll {
                    ""
                } else {
                    "; idle wake-ups on a VM do this and --busy-poll avoids them"
                }
            ));
        }
    }
    if let Some(c) = ev.cpu_share().filter(|c| *c > CPU_SHARE) {
        w.push(format!(
            "t={t_s:.0}s: generator CPU at {:.0}% of its {} thread(s); latencies may include client time",
            100.0 * c,
            ev.threads
        ));
    }
    w
}

/// What a limit means: its name, the evidence, and what to do.
fn blame(l: &Limit) -> (&'static str, &str, &'static str) {
    match l {
        Limit::Server(why) => (
            "the server is saturated",
            why,
            "more connections will not help; lower the rate or add server capacity",
        ),
        Limit::Connections(why) => (
            "the connections are the limit",
            why,
            "raise --connections or lower the rate",
        ),
        Limit::Generator(why) => (
            "the generator is saturated",
            why,
            "raise --threads or lower the rate",
        ),
    }
}

/// The whole-run late-send warning (perf_analyzer's rule: more than 1 % of sends late), naming
/// the busy-polling dispatcher's own gaps when it had any: lag in them is not the server's.
pub fn run_warning(sent: u64, late: u64, gaps: &Gaps) -> Option<String> {
    (sent > 0 && late as f64 > LATE_SHARE * sent as f64).then(|| {
        let mut w = format!(
            "{:.1}% of all sends ({late} of {sent}) lagged more than 1 ms behind schedule",
            100.0 * late as f64 / sent as f64
        );
        if gaps.count > 0 {
            w += &format!(
                "; the dispatcher itself did not run for {:.1} ms in {} gaps of 1 ms or more (longest {:.1} ms), delaying every send due in them",
                gaps.total_us as f64 / 1e3,
                gaps.count,
                gaps.max_us as f64 / 1e3
            );
        }
        w
    })
}

/// When due arrivals pile up behind busy connections ([`Evidence::saturated`]): which side
/// holds them back, and what to do. "The server is saturated" when the evidence says so;
/// "generator saturated" when it is the generator's CPU or stalls, or its connections.
pub fn saturation_warning(ev: &Evidence) -> Option<String> {
    ev.saturated().then(|| {
        let limit = ev.limit();
        let (head, why, advice) = blame(&limit);
        // The generator's side (its own time, or its connections) keeps the familiar name.
        let head = match &limit {
            Limit::Server(_) => head,
            _ => "generator saturated",
        };
        format!(
            "t={:.0}s: {head}: {} due arrivals wait for one of {} busy connections (send lag p99 {:.1} ms); {why}; {advice}",
            ev.t_s, ev.backlog, ev.in_flight, ev.lag_p99_ms
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert!(cpu_seconds().is_some());
    }

    fn ev(sent: u64, late: u64, cpu: Option<f64>, busy_poll: bool) -> Evidence {
        Evidence {
            t_s: 1.0,
            dt_s: 1.0,
            sent,
            late,
            cpu,
            threads: 1,
            busy_poll,
            service_p50_ms: 0.2,
            service_floor_ms: 0.1,
            connections: 8,
            ..Evidence::default()
        }
    }

    #[test]
    fn warnings_fire_on_thresholds() {
        assert!(window_warnings(&ev(1000, 5, Some(0.5), false)).is_empty());
        assert_eq!(window_warnings(&ev(1000, 20, Some(0.95), false)).len(), 2);
        assert!(window_warnings(&ev(1000, 0, Some(0.95), false)).len() == 1);
        // The hint points at --busy-poll only when it is not already on.
        assert!(window_warnings(&ev(1000, 20, None, false))[0].contains("--busy-poll"));
        assert!(!window_warnings(&ev(1000, 20, None, true))[0].contains("--busy-poll"));
        // A polling thread is busy by design: only lateness counts.
        assert_eq!(window_warnings(&ev(1000, 20, Some(1.0), true)).len(), 1);
        assert!(window_warnings(&ev(1000, 0, Some(1.0), true)).is_empty());
        // Too few sends in a window to judge.
        assert!(window_warnings(&ev(10, 5, None, false)).is_empty());
        let none = Gaps::default();
        let w = run_warning(10, 5, &none).expect("half late");
        assert!(!w.contains("dispatcher"), "{w}");
        assert!(run_warning(1000, 10, &none).is_none());
        let g = Gaps {
            count: 4,
            total_us: 9_000,
            max_us: 3_000,
        };
        let w = run_warning(100, 20, &g).expect("a fifth late");
        assert!(
            w.ends_with("did not run for 9.0 ms in 4 gaps of 1 ms or more (longest 3.0 ms), delaying every send due in them"),
            "{w}"
        );
        assert!(
            run_warning(1000, 10, &g).is_none(),
            "gaps alone do not warn"
        );
    }

    fn busy(p50: f64, floor: f64) -> Evidence {
        Evidence {
            backlog_before: 10,
            backlog: 50,
            lag_p99_ms: 3.0,
            in_flight: 8,
            service_p50_ms: p50,
            service_floor_ms: floor,
            ..ev(1000, 200, Some(0.3), false)
        }
    }

    #[test]
    fn saturation_names_the_side_that_limits() {
        // The backlog must grow, the lag be visible and every connection be busy.
        assert!(
            saturation_warning(&Evidence {
                backlog: 10,
                ..busy(1.0, 1.0)
            })
            .is_none()
        );
        assert!(
            saturation_warning(&Evidence {
                lag_p99_ms: 0.5,
                ..busy(1.0, 1.0)
            })
            .is_none()
        );
        assert!(
            saturation_warning(&Evidence {
                in_flight: 3,
                ..busy(1.0, 1.0)
            })
            .is_none()
        );
        // A steady server and too few connections: the generator's side, raise --connections.
        let w = saturation_warning(&busy(100.0, 99.0)).unwrap();
        assert!(
            w.contains("generator saturated") && w.contains("raise --connections"),
            "{w}"
        );
        assert!(w.contains("carry about 80 req/s"), "{w}");
        // Answers far slower than the server's fastest: it queues them.
        let w = saturation_warning(&busy(400.0, 50.0)).unwrap();
        assert!(
            w.contains("the server is saturated") && !w.contains("raise --connections"),
            "{w}"
        );
        // Triton's own statistics say so too.
        let t = Evidence {
            server_queue_ms: Some(30.0),
            server_compute_ms: Some(5.0),
            ..busy(36.0, 20.0)
        };
        let w = saturation_warning(&t).unwrap();
        assert!(
            w.contains("the server is saturated") && w.contains("Triton queues"),
            "{w}"
        );
        // The generator's own CPU or stalls come first: then nothing the server does is seen.
        let w = saturation_warning(&Evidence {
            cpu: Some(0.97),
            ..busy(400.0, 50.0)
        })
        .unwrap();
        assert!(
            w.contains("generator saturated") && w.contains("CPU is at 97%"),
            "{w}"
        );
        let w = saturation_warning(&Evidence {
            gaps_us: 300_000,
            ..busy(1.0, 1.0)
        })
        .unwrap();
        assert!(w.contains("dispatcher did not run for 300.0 ms"), "{w}");
        // Late sends that waited for busy connections blame the busy side, not the generator.
        let late = Evidence {
            late_waited: 150,
            ..busy(400.0, 50.0)
        };
        let w = &window_warnings(&late)[0];
        assert!(
            w.contains("waiting for a busy connection: the server is saturated"),
            "{w}"
        );
    }
}
