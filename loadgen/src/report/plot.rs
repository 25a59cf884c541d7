//! `--plot FILE`: intended and achieved rate, and corrected p50/p95/p99 latency, over time
//! (PNG or SVG by the file's extension; plotters with its bitmap and SVG backends).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::Report;
use crate::error::{Error, Result};

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a TrueType font once (plotters' ab_glyph backend needs one for any text).
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<bool> = OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                // Lives for the whole process, as plotters requires.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Output {
            what: "plot",
            reason: "no TrueType font found (install fonts-dejavu-core)".into(),
        })
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Output {
        what: "plot",
        reason: e.to_string(),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// Checks before a run that `path` can be drawn: a `.png` or `.svg` name and a font.
pub fn check(path: &Path) -> Result<()> {
    match extension(path).as_str() {
        "png" | "svg" => ensure_font(),
        _ => Err(Error::Usage(format!(
            "--plot {}: the extension must be .png or .svg",
            path.display()
        ))),
    }
}

/// Writes the plot; the format follows the extension (`.png` or `.svg`).
pub fn write(report: &Report, path: &Path) -> Result<()> {
    check(path)?;
    let size = (1200, 800);
    if extension(path) == "svg" {
        draw(SVGBackend::new(path, size).into_drawing_area(), report)
    } else {
        draw(BitMapBackend::new(path, size).into_drawing_area(), report)
    }
}

/// A latency line: its label, colour and how to read it from a window.
type Series = (&'static str, RGBColor, fn(&super::WindowRow) -> f64);

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(400);
    // A last sliver of a window (the drain) has too few samples to draw as a rate.
    let w: Vec<super::WindowRow> = r.windows.iter().filter(|x| x.dt_s >= 0.5).collect();
    let t_max = w.last().map_or(1.0, |x| x.t_s).max(1.0);
    let rate_max = w
        .iter()
        .map(|x| x.intended_rps.max(x.achieved_rps))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption(r.title(), ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("requests/s")
        .draw()
        .map_err(err)?;
    c.draw_series(LineSeries::new(
        w.iter().map(|x| (x.t_s, x.intended_rps)),
        &BLUE,
    ))
    .map_err(err)?
    .label("intended")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.draw_series(LineSeries::new(
        w.iter().map(|x| (x.t_s, x.achieved_rps)),
        &RED,
    ))
    .map_err(err)?
    .label("achieved")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    let lat_max = w.iter().map(|x| x.corrected.p99_ms).fold(1.0_f64, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&bottom)
        .caption(
            "corrected latency (from intended send time)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..lat_max)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("ms")
        .draw()
        .map_err(err)?;
    let series: [Series; 3] = [
        ("p50", GREEN, |x| x.corrected.p50_ms),
        ("p95", MAGENTA, |x| x.corrected.p95_ms),
        ("p99", RED, |x| x.corrected.p99_ms),
    ];
    for (name, color, f) in series {
        c.draw_series(LineSeries::new(
            w.iter()
                .filter(|x| x.corrected.count > 0)
                .map(|x| (x.t_s, f(x))),
            &color,
        ))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
