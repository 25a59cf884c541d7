//! Plot of a run: offered load and throughput, replicas per pool, and p95 latency against the SLO, in
//! three stacked panels sharing the time axis, drawn by kis-plot (the workspace's one plotting
//! place): PNG when the file's name ends in `.png`, SVG otherwise.

use std::path::Path;

use anyhow::{Context, Result};
use kis_plot::{Figure, Format, Line, Panel};
use kis_sim::SeriesRow;

/// SVG size in pixels; the PNG is twice as large, so its text stays legible when zoomed.
const W: u32 = 900;
const H: u32 = 730;

/// The three panels of a run.
pub fn figure(title: &str, rows: &[SeriesRow], slo: f64, width: u32, height: u32) -> Figure {
    let t_max = rows.last().map_or(1.0, |r| r.t).max(1.0);
    let pts = |f: &dyn Fn(&SeriesRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter().filter_map(|r| f(r).map(|v| (r.t, v))).collect()
    };
    let x = "simulated time (s)";
    Figure::new(title, width, height)
        .panel(
            Panel::new("Load (req/s)", x, "req/s")
                .line(Line::new(
                    "offered",
                    "#1f77b4",
                    pts(&|r| Some(r.offered_rps)),
                ))
                .line(
                    Line::new("throughput", "#2ca02c", pts(&|r| Some(r.throughput_rps))).dashed(),
                ),
        )
        .panel(
            Panel::new("Replicas (pods)", x, "pods")
                .line(Line::new("GPU spec", "#d62728", pts(&|r| Some(r.gpu_spec as f64))).dashed())
                .line(Line::new(
                    "GPU ready",
                    "#d62728",
                    pts(&|r| Some(r.gpu_ready as f64)),
                ))
                .line(Line::new("CPU spec", "#9467bd", pts(&|r| Some(r.cpu_spec as f64))).dashed())
                .line(Line::new(
                    "CPU ready",
                    "#9467bd",
                    pts(&|r| Some(r.cpu_ready as f64)),
                )),
        )
        .panel(
            Panel::new("p95 latency per scrape interval (s)", x, "s")
                .line(Line::new("p95", "#ff7f0e", pts(&|r| r.p95)))
                .line(Line::new("SLO", "#555555", vec![(0.0, slo), (t_max, slo)]).dashed()),
        )
}

/// Renders the plot as an SVG document (900 × 730).
pub fn render_svg(title: &str, rows: &[SeriesRow], slo: f64) -> Result<String> {
    let bytes = kis_plot::render(&figure(title, rows, slo, W, H), Format::Svg)?;
    String::from_utf8(bytes).context("the SVG is not UTF-8")
}

/// Renders the plot as a PNG image (1800 × 1460 pixels).
pub fn render_png(title: &str, rows: &[SeriesRow], slo: f64) -> Result<Vec<u8>> {
    Ok(kis_plot::render(
        &figure(title, rows, slo, 2 * W, 2 * H),
        Format::Png,
    )?)
}

/// Writes the plot to `path`: PNG when its name ends in `.png` (any case), SVG otherwise.
pub fn write_plot(path: &Path, title: &str, rows: &[SeriesRow], slo: f64) -> Result<()> {
    let bytes = match Format::of(path) {
        Ok(Format::Png) => render_png(title, rows, slo)?,
        _ => render_svg(title, rows, slo)?.into_bytes(),
    };
    std::fs::write(path, bytes).with_context(|| format!("cannot write plot {}", path.display()))
}
