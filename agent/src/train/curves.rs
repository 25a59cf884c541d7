//! Learning curves as one PNG: a grid of small panels (training and validation return, SLO miss,
//! GPU-hours, losses, entropy, approx-KL, explained variance) over environment steps, drawn on
//! [`crate::raster::Canvas`] like the run plots.

use anyhow::{Context, Result};

use crate::raster::{Anchor, Canvas, rgb};

/// One line: name, colour, (x, y) points (non-finite y are skipped).
pub type Line<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// One panel: title and lines.
pub type Panel<'a> = (&'a str, Vec<Line<'a>>);

const PW: f64 = 560.0;
const PH: f64 = 260.0;
const MARGIN: f64 = 70.0;

fn bounds(lines: &[Line<'_>]) -> Option<(f64, f64, f64, f64)> {
    let pts = lines
        .iter()
        .flat_map(|l| l.2.iter())
        .filter(|p| p.0.is_finite() && p.1.is_finite());
    let mut b: Option<(f64, f64, f64, f64)> = None;
    for &(x, y) in pts {
        b = Some(match b {
            None => (x, x, y, y),
            Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
        });
    }
    b.map(|(x0, x1, y0, y1)| {
        let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 };
        (x0, x1.max(x0 + 1.0), y0 - pad, y1 + pad)
    })
}

fn draw_panel(c: &mut Canvas, ox: f64, oy: f64, title: &str, lines: &[Line<'_>]) {
    let (w, h) = (PW - MARGIN - 20.0, PH - 80.0);
    let (x, y) = (ox + MARGIN, oy + 40.0);
    c.text(
        ox + PW / 2.0,
        oy + 25.0,
        2,
        Anchor::Middle,
        [0, 0, 0],
        title,
    );
    c.outline(x, y, w, h, rgb("#444444"));
    let Some((x0, x1, y0, y1)) = bounds(lines) else {
        c.text(
            x + w / 2.0,
            y + h / 2.0,
            2,
            Anchor::Middle,
            [120, 120, 120],
            "no data",
        );
        return;
    };
    let fmt = |v: f64| {
        if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
            format!("{v:.1e}")
        } else {
            format!("{v:.2}")
        }
    };
    c.text(x - 6.0, y + 10.0, 1, Anchor::End, [0, 0, 0], &fmt(y1));
    c.text(x - 6.0, y + h, 1, Anchor::End, [0, 0, 0], &fmt(y0));
    c.text(x, y + h + 16.0, 1, Anchor::Start, [0, 0, 0], &fmt(x0));
    c.text(
        x + w,
        y + h + 16.0,
        1,
        Anchor::End,
        [0, 0, 0],
        &format!("{} steps", fmt(x1)),
    );
    for (i, (name, color, pts)) in lines.iter().enumerate() {
        let px: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(a, b)| {
                (
                    x + w * (a - x0) / (x1 - x0),
                    y + h - h * (b - y0) / (y1 - y0),
                )
            })
            .collect();
        if px.len() == 1 {
            c.fill(px[0].0 - 2.0, px[0].1 - 2.0, 5.0, 5.0, rgb(color));
        }
        c.polyline(&px, rgb(color), 2.0, None);
        c.text(
            x + 8.0,
            y + 14.0 + 12.0 * i as f64,
            1,
            Anchor::Start,
            rgb(color),
            name,
        );
    }
}

/// Renders `panels` in two columns as PNG bytes.
pub fn render(title: &str, panels: &[Panel<'_>]) -> Result<Vec<u8>> {
    let rows = panels.len().div_ceil(2);
    let mut c = Canvas::new((2.0 * PW) as usize, (40.0 + rows as f64 * PH) as usize);
    c.text(PW, 28.0, 3, Anchor::Middle, [0, 0, 0], title);
    for (i, (t, lines)) in panels.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * PW, 40.0 + (i / 2) as f64 * PH);
        draw_panel(&mut c, ox, oy, t, lines);
    }
    c.png().context("encoding the learning curves")
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
        let mut c = Canvas::new(10, 10);
        draw_panel(&mut c, 0.0, 0.0, "", &[]);
    }
}
