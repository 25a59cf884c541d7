//! KIS's one plotting place: time series as stacked or gridded line panels ([`Figure`]) and
//! labelled points with a front line ([`Scatter`]), written as PNG or SVG by the file's extension.
//!
//! # Brief overview
//! - [`Figure`]: a title over [`Panel`]s in `columns` columns; each panel has its own axes, a
//!   legend and [`Line`]s (solid or dashed; non-finite points are skipped).
//! - [`Scatter`]: one chart of [`Marker`]s (numbered squares with a legend), an optional dashed
//!   line through some of them, optionally a log y axis.
//! - [`Format`]: PNG or SVG, from a path's extension ([`Format::of`]); [`write`] and
//!   [`write_scatter`] render and write in one step, the `render*` functions return the bytes.
//!
//! Drawn with plotters (its bitmap and SVG backends); text uses DejaVu Sans embedded in the crate
//! (a Latin / Greek / symbols subset, `font/`, made by `font/make.sh`), so no system font is
//! needed at run time. Used by kis-loadgen (`--plot`) and kis-agent (run plots, Pareto plots,
//! learning curves).
//!
//! ```
//! use kis_plot::{Figure, Format, Line, Panel};
//!
//! let fig = Figure::new("demo", 800, 400).panel(
//!     Panel::new("load", "time (s)", "req/s")
//!         .line(Line::new("offered", "#1f77b4", vec![(0.0, 1.0), (10.0, 5.0)])),
//! );
//! let png = kis_plot::render(&fig, Format::Png).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans, cut to the characters plot text uses (see `font/make.sh` and `font/LICENSE`).
static FONT: &[u8] = include_bytes!("../font/DejaVuSans-subset.ttf");

/// The family name every chart asks for; registered from [`FONT`].
const FAMILY: &str = "sans-serif";

/// What can go wrong while plotting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file name does not end in `.png` or `.svg`.
    #[error("{}: the extension must be .png or .svg", .0.display())]
    Format(PathBuf),
    /// The embedded font did not load (a build problem, not an input one).
    #[error("the embedded font did not load")]
    Font,
    /// plotters failed while drawing.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Writing the file failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Draw(e.to_string())
}

/// Registers the embedded font once, for every style plotters may ask for.
fn ensure_font() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ]
        .into_iter()
        .all(|s| plotters::style::register_font(FAMILY, s, FONT).is_ok())
    });
    if ok { Ok(()) } else { Err(Error::Font) }
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 8-bit RGB PNG.
    Png,
    /// SVG text.
    Svg,
}

impl Format {
    /// The format a path's extension names (`.png` / `.svg`, any case).
    pub fn of(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(Error::Format(path.to_path_buf())),
        }
    }
}

/// A colour from `#rrggbb` or `#rgb` (black when malformed).
pub fn color(hex: &str) -> RGBColor {
    let h = hex.trim_start_matches('#');
    let v = |s: &str| u8::from_str_radix(s, 16).unwrap_or(0);
    match h.len() {
        6 => RGBColor(v(&h[0..2]), v(&h[2..4]), v(&h[4..6])),
        3 => {
            let d = |i: usize| v(&h[i..i + 1]) * 17;
            RGBColor(d(0), d(1), d(2))
        }
        _ => BLACK,
    }
}

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Line {
    /// Legend entry.
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// (x, y) points in order; points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed.
    pub dashed: bool,
}

impl Line {
    /// A solid line.
    pub fn new(name: impl Into<String>, color: &str, points: Vec<(f64, f64)>) -> Self {
        Line {
            name: name.into(),
            color: color.into(),
            points,
            dashed: false,
        }
    }

    /// The same line, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    fn finite(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    }
}

/// One chart with its own axes.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// x-axis description.
    pub x_label: String,
    /// y-axis description.
    pub y_label: String,
    /// The lines.
    pub lines: Vec<Line>,
    /// The y axis starts at 0 and ends at a round number above the data (otherwise it spans the
    /// data with a 5 % margin).
    pub y_from_zero: bool,
}

impl Panel {
    /// An empty panel whose y axis starts at 0.
    pub fn new(title: impl Into<String>, x_label: &str, y_label: &str) -> Self {
        Panel {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            lines: Vec::new(),
            y_from_zero: true,
        }
    }

    /// Adds a line.
    pub fn line(mut self, line: Line) -> Self {
        self.lines.push(line);
        self
    }

    /// The y axis spans the data (with a 5 % margin) instead of starting at 0.
    pub fn fit_y(mut self) -> Self {
        self.y_from_zero = false;
        self
    }

    /// (x range, y range) of the finite points; `None` without any.
    fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let mut b: Option<(f64, f64, f64, f64)> = None;
        for (x, y) in self.lines.iter().flat_map(Line::finite) {
            b = Some(match b {
                None => (x, x, y, y),
                Some((x0, x1, y0, y1)) => (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
            });
        }
        let (x0, x1, y0, y1) = b?;
        let x = (x0, if x1 > x0 { x1 } else { x0 + 1.0 });
        let y = if self.y_from_zero {
            (0.0, nice_max(y1.max(0.0)))
        } else {
            let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 };
            (y0 - pad, y1 + pad)
        };
        Some((x, y))
    }
}

/// The smallest of 1, 2, 2.5, 5, 10 × a power of ten at or above `v` (1 for 0 or less).
pub fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * e)
}

/// A titled grid of panels, filled row by row.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Title above every panel.
    pub title: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Panels per row.
    pub columns: usize,
    /// The panels.
    pub panels: Vec<Panel>,
}

impl Figure {
    /// An empty one-column figure of `width` × `height` pixels.
    pub fn new(title: impl Into<String>, width: u32, height: u32) -> Self {
        Figure {
            title: title.into(),
            width,
            height,
            columns: 1,
            panels: Vec::new(),
        }
    }

    /// Adds a panel.
    pub fn panel(mut self, panel: Panel) -> Self {
        self.panels.push(panel);
        self
    }

    /// Sets the panels per row.
    pub fn columns(mut self, n: usize) -> Self {
        self.columns = n.max(1);
        self
    }
}

/// Text sizes scale with the image: 1 at 900 pixels wide.
fn scale(width: u32) -> f64 {
    (f64::from(width) / 900.0).clamp(0.6, 3.0)
}

fn px(s: f64, v: f64) -> u32 {
    (s * v).round().max(1.0) as u32
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel, s: f64) -> Result<()> {
    let caption = (FAMILY, px(s, 15.0)).into_font();
    let Some(((x0, x1), (y0, y1))) = p.bounds() else {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            format!("{}: no data", p.title),
            (w as i32 / 3, h as i32 / 2),
            caption,
        ))
        .map_err(draw_err)?;
        return Ok(());
    };
    let mut c = ChartBuilder::on(area)
        .caption(&p.title, caption)
        .margin(px(s, 8.0))
        .x_label_area_size(px(s, 36.0))
        .y_label_area_size(px(s, 60.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    c.configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .label_style((FAMILY, px(s, 11.0)))
        .axis_desc_style((FAMILY, px(s, 12.0)))
        .draw()
        .map_err(draw_err)?;
    let width = px(s, 1.6);
    for l in &p.lines {
        let col = color(&l.color);
        let style = col.stroke_width(width);
        let pts: Vec<(f64, f64)> = l.finite().collect();
        let drawn = if l.dashed {
            let (on, off) = (px(s, 6.0), px(s, 4.0));
            c.draw_series(DashedLineSeries::new(pts, on, off, style))
        } else if pts.len() == 1 {
            let r = px(s, 2.5) as i32;
            c.draw_series(pts.into_iter().map(move |p| {
                EmptyElement::at(p) + Rectangle::new([(-r, -r), (r, r)], col.filled())
            }))
        } else {
            c.draw_series(LineSeries::new(pts, style))
        }
        .map_err(draw_err)?;
        let legend = px(s, 20.0) as i32;
        drawn.label(l.name.as_str()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + legend, y)], col.stroke_width(width + 1))
        });
    }
    if p.lines.iter().any(|l| !l.name.is_empty()) {
        c.configure_series_labels()
            .legend_area_size(px(s, 28.0))
            .label_font((FAMILY, px(s, 11.0)))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(136, 136, 136))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_figure<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, f: &Figure) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let s = scale(f.width);
    let body = root
        .titled(&f.title, (FAMILY, px(s, 16.0)))
        .map_err(draw_err)?;
    let rows = f.panels.len().div_ceil(f.columns).max(1);
    let cells = body.split_evenly((rows, f.columns));
    for (p, area) in f.panels.iter().zip(&cells) {
        draw_panel(area, p, s)?;
    }
    root.present().map_err(draw_err)
}

/// A point of a [`Scatter`].
#[derive(Clone, Debug)]
pub struct Marker {
    /// Position.
    pub x: f64,
    /// Position (on a log axis, clamped into its range).
    pub y: f64,
    /// `#rrggbb`.
    pub color: String,
    /// Legend text (the marker itself shows its number, 1-based).
    pub label: String,
}

/// Labelled points, numbered on the chart and named in a legend on the right.
#[derive(Clone, Debug)]
pub struct Scatter {
    /// Title.
    pub title: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// x-axis description (the axis starts at 0).
    pub x_label: String,
    /// y-axis description.
    pub y_label: String,
    /// A log y axis over this range; linear from 0 when `None`.
    pub log_y: Option<(f64, f64)>,
    /// The points.
    pub markers: Vec<Marker>,
    /// A dashed grey line through these points (e.g. a Pareto front), drawn under the markers.
    pub line: Vec<(f64, f64)>,
    /// A line of text under the legend.
    pub note: String,
}

fn draw_scatter<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, sc: &Scatter) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let s = scale(sc.width);
    let (chart, legend) = root.split_horizontally((62).percent_width());
    let x_max = sc.markers.iter().map(|m| m.x).fold(0.0, f64::max).max(1e-6) * 1.08;
    let small = (FAMILY, px(s, 11.0)).into_font();
    let mut builder = ChartBuilder::on(&chart);
    builder
        .caption(&sc.title, (FAMILY, px(s, 15.0)))
        .margin(px(s, 10.0))
        .x_label_area_size(px(s, 40.0))
        .y_label_area_size(px(s, 60.0));
    let square = px(s, 6.0) as i32;
    let number = |i: usize, (x, y): (f64, f64), col: RGBColor| {
        EmptyElement::at((x, y))
            + Rectangle::new([(-square, -square), (square, square)], col.filled())
            + Text::new(
                (i + 1).to_string(),
                (square + 3, -3 * square),
                small.clone(),
            )
    };
    let front = RGBColor(153, 153, 153).stroke_width(px(s, 2.0));
    let (dash, gap) = (px(s, 10.0), px(s, 6.0));
    // One linear chart for both axes: a log axis is drawn in log10 space with 10^v labels.
    let (y_range, y_labels) = match sc.log_y {
        Some((lo, hi)) => (
            lo.log10()..hi.log10(),
            (hi / lo).log10().round() as usize + 1,
        ),
        None => {
            let top = nice_max(sc.markers.iter().map(|m| m.y).fold(0.0, f64::max));
            (0.0..top, 10)
        }
    };
    let y_of = |y: f64| match sc.log_y {
        Some((lo, hi)) => y.clamp(lo, hi).log10(),
        None => y,
    };
    let label = |v: &f64| match sc.log_y {
        Some(_) => format!("{}", 10f64.powf(*v)),
        None => format!("{v}"),
    };
    let mut c = builder
        .build_cartesian_2d(0.0..x_max, y_range)
        .map_err(draw_err)?;
    c.configure_mesh()
        .x_desc(sc.x_label.as_str())
        .y_desc(sc.y_label.as_str())
        .y_labels(y_labels)
        .y_label_formatter(&label)
        .label_style(small.clone())
        .draw()
        .map_err(draw_err)?;
    c.draw_series(DashedLineSeries::new(
        sc.line.iter().map(|&(x, y)| (x, y_of(y))),
        dash,
        gap,
        front,
    ))
    .map_err(draw_err)?;
    c.draw_series(
        sc.markers
            .iter()
            .enumerate()
            .map(|(i, m)| number(i, (m.x, y_of(m.y)), color(&m.color))),
    )
    .map_err(draw_err)?;
    let row = px(s, 22.0) as i32;
    let top = px(s, 50.0) as i32;
    for (i, m) in sc.markers.iter().enumerate() {
        let y = top + row * i as i32;
        legend
            .draw(&Rectangle::new(
                [(10, y - square), (10 + 2 * square, y + square)],
                color(&m.color).filled(),
            ))
            .map_err(draw_err)?;
        legend
            .draw(&Text::new(
                format!("{} {}", i + 1, m.label),
                (20 + 2 * square, y - square),
                small.clone(),
            ))
            .map_err(draw_err)?;
    }
    let y = top + row * (sc.markers.len() as i32 + 1);
    legend
        .draw(&Text::new(sc.note.clone(), (10, y), small))
        .map_err(draw_err)?;
    root.present().map_err(draw_err)
}

/// Draws with `draw` on a `width` × `height` image in `format` and returns the file's bytes.
fn render_with(
    width: u32,
    height: u32,
    format: Format,
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    draw_svg: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    ensure_font()?;
    match format {
        Format::Svg => {
            let mut text = String::new();
            draw_svg(SVGBackend::with_string(&mut text, (width, height)).into_drawing_area())?;
            Ok(text.into_bytes())
        }
        Format::Png => {
            let mut buf = vec![255u8; width as usize * height as usize * 3];
            draw(BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area())?;
            let img = image::RgbImage::from_raw(width, height, buf)
                .ok_or_else(|| Error::Draw("image buffer size".into()))?;
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageOutputFormat::Png)
                .map_err(draw_err)?;
            Ok(out.into_inner())
        }
    }
}

/// The figure as PNG or SVG bytes.
pub fn render(f: &Figure, format: Format) -> Result<Vec<u8>> {
    render_with(
        f.width,
        f.height,
        format,
        |a| draw_figure(a, f),
        |a| draw_figure(a, f),
    )
}

/// The scatter plot as PNG or SVG bytes.
pub fn render_scatter(sc: &Scatter, format: Format) -> Result<Vec<u8>> {
    render_with(
        sc.width,
        sc.height,
        format,
        |a| draw_scatter(a, sc),
        |a| draw_scatter(a, sc),
    )
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the figure to `path`, PNG or SVG by its extension.
pub fn write(path: &Path, f: &Figure) -> Result<()> {
    write_bytes(path, &render(f, Format::of(path)?)?)
}

/// Writes the scatter plot to `path`, PNG or SVG by its extension.
pub fn write_scatter(path: &Path, sc: &Scatter) -> Result<()> {
    write_bytes(path, &render_scatter(sc, Format::of(path)?)?)
}

/// Checks before long work that `path` can be plotted: a `.png` or `.svg` name and the font.
pub fn check(path: &Path) -> Result<()> {
    Format::of(path)?;
    ensure_font()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure() -> Figure {
        Figure::new("t", 600, 500)
            .columns(2)
            .panel(
                Panel::new("a", "x", "y")
                    .line(Line::new("up", "#1f77b4", vec![(0.0, 1.0), (10.0, 5.0)]))
                    .line(
                        Line::new(
                            "flat",
                            "#d62728",
                            vec![(0.0, 2.0), (10.0, 2.0), (11.0, f64::NAN)],
                        )
                        .dashed(),
                    ),
            )
            .panel(Panel::new("empty", "x", "y"))
            .panel(Panel::new("one", "x", "y").fit_y().line(Line::new(
                "p",
                "#2ca02c",
                vec![(1.0, 1.0)],
            )))
    }

    #[test]
    fn png_has_the_size_and_the_line_colour() {
        let png = render(&figure(), Format::Png).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (600, 500));
        let blue = img.pixels().filter(|p| p.0 == [0x1f, 0x77, 0xb4]).count();
        // A 1-pixel line at this size is anti-aliased: only part of it is exactly its colour.
        assert!(blue > 20, "{blue} pixels of the line's colour");
        let black = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        assert!(black > 200, "{black} black pixels (axes and text)");
    }

    #[test]
    fn svg_names_the_lines() {
        let svg = String::from_utf8(render(&figure(), Format::Svg).unwrap()).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("flat") && svg.contains("no data"), "{svg}");
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("b.svg")).unwrap(), Format::Svg);
        let e = Format::of(Path::new("b.jpg")).unwrap_err().to_string();
        assert_eq!(e, "b.jpg: the extension must be .png or .svg");
    }

    #[test]
    fn scatter_log_and_linear() {
        let mut sc = Scatter {
            title: "front".into(),
            width: 900,
            height: 600,
            x_label: "cost".into(),
            y_label: "miss %".into(),
            log_y: Some((0.01, 100.0)),
            markers: vec![
                Marker {
                    x: 1.0,
                    y: 0.0,
                    color: "#1f77b4".into(),
                    label: "a".into(),
                },
                Marker {
                    x: 2.0,
                    y: 5.0,
                    color: "#d62728".into(),
                    label: "b; c".into(),
                },
            ],
            line: vec![(1.0, 0.01), (2.0, 5.0)],
            note: "key".into(),
        };
        let png = render_scatter(&sc, Format::Png).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 600));
        assert!(img.pixels().filter(|p| p.0 == [0xd6, 0x27, 0x28]).count() > 100);
        sc.log_y = None;
        let svg = String::from_utf8(render_scatter(&sc, Format::Svg).unwrap()).unwrap();
        assert!(svg.contains("b; c"));
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(110.0), 200.0);
        assert_eq!(nice_max(0.24), 0.25);
        assert_eq!(color("#888"), RGBColor(136, 136, 136));
    }
}
