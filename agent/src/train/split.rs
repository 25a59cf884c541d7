//! The train / validation / held-out split of the real traces (shared/traces/README.md), checked
//! before training: held-out data is for the final evaluation only. A local copy of the rule until
//! the arena's shared one replaces it.

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
    if SERVEGEN.contains(&name.as_str()) {
        let end = offset + limit.unwrap_or(f64::INFINITY);
        if end > 7.0 * 86_400.0 {
            return Some(format!(
                "{name} beyond day 7 (offset {offset} s, limit {limit:?}) reaches the held-out days 7-13; days 0-6 are validation"
            ));
        }
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
        assert!(held_out_reason(&trace(sg, 0.0, Some(7.0 * 86_400.0))).is_none());
        assert!(held_out_reason(&trace(sg, 86_400.0, Some(6.5 * 86_400.0))).is_some());
        assert!(held_out_reason(&trace(sg, 0.0, None)).is_some());
        assert!(held_out_reason(&trace("nasa1995_rate_60s.csv", 0.0, None)).is_none());
        assert!(held_out_reason(&ShapeSpec::default_for(kis_traffic::Pattern::Spike)).is_none());
    }
}
