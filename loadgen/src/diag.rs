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

/// A warning for one window, if any: `late` of `sent` lagged > 1 ms, `cpu` cores busy (not
/// judged with `busy_poll`, whose threads are busy by design).
pub fn window_warnings(
    t_s: f64,
    sent: u64,
    late: u64,
    cpu: Option<f64>,
    threads: usize,
    busy_poll: bool,
) -> Vec<String> {
    let mut w = Vec::new();
    if sent >= MIN_SENDS && late as f64 > LATE_SHARE * sent as f64 {
        w.push(format!(
            "t={t_s:.0}s: {:.1}% of sends lagged more than 1 ms behind schedule; the generator, not the server, may be limiting{}",
            100.0 * late as f64 / sent as f64,
            if busy_poll {
                ""
            } else {
                "; with free connections, idle wake-ups on a VM do this and --busy-poll avoids them"
            }
        ));
    }
    if let Some(c) = cpu
        && !busy_poll
        && c > CPU_SHARE * threads as f64
    {
        w.push(format!(
            "t={t_s:.0}s: generator CPU at {:.0}% of its {threads} thread(s); latencies may include client time",
            100.0 * c / threads as f64
        ));
    }
    w
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

/// "Generator saturated": due arrivals are piling up behind busy connections (every one of the
/// `connections` is in flight and the backlog grew over the window) and sends lag by more than
/// 1 ms at p99. The numbers then describe the generator's limits as much as the server's. (A due
/// arrival caught between two polls while connections are free is not a backlog.)
pub fn saturation_warning(
    t_s: f64,
    backlog_before: u64,
    backlog: u64,
    lag_p99_ms: f64,
    in_flight: u64,
    connections: u64,
) -> Option<String> {
    (backlog > backlog_before && backlog > 0 && lag_p99_ms > 1.0 && in_flight >= connections)
        .then(|| {
        format!(
            "t={t_s:.0}s: generator saturated: {backlog} due arrivals wait for one of {in_flight} busy connections (send lag p99 {lag_p99_ms:.1} ms); raise --connections or lower the rate"
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

    #[test]
    fn warnings_fire_on_thresholds() {
        assert!(window_warnings(1.0, 1000, 5, Some(0.5), 1, false).is_empty());
        assert_eq!(
            window_warnings(1.0, 1000, 20, Some(0.95), 1, false).len(),
            2
        );
        assert!(window_warnings(1.0, 1000, 0, Some(0.95), 2, false).is_empty());
        // The hint points at --busy-poll only when it is not already on.
        assert!(window_warnings(1.0, 1000, 20, None, 1, false)[0].contains("--busy-poll"));
        assert!(!window_warnings(1.0, 1000, 20, None, 1, true)[0].contains("--busy-poll"));
        // A polling thread is busy by design: only lateness counts.
        assert_eq!(window_warnings(1.0, 1000, 20, Some(1.0), 1, true).len(), 1);
        assert!(window_warnings(1.0, 1000, 0, Some(1.0), 1, true).is_empty());
        // Too few sends in a window to judge.
        assert!(window_warnings(1.0, 10, 5, None, 1, false).is_empty());
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
        // The backlog must grow and the lag be visible.
        assert!(
            saturation_warning(1.0, 10, 50, 3.0, 8, 8)
                .unwrap()
                .contains("generator saturated")
        );
        assert!(saturation_warning(1.0, 50, 50, 3.0, 8, 8).is_none());
        assert!(saturation_warning(1.0, 0, 50, 0.5, 8, 8).is_none());
        // Free connections: late, but not saturated.
        assert!(saturation_warning(1.0, 0, 1, 3.0, 3, 64).is_none());
    }
}
