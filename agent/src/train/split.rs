//! The train / validation / held-out split of the real traces (shared/traces/README.md), checked
//! before training: training uses the synthetic shapes and nasa1995_rate_60s.csv days 30-57 only;
//! the validation split (ServeGen days 0-6) is for evaluation during training and tuning, held-out
//! data for the final evaluation. Trace files outside the shared set are the user's own and pass.
//! A local copy of the rule until the arena's shared one replaces it.

use kis_traffic::ShapeSpec;

/// Trace files that are held out entirely.
pub const HELD_OUT: [&str; 5] = [
    "azure_llm2023_code_rate_1s.csv",
    "azure_llm2023_conv_rate_1s.csv",
    "twitter2021_spikewindow_rate_1s.csv",
    "twitter2021_rate_60s.csv",
    "nasa1995_busiestday_rate_1s.csv",
];

/// ServeGen traces whose days 7-13 are held out (days 0-6 are the validation split).
const SERVEGEN: [&str; 2] = [
    "servegen_mlarge_rate_60s.csv",
    "servegen_mlarge_rate_600s_native.csv",
];

/// The NASA trace whose days 30-57 are the training split (its day 12 is the held-out busiest day).
const NASA: &str = "nasa1995_rate_60s.csv";
const DAY: f64 = 86_400.0;

/// Why `shape` may not be trained on, or None if it may.
pub fn held_out_reason(shape: &ShapeSpec) -> Option<String> {
    let ShapeSpec::Trace {
        path,
        offset,
        limit,
        ..
    } = shape
    else {
        return None;
    };
    let name = path.file_name()?.to_string_lossy().to_string();
    if HELD_OUT.contains(&name.as_str()) {
        return Some(format!(
            "{name} is a held-out trace (shared/traces/README.md): evaluation only, never training"
        ));
    }
    let end = offset + limit.unwrap_or(f64::INFINITY);
    if SERVEGEN.contains(&name.as_str()) {
        if end > 7.0 * DAY {
            return Some(format!(
                "{name} beyond day 7 (offset {offset} s, limit {limit:?}) reaches the held-out days 7-13"
            ));
        }
        return Some(format!(
            "{name} days 0-6 are the validation split: evaluated during training, not trained on"
        ));
    }
    if name == NASA && (*offset < 30.0 * DAY || end > 58.0 * DAY) {
        return Some(format!(
            "{name}: only days 30-57 are training data (offset {offset} s, limit {limit:?}; day 12 is held out)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(name: &str, offset: f64, limit: Option<f64>) -> ShapeSpec {
        ShapeSpec::Trace {
            path: format!("/x/traces/{name}").into(),
            scale: 1.0,
            speedup: 1.0,
            offset,
            limit,
        }
    }

    #[test]
    fn held_out_traces_and_days_are_refused() {
        for name in HELD_OUT {
            assert!(
                held_out_reason(&trace(name, 0.0, Some(60.0))).is_some(),
                "{name}"
            );
        }
        let sg = "servegen_mlarge_rate_60s.csv";
        let why = held_out_reason(&trace(sg, 0.0, Some(7.0 * DAY))).unwrap();
        assert!(why.contains("validation"), "{why}");
        let why = held_out_reason(&trace(sg, DAY, Some(6.5 * DAY))).unwrap();
        assert!(why.contains("held-out"), "{why}");
        assert!(held_out_reason(&trace(sg, 0.0, None)).is_some());
        assert!(held_out_reason(&trace(NASA, 30.0 * DAY, Some(28.0 * DAY))).is_none());
        assert!(held_out_reason(&trace(NASA, 0.0, None)).is_some());
        assert!(held_out_reason(&trace(NASA, 30.0 * DAY, None)).is_some());
        assert!(held_out_reason(&trace(NASA, 11.0 * DAY, Some(DAY))).is_some());
        assert!(held_out_reason(&trace("my_own.csv", 0.0, None)).is_none());
        assert!(held_out_reason(&ShapeSpec::default_for(kis_traffic::Pattern::Spike)).is_none());
    }
}
