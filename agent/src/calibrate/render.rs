//! What a calibration prints and records: the per-level table, level names, the host and the time.

use kis_sim::{Dist, RatePoint};

use super::{Calibration, Level};

/// `c4` for a closed-loop level, `open 25 req/s` for the open one.
pub(super) fn level_name(l: &Level) -> String {
    match l.open_rate_rps {
        Some(r) => format!("open-loop {r} req/s"),
        None => format!("c{}", l.concurrency),
    }
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC` (civil-from-days, no date crate needed).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// The per-level table printed after a calibration.
pub fn render(c: &Calibration) -> String {
    let mut o = String::from(
        "level  req/s    svc mean   svc p95  srv queue  srv compute  network  busy   batches (size:count)\n",
    );
    for l in &c.levels {
        let b: Vec<String> = l
            .batches
            .iter()
            .map(|(s, n, _)| format!("{s}:{n}"))
            .collect();
        o += &format!(
            "{:>5} {:>6.1} {:>8.2} ms {:>6.2} ms {:>7.2} ms {:>9.2} ms {:>5.2} ms {:>4.0} %  {}\n",
            match l.open_rate_rps {
                Some(r) if l.round > 0 => format!("o{r}#{}", l.round),
                Some(r) => format!("o{r}"),
                None => format!("c{}", l.concurrency),
            },
            l.throughput_rps,
            l.service_mean_ms,
            l.service_p95_ms,
            l.server_queue_ms,
            l.server_compute_ms,
            l.network_ms,
            l.busy_fraction * 100.0,
            b.join(" ")
        );
    }
    o += "profile: ";
    for b in &c.profile.batches {
        o += &format!("b{}={:.2}ms ", b.size, b.latency.mean() * 1e3);
    }
    o += "\n";
    let one;
    let points = if c.profile.network_by_rate.is_empty() {
        one = c.profile.network.clone().map(|d| RatePoint {
            rate_rps: c.levels.iter().find_map(|l| l.open_rate_rps).unwrap_or(0.0),
            dist: d,
        });
        one.as_slice()
    } else {
        c.profile.network_by_rate.as_slice()
    };
    for r in points {
        // Without open-loop levels the overhead comes from the lowest closed level.
        let at = if r.rate_rps > 0.0 {
            format!("at {} req/s", r.rate_rps)
        } else {
            format!("from c{}", c.levels.first().map_or(1, |l| l.concurrency))
        };
        o += &format!("network {at}: mean {:.2} ms", r.dist.mean() * 1e3);
        if let Dist::Quantiles { probs, values } = &r.dist {
            for (p, v) in probs.iter().zip(values) {
                o += &format!(" p{}={:.2}", p * 100.0, v * 1e3);
            }
        }
        o += "\n";
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(now_utc().starts_with("20"));
    }
}
