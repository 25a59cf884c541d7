//! Plot of a run: offered load and throughput, replicas per pool, and p95 latency against the SLO, in
//! three stacked panels sharing the time axis. SVG (plain text) or PNG (rasterised by
//! [`crate::raster`] with a built-in bitmap font), chosen by the file's extension; one layout drawn
//! through the [`Draw`] trait, so both show the same thing.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use kis_sim::SeriesRow;

use crate::raster::{Anchor, Canvas, rgb};

const W: f64 = 900.0;
const PANEL_H: f64 = 190.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;
/// PNG pixels per layout unit: 1800 px wide, so the 5×7 font stays legible.
const PNG_SCALE: f64 = 2.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// What the layout needs from an output format, in layout units (900 wide).
trait Draw {
    /// A polyline; `dashed` 6 on, 4 off.
    fn path(&mut self, pts: &[(f64, f64)], color: &str, width: f64, dashed: bool);
    /// A rectangle's outline.
    fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, color: &str);
    /// Text with its baseline at `y`; `size` in layout units (11 = tick labels).
    fn label(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, bold: bool, text: &str);
}

impl Draw for String {
    fn path(&mut self, pts: &[(f64, f64)], color: &str, width: f64, dashed: bool) {
        let mut d = String::new();
        for (j, (x, y)) in pts.iter().enumerate() {
            let _ = write!(d, "{}{x:.1},{y:.1} ", if j == 0 { "M" } else { "L" });
        }
        let dash = if dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            self,
            r##"<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}"{dash}/>"##
        );
    }

    fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, color: &str) {
        let _ = writeln!(
            self,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="{color}"/>"##
        );
    }

    fn label(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, bold: bool, text: &str) {
        let anchor = match anchor {
            Anchor::Start => "",
            Anchor::Middle => r#" text-anchor="middle""#,
            Anchor::End => r#" text-anchor="end""#,
        };
        let weight = if bold { r#" font-weight="bold""# } else { "" };
        let text = text.replace('&', "&amp;").replace('<', "&lt;");
        let _ = writeln!(
            self,
            r##"<text x="{x}" y="{y}" font-size="{size}"{anchor}{weight}>{text}</text>"##
        );
    }
}

impl Draw for Canvas {
    fn path(&mut self, pts: &[(f64, f64)], color: &str, width: f64, dashed: bool) {
        let s = PNG_SCALE;
        let pts: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (x * s, y * s)).collect();
        let dash = dashed.then_some((6.0 * s, 4.0 * s));
        self.polyline(&pts, rgb(color), width * s, dash);
    }

    fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, color: &str) {
        let s = PNG_SCALE;
        self.outline(x * s, y * s, w * s, h * s, rgb(color));
    }

    fn label(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, bold: bool, text: &str) {
        let s = PNG_SCALE;
        // 7 font rows per 11 layout units at scale 2; titles one step larger.
        let scale = if size >= 13.0 || bold { 3 } else { 2 };
        self.text(x * s, y * s, scale, anchor, [0, 0, 0], text);
    }
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

fn panel(
    out: &mut dyn Draw,
    idx: usize,
    title: &str,
    unit: &str,
    t_max: f64,
    series: &[Series<'_>],
) {
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
    out.frame(LEFT, y0, pw, PANEL_H, "#888");
    out.label(
        LEFT,
        y0 - 6.0,
        13.0,
        Anchor::Start,
        true,
        &format!("{title} ({unit})"),
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let yy = y(v);
        out.path(&[(LEFT, yy), (LEFT + pw, yy)], "#eee", 1.0, false);
        out.label(LEFT - 5.0, yy + 4.0, 11.0, Anchor::End, false, &trim(v));
    }
    for k in 0..=6 {
        let t = t_max * k as f64 / 6.0;
        out.label(
            x(t),
            y0 + PANEL_H + 14.0,
            11.0,
            Anchor::Middle,
            false,
            &trim(t),
        );
    }
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(t, v)| (x(t), y(v))).collect();
        out.path(&pts, s.color, 1.6, s.dashed);
        let ly = y0 + 14.0 + i as f64 * 16.0;
        out.path(
            &[(LEFT + pw + 10.0, ly), (LEFT + pw + 30.0, ly)],
            s.color,
            2.0,
            s.dashed,
        );
        out.label(
            LEFT + pw + 35.0,
            ly + 4.0,
            11.0,
            Anchor::Start,
            false,
            s.name,
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

/// Layout height.
fn height() -> f64 {
    TOP + 3.0 * (PANEL_H + GAP)
}

/// Draws the three panels, the title and the time axis label.
fn layout(out: &mut dyn Draw, title: &str, rows: &[SeriesRow], slo: f64) {
    let t_max = rows.last().map_or(1.0, |r| r.t).max(1.0);
    let pts = |f: &dyn Fn(&SeriesRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).map(|v| (r.t, v))).collect()
    };
    let h = height();
    out.label(LEFT, 18.0, 14.0, Anchor::Start, false, title);
    panel(
        out,
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
        out,
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
        out,
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
    out.label(
        LEFT + (W - LEFT - RIGHT) / 2.0,
        h - 8.0,
        12.0,
        Anchor::Middle,
        false,
        "simulated time (s)",
    );
}

/// Renders the plot as an SVG document.
pub fn render_svg(title: &str, rows: &[SeriesRow], slo: f64) -> String {
    let h = height();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##
    );
    layout(&mut svg, title, rows, slo);
    svg += "</svg>\n";
    svg
}

/// Renders the plot as a PNG image (1800 × 1460 pixels).
pub fn render_png(title: &str, rows: &[SeriesRow], slo: f64) -> Result<Vec<u8>> {
    let mut c = Canvas::new(
        (W * PNG_SCALE).round() as usize,
        (height() * PNG_SCALE).round() as usize,
    );
    layout(&mut c, title, rows, slo);
    c.png().context("cannot encode the PNG")
}

/// Writes the plot to `path`: PNG when its name ends in `.png` (any case), SVG otherwise.
pub fn write_plot(path: &Path, title: &str, rows: &[SeriesRow], slo: f64) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("png") => render_png(title, rows, slo)?,
        _ => render_svg(title, rows, slo).into_bytes(),
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write plot {}", path.display()))
}
