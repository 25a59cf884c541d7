//! The cost-vs-SLO-miss Pareto front of one trace, each policy's verdict against the baselines, and
//! the plot (PNG, drawn with [`crate::raster`]).
//!
//! A point is (GPU-hours, SLO-miss fraction), means over seeds; both are minimised. A dominates B when
//! it is no worse on both and better on one. A policy's verdict is taken against the baselines
//! (every set-up that is neither a policy nor the oracle, which sees the future): `dominated` when a
//! baseline dominates it; `dominates` when it dominates at least one baseline of the baselines' own
//! front (it moves the front); `on the front` otherwise.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::raster::{Anchor, Canvas, rgb};

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

const W: usize = 1560;
const H: usize = 900;
const L: f64 = 110.0;
const T: f64 = 70.0;
const PW: f64 = 760.0;
const PH: f64 = 720.0;

fn color(kind: &str) -> [u8; 3] {
    match kind {
        "oracle" => rgb("#2ca02c"),
        "policy" => rgb("#d62728"),
        _ => rgb("#1f77b4"),
    }
}

/// Lowest SLO miss the plot's log axis shows, percent (0 % is drawn there).
const MISS_FLOOR: f64 = 0.01;

/// The plot: GPU-hours across, SLO miss (%) up on a log axis from 0.01 % (0 sits on the floor) to
/// 100 %, one numbered square per set-up (legend on the right), the front as a dashed line.
pub fn plot_png(title: &str, points: &[Point]) -> Result<Vec<u8>> {
    let mut c = Canvas::new(W, H);
    let black = [0, 0, 0];
    let grey = rgb("#999999");
    let xmax = points
        .iter()
        .map(|p| p.gpu_hours)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.08;
    let decades = (100.0 / MISS_FLOOR).log10();
    let px = |x: f64| L + PW * x / xmax;
    let py = |miss: f64| {
        let pct = (miss * 100.0).clamp(MISS_FLOOR, 100.0);
        T + PH - PH * (pct / MISS_FLOOR).log10() / decades
    };
    c.text(L, 40.0, 3, Anchor::Start, black, title);
    c.outline(L, T, PW, PH, black);
    for i in 0..=5 {
        let x = L + PW * i as f64 / 5.0;
        c.polyline(&[(x, T + PH), (x, T + PH + 8.0)], black, 1.0, None);
        let v = format!("{:.2}", xmax * i as f64 / 5.0);
        c.text(x, T + PH + 30.0, 2, Anchor::Middle, black, &v);
    }
    for (i, label) in ["0.01", "0.1", "1", "10", "100"].iter().enumerate() {
        let y = T + PH - PH * i as f64 / decades;
        c.polyline(&[(L - 8.0, y), (L, y)], black, 1.0, None);
        c.text(L - 12.0, y + 7.0, 2, Anchor::End, black, label);
    }
    let x_label = "GPU-hours (mean over seeds)";
    c.text(
        L + PW / 2.0,
        T + PH + 62.0,
        2,
        Anchor::Middle,
        black,
        x_label,
    );
    let y_label = "SLO miss % (log scale, 0 drawn at 0.01, backlog counted as missed)";
    c.text(L, T - 12.0, 2, Anchor::Start, black, y_label);
    let on_front = front(points);
    let mut fr: Vec<(f64, f64)> = points
        .iter()
        .zip(&on_front)
        .filter(|(_, f)| **f)
        .map(|(p, _)| (px(p.gpu_hours), py(p.slo_miss)))
        .collect();
    fr.sort_by(|a, b| a.0.total_cmp(&b.0));
    c.polyline(&fr, grey, 2.0, Some((10.0, 6.0)));
    for (i, p) in points.iter().enumerate() {
        let (x, y) = (px(p.gpu_hours), py(p.slo_miss));
        c.fill(x - 6.0, y - 6.0, 12.0, 12.0, color(p.kind));
        c.text(
            x + 10.0,
            y - 8.0,
            2,
            Anchor::Start,
            black,
            &(i + 1).to_string(),
        );
        let ly = T + 20.0 + 26.0 * i as f64;
        c.fill(L + PW + 30.0, ly - 12.0, 12.0, 12.0, color(p.kind));
        // The bitmap font has no `;` (scripted policies' names use it).
        let mut name = format!("{} {}", i + 1, p.label.replace(';', "/"));
        name.truncate(46);
        if on_front[i] {
            name += " (front)";
        }
        c.text(L + PW + 50.0, ly, 2, Anchor::Start, black, &name);
    }
    let key = "blue: baselines, green: oracle, red: policies";
    c.text(L + PW + 30.0, H as f64 - 30.0, 2, Anchor::Start, black, key);
    c.png().context("encoding the Pareto plot")
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
