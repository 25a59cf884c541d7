use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use crate::common::{Behavior, run, run_get, start, tempdir};

fn csv_header(path: &std::path::Path) -> Vec<String> {
    records(&std::fs::read_to_string(path).unwrap()).remove(0)
}

/// The records of a CSV text (quoted fields with commas and doubled quotes; CRLF or LF).
fn records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            let l = l.trim_end_matches('\r');
            let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

/// What kind of value a CSV field holds, as Locust's columns are typed.
fn kind(v: &str) -> &'static str {
    let b = v.as_bytes();
    if v.is_empty() {
        "empty"
    } else if v == "N/A" {
        "n/a"
    } else if v.parse::<i64>().is_ok() {
        "int"
    } else if v.parse::<f64>().is_ok() {
        "float"
    } else if b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z' {
        "utc time"
    } else {
        "text"
    }
}

fn kinds(row: &[String]) -> Vec<&'static str> {
    row.iter().map(|v| kind(v)).collect()
}

/// The last record that has answers (Locust's first history rows, and a drain's last sliver
/// of a window, have none: their percentiles are `N/A`).
fn last_with_data(rows: &[Vec<String>]) -> &Vec<String> {
    rows.iter()
        .skip(1)
        .rev()
        .find(|r| !r.iter().any(|v| v == "N/A"))
        .expect("a row with data")
}

/// kis-loadgen's Locust CSVs next to a real Locust 2.x run's (`tests/fixtures/locust/`, made
/// by its `regen.sh`: 2 users, one request in four a 500): the same four files, the same
/// headers, the same kind of value (integer, float, `N/A`, UTC time, text) in every column,
/// CRLF line endings, and the user count of a closed loop.
#[test]
fn locust_golden_files() {
    let srv = start(Behavior::FailEvery { n: 4 });
    let dir = tempdir("golden");
    let prefix = dir.join("run");
    run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--users",
        "2",
        "--wait",
        "100ms",
        "--duration",
        "3s",
        "--csv",
        prefix.to_str().unwrap(),
    ]);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locust");
    for f in ["stats", "stats_history", "failures", "exceptions"] {
        let name = format!("run_{f}.csv");
        let ours = std::fs::read_to_string(dir.join(&name)).unwrap();
        let theirs = std::fs::read_to_string(golden.join(&name)).unwrap();
        for (who, text) in [("kis-loadgen", &ours), ("Locust", &theirs)] {
            assert!(
                text.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
                "{who} {name}: every line ends with CRLF"
            );
        }
        let (o, t) = (records(&ours), records(&theirs));
        assert_eq!(o[0], t[0], "{name}: header");
        match f {
            "stats" => {
                assert_eq!(kinds(&o[1]), kinds(&t[1]), "{name}: request row");
                let (oa, ta) = (o.last().unwrap(), t.last().unwrap());
                assert_eq!(oa[1], "Aggregated");
                assert_eq!(kinds(oa), kinds(ta), "{name}: Aggregated row");
            }
            "stats_history" => {
                assert_eq!(
                    kinds(last_with_data(&o)),
                    kinds(last_with_data(&t)),
                    "{name}: {:?} vs {:?}",
                    last_with_data(&o),
                    last_with_data(&t)
                );
                // Locust writes the number of users; so does a closed loop.
                assert!(o[1..].iter().all(|r| r[1] == "2"), "{ours}");
            }
            "failures" => {
                assert_eq!(o.len(), 2, "{ours}");
                assert_eq!(
                    kinds(&o[1]),
                    kinds(&t[1]),
                    "{name}: {:?} vs {:?}",
                    o[1],
                    t[1]
                );
                assert_eq!(o[1][2], "HTTP 500");
                assert!(
                    o[1][4] <= o[1][5],
                    "first seen before last seen: {:?}",
                    o[1]
                );
            }
            _ => assert_eq!((o.len(), t.len()), (1, 1), "{name}: header only"),
        }
    }
}

/// Column names and order as written by Locust 2.x (`locust/stats.py`, default percentiles).
#[test]
fn locust_csv_columns_match_exactly() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("csv");
    let prefix = dir.join("run");
    let r = run_get(
        &srv.url(),
        "100",
        "2s",
        &[
            "--csv",
            prefix.to_str().unwrap(),
            // The multi-threaded runtime path.
            "--threads",
            "2",
        ],
    );
    let pct = [
        "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
    ];
    let mut stats = vec![
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
    ];
    stats.extend(pct);
    assert_eq!(csv_header(&dir.join("run_stats.csv")), stats);
    let mut hist = vec![
        "Timestamp",
        "User Count",
        "Type",
        "Name",
        "Requests/s",
        "Failures/s",
    ];
    hist.extend(pct);
    hist.extend([
        "Total Request Count",
        "Total Failure Count",
        "Total Median Response Time",
        "Total Average Response Time",
        "Total Min Response Time",
        "Total Max Response Time",
        "Total Average Content Size",
    ]);
    assert_eq!(csv_header(&dir.join("run_stats_history.csv")), hist);
    assert_eq!(
        csv_header(&dir.join("run_failures.csv")),
        [
            "Method",
            "Name",
            "Error",
            "Occurrences",
            "First Seen",
            "Last Seen"
        ]
    );
    // The rows: one for the request, one Aggregated, with the counts of the run.
    let text = std::fs::read_to_string(dir.join("run_stats.csv")).unwrap();
    let rows: Vec<Vec<String>> = records(&text).split_off(1);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][..3], ["GET", "/", "200"]);
    assert_eq!(rows[1][..3], ["", "Aggregated", "200"]);
    assert_eq!(rows[1].len(), stats.len());
    assert_eq!(r.totals.requests, 200);
    // The server saw exactly what the report claims.
    assert_eq!(srv.requests.load(std::sync::atomic::Ordering::Relaxed), 200);
    let history = std::fs::read_to_string(dir.join("run_stats_history.csv")).unwrap();
    assert!(history.lines().count() >= 3, "{history}");
    assert!(
        history
            .lines()
            .skip(1)
            .all(|l| l.split(',').count() == hist.len())
    );
}

/// The JSON report validates against the committed schema and carries what the issue asks for.
#[test]
fn json_report_follows_the_schema_and_hdr_log_and_plots_are_written() {
    let srv = start(Behavior::Fast);
    let dir = tempdir("json");
    let (json, hdr, png, svg) = (
        dir.join("r.json"),
        dir.join("r.hlog"),
        dir.join("r.png"),
        dir.join("r.svg"),
    );
    let r = run(&[
        "--url",
        &format!("{}/", srv.url()),
        "--method",
        "GET",
        "--pattern",
        "ramp",
        "--min",
        "50",
        "--max",
        "150",
        "--steps",
        "3",
        "--duration",
        "3s",
        "--json",
        json.to_str().unwrap(),
        "--hdr-log",
        hdr.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    let schema: serde_json::Value = serde_json::from_str(kis_loadgen::report::SCHEMA).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // A wrong report fails the schema (the test can fail).
    let mut bad = doc.clone();
    bad["totals"]["requests"] = serde_json::json!(-1);
    assert!(!v.is_valid(&bad));
    // Content: 50,100,150 req/s for 1 s each = 300 requests, all ok.
    assert_eq!(doc["totals"]["requests"], 300);
    assert_eq!(doc["totals"]["ok"], 300);
    assert_eq!(doc["config"]["load"]["shape"]["pattern"], "ramp");
    assert!(doc["generator"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(doc["windows"].as_array().unwrap().len() >= 3);
    assert!((r.rates.achieved_ratio - 1.0).abs() < 0.01, "{:?}", r.rates);
    // Everything went out by the schedule's end, but for the last arrival or two (due within
    // a few ms of the end, they can go out just after it when a busy machine wakes the
    // generator late): no catch-up worth the name.
    let overrun = doc["rates"]["overrun_sends"].as_u64().unwrap();
    assert!(overrun <= 2, "{}", doc["rates"]);
    assert!(
        doc["rates"]["on_time_ratio"].as_f64().unwrap() >= 298.0 / 300.0,
        "{}",
        doc["rates"]
    );
    assert_eq!(doc["rates"]["schedule_s"], 3.0);
    assert!(
        doc["rates"]["send_wall_s"].as_f64().unwrap() < 3.1,
        "{}",
        doc["rates"]
    );
    // HDR interval log: a header and three tagged lines per window.
    let log = std::fs::read_to_string(&hdr).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("Tag=corrected,")),
        "{log}"
    );
    assert!(log.lines().filter(|l| l.starts_with("Tag=lag,")).count() >= 3);
    // PNG magic; then the same report drawn as SVG.
    let mut magic = [0u8; 8];
    std::fs::File::open(&png)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(&magic[1..4], b"PNG");
    kis_loadgen::report::plot::write(&r, &svg).unwrap();
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("achieved"),
        "{}",
        &s[..200.min(s.len())]
    );
}

/// /metrics is served while the run is going and counts the requests.
#[test]
fn metrics_endpoint_serves_prometheus_text_while_running() {
    let srv = start(Behavior::Fast);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = srv.url();
    let a = addr.clone();
    let h = std::thread::spawn(move || run_get(&base, "100", "3s", &["--metrics-addr", &a]));
    // Polled while the run goes on (bounded by the run itself): the endpoint comes up once the
    // process is ready and the first window (1 s) is collected, later on a busy machine.
    let settled = |t: &str| {
        t.contains("kis_loadgen_requests_total{outcome=\"ok\",code=\"200\"}")
            && t.contains("kis_loadgen_latency_seconds{kind=\"corrected\",quantile=\"0.99\"}")
    };
    let mut text = String::new();
    while !h.is_finished() && !settled(&text) {
        std::thread::sleep(Duration::from_millis(100));
        text = try_http_get(&addr, "/metrics").unwrap_or_default();
    }
    let r = h.join().unwrap();
    assert!(
        text.contains("kis_loadgen_requests_total{outcome=\"ok\",code=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("kis_loadgen_latency_seconds{kind=\"corrected\",quantile=\"0.99\"}"),
        "{text}"
    );
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kis_loadgen_intended_rate "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((rate - 100.0).abs() < 1e-6, "{text}");
    assert_eq!(r.totals.requests, 300);
}

/// One `GET` with `Connection: close`; the whole answer, head included.
fn try_http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
