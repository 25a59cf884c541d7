//! kis-agent subcommands, called in-process.

use std::path::PathBuf;

use clap::Parser;
use kis_agent::cli::Cli;

mod deploy;
mod eval;
mod shipped;
mod tune;

/// A fresh scratch directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kis-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["kis-agent"];
    v.extend_from_slice(args);
    kis_agent::run(Cli::try_parse_from(v)?)
}

#[test]
fn simulate_writes_csv_and_svg() {
    let d = scratch("sim");
    let csv = d.join("series.csv");
    let svg = d.join("plot.svg");
    run(&[
        "simulate",
        "--pattern",
        "spike",
        "--seed",
        "3",
        "--gpu-autoscaler",
        "hpa-cpu",
        "--nodes",
        "4",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--json",
    ])
    .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("t,offered_rps,throughput_rps"));
    assert_eq!(
        lines.len(),
        1 + 20,
        "header + one row per 15 s scrape over 300 s"
    );
    let cols = lines[0].split(',').count();
    assert!(lines[1..].iter().all(|l| l.split(',').count() == cols));
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    // kis-plot (plotters' SVG backend) draws lines as `<polyline>`s.
    assert!(plot.contains("GPU ready") && plot.contains("<polyline"));
}

#[test]
fn simulate_writes_a_png_plot() {
    let d = scratch("png");
    let file = d.join("plot.PNG");
    run(&[
        "simulate",
        "--pattern",
        "spike",
        "--seed",
        "3",
        "--gpu-autoscaler",
        "hpa-cpu",
        "--nodes",
        "4",
        "--plot",
        file.to_str().unwrap(),
    ])
    .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let dim = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1800, 1460), "IHDR width x height");
    // Decode it: RGB 8-bit, and the drawing is there (the offered-load line in its colour, text in black).
    let dec = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1800, 1460));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let px = &buf[..info.buffer_size()];
    let count = |c: [u8; 3]| px.chunks(3).filter(|p| *p == c).count();
    assert!(count([0x1f, 0x77, 0xb4]) > 500, "offered-load line");
    assert!(count([0, 0, 0]) > 2000, "labels");
    assert!(
        count([255, 255, 255]) > px.len() / 3 / 2,
        "mostly white background"
    );
}

#[test]
fn simulate_reads_json_and_toml_configs() {
    let d = scratch("cfg");
    let json = d.join("c.json");
    std::fs::write(
        &json,
        r#"{"workload":{"shape":{"pattern":"constant","rate":20,"duration":60}},
            "pools":{"gpu":{"replicas":1,"profile":{"device":"gpu","batches":[{"size":1,"latency":{"dist":"constant","value":0.01}}]}},
                     "cpu":{"replicas":0,"profile":{"device":"cpu","batches":[{"size":1,"latency":{"dist":"constant","value":0.05}}]}}}}"#,
    )
    .unwrap();
    run(&["simulate", "--config", json.to_str().unwrap()]).unwrap();
    let toml = d.join("c.toml");
    std::fs::write(
        &toml,
        r#"seed = 4
[workload.shape]
pattern = "constant"
rate = 20.0
duration = 60.0
[pools.gpu]
replicas = 1
profile = { device = "gpu", batches = [{ size = 1, latency = { dist = "constant", value = 0.01 } }] }
[pools.cpu]
replicas = 0
profile = { device = "cpu", batches = [{ size = 1, latency = { dist = "constant", value = 0.05 } }] }
"#,
    )
    .unwrap();
    run(&["simulate", "--config", toml.to_str().unwrap()]).unwrap();
}

#[test]
fn bad_input_names_the_problem() {
    let d = scratch("bad");
    let cfg = d.join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"workload":{"shape":{"pattern":"constant"}},
            "pools":{"gpu":{"replicas":1,"instances":0,"profile":{"device":"gpu","batches":[{"size":1,"latency":{"dist":"constant","value":0.01}}]}},
                     "cpu":{"replicas":0,"profile":{"device":"cpu","batches":[{"size":1,"latency":{"dist":"constant","value":0.05}}]}}}}"#,
    )
    .unwrap();
    let e = format!(
        "{:#}",
        run(&["simulate", "--config", cfg.to_str().unwrap()]).unwrap_err()
    );
    assert!(e.contains("pools.gpu.instances"), "{e}");
    let e = format!(
        "{:#}",
        run(&["simulate", "--gpu-autoscaler", "hpa-foo"]).unwrap_err()
    );
    assert!(e.contains("unknown autoscaler \"hpa-foo\""), "{e}");
    let e = format!(
        "{:#}",
        run(&["simulate", "--config", "/nonexistent/x.json"]).unwrap_err()
    );
    assert!(e.contains("cannot read config /nonexistent/x.json"), "{e}");
    let e = format!("{:#}", run(&["simulate", "--duration=-5"]).unwrap_err());
    assert!(e.contains("--duration"), "{e}");
    let e = format!(
        "{:#}",
        run(&[
            "simulate",
            "--gpu-autoscaler",
            r#"{"kind":"hpa","max_replicas":0}"#
        ])
        .unwrap_err()
    );
    assert!(e.contains("max_replicas"), "{e}");
}

#[test]
fn compare_reports_every_setup_with_confidence_intervals() {
    let c = kis_agent::compare::compare(&kis_agent::cli::CompareArgs {
        seeds: 3,
        duration: 600.0,
        traces: "none".into(),
        only: None,
        scenarios: Some("spike".into()),
        json: false,
        threads: Some(2),
        tuned: None,
        out: None,
        policies: Vec::new(),
        scenario: kis_agent::cli::ScenarioArgs {
            gpu_profile: None,
            cpu_profile: None,
            slo: None,
            nodes: None,
            gpus_per_node: None,
        },
    })
    .unwrap();
    assert_eq!(c.runs.len(), 10 * 3);
    assert_eq!(c.rows.len(), 10);
    let row = |p: &str| c.rows.iter().find(|r| r.setup.starts_with(p)).unwrap();
    // The oracle meets the SLO for less GPU time than static provisioning at the peak.
    assert!(row("oracle").slo_miss.mean < 0.01);
    assert!(row("oracle").gpu_hours.mean < row("static-peak").gpu_hours.mean);
    // The paper's single GPU replica cannot carry a 100 req/s spike: with its end backlog counted,
    // nearly every arrival missed.
    assert!(row("fixed-gpu-1").slo_miss.mean > 0.9);
    assert!(c.rows.iter().all(|r| r.p95.ci95.is_finite()));
    let table = kis_agent::compare::render(&c, 3);
    assert!(table.contains("held-out split"));
}

#[test]
fn bench_scenario_runs() {
    let r = kis_agent::bench::once(1.0).unwrap();
    assert!(
        r.requests > 3_500_000 && r.requests < 3_700_000,
        "{}",
        r.requests
    );
    assert!(r.req_per_wall_s > 0.0);
}

#[test]
fn simulate_replays_a_shared_trace() {
    // The held-out Azure conversation trace from ../shared/traces, first 120 s, rate x 10.
    run(&[
        "simulate",
        "--trace",
        "azure_llm2023_conv_rate_1s.csv",
        "--duration",
        "120",
        "--scale",
        "10",
        "--nodes",
        "8",
        "--gpu-autoscaler",
        "oracle",
    ])
    .unwrap();
    let cfg = kis_agent::scenario::simulate_config(
        &kis_agent::cli::Cli::try_parse_from([
            "kis-agent",
            "simulate",
            "--trace",
            "azure_llm2023_conv_rate_1s.csv",
            "--duration",
            "120",
        ])
        .map(|c| match c.command {
            kis_agent::cli::Command::Simulate(a) => a,
            _ => unreachable!("parsed simulate"),
        })
        .unwrap(),
    )
    .unwrap();
    let s = kis_sim::Simulation::new(cfg).unwrap().run();
    // About 5.5 req/s on average in this trace.
    assert!(s.arrivals > 300 && s.arrivals < 1300, "{}", s.arrivals);
}
