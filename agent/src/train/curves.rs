//! Learning curves as one PNG: a grid of small panels (training and validation return, SLO miss,
//! GPU-hours, losses, entropy, approx-KL, explained variance) over environment steps, drawn by
//! kis-plot like the run plots.

use anyhow::{Context, Result};

use kis_plot::{Figure, Format, Line as PlotLine, Panel as PlotPanel};

/// One line: name, colour, (x, y) points (non-finite y are skipped).
pub(super) type Line<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// One panel: title and lines.
pub(super) type Panel<'a> = (&'a str, Vec<Line<'a>>);

const PW: u32 = 560;
const PH: u32 = 260;

/// Renders `panels` in two columns as PNG bytes.
pub(super) fn render(title: &str, panels: &[Panel<'_>]) -> Result<Vec<u8>> {
    let rows = panels.len().div_ceil(2) as u32;
    let mut fig = Figure::new(title, 2 * PW, 40 + rows * PH).columns(2);
    for (t, lines) in panels {
        let mut p = PlotPanel::new(*t, "environment steps", "").fit_y();
        for (name, color, pts) in lines {
            p = p.line(PlotLine::new(*name, color, pts.clone()));
        }
        fig = fig.panel(p);
    }
    kis_plot::render(&fig, Format::Png).context("drawing the learning curves")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lines_and_empty_panels() {
        let line: Line<'_> = (
            "return",
            "#1f77b4",
            vec![(0.0, 1.0), (100.0, 5.0), (200.0, f64::NAN)],
        );
        let png = render("t", &[("a", vec![line]), ("b", vec![])]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
