//! Prometheus `/metrics` for a running load test: counters and gauges updated by the collector
//! once a second (never on the request path), served on `--metrics-addr`.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::record::{Counts, ErrorKind, Hists};
use crate::report::WindowRow;

/// Outcome labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or the error kind.
    pub outcome: String,
    /// HTTP status, empty when there was none.
    pub code: String,
}

/// Latency-view labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuantileLabels {
    /// corrected, service or send_lag.
    pub kind: &'static str,
    /// 0.5, 0.95, 0.99.
    pub quantile: &'static str,
}

/// Upper bounds (seconds) of the latency histogram's buckets: the same in every process, so
/// Prometheus can sum the buckets of all shards (`sum by (le)`) and take quantiles of the sum.
pub const LATENCY_BUCKETS_S: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Name of the summable latency histogram (`_bucket`, `_sum`, `_count` series).
pub const LATENCY_HISTOGRAM: &str = "kis_loadgen_request_latency_seconds";

/// Cumulative counts of one latency view: per bucket (values <= bound), the count, the sum.
#[derive(Clone, Debug, Default)]
struct Cumulative {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// Every metric kis-loadgen exports.
pub struct Metrics {
    registry: Registry,
    /// Finished requests by outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Latency quantiles of the last 1 s window, seconds.
    pub latency: Family<QuantileLabels, Gauge<f64, AtomicU64>>,
    /// Requests on the wire.
    pub in_flight: Gauge,
    /// Arrivals waiting for a connection.
    pub queued: Gauge,
    /// Intended rate of the last window.
    pub intended_rate: Gauge<f64, AtomicU64>,
    /// Achieved send rate of the last window.
    pub achieved_rate: Gauge<f64, AtomicU64>,
    /// Arrivals dropped by the overflow policy.
    pub dropped: Counter,
    /// Sends more than 1 ms late.
    pub late_sends: Counter,
    /// Stretches of ≥ 1 ms the busy-polling dispatcher did not run.
    pub dispatcher_gaps: Counter,
    /// Their summed length, seconds.
    pub dispatcher_gap_seconds: Counter<f64, AtomicU64>,
    /// Generator CPU, cores busy.
    pub cpu_ratio: Gauge<f64, AtomicU64>,
    /// Server-side mean queue time of the last window, seconds (Triton statistics).
    pub server_queue: Gauge<f64, AtomicU64>,
    /// Server-side mean compute time of the last window, seconds.
    pub server_compute: Gauge<f64, AtomicU64>,
    /// Cumulative latency histograms (corrected, service, send_lag), from the window histograms.
    histograms: Mutex<[Cumulative; 3]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers everything under the `kis_loadgen` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kis_loadgen");
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::default(),
            in_flight: Gauge::default(),
            queued: Gauge::default(),
            intended_rate: Gauge::default(),
            achieved_rate: Gauge::default(),
            dropped: Counter::default(),
            late_sends: Counter::default(),
            dispatcher_gaps: Counter::default(),
            dispatcher_gap_seconds: Counter::default(),
            cpu_ratio: Gauge::default(),
            server_queue: Gauge::default(),
            server_compute: Gauge::default(),
            histograms: Mutex::default(),
        };
        registry.register(
            "requests",
            "Finished requests by outcome and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "latency_seconds",
            "Latency quantiles over the last 1 s window (corrected = from intended send)",
            m.latency.clone(),
        );
        registry.register("in_flight", "Requests on the wire", m.in_flight.clone());
        registry.register(
            "queued",
            "Arrivals waiting for a free connection",
            m.queued.clone(),
        );
        registry.register(
            "intended_rate",
            "Intended request rate, last window (req/s)",
            m.intended_rate.clone(),
        );
        registry.register(
            "achieved_rate",
            "Achieved send rate, last window (req/s)",
            m.achieved_rate.clone(),
        );
        registry.register(
            "dropped",
            "Arrivals dropped at the in-flight limit",
            m.dropped.clone(),
        );
        registry.register(
            "late_sends",
            "Sends more than 1 ms behind schedule",
            m.late_sends.clone(),
        );
        registry.register(
            "dispatcher_gaps",
            "Stretches of 1 ms or more the busy-polling dispatcher did not run (--busy-poll)",
            m.dispatcher_gaps.clone(),
        );
        registry.register(
            "dispatcher_gap_seconds",
            "Summed length of those stretches, seconds",
            m.dispatcher_gap_seconds.clone(),
        );
        registry.register(
            "generator_cpu_ratio",
            "Generator CPU use in cores, last window",
            m.cpu_ratio.clone(),
        );
        registry.register(
            "server_queue_seconds",
            "Mean server-side queue time, last window (Triton statistics)",
            m.server_queue.clone(),
        );
        registry.register(
            "server_compute_seconds",
            "Mean server-side compute time, last window (Triton statistics)",
            m.server_compute.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Updates every metric from a closed window: its row and its counts.
    pub fn observe(&self, row: &WindowRow, counts: &Counts) {
        for (k, v) in &counts.by_status {
            let outcome = if (200..300).contains(k) {
                "ok"
            } else {
                "status"
            };
            self.requests
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.into(),
                    code: k.to_string(),
                })
                .inc_by(*v);
        }
        for (k, v) in &counts.by_kind {
            if *k != ErrorKind::Status {
                self.requests
                    .get_or_create(&OutcomeLabels {
                        outcome: k.as_str().into(),
                        code: String::new(),
                    })
                    .inc_by(*v);
            }
        }
        for (kind, p) in [
            ("corrected", &row.corrected),
            ("service", &row.service),
            ("send_lag", &row.send_lag),
        ] {
            for (q, v) in [("0.5", p.p50_ms), ("0.95", p.p95_ms), ("0.99", p.p99_ms)] {
                self.latency
                    .get_or_create(&QuantileLabels { kind, quantile: q })
                    .set(v / 1000.0);
            }
        }
        self.in_flight.set(row.in_flight as i64);
        self.queued.set(row.backlog as i64);
        self.intended_rate.set(row.intended_rps);
        self.achieved_rate.set(row.achieved_rps);
        self.dropped.inc_by(row.dropped);
        self.late_sends.inc_by(row.late_sends);
        self.dispatcher_gaps.inc_by(row.dispatcher_gaps.count);
        self.dispatcher_gap_seconds
            .inc_by(row.dispatcher_gaps.total_us as f64 / 1e6);
        if let Some(c) = row.cpu_ratio {
            self.cpu_ratio.set(c);
        }
        if let Some(q) = row.server_queue_ms {
            self.server_queue.set(q / 1000.0);
        }
        if let Some(c) = row.server_compute_ms {
            self.server_compute.set(c / 1000.0);
        }
    }

    /// Adds a closed window's histograms (µs) to the cumulative latency histograms. Bucket
    /// counts are read from the HDR histograms, so every request is counted once, at HDR
    /// precision (a value within 0.1 % of a bound may fall on either side of it).
    pub fn observe_latency(&self, hists: &Hists) {
        let Ok(mut all) = self.histograms.lock() else {
            return;
        };
        for (c, h) in all
            .iter_mut()
            .zip([&hists.corrected, &hists.service, &hists.lag])
        {
            if h.is_empty() {
                continue;
            }
            for (b, bound) in c.buckets.iter_mut().zip(LATENCY_BUCKETS_S) {
                *b += h.count_between(0, (bound * 1e6) as u64);
            }
            c.count += h.len();
            c.sum_s += h.mean() * h.len() as f64 / 1e6;
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        // The histogram goes before the OpenMetrics end marker.
        let body = s.strip_suffix("# EOF\n").map(str::to_string);
        let mut out = body.unwrap_or(s.clone());
        self.render_histograms(&mut out);
        if s.ends_with("# EOF\n") {
            out.push_str("# EOF\n");
        }
        out
    }

    fn render_histograms(&self, out: &mut String) {
        let Ok(all) = self.histograms.lock() else {
            return;
        };
        let _ = writeln!(
            out,
            "# HELP {LATENCY_HISTOGRAM} Request latency by kind (corrected = from intended send), cumulative; sum the buckets across shards, then take quantiles"
        );
        let _ = writeln!(out, "# TYPE {LATENCY_HISTOGRAM} histogram");
        for (c, kind) in all.iter().zip(["corrected", "service", "send_lag"]) {
            for (n, bound) in c.buckets.iter().zip(LATENCY_BUCKETS_S) {
                let _ = writeln!(
                    out,
                    "{LATENCY_HISTOGRAM}_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "{LATENCY_HISTOGRAM}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                c.count
            );
            let _ = writeln!(
                out,
                "{LATENCY_HISTOGRAM}_sum{{kind=\"{kind}\"}} {}",
                c.sum_s
            );
            let _ = writeln!(
                out,
                "{LATENCY_HISTOGRAM}_count{{kind=\"{kind}\"}} {}",
                c.count
            );
        }
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    serve_text(listener, Arc::new(move || metrics.render())).await
}

/// Serves `GET /metrics` with the text `render` gives at each scrape (any other path: 404) on
/// `listener` until the task is dropped. The one small exposition server; kis-agent's live mode
/// uses it too.
pub async fn serve_text(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let render = render.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(render())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
                    };
                    Ok::<_, std::convert::Infallible>(resp.unwrap_or_default())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_names() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&OutcomeLabels {
                outcome: "ok".into(),
                code: "200".into(),
            })
            .inc_by(3);
        m.in_flight.set(2);
        m.dispatcher_gaps.inc_by(2);
        m.dispatcher_gap_seconds.inc_by(0.0035);
        let mut h = Hists::default();
        for us in [50, 700, 700, 3000, 120_000_000] {
            h.corrected.record(us).unwrap();
        }
        m.observe_latency(&h);
        m.observe_latency(&h);
        let text = m.render();
        // Cumulative, summable buckets: values <= 1 ms are 3 of 5 per window, twice.
        for line in [
            "kis_loadgen_request_latency_seconds_bucket{kind=\"corrected\",le=\"0.0001\"} 2",
            "kis_loadgen_request_latency_seconds_bucket{kind=\"corrected\",le=\"0.001\"} 6",
            "kis_loadgen_request_latency_seconds_bucket{kind=\"corrected\",le=\"0.005\"} 8",
            "kis_loadgen_request_latency_seconds_bucket{kind=\"corrected\",le=\"60\"} 8",
            "kis_loadgen_request_latency_seconds_bucket{kind=\"corrected\",le=\"+Inf\"} 10",
            "kis_loadgen_request_latency_seconds_count{kind=\"service\"} 0",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        assert!(text.contains("# TYPE kis_loadgen_request_latency_seconds histogram"));
        assert!(
            text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1,
            "{text}"
        );
        assert!(
            text.contains("kis_loadgen_requests_total{outcome=\"ok\",code=\"200\"} 3"),
            "{text}"
        );
        assert!(text.contains("kis_loadgen_in_flight 2"), "{text}");
        assert!(
            text.contains("kis_loadgen_dispatcher_gaps_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kis_loadgen_dispatcher_gap_seconds_total 0.0035\n"),
            "{text}"
        );
    }
}
