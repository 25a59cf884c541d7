//! Recorded request-rate traces: `t_seconds,rate_rps` CSV files (see `shared/traces/README.md`),
//! replayed as a step-hold profile.

use std::path::{Path, PathBuf};

use crate::profile::{Kind, Profile};
use crate::{Error, Result};

/// One bin of a trace: the rate from `t` until the next bin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bin {
    /// Start of the bin, seconds from the trace's first bin.
    pub t: f64,
    /// Requests per second during the bin.
    pub rate: f64,
}

/// Reads and checks a trace file. The first line may be a header; every other non-empty line is
/// `t_seconds,rate_rps` with `t` strictly increasing and the rate finite and >= 0.
pub fn read(path: &Path) -> Result<Vec<Bin>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::TraceIo {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses trace text; `path` is only used in error messages.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Bin>> {
    let bad = |line: usize, msg: String| Error::TraceFormat {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut bins: Vec<Bin> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim();
        if row.is_empty() || row.starts_with('#') {
            continue;
        }
        let mut fields = row.split(',').map(str::trim);
        let (a, b) = match (fields.next(), fields.next(), fields.next()) {
            (Some(a), Some(b), None) => (a, b),
            _ => {
                return Err(bad(
                    line,
                    format!("expected two columns `t_seconds,rate_rps`, got `{row}`"),
                ));
            }
        };
        let (t, rate) = match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(t), Ok(r)) => (t, r),
            // A header is allowed on the first row only.
            _ if bins.is_empty() && line == first_row(text) => continue,
            _ => return Err(bad(line, format!("not a number in `{row}`"))),
        };
        if !t.is_finite() || t < 0.0 {
            return Err(bad(
                line,
                format!("t_seconds must be finite and >= 0, got {a}"),
            ));
        }
        if !rate.is_finite() || rate < 0.0 {
            return Err(bad(
                line,
                format!("rate_rps must be finite and >= 0, got {b}"),
            ));
        }
        if let Some(prev) = bins.last()
            && t <= prev.t
        {
            return Err(bad(
                line,
                format!("t_seconds must increase, {t} follows {}", prev.t),
            ));
        }
        bins.push(Bin { t, rate });
    }
    if bins.is_empty() {
        return Err(Error::TraceEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(bins)
}

/// Line number (1-based) of the first non-empty, non-comment line.
fn first_row(text: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map_or(0, |i| i + 1)
}

/// Width of each bin: up to the next bin; the last bin repeats the previous width (1 s for a
/// single-bin trace).
fn widths(bins: &[Bin]) -> Vec<f64> {
    let mut w: Vec<f64> = bins.windows(2).map(|p| p[1].t - p[0].t).collect();
    w.push(w.last().copied().unwrap_or(1.0));
    w
}

/// Builds the replay profile of `bins` for the window `[offset, offset + limit)` of trace time,
/// rates multiplied by `scale` and time divided by `speedup`.
pub(crate) fn profile(
    path: &Path,
    bins: &[Bin],
    scale: f64,
    speedup: f64,
    offset: f64,
    limit: Option<f64>,
) -> Result<Profile> {
    let w = widths(bins);
    let end_of_trace = bins.last().map_or(0.0, |b| b.t) + w.last().copied().unwrap_or(0.0);
    let (lo, hi) = (
        offset,
        limit.map_or(end_of_trace, |l| (offset + l).min(end_of_trace)),
    );
    if hi <= lo {
        return Err(Error::TraceWindow {
            path: PathBuf::from(path),
            offset,
            length: end_of_trace,
        });
    }
    let first = bins[0].t;
    let mut pieces = Vec::new();
    // Time before the first bin (a trace need not start at 0) replays as silence.
    if first > lo {
        pieces.push(((first.min(hi) - lo) / speedup, Kind::Const(0.0)));
    }
    for (b, width) in bins.iter().zip(&w) {
        let (s, e) = (b.t.max(lo), (b.t + width).min(hi));
        if e > s {
            pieces.push(((e - s) / speedup, Kind::Const(b.rate * scale)));
        }
    }
    Ok(Profile::from_pieces(pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    #[test]
    fn parses_header_and_rows() {
        let bins = parse(p(), "t_seconds,rate_rps\n0,2\n1,0\n2,5.5\n").unwrap();
        assert_eq!(bins.len(), 3);
        assert_eq!(bins[2], Bin { t: 2.0, rate: 5.5 });
    }

    #[test]
    fn errors_name_the_line_and_problem() {
        let cases = [
            ("t_seconds,rate_rps\n0,2\nx,3\n", "line 3"),
            ("0,2\n0,3\n", "must increase"),
            ("0,-2\n", "rate_rps must be finite and >= 0"),
            ("0,2,3\n", "two columns"),
            ("t_seconds,rate_rps\n", "no rows"),
            ("0,inf\n", "rate_rps"),
        ];
        for (text, want) in cases {
            let err = parse(p(), text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("t.csv"), "{err}");
        }
    }

    #[test]
    fn window_scale_and_speedup() {
        let bins = parse(p(), "0,1\n60,2\n120,3\n").unwrap();
        // Whole trace: three 60 s bins.
        let all = profile(p(), &bins, 1.0, 1.0, 0.0, None).unwrap();
        assert_eq!(all.duration(), 180.0);
        assert_eq!(all.cumulative(180.0), 60.0 + 120.0 + 180.0);
        // Window [30, 150) of trace time, rates x2, 60x faster: 2 s of replay.
        let w = profile(p(), &bins, 2.0, 60.0, 30.0, Some(120.0)).unwrap();
        assert!((w.duration() - 2.0).abs() < 1e-12);
        assert_eq!(w.rate(0.1), 2.0);
        assert_eq!(w.rate(1.0), 4.0);
        assert_eq!(w.rate(1.9), 6.0);
        // A window past the end is an error.
        assert!(profile(p(), &bins, 1.0, 1.0, 500.0, None).is_err());
    }
}
