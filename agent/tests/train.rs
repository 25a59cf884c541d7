//! `kis-agent train` (feature `train`): a short run writes its folder, resumes, is deterministic
//! for a seed, and bad input (held-out trace, unknown device, an existing run, a corrupt or
//! foreign checkpoint) fails with one line and leaves the folder as it was.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use kis_agent::cli::Cli;
use kis_policy::Policy;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("learn/scenarios/paper-spike.json")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kis-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(out: &Path, extra: &[&str]) -> anyhow::Result<()> {
    let sc = scenario();
    let mut args = vec![
        "kis-agent",
        "train",
        "--scenario",
        sc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "512",
        "--envs",
        "2",
        "--rollout",
        "64",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "2",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    kis_agent::run(Cli::try_parse_from(args)?)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn trains_resumes_and_is_deterministic() {
    let (a, b) = (tmp("a"), tmp("b"));
    train(&a, &["--pause-after", "2"]).unwrap();
    for f in [
        "policy.kpol",
        "checkpoint.ckpt",
        "log.csv",
        "curves.png",
        "run.json",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    // Continue the same run to 512 steps; a straight 512-step run must end with the same weights.
    train(&a, &["--resume"]).unwrap();
    train(&b, &[]).unwrap();
    let (pa, pb) = (
        Policy::load(&a.join("policy.kpol")).unwrap(),
        Policy::load(&b.join("policy.kpol")).unwrap(),
    );
    assert_eq!(pa.header().provenance.steps, 512);
    assert_eq!(
        pa.weights(),
        pb.weights(),
        "resumed run differs from the straight one"
    );
    assert_eq!(pa.norm(), pb.norm());
    let log = std::fs::read_to_string(a.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 4, "header + 4 iterations:\n{log}");

    // An existing run is not overwritten without --resume.
    let before = snapshot(&a);
    let e = train(&a, &[]).unwrap_err().to_string();
    assert!(e.contains("already holds a run"), "{e}");
    assert_eq!(snapshot(&a), before);

    // A corrupt checkpoint is refused; nothing changes.
    let ck = a.join("checkpoint.ckpt");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let before = snapshot(&a);
    let e = format!("{:#}", train(&a, &["--resume"]).unwrap_err());
    assert!(
        e.contains("checkpoint.ckpt") && e.contains("checksum"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    assert_eq!(snapshot(&a), before);
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn a_checkpoint_of_another_observation_spec_is_refused() {
    let dir = tmp("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = kis_learn::PpoConfig {
        n_steps: 8,
        total_steps: 32,
        ..Default::default()
    };
    let t = kis_learn::Trainer::new(
        cfg,
        kis_learn::CartPole::new(2),
        kis_learn::tch::Device::Cpu,
    )
    .unwrap();
    t.save_checkpoint(&dir.join("checkpoint.ckpt"), Default::default())
        .unwrap();
    let before = snapshot(&dir);
    let e = format!("{:#}", train(&dir, &["--resume"]).unwrap_err());
    assert!(e.contains("cartpole-v1") && e.contains("default-v1"), "{e}");
    assert_eq!(snapshot(&dir), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_one_line_and_a_failure() {
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let held = dir.join("held.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scenario()).unwrap()).unwrap();
    v["shapes"] =
        serde_json::json!([{ "pattern": "trace", "path": "twitter2021_spikewindow_rate_1s.csv" }]);
    std::fs::write(&held, v.to_string()).unwrap();
    let out = dir.join("run");
    let bin = env!("CARGO_BIN_EXE_kis-agent");
    let sc = scenario();
    let cases: [(&[&str], &str); 3] = [
        (&["--scenario", held.to_str().unwrap()], "held-out data"),
        (
            &["--scenario", sc.to_str().unwrap(), "--device", "tpu"],
            "unknown device",
        ),
        (&["--scenario", "/nonexistent.json"], "cannot read scenario"),
    ];
    for (args, want) in cases {
        let o = Command::new(bin)
            .arg("train")
            .args(args)
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!out.exists(), "{args:?} created the run folder");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
