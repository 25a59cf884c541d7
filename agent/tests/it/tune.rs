//! `kis-agent tune`: budget, never worse than the default, determinism, hand-over to `compare`, bad input.

use clap::Parser;
use kis_agent::cli::{Cli, Command, CompareArgs, TuneArgs};
use kis_agent::tune::{TunedFile, tune, tune_with};
use kis_sim::ScalerSpec;

use super::{run, scratch};

fn tune_args(extra: &[&str]) -> TuneArgs {
    // A short validation window (about 2 simulated minutes) so debug builds stay fast.
    let mut v = vec!["kis-agent", "tune"];
    for (k, val) in [("--days", "0.08"), ("--seeds", "1"), ("--threads", "2")] {
        if !extra.contains(&k) {
            v.extend([k, val]);
        }
    }
    v.extend_from_slice(extra);
    match Cli::try_parse_from(v).unwrap().command {
        Command::Tune(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

fn compare_args(extra: &[&str]) -> CompareArgs {
    let mut v = vec!["kis-agent", "compare"];
    v.extend_from_slice(extra);
    match Cli::try_parse_from(v).unwrap().command {
        Command::Compare(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn budget_is_respected_and_tuned_is_never_worse_than_default() {
    let a = tune_args(&[
        "--autoscaler",
        "hpa-queue,knative",
        "--budget",
        "5",
        "--seeds",
        "2",
    ]);
    let (f, ev) = tune_with(&a).unwrap();
    assert_eq!(f.tuned.len(), 2);
    // Counted in the evaluator where the simulator runs: 2 autoscalers × 5 candidates × 2 seeds.
    assert_eq!(
        ev.runs.load(std::sync::atomic::Ordering::Relaxed),
        2 * 5 * 2
    );
    for t in &f.tuned {
        assert_eq!(t.evaluations, 5, "{}", t.autoscaler);
        assert!(
            t.tuned.objective <= t.default.objective,
            "{}: tuned {:?} worse than default {:?}",
            t.autoscaler,
            t.tuned,
            t.default
        );
        // The reported default score is the default spec's own: re-scoring it reproduces it.
        let default =
            kis_agent::scenario::parse_autoscaler(&t.autoscaler, &ev.base.pools.gpu, ev.base.slo)
                .unwrap();
        let Some(ScalerSpec::Rule(spec)) = default else {
            panic!("not a rule")
        };
        assert_eq!(ev.score(&spec).unwrap(), t.default);
        assert_eq!(ev.score(&t.spec).unwrap(), t.tuned);
        assert_eq!(t.params.len(), t.spec.param_space().len());
    }
}

#[test]
fn same_seed_same_result() {
    let a = tune_args(&["--autoscaler", "keda", "--budget", "4", "--seed", "7"]);
    let x = serde_json::to_string(&tune(&a).unwrap()).unwrap();
    let y = serde_json::to_string(&tune(&a).unwrap()).unwrap();
    assert_eq!(x, y);
    // One thread gives the same answer as two: batches do not depend on timing.
    let b = tune_args(&[
        "--autoscaler",
        "keda",
        "--budget",
        "4",
        "--seed",
        "7",
        "--threads",
        "1",
    ]);
    let z = serde_json::to_string(&tune(&b).unwrap()).unwrap();
    assert_eq!(x, z);
}

#[test]
fn tuned_json_round_trips_into_compare() {
    let d = scratch("tune");
    let out = d.join("tuned.json");
    run(&[
        "tune",
        "--autoscaler",
        "hpa-cpu",
        "--budget",
        "3",
        "--days",
        "0.08",
        "--seeds",
        "1",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let f: TunedFile = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(f.tuned[0].autoscaler, "hpa-cpu");
    assert_eq!(f.budget, 3);
    let c = kis_agent::compare::compare(&compare_args(&[
        "--traces",
        "none",
        "--scenarios",
        "spike",
        "--duration",
        "300",
        "--seeds",
        "1",
        "--only",
        "hpa-cpu",
        "--tuned",
        out.to_str().unwrap(),
    ]))
    .unwrap();
    let setup = c
        .setups
        .iter()
        .find(|s| s.label == "hpa-cpu-tuned")
        .expect("tuned set-up present");
    assert_eq!(
        setup.gpu.1,
        Some(ScalerSpec::Rule(f.tuned[0].spec.clone())),
        "compare runs exactly the tuned spec"
    );
    assert!(c.rows.iter().any(|r| r.setup == "hpa-cpu-tuned"));
    assert!(c.rows.iter().any(|r| r.setup == "hpa-cpu"));
}

#[test]
fn bad_tune_input_is_one_clear_error() {
    let err = |extra: &[&str]| {
        let mut v = vec!["tune"];
        for (k, val) in [("--days", "0.01"), ("--seeds", "1"), ("--budget", "2")] {
            if !extra.contains(&k) {
                v.extend([k, val]);
            }
        }
        v.extend_from_slice(extra);
        format!("{:#}", run(&v).unwrap_err())
    };
    let e = err(&["--autoscaler", "hpa-nope"]);
    assert!(
        e.contains("unknown autoscaler") && e.contains("hpa-nope"),
        "{e}"
    );
    let e = err(&["--autoscaler", "fixed:2"]);
    assert!(e.contains("not a rule-based autoscaler"), "{e}");
    let e = err(&["--budget", "0"]);
    assert!(e.contains("--budget must be at least 1"), "{e}");
    let e = err(&["--trace", "/nonexistent/trace.csv"]);
    assert!(e.contains("/nonexistent/trace.csv"), "{e}");
    let d = scratch("tune-bad");
    let garbage = d.join("garbage.csv");
    std::fs::write(&garbage, "not,a\ntrace,at all\n").unwrap();
    let e = err(&["--trace", garbage.to_str().unwrap()]);
    assert!(e.contains("garbage.csv"), "{e}");
    let e = err(&["--days", "8"]);
    assert!(e.contains("held out"), "{e}");
    let bad = d.join("bad.json");
    std::fs::write(&bad, "{").unwrap();
    let e = format!(
        "{:#}",
        run(&[
            "compare",
            "--traces",
            "none",
            "--tuned",
            bad.to_str().unwrap()
        ])
        .unwrap_err()
    );
    assert!(e.contains("bad.json"), "{e}");
}
