//! Live against simulated, per validation run: the scale steps of each side as level crossings
//! (spec and Ready replicas), matched by level, direction and occurrence; the figures' relative
//! errors; the verdicts; the table (markdown and CSV) and the replicas-over-time plot. Pure.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use kis_plot::{Figure, Line, Panel};
use serde::Serialize;

/// Which replica count a step is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Deployment `spec.replicas`.
    Spec,
    /// Ready Pods.
    Ready,
}

/// One scale step: the count of `kind` first reaching `level` (`up`) or falling to `level`
/// (down), for the `nth` time (0-based), at `t` seconds from the start of the load.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Spec or Ready.
    pub kind: Kind,
    /// Up (reaching `level` from below) or down (reaching it from above).
    pub up: bool,
    /// The level.
    pub level: u32,
    /// Which occurrence of this crossing.
    pub nth: u32,
    /// Seconds from the start of the load.
    pub t: f64,
}

/// The steps of a replica series `(t, spec, ready)` (time-ordered): a change from a to b
/// crosses every level between them, each a step at the time the new count was first seen.
pub fn steps(points: &[(f64, u32, u32)]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for kind in [Kind::Spec, Kind::Ready] {
        let get = |p: &(f64, u32, u32)| if kind == Kind::Spec { p.1 } else { p.2 };
        for w in points.windows(2) {
            let (a, b) = (get(&w[0]), get(&w[1]));
            let levels: Vec<(bool, u32)> = if b > a {
                (a + 1..=b).map(|v| (true, v)).collect()
            } else {
                (b..a).rev().map(|v| (false, v)).collect()
            };
            for (up, level) in levels {
                let nth = out
                    .iter()
                    .filter(|s| s.kind == kind && s.up == up && s.level == level)
                    .count() as u32;
                out.push(Step {
                    kind,
                    up,
                    level,
                    nth,
                    t: w[1].0,
                });
            }
        }
    }
    out
}

/// Live steps paired with the simulated step of the same kind, level, direction and occurrence;
/// `(live, Some(sim))` or `(live, None)`, then the simulated steps live never took.
pub fn pair(live: &[Step], sim: &[Step]) -> (Vec<(Step, Option<Step>)>, Vec<Step>) {
    let same = |a: &Step, b: &Step| {
        a.kind == b.kind && a.up == b.up && a.level == b.level && a.nth == b.nth
    };
    let pairs = live
        .iter()
        .map(|l| (*l, sim.iter().find(|s| same(l, s)).copied()))
        .collect();
    let extra = sim
        .iter()
        .filter(|s| !live.iter().any(|l| same(l, s)))
        .copied()
        .collect();
    (pairs, extra)
}

/// One validation run, live and simulated.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `SHAPE:MIN:MAX`.
    pub scenario: String,
    /// Mean offered rate, req/s.
    pub offered_rps: f64,
    /// Requests kis-loadgen scheduled.
    pub live_arrivals: u64,
    /// Arrivals kis-sim drew (equal when the stream is replayed).
    pub sim_arrivals: u64,
    /// Corrected p95, ms.
    pub live_p95_ms: f64,
    /// Simulated p95, ms.
    pub sim_p95_ms: f64,
    /// Arrivals answered later than the SLO or not at all, percent.
    pub live_slo_miss_pct: f64,
    /// The same in kis-sim.
    pub sim_slo_miss_pct: f64,
    /// Answers per second of schedule.
    pub live_rps: f64,
    /// Simulated completions per second of schedule.
    pub sim_rps: f64,
    /// Live steps, each with its simulated partner.
    pub steps: Vec<(Step, Option<Step>)>,
    /// Simulated steps without a live partner.
    pub extra_sim_steps: Vec<Step>,
}

/// `|sim - real| / real`; 0 when both are 0.
pub fn rel_err(real: f64, sim: f64) -> f64 {
    if real == 0.0 && sim == 0.0 {
        0.0
    } else {
        crate::fidelity::rel_err(real, sim)
    }
}

/// The verdicts of a row.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// p95 within the tolerance.
    pub p95: bool,
    /// SLO-miss % within the tolerance.
    pub slo_miss: bool,
    /// Every live step has a simulated partner within one HPA sync period, and the simulation
    /// took no step live did not.
    pub steps: bool,
    /// Largest |sim − live| of the paired steps, seconds (NaN without any).
    pub worst_step_s: f64,
    /// Paired steps within one sync period.
    pub steps_within: usize,
}

impl Row {
    /// The verdicts at `tolerance` (relative) and `sync_s` (the HPA sync period).
    pub fn verdict(&self, tolerance: f64, sync_s: f64) -> Verdict {
        let gaps: Vec<f64> = self
            .steps
            .iter()
            .filter_map(|(l, s)| s.map(|s| (s.t - l.t).abs()))
            .collect();
        let within = gaps.iter().filter(|g| **g <= sync_s).count();
        let all_paired = self.steps.iter().all(|(_, s)| s.is_some());
        Verdict {
            p95: rel_err(self.live_p95_ms, self.sim_p95_ms) <= tolerance,
            slo_miss: rel_err(self.live_slo_miss_pct, self.sim_slo_miss_pct) <= tolerance,
            steps: all_paired && self.extra_sim_steps.is_empty() && within == gaps.len(),
            worst_step_s: gaps.iter().copied().fold(f64::NAN, f64::max),
            steps_within: within,
        }
    }
}

fn ok(b: bool) -> &'static str {
    if b { "✓" } else { "✗" }
}

/// The table of every run, with relative errors and verdicts.
pub fn markdown(rows: &[Row], tolerance: f64, sync_s: f64) -> String {
    let mut s = String::from(
        "| scenario | offered req/s | arrivals live / sim | p95 live | p95 sim | err | SLO miss live | SLO miss sim | err | req/s live | req/s sim | err | steps within sync / live (sim extra) | worst step gap |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let v = r.verdict(tolerance, sync_s);
        let _ = writeln!(
            s,
            "| {} | {:.1} | {} / {} | {:.0} ms | {:.0} ms | {:.1} % {} | {:.2} % | {:.2} % | {:.1} % {} | {:.2} | {:.2} | {:.1} % | {} / {} ({}) {} | {} |",
            r.scenario,
            r.offered_rps,
            r.live_arrivals,
            r.sim_arrivals,
            r.live_p95_ms,
            r.sim_p95_ms,
            100.0 * rel_err(r.live_p95_ms, r.sim_p95_ms),
            ok(v.p95),
            r.live_slo_miss_pct,
            r.sim_slo_miss_pct,
            100.0 * rel_err(r.live_slo_miss_pct, r.sim_slo_miss_pct),
            ok(v.slo_miss),
            r.live_rps,
            r.sim_rps,
            100.0 * rel_err(r.live_rps, r.sim_rps),
            v.steps_within,
            r.steps.len(),
            r.extra_sim_steps.len(),
            ok(v.steps),
            if v.worst_step_s.is_nan() {
                "-".to_string()
            } else {
                format!("{:.1} s", v.worst_step_s)
            },
        );
    }
    let _ = writeln!(
        s,
        "\n✓ / ✗: p95 and SLO-miss within {:.0} % (relative), every live scale step matched by a simulated one within one HPA sync period ({sync_s:.0} s) and no simulated step live did not take.",
        tolerance * 100.0
    );
    s
}

/// The steps of every run, one line each: run, kind, direction, level, occurrence, live t, sim t.
pub fn steps_csv(rows: &[Row]) -> String {
    let mut s = String::from("scenario,kind,direction,level,nth,live_t_s,sim_t_s,gap_s\n");
    let kind = |k: Kind| if k == Kind::Spec { "spec" } else { "ready" };
    let dir = |up: bool| if up { "up" } else { "down" };
    for r in rows {
        for (l, m) in &r.steps {
            let (st, gap) = m.map_or((String::new(), String::new()), |m| {
                (format!("{:.2}", m.t), format!("{:.2}", m.t - l.t))
            });
            let _ = writeln!(
                s,
                "{},{},{},{},{},{:.2},{st},{gap}",
                r.scenario,
                kind(l.kind),
                dir(l.up),
                l.level,
                l.nth,
                l.t
            );
        }
        for m in &r.extra_sim_steps {
            let _ = writeln!(
                s,
                "{},{},{},{},{},,{:.2},",
                r.scenario,
                kind(m.kind),
                dir(m.up),
                m.level,
                m.nth,
                m.t
            );
        }
    }
    s
}

/// Replicas (spec and Ready) live and simulated over time, and the offered load.
pub fn plot(
    path: &Path,
    title: &str,
    live: &[(f64, u32, u32)],
    sim: &[(f64, u32, u32)],
    offered: &[(f64, f64)],
) -> Result<()> {
    // Counts hold until the next reading: drawn as steps.
    let pts = |v: &[(f64, u32, u32)], spec: bool| -> Vec<(f64, f64)> {
        let y = |p: &(f64, u32, u32)| f64::from(if spec { p.1 } else { p.2 });
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(2 * v.len());
        for p in v {
            if let Some(&(_, last)) = out.last() {
                out.push((p.0, last));
            }
            out.push((p.0, y(p)));
        }
        out
    };
    let x = "seconds from the start of the load";
    let fig = Figure::new(title, 1800, 1200)
        .panel(
            Panel::new("Offered load (req/s)", x, "req/s").line(Line::new(
                "offered",
                "#1f77b4",
                offered.to_vec(),
            )),
        )
        .panel(
            Panel::new("GPU replicas: live (testbed) vs kis-sim", x, "pods")
                .line(Line::new("live spec", "#d62728", pts(live, true)).dashed())
                .line(Line::new("live Ready", "#d62728", pts(live, false)))
                .line(Line::new("sim spec", "#1f77b4", pts(sim, true)).dashed())
                .line(Line::new("sim Ready", "#1f77b4", pts(sim, false))),
        );
    Ok(kis_plot::write(path, &fig)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_crosses_every_level_and_occurrences_are_counted() {
        let pts = [
            (0.0, 1, 1),
            (1.0, 3, 1),
            (5.0, 3, 3),
            (9.0, 1, 1),
            (12.0, 2, 1),
        ];
        let s = steps(&pts);
        let spec: Vec<(bool, u32, u32, f64)> = s
            .iter()
            .filter(|x| x.kind == Kind::Spec)
            .map(|x| (x.up, x.level, x.nth, x.t))
            .collect();
        assert_eq!(
            spec,
            [
                (true, 2, 0, 1.0),
                (true, 3, 0, 1.0),
                (false, 2, 0, 9.0),
                (false, 1, 0, 9.0),
                (true, 2, 1, 12.0)
            ]
        );
        assert_eq!(s.iter().filter(|x| x.kind == Kind::Ready).count(), 4);
    }

    #[test]
    fn pairs_and_verdicts() {
        let live = steps(&[(0.0, 1, 1), (10.0, 2, 1), (15.0, 2, 2)]);
        let sim = steps(&[(0.0, 1, 1), (11.0, 2, 1), (19.0, 2, 2), (30.0, 3, 2)]);
        let (pairs, extra) = pair(&live, &sim);
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|p| p.1.is_some()));
        assert_eq!(extra.len(), 1);
        let mut row = Row {
            scenario: "spike:4:20".into(),
            offered_rps: 8.0,
            live_arrivals: 700,
            sim_arrivals: 700,
            live_p95_ms: 200.0,
            sim_p95_ms: 220.0,
            live_slo_miss_pct: 0.0,
            sim_slo_miss_pct: 0.0,
            live_rps: 7.8,
            sim_rps: 7.8,
            steps: pairs,
            extra_sim_steps: extra,
        };
        let v = row.verdict(0.15, 2.0);
        assert!(v.p95 && v.slo_miss);
        assert!(!v.steps, "a 4 s gap and an extra step");
        assert_eq!(v.worst_step_s, 4.0);
        assert_eq!(v.steps_within, 1);
        row.extra_sim_steps.clear();
        assert!(row.verdict(0.15, 4.0).steps);
        let md = markdown(std::slice::from_ref(&row), 0.15, 2.0);
        assert!(
            md.contains("| spike:4:20 | 8.0 | 700 / 700 | 200 ms | 220 ms | 10.0 % ✓"),
            "{md}"
        );
        assert_eq!(steps_csv(&[row]).lines().count(), 3);
        assert_eq!(rel_err(0.0, 0.0), 0.0);
        assert!(rel_err(0.0, 1.0).is_infinite());
    }
}
