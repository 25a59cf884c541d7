//! The cost-vs-SLO-miss Pareto front of one trace, each policy's verdict against the baselines, and
//! the plot (PNG, drawn with kis-plot).
//!
//! A point is (GPU-hours, SLO-miss fraction), means over seeds; both are minimised. A dominates B when
//! it is no worse on both and better on one. A policy's verdict is taken against the baselines
//! (every set-up that is neither a policy nor the oracle, which sees the future): `dominated` when a
//! baseline dominates it; `dominates` when it dominates at least one baseline of the baselines' own
//! front (it moves the front); `on the front` otherwise.

use anyhow::{Context, Result};
use serde::Serialize;

use kis_plot::{Format, Marker, Scatter};

/// One set-up on one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Set-up label.
    pub label: String,
    /// Mean GPU-hours.
    pub gpu_hours: f64,
    /// Mean SLO-miss fraction.
    pub slo_miss: f64,
    /// What kind of set-up (colours the plot): `baseline`, `oracle`, `policy`.
    pub kind: &'static str,
}

/// True when `a` dominates `b`.
pub fn dominates(a: &Point, b: &Point) -> bool {
    a.gpu_hours <= b.gpu_hours
        && a.slo_miss <= b.slo_miss
        && (a.gpu_hours < b.gpu_hours || a.slo_miss < b.slo_miss)
}

/// For each point, whether no other point dominates it.
pub fn front(points: &[Point]) -> Vec<bool> {
    points
        .iter()
        .map(|p| !points.iter().any(|q| dominates(q, p)))
        .collect()
}

/// A policy's standing against the baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// It dominates a member of the baselines' front.
    Dominates,
    /// Nothing dominates it, and it dominates no front member.
    OnTheFront,
    /// A baseline dominates it.
    Dominated,
}

impl Verdict {
    /// Words for tables.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Dominates => "dominates",
            Verdict::OnTheFront => "on the front",
            Verdict::Dominated => "dominated",
        }
    }
}

/// The verdict of `p` against `baselines` (see the module docs).
pub fn verdict(p: &Point, baselines: &[Point]) -> Verdict {
    if baselines.iter().any(|b| dominates(b, p)) {
        return Verdict::Dominated;
    }
    let on_front = front(baselines);
    if baselines
        .iter()
        .zip(on_front)
        .any(|(b, f)| f && dominates(p, b))
    {
        Verdict::Dominates
    } else {
        Verdict::OnTheFront
    }
}

fn color(kind: &str) -> &'static str {
    match kind {
        "oracle" => "#2ca02c",
        "policy" => "#d62728",
        _ => "#1f77b4",
    }
}

/// Lowest SLO miss the plot's log axis shows, percent (0 % is drawn there).
const MISS_FLOOR: f64 = 0.01;

/// The plot: GPU-hours across, SLO miss (%) up on a log axis from 0.01 % (0 sits on the floor) to
/// 100 %, one numbered square per set-up (legend on the right), the front as a dashed line.
pub fn plot_png(title: &str, points: &[Point]) -> Result<Vec<u8>> {
    let on_front = front(points);
    let pct = |miss: f64| (miss * 100.0).clamp(MISS_FLOOR, 100.0);
    let mut line: Vec<(f64, f64)> = points
        .iter()
        .zip(&on_front)
        .filter(|(_, f)| **f)
        .map(|(p, _)| (p.gpu_hours, pct(p.slo_miss)))
        .collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    let markers = points
        .iter()
        .zip(&on_front)
        .map(|(p, &f)| {
            let mut label = p.label.clone();
            label.truncate(46);
            if f {
                label += " (front)";
            }
            Marker {
                x: p.gpu_hours,
                y: pct(p.slo_miss),
                color: color(p.kind).into(),
                label,
            }
        })
        .collect();
    let sc = Scatter {
        title: title.into(),
        width: 1560,
        height: 900,
        x_label: "GPU-hours (mean over seeds)".into(),
        y_label: "SLO miss % (log scale, 0 drawn at 0.01, backlog counted as missed)".into(),
        log_y: Some((MISS_FLOOR, 100.0)),
        markers,
        line,
        note: "blue: baselines, green: oracle, red: policies".into(),
    };
    kis_plot::render_scatter(&sc, Format::Png).context("drawing the Pareto plot")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, h: f64, m: f64) -> Point {
        Point {
            label: label.into(),
            gpu_hours: h,
            slo_miss: m,
            kind: "baseline",
        }
    }

    #[test]
    fn front_and_verdicts() {
        let base = vec![
            p("cheap", 1.0, 0.5),
            p("mid", 2.0, 0.1),
            p("dear", 4.0, 0.0),
            p("bad", 3.0, 0.3),
        ];
        assert_eq!(front(&base), vec![true, true, true, false]);
        assert_eq!(verdict(&p("x", 1.5, 0.05), &base), Verdict::Dominates);
        assert_eq!(verdict(&p("x", 1.5, 0.2), &base), Verdict::OnTheFront);
        // It dominates the off-front baseline but is itself dominated by `mid`.
        assert_eq!(verdict(&p("x", 2.5, 0.2), &base), Verdict::Dominated);
        assert_eq!(verdict(&p("x", 5.0, 0.0), &base), Verdict::Dominated);
        // Equal to a baseline is not dominated by it.
        assert_eq!(verdict(&p("x", 2.0, 0.1), &base), Verdict::OnTheFront);
        let png = plot_png("t", &base).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
}
