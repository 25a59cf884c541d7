//! The set-ups the demo compares: the shipped policy and the best tuned rule by default; with
//! `--all` also the forecaster and the HPA on queue length. Each is a `kis-agent live --mode full`
//! command line (policy and rule).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One set-up: its label and what `live` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SetUp {
    /// Table label.
    pub name: String,
    /// `--policy` (a `.kpol` file), if any: without one the rule decides alone.
    pub policy: Option<String>,
    /// `--rule`: a shorthand or a JSON spec.
    pub rule: String,
}

/// The best tuned rule of a `kis-agent tune --out` file: the lowest tuned objective. Its label
/// (`NAME-tuned`) and its spec as JSON.
pub fn best_tuned(path: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--tuned {}: cannot read", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("--tuned {}: not JSON", path.display()))?;
    let best = v["tuned"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["spec"].is_object())
        .filter_map(|t| Some((t["tuned"]["objective"].as_f64()?, t)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, t)) = best else {
        bail!(
            "--tuned {}: no tuned rule with a spec and an objective",
            path.display()
        );
    };
    let name = t["autoscaler"].as_str().unwrap_or("rule");
    Ok((format!("{name}-tuned"), t["spec"].to_string()))
}

/// The set-ups in table order.
pub fn setups(policy: &Path, tuned: &Path, all: bool) -> Result<Vec<SetUp>> {
    if !policy.is_file() {
        bail!("--policy {}: no such file", policy.display());
    }
    let (name, spec) = best_tuned(tuned)?;
    let mut v = vec![
        SetUp {
            name: "policy".into(),
            policy: Some(policy.display().to_string()),
            // The fallback when a metric is stale or out of range.
            rule: "hpa-queue".into(),
        },
        SetUp {
            name,
            policy: None,
            rule: spec,
        },
    ];
    if all {
        for r in ["forecast", "hpa-queue"] {
            v.push(SetUp {
                name: r.into(),
                policy: None,
                rule: r.into(),
            });
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_tuned_rule_is_the_lowest_objective() {
        let dir = std::env::temp_dir().join(format!("kis-demo-setups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tuned.json");
        std::fs::write(
            &f,
            r#"{"tuned": [
                {"autoscaler": "a", "spec": {"kind": "hpa"}, "tuned": {"objective": 9.0}},
                {"autoscaler": "b", "spec": {"kind": "keda"}, "tuned": {"objective": 3.0}},
                {"autoscaler": "c", "tuned": {"objective": 1.0}}]}"#,
        )
        .unwrap();
        let (name, spec) = best_tuned(&f).unwrap();
        assert_eq!(name, "b-tuned");
        assert_eq!(spec, r#"{"kind":"keda"}"#);
        std::fs::write(&f, r#"{"tuned": []}"#).unwrap();
        assert!(
            best_tuned(&f)
                .unwrap_err()
                .to_string()
                .contains("no tuned rule")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_shipped_files_give_two_set_ups_and_four_with_all() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let p = root.join("policies/default.kpol");
        let t = root.join("runs/2026-12-03-tune/tuned.json");
        let two = setups(&p, &t, false).unwrap();
        assert_eq!(two.len(), 2);
        assert!(two[1].name.ends_with("-tuned"), "{two:?}");
        let four = setups(&p, &t, true).unwrap();
        let names: Vec<&str> = four.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(&names[2..], ["forecast", "hpa-queue"]);
        assert!(setups(&root.join("nope.kpol"), &t, false).is_err());
    }
}
