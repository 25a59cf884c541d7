//! SVG plot of a run: offered load and throughput, replicas per pool, and p95 latency against the SLO,
//! in three stacked panels sharing the time axis. Plain SVG text, so no font or image library is needed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use kis_sim::SeriesRow;

const W: f64 = 900.0;
const PANEL_H: f64 = 190.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

fn panel(svg: &mut String, idx: usize, title: &str, unit: &str, t_max: f64, series: &[Series<'_>]) {
    let y0 = TOP + idx as f64 * (PANEL_H + GAP);
    let pw = W - LEFT - RIGHT;
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let x = |t: f64| LEFT + t / t_max * pw;
    let y = |v: f64| y0 + PANEL_H - (v / y_max).min(1.05) * PANEL_H;
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{y0}" width="{pw}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{title} ({unit})</text>"##,
        y0 - 6.0
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy}" x2="{}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            yy + 4.0,
            trim(v)
        );
    }
    for k in 0..=6 {
        let t = t_max * k as f64 / 6.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            x(t),
            y0 + PANEL_H + 14.0,
            trim(t)
        );
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let mut d = String::new();
        for (j, (t, v)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if j == 0 { "M" } else { "L" },
                x(*t),
                y(*v)
            );
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r##"<path d="{d}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"##,
            s.color
        );
        let ly = y0 + 14.0 + i as f64 * 16.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}" font-size="11">{}</text>"##,
            LEFT + pw + 10.0,
            LEFT + pw + 30.0,
            s.color,
            LEFT + pw + 35.0,
            ly + 4.0,
            s.name
        );
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the plot as an SVG document.
pub fn render_svg(title: &str, rows: &[SeriesRow], slo: f64) -> String {
    let t_max = rows.last().map_or(1.0, |r| r.t).max(1.0);
    let pts = |f: &dyn Fn(&SeriesRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).map(|v| (r.t, v))).collect()
    };
    let h = TOP + 3.0 * (PANEL_H + GAP);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="18" font-size="14">{}</text>"##,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    panel(
        &mut svg,
        0,
        "Load",
        "req/s",
        t_max,
        &[
            Series {
                name: "offered",
                color: "#1f77b4",
                points: pts(&|r| Some(r.offered_rps)),
                dashed: false,
            },
            Series {
                name: "throughput",
                color: "#2ca02c",
                points: pts(&|r| Some(r.throughput_rps)),
                dashed: true,
            },
        ],
    );
    panel(
        &mut svg,
        1,
        "Replicas",
        "pods",
        t_max,
        &[
            Series {
                name: "GPU spec",
                color: "#d62728",
                points: pts(&|r| Some(r.gpu_spec as f64)),
                dashed: true,
            },
            Series {
                name: "GPU ready",
                color: "#d62728",
                points: pts(&|r| Some(r.gpu_ready as f64)),
                dashed: false,
            },
            Series {
                name: "CPU spec",
                color: "#9467bd",
                points: pts(&|r| Some(r.cpu_spec as f64)),
                dashed: true,
            },
            Series {
                name: "CPU ready",
                color: "#9467bd",
                points: pts(&|r| Some(r.cpu_ready as f64)),
                dashed: false,
            },
        ],
    );
    panel(
        &mut svg,
        2,
        "p95 latency per scrape interval",
        "s",
        t_max,
        &[
            Series {
                name: "p95",
                color: "#ff7f0e",
                points: pts(&|r| r.p95),
                dashed: false,
            },
            Series {
                name: "SLO",
                color: "#555",
                points: vec![(0.0, slo), (t_max, slo)],
                dashed: true,
            },
        ],
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="12" text-anchor="middle">simulated time (s)</text></svg>"##,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        h - 8.0
    );
    svg
}

/// Writes [`render_svg`] to `path`.
pub fn write_svg(path: &Path, title: &str, rows: &[SeriesRow], slo: f64) -> Result<()> {
    std::fs::write(path, render_svg(title, rows, slo))
        .with_context(|| format!("cannot write plot {}", path.display()))
}
