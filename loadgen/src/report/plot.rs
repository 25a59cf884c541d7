//! `--plot FILE`: intended and achieved rate, and corrected p50/p95/p99 latency, over time
//! (PNG or SVG by the file's extension; drawn by kis-plot, the workspace's one plotting place,
//! whose font is embedded).

use std::path::Path;

use kis_plot::{Figure, Line, Panel};

use super::Report;
use crate::error::{Error, Result};

fn err(e: kis_plot::Error) -> Error {
    Error::Output {
        what: "plot",
        reason: e.to_string(),
    }
}

/// Checks before a run that `path` can be drawn: a `.png` or `.svg` name.
pub fn check(path: &Path) -> Result<()> {
    match kis_plot::check(path) {
        Err(kis_plot::Error::Format(_)) => Err(Error::Usage(format!(
            "--plot {}: the extension must be .png or .svg",
            path.display()
        ))),
        r => r.map_err(err),
    }
}

/// Writes the plot; the format follows the extension (`.png` or `.svg`).
pub fn write(report: &Report, path: &Path) -> Result<()> {
    check(path)?;
    kis_plot::write(path, &figure(report)).map_err(err)
}

/// The two panels: rates, then corrected latency quantiles.
fn figure(r: &Report) -> Figure {
    // A last sliver of a window (the drain) has too few samples to draw as a rate.
    let w: Vec<super::WindowRow> = r.windows.iter().filter(|x| x.dt_s >= 0.5).collect();
    let rate = |f: fn(&super::WindowRow) -> f64| w.iter().map(|x| (x.t_s, f(x))).collect();
    let latency = |f: fn(&super::WindowRow) -> f64| {
        w.iter()
            .filter(|x| x.corrected.count > 0)
            .map(|x| (x.t_s, f(x)))
            .collect()
    };
    Figure::new(r.title(), 1200, 800)
        .panel(
            Panel::new("rate", "time (s)", "requests/s")
                .line(Line::new("intended", "#0000ff", rate(|x| x.intended_rps)))
                .line(Line::new("achieved", "#ff0000", rate(|x| x.achieved_rps))),
        )
        .panel(
            Panel::new(
                "corrected latency (from intended send time)",
                "time (s)",
                "ms",
            )
            .line(Line::new("p50", "#00ff00", latency(|x| x.corrected.p50_ms)))
            .line(Line::new("p95", "#ff00ff", latency(|x| x.corrected.p95_ms)))
            .line(Line::new("p99", "#ff0000", latency(|x| x.corrected.p99_ms))),
        )
}
