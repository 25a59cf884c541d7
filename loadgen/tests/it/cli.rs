use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Behavior, bin, constant_get, start, tempdir};

/// Runs the binary; returns (exit code, stderr).
fn fails(args: &[&str]) -> (i32, String) {
    let out = bin().args(args).arg("--quiet").output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line(args: &[&str], needle: &str) {
    let (code, err) = fails(args);
    assert_ne!(code, 0, "{args:?} should fail");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err:?}");
    assert!(lines[0].starts_with("kis-loadgen: "), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should name {needle:?}"
    );
}

#[test]
fn unknown_pattern_and_flag() {
    assert_one_line(&["--pattern", "zigzag"], "zigzag");
    assert_one_line(&["--frobnicate", "3"], "--frobnicate");
    assert_one_line(&["--arrivals", "bursty"], "bursty");
    assert_one_line(&["--overflow", "spill"], "spill");
}

#[test]
fn impossible_parameters() {
    assert_one_line(
        &["--connections", "4", "--max-in-flight", "8"],
        "--max-in-flight",
    );
    assert_one_line(
        &[
            "--pattern",
            "constant",
            "--rate=-5",
            "--url",
            "http://127.0.0.1:1/",
            "--method",
            "GET",
        ],
        "rate",
    );
    assert_one_line(&["--pattern", "periodic", "--steps", "3"], "--steps");
    assert_one_line(&["--duration", "soon"], "soon");
    assert_one_line(&["--users", "3", "--wait", "3s..1s"], "--wait");
    assert_one_line(&["--url", "https://127.0.0.1:8000"], "https");
    assert_one_line(&["--pattern", "trace"], "--trace");
    assert_one_line(&["--users", "3", "--busy-poll"], "--busy-poll");
    assert_one_line(&["--start-at", "2001-01-01T00:00:00Z"], "in the past");
    assert_one_line(&["--start-at", "noonish"], "--start-at");
    assert_one_line(&["--shard", "4/4"], "shard index 4");
    assert_one_line(&["--shards", "4"], "JOB_COMPLETION_INDEX");
}

#[test]
fn unreachable_target() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    assert_one_line(
        &[
            "--url",
            "http://127.0.0.1:1",
            "--model",
            "m",
            "--ready-timeout",
            "300ms",
        ],
        "127.0.0.1:1",
    );
    assert_one_line(
        &[
            "--url",
            "http://127.0.0.1:1/",
            "--method",
            "GET",
            "--ready-timeout",
            "300ms",
        ],
        "cannot reach",
    );
}

#[test]
fn unreadable_input_names_its_flag() {
    let srv = start(Behavior::Kserve);
    assert_one_line(
        &[
            "--url",
            &srv.url(),
            "--model",
            "m",
            "--input",
            "/nonexistent",
        ],
        "--input /nonexistent: No such file",
    );
    assert_one_line(
        &[
            "--url",
            &format!("{}/", srv.url()),
            "--body-file",
            "/nonexistent",
        ],
        "--body-file /nonexistent: No such file",
    );
}

/// A typo in an output path fails before any request is sent, naming the flag and the problem.
#[test]
fn bad_output_paths_fail_before_any_request() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("badout");
    let missing = dir.join("missing").join("x.json");
    let cases: [(&str, String, &str); 5] = [
        (
            "--plot",
            dir.join("out.gif").display().to_string(),
            ".png or .svg",
        ),
        ("--json", missing.display().to_string(), "does not exist"),
        (
            "--csv",
            dir.join("nodir").join("p").display().to_string(),
            "does not exist",
        ),
        ("--hdr-log", dir.display().to_string(), "is a directory"),
        ("--json", "/proc/x.json".to_string(), "not writable"),
    ];
    for (flag, path, why) in &cases {
        let flags = constant_get(&srv.url(), "50", "10s");
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend([*flag, path.as_str()]);
        let started = Instant::now();
        assert_one_line(&args, why);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{flag} {path}: failed only after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        srv.requests.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no request before the outputs were checked"
    );
}

#[test]
fn unknown_model() {
    let srv = start(Behavior::Kserve);
    assert_one_line(
        &["--url", &srv.url(), "--model", "nosuch"],
        "unknown model \"nosuch\"",
    );
}

#[test]
fn malformed_trace_file() {
    let dir = tempdir("trace");
    let f = dir.join("bad.csv");
    std::fs::write(&f, "t_seconds,rate_rps\n0,10\n1,abc\n").unwrap();
    assert_one_line(
        &["--pattern", "trace", "--trace", f.to_str().unwrap()],
        "bad.csv",
    );
    assert_one_line(
        &[
            "--pattern",
            "trace",
            "--trace",
            dir.join("missing.csv").to_str().unwrap(),
        ],
        "missing.csv",
    );
}

/// SIGINT stops scheduling, drains, and still writes every output.
#[test]
fn sigint_flushes_every_output() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("sigint");
    let json = dir.join("r.json");
    let prefix = dir.join("c");
    let mut child = bin()
        .args(constant_get(&srv.url(), "100", "60s"))
        .args([
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            prefix.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, took) = interrupt_after(&mut child, Duration::from_millis(2500));
    assert!(took < Duration::from_secs(6), "drain took {took:?}");
    // A run cut short exits 130 (documented), not 0: scripts can tell it from a full run.
    assert_eq!(status.code(), Some(130), "{status:?}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["interrupted"], true);
    let n = doc["totals"]["requests"].as_u64().unwrap();
    assert!((150..=300).contains(&n), "{n} requests in ~2.5 s at 100/s");
    assert_eq!(doc["totals"]["ok"].as_u64().unwrap(), n);
    assert!(dir.join("c_stats.csv").exists() && dir.join("c_stats_history.csv").exists());
}

/// `--busy-poll` names its own stalls: a SIGSTOP of the whole generator for 300 ms (what a host
/// stall does to a vCPU) shows up as a dispatcher gap of about that length in the JSON report,
/// the summary and the late-send warning, so lag it causes is not blamed on the server.
#[test]
fn busy_poll_reports_a_stopped_generator_as_a_dispatcher_gap() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("gap");
    let json = dir.join("r.json");
    let child = bin()
        .args(constant_get(&srv.url(), "200", "4s"))
        .args(["--busy-poll", "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    // Well inside the schedule (start-up against a local server takes milliseconds).
    std::thread::sleep(Duration::from_millis(1500));
    let signal = |sig: &str| {
        let s = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(s.success(), "kill {sig}");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(300));
    signal("-CONT");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let g = &doc["totals"]["dispatcher_gaps"];
    let (count, total, max) = (
        g["count"].as_u64().unwrap(),
        g["total_us"].as_u64().unwrap(),
        g["max_us"].as_u64().unwrap(),
    );
    assert!(count >= 1 && total >= max, "{g}");
    // The stop lasts at least the 300 ms between the signals; scheduling may stretch it.
    assert!((290_000..2_000_000).contains(&max), "{g}");
    // The windows' gaps add up to the run's.
    let windows = doc["windows"].as_array().unwrap();
    let in_windows: u64 = windows
        .iter()
        .map(|w| w["dispatcher_gaps"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(in_windows, count);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.lines().any(|l| l.starts_with("dispatcher ")
            && l.contains("gaps of 1 ms or more")
            && l.contains("did not run")),
        "{summary}"
    );
    // ~60 of 800 sends fell due in the stop: far over the 1 % late-send threshold.
    let warnings = doc["generator"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("dispatcher itself did not run")),
        "{warnings:?}"
    );
}

/// An unschedulable rate is refused at once, naming the limit.
#[test]
fn an_absurd_rate_is_refused_with_the_limit() {
    let started = Instant::now();
    assert_one_line(
        &[
            "--url",
            "http://127.0.0.1:1/",
            "--method",
            "GET",
            "--pattern",
            "constant",
            "--rate",
            "1e12",
            "--duration",
            "2s",
        ],
        "1e9 req/s that can be scheduled",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A rate far beyond what the generator can send (1e8 req/s on two connections) keeps every
/// loop interruptible: SIGINT ends the run within about a second (here: 2.5 s, for a busy
/// machine), with every output written and the never-sent arrivals counted (in closed form,
/// not one by one), both when due arrivals queue and when they are dropped.
#[test]
fn a_huge_rate_honours_sigint_and_counts_what_it_never_sent() {
    let srv = start(Behavior::Fast);
    for overflow in ["queue", "drop"] {
        let dir = tempdir(&format!("huge-{overflow}"));
        let json = dir.join("r.json");
        let mut child = bin()
            .args(constant_get(&srv.url(), "1e8", "60s"))
            .args([
                "--quiet",
                "--connections",
                "2",
                "--overflow",
                overflow,
                "--json",
                json.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (status, took) = interrupt_after(&mut child, Duration::from_millis(2000));
        assert!(
            took < Duration::from_millis(2500),
            "{overflow}: exit took {took:?}"
        );
        assert_eq!(status.code(), Some(130), "{overflow}: {status:?}");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let t = &doc["totals"];
        let n = |k: &str| t[k].as_u64().unwrap();
        assert_eq!(
            n("scheduled"),
            n("requests") + n("dropped") + n("cancelled"),
            "{overflow}: {t}"
        );
        // About 1.8 s of schedule at 1e8/s ran before the signal.
        assert!(
            n("dropped") + n("cancelled") > 50_000_000,
            "{overflow}: {t}"
        );
    }
}

/// Sends SIGINT to `child` after `after`, waits for it to exit: its status, and how long it took
/// from the signal.
fn interrupt_after(
    child: &mut std::process::Child,
    after: Duration,
) -> (std::process::ExitStatus, Duration) {
    std::thread::sleep(after);
    let sent_at = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    (status, sent_at.elapsed())
}
