//! The train / validation / held-out split of the real traces in `shared/traces/` (its README's
//! "Train, validate, evaluate"), and the one check that everything which trains or tunes calls:
//! [`ensure_not_held_out`]. Held-out data is for final evaluation only.
//!
//! A trace is recognised by its file name, and also by its content when a held-out file was copied
//! under another name (compared byte for byte with the files in `shared/traces/`, when that folder
//! is found). Files the split does not know (your own traces) are allowed.

use std::path::Path;

use kis_traffic::ShapeSpec;

use crate::{Error, Result};

const DAY: f64 = 86_400.0;

/// Which part of the split a stretch of trace time belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracePart {
    /// May be trained on.
    Train,
    /// May be used to validate and to tune baselines.
    Validation,
    /// Final evaluation only.
    HeldOut,
}

/// One entry of the split: a file and the trace-time window `[from, to)` (seconds) that may be used
/// for training or validation; anything outside it is held out. `None`: the whole file is held out.
#[derive(Clone, Copy, Debug)]
pub struct SplitEntry {
    /// File name in `shared/traces/`.
    pub file: &'static str,
    /// Usable window and its part; `None` = held out entirely.
    pub usable: Option<(f64, f64, TracePart)>,
}

/// The split, as `shared/traces/README.md` states it (a test checks the README still lists every
/// held-out file named here).
pub const SPLIT: [SplitEntry; 8] = [
    SplitEntry {
        file: "nasa1995_rate_60s.csv",
        usable: Some((30.0 * DAY, 58.0 * DAY, TracePart::Train)),
    },
    SplitEntry {
        file: "servegen_mlarge_rate_60s.csv",
        usable: Some((0.0, 7.0 * DAY, TracePart::Validation)),
    },
    SplitEntry {
        file: "servegen_mlarge_rate_600s_native.csv",
        usable: Some((0.0, 7.0 * DAY, TracePart::Validation)),
    },
    SplitEntry {
        file: "azure_llm2023_code_rate_1s.csv",
        usable: None,
    },
    SplitEntry {
        file: "azure_llm2023_conv_rate_1s.csv",
        usable: None,
    },
    SplitEntry {
        file: "twitter2021_spikewindow_rate_1s.csv",
        usable: None,
    },
    SplitEntry {
        file: "twitter2021_rate_60s.csv",
        usable: None,
    },
    SplitEntry {
        file: "nasa1995_busiestday_rate_1s.csv",
        usable: None,
    },
];

fn entry_by_name(path: &Path) -> Option<&'static SplitEntry> {
    let name = path.file_name()?.to_str()?;
    SPLIT.iter().find(|e| e.file == name)
}

/// The split entry of a file renamed from one in `shared/traces/` (same bytes).
fn entry_by_content(path: &Path) -> Option<&'static SplitEntry> {
    let dir = kis_traffic::shared_dir()?.join("traces");
    let len = std::fs::metadata(path).ok()?.len();
    let mut mine: Option<Vec<u8>> = None;
    SPLIT.iter().find(|e| {
        let other = dir.join(e.file);
        if std::fs::metadata(&other).map(|m| m.len()).ok() != Some(len) {
            return false;
        }
        if mine.is_none() {
            mine = std::fs::read(path).ok();
        }
        mine.as_deref()
            .is_some_and(|m| std::fs::read(&other).is_ok_and(|o| o == m))
    })
}

/// The part of the split the trace-time window `[from, to)` of `path` falls in: `None` for a file
/// the split does not know. A window that reaches outside the usable stretch is held out.
pub fn trace_part(path: &Path, from: f64, to: f64) -> Option<TracePart> {
    let e = entry_by_name(path).or_else(|| entry_by_content(path))?;
    Some(match e.usable {
        Some((lo, hi, part)) if from >= lo && to <= hi => part,
        _ => TracePart::HeldOut,
    })
}

/// Refuses (with an error naming the file and the allowed window) a trace window that touches
/// held-out data. `limit` absent = to the end of the trace. Call it from anything that trains or
/// tunes, before using a trace.
pub fn ensure_not_held_out(path: &Path, offset: f64, limit: Option<f64>) -> Result<()> {
    let to = limit.map_or(f64::INFINITY, |l| offset + l);
    if trace_part(path, offset, to) != Some(TracePart::HeldOut) {
        return Ok(());
    }
    let e = entry_by_name(path).or_else(|| entry_by_content(path));
    let allowed = match e.and_then(|e| e.usable) {
        Some((lo, hi, _)) => format!(
            "only trace seconds [{lo}, {hi}) (days {}-{}) may be trained or tuned on",
            lo / DAY,
            hi / DAY - 1.0
        ),
        None => "the whole file is held out".into(),
    };
    Err(Error::invalid(
        "workload.shape.path",
        format!(
            "{} window [{offset}, {to}) s is held-out data (shared/traces/README.md): {allowed}",
            path.display()
        ),
    ))
}

/// [`ensure_not_held_out`] for a workload shape (a no-op for synthetic shapes).
pub fn ensure_shape_not_held_out(shape: &ShapeSpec) -> Result<()> {
    match shape {
        ShapeSpec::Trace {
            path,
            offset,
            limit,
            ..
        } => ensure_not_held_out(path, *offset, *limit),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_files_and_windows_are_refused() {
        let p = Path::new("/somewhere/azure_llm2023_conv_rate_1s.csv");
        let e = ensure_not_held_out(p, 0.0, Some(60.0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("azure_llm2023_conv") && e.contains("held out"),
            "{e}"
        );
        let s = Path::new("x/servegen_mlarge_rate_60s.csv");
        assert!(ensure_not_held_out(s, 0.0, Some(6.0 * DAY)).is_ok());
        let e = ensure_not_held_out(s, 6.0 * DAY, Some(2.0 * DAY))
            .unwrap_err()
            .to_string();
        assert!(e.contains("days 0-6"), "{e}");
        assert!(
            ensure_not_held_out(s, 0.0, None).is_err(),
            "to the end reaches day 13"
        );
        let n = Path::new("nasa1995_rate_60s.csv");
        assert!(
            ensure_not_held_out(n, 12.0 * DAY, Some(3600.0)).is_err(),
            "busiest day"
        );
        assert!(ensure_not_held_out(n, 31.0 * DAY, Some(3600.0)).is_ok());
        assert_eq!(
            trace_part(n, 31.0 * DAY, 32.0 * DAY),
            Some(TracePart::Train)
        );
        assert!(ensure_not_held_out(Path::new("/tmp/mine.csv"), 0.0, None).is_ok());
    }

    /// The split here matches shared/traces/README.md, and a renamed copy of a held-out file is
    /// still refused. Needs the shared folder (absent in a bare checkout: then it says so and
    /// checks nothing).
    #[test]
    fn split_matches_the_traces_readme_and_catches_renamed_copies() {
        let Some(dir) = kis_traffic::shared_dir().map(|d| d.join("traces")) else {
            eprintln!("no shared/traces folder: split_matches_the_traces_readme skipped");
            return;
        };
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        // The Held-out bullet with its continuation lines.
        let mut bullet = String::new();
        for l in readme
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("- Held-out:"))
        {
            if !bullet.is_empty() && (l.trim().is_empty() || l.trim_start().starts_with(['-', '#']))
            {
                break;
            }
            bullet.push_str(l);
        }
        let names: Vec<&str> = bullet.split('`').skip(1).step_by(2).collect();
        assert!(names.len() >= 6, "{names:?}");
        for n in &names {
            assert!(SPLIT.iter().any(|e| e.file == *n), "{n} not in SPLIT");
            assert!(ensure_not_held_out(Path::new(n), 0.0, None).is_err(), "{n}");
        }
        let src = dir.join("azure_llm2023_code_rate_1s.csv");
        let copy = std::env::temp_dir().join(format!("kis-split-{}.csv", std::process::id()));
        std::fs::copy(&src, &copy).unwrap();
        let refused = ensure_not_held_out(&copy, 0.0, Some(60.0)).is_err();
        std::fs::remove_file(&copy).unwrap();
        assert!(refused, "renamed held-out copy accepted");
    }
}
