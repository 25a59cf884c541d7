//! `kis-agent sim-to-real` end to end through the real binary, tiny: its own testbed, one
//! calibration level through nginx, the start-up given (no measurement), one short validation
//! run live through the closed loop and in kis-sim. The table is written with finite values, the
//! two sides saw the same arrivals, and the testbed is gone afterwards.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{turn, workspace};
use crate::demo::{agent_bin, assert_nothing_left, testbed_run_dir, wait_exit};

#[test]
fn sim_to_real_writes_the_table_with_the_same_arrivals_on_both_sides() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let log = out.with_extension("log");
    let mut child = Command::new(agent_bin())
        .current_dir(workspace())
        .args(["sim-to-real", "--calibrate-levels", "1"])
        .args(["--calibrate-rates", "4", "--calibrate-duration", "5s"])
        .args([
            "--calibrate-rounds",
            "1",
            "--step-rounds",
            "0",
            "--startup",
            "3s",
        ])
        .args(["--validate", "spike:4:20", "--duration", "40s", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
        .spawn()
        .expect("start kis-agent sim-to-real");
    let state_dir = std::env::temp_dir().join(format!("kis-demo-{}", child.id()));
    // About 2 minutes on a busy 2-core machine (testbed up, 10 s of calibration, a 40 s run
    // and its drain); the bound leaves room for a slow testbed start.
    let status = wait_exit(
        &mut child,
        Duration::from_secs(480),
        &out.with_extension("err"),
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
    assert!(status.success(), "{status}\n{text}\n{err}");
    let rows: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("rows.json")).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    let num = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    for k in [
        "live_p95_ms",
        "sim_p95_ms",
        "live_rps",
        "sim_rps",
        "offered_rps",
    ] {
        assert!(num(k).is_finite() && num(k) > 0.0, "{k}: {r}");
    }
    for k in ["live_slo_miss_pct", "sim_slo_miss_pct"] {
        assert!((0.0..=100.0).contains(&num(k)), "{k}: {r}");
    }
    // 40 s of 4 -> 20 -> 4 req/s: about 0.6 x 40 x 4 + 0.4 x 40 x 20 = 416 arrivals.
    let (live, sim) = (num("live_arrivals"), num("sim_arrivals"));
    assert!((250.0..=600.0).contains(&live), "{r}");
    // kis-sim replays kis-loadgen's seeded arrival times with the same kis-traffic code, so the
    // counts are equal; 1 % covers an arrival at the very end of the schedule counted by one side.
    assert!(
        (live - sim).abs() <= (0.01 * live).max(1.0),
        "live {live} vs sim {sim} arrivals"
    );
    // The 20 req/s peak is above one replica (~13 req/s): the live loop scaled up, so there
    // are live scale steps, each listed with its simulated partner or without one.
    let steps = r["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "no live scale step: {r}");
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("| spike:4:20 |"), "{table}");
    assert!(
        text.contains("| spike:4:20 |"),
        "the table is printed: {text}"
    );
    let csv = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    assert!(csv.lines().count() > steps.len(), "{csv}");
    let png = std::fs::read(out.join("spike-4-20/replicas.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    for f in [
        "command.txt",
        "machine.txt",
        "profile.json",
        "calibration.txt",
        "spike-4-20/decisions.jsonl",
        "spike-4-20/replicas.csv",
        "spike-4-20/sim-replicas.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let run_dir = testbed_run_dir(&out).expect("the testbed's summary");
    assert_nothing_left(&out, &state_dir, &run_dir);
}
