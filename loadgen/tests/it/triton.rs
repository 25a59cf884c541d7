//! Against the real Triton (kis-fixtures; installed by scripts/setup.d/20-triton.sh).

use kis_fixtures::Triton;

use crate::common::{run, tempdir};

/// A 1 s constant-rate run against `model` on the Triton at `url`, with `extra` flags.
fn constant_1s(url: &str, model: &str, rate: &str, extra: &[&str]) -> kis_loadgen::Report {
    let mut args = vec![
        "--url",
        url,
        "--model",
        model,
        "--pattern",
        "constant",
        "--rate",
        rate,
        "--duration",
        "1s",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn identity_and_image_binary_and_json_and_faulty_errors_by_kind() {
    let triton = Triton::start().expect("Triton fixture (run scripts/setup.sh)");
    let url = triton.http_url();
    for (model, shape, rate) in [("identity", "INPUT0:1,16", "50"), ("image", "", "10")] {
        for json in [false, true] {
            let mut args = vec![
                "--url",
                &url,
                "--model",
                model,
                "--pattern",
                "constant",
                "--rate",
                rate,
                "--duration",
                "2s",
                "--timeout",
                "20s",
                "--grace",
                "20s",
            ];
            if !shape.is_empty() {
                args.extend(["--shape", shape]);
            }
            if json {
                args.push("--json-body");
            }
            let r = run(&args);
            let want: u64 = rate.parse::<u64>().unwrap() * 2;
            assert_eq!(
                r.totals.requests, want,
                "{model} json={json}: {:?}",
                r.totals
            );
            assert_eq!(r.totals.ok, want, "{model} json={json}: {:?}", r.totals);
            // Triton's statistics extension was read: server-side successes per window.
            let served: u64 = r.windows.iter().filter_map(|w| w.server_success).sum();
            assert!(served >= want, "{model}: server counted {served} of {want}");
            if model == "image" && !json {
                // A JSON header of a few hundred bytes, then the 1x3x224x224 FP32 tensor.
                assert!(
                    (602_112..603_000).contains(&r.request_bytes),
                    "{}",
                    r.request_bytes
                );
                // The default (auto) measured each way at start-up and says so.
                let sp = r.send_path.as_ref().expect("send_path in the report");
                assert!(sp.how.starts_with("calibrated"), "{sp:?}");
                // splice is left out for a user whose pipe budget 64 connections would pass.
                assert!(sp.cpu_us.len() >= 2, "{sp:?}");
                assert!(sp.cpu_us.contains_key(&sp.path), "{sp:?}");
            }
        }
    }
    // Every way of sending the 602 KB tensor (write, sendfile, splice): Triton parses each
    // request's header length and tensor size, so a byte missing or extra fails it.
    for path in ["write", "sendfile", "splice"] {
        let r = constant_1s(
            &url,
            "image",
            "10",
            &["--send-path", path, "--timeout", "20s", "--grace", "20s"],
        );
        assert_eq!(
            (r.totals.requests, r.totals.ok),
            (10, 10),
            "{path}: {:?}",
            r.totals
        );
        let sp = r.send_path.as_ref().expect("send_path in the report");
        assert_eq!(sp.path.as_str(), path, "{sp:?}");
    }
    // faulty: INPUT0[0] == -1 answers with an error, <= -2 raises; both are status errors (500).
    let dir = tempdir("faulty");
    for v in [-1.0f32, -2.0] {
        let f = dir.join(format!("in{v}.bin"));
        std::fs::write(&f, v.to_le_bytes()).unwrap();
        let r = constant_1s(&url, "faulty", "20", &["--input", f.to_str().unwrap()]);
        assert_eq!(r.totals.ok, 0, "{v}: {:?}", r.totals);
        assert_eq!(
            r.totals.errors_by_kind.get("status"),
            Some(&20),
            "{v}: {:?}",
            r.totals
        );
        assert!(
            r.totals
                .by_status
                .keys()
                .all(|k| k.starts_with('4') || k.starts_with('5'))
        );
    }
    // A sleep longer than --timeout is a timeout error.
    let f = dir.join("slow.bin");
    std::fs::write(&f, 1500.0f32.to_le_bytes()).unwrap();
    let r = constant_1s(
        &url,
        "faulty",
        "4",
        &["--input", f.to_str().unwrap(), "--timeout", "300ms"],
    );
    assert_eq!(
        r.totals.errors_by_kind.get("timeout"),
        Some(&4),
        "{:?}",
        r.totals
    );
    triton.stop().unwrap();
}

/// The fault model's delays make the real Triton the limit (one instance, 40 ms per request:
/// 25 req/s against 60 req/s offered on 8 connections): the saturation warning says "the server
/// is saturated", with Triton's own queue time as evidence, and does not ask for connections.
#[test]
fn a_slow_triton_is_named_as_the_saturated_side() {
    let triton = Triton::start().expect("Triton fixture (run scripts/setup.sh)");
    let dir = tempdir("faulty-slow");
    let f = dir.join("delay40.bin");
    std::fs::write(&f, 40.0f32.to_le_bytes()).unwrap();
    let r = run(&[
        "--url",
        &triton.http_url(),
        "--model",
        "faulty",
        "--input",
        f.to_str().unwrap(),
        "--pattern",
        "constant",
        "--rate",
        "60",
        "--duration",
        "4s",
        "--connections",
        "8",
        "--grace",
        "1s",
    ]);
    let w = r.generator.warnings.join("\n");
    assert!(w.contains("the server is saturated"), "{w}");
    assert!(!w.contains("generator saturated"), "{w}");
    assert!(!w.contains("raise --connections"), "{w}");
    triton.stop().unwrap();
}
