//! `kis-agent live` flags (clap derive). Checked and turned into a [`super::config::LiveConfig`].

use std::path::PathBuf;

use clap::Args;

use super::safety::Mode;

/// `kis-agent live`.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    /// Prometheus base URL (plain HTTP), e.g. `http://prometheus.monitoring:9090`.
    #[arg(long)]
    pub prometheus: String,
    /// Apiserver URL; overrides the kubeconfig's (or the in-cluster) server.
    #[arg(long)]
    pub apiserver: Option<String>,
    /// Kubeconfig for the apiserver; default: in-cluster ServiceAccount, `$KUBECONFIG`, ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kis-adapter's publish URL, `https://HOST:PORT`; every address HOST resolves to is
    /// published to (the headless Service `kis-adapter-publish` gives every adapter Pod).
    #[arg(long)]
    pub adapter: String,
    /// CA bundle (PEM) that signed the adapter's serving certificate.
    #[arg(long)]
    pub adapter_ca: PathBuf,
    /// Name the adapter's serving certificate is checked against.
    #[arg(long, default_value = "kis-adapter.kis-system.svc")]
    pub adapter_server_name: String,
    /// File holding the publish API's bearer token (re-read every period).
    #[arg(long)]
    pub token_file: PathBuf,
    /// Policy: a `.kpol` file (run without libtorch), or `hold` / `scripted:g,c,p;...`. Without
    /// it the rule decides alone.
    #[arg(long)]
    pub policy: Option<String>,
    /// The rule (fallback, shadow and scale-up-only baseline): an autoscaler shorthand of
    /// `simulate --gpu-autoscaler` (`hpa-queue`, `hpa-p95`, `keda`, `knative`, `forecast`,
    /// `hpa-cpu`, `fixed:N`) or a JSON spec.
    #[arg(long, default_value = "hpa-queue")]
    pub rule: String,
    /// How far the policy is trusted.
    #[arg(long, value_enum, default_value = "shadow")]
    pub mode: Mode,
    /// Control period (default: the scenario's step, the period the policy was trained at).
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub period: Option<f64>,
    /// The scenario the policy was trained on (`default`, `kis-s-testbed`, or an EnvConfig file,
    /// JSON or TOML): its pools' bounds and replica rates, SLO and observation horizon normalise
    /// the observation exactly as in training.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// A pool: `gpu=NAMESPACE/DEPLOYMENT` or `cpu=NAMESPACE/DEPLOYMENT` (repeatable; a pool not
    /// given is held at 0 and never published).
    #[arg(long = "pool", required = true)]
    pub pools: Vec<String>,
    /// Prometheus label matchers of a pool's series: `POOL=MATCHERS`, e.g.
    /// `cpu=namespace="ns",app="x"` (default: `namespace="NAMESPACE",app="DEPLOYMENT"`).
    #[arg(long = "pool-selector")]
    pub pool_selectors: Vec<String>,
    /// The label that names the Pod in Prometheus series.
    #[arg(long, default_value = "pod")]
    pub pod_label: String,
    /// Prometheus's scrape interval for the pools' targets (series older than two are stale).
    #[arg(long, default_value = "15s", value_parser = kis_units::parse_positive_secs)]
    pub scrape_interval: f64,
    /// How long after turning Ready a Pod may still have no series (service discovery lag).
    #[arg(long, default_value = "30s", value_parser = kis_units::parse_secs)]
    pub discovery_grace: f64,
    /// Window of the `rate()` queries (default: 4 scrape intervals).
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub rate_window: Option<f64>,
    /// TTL of each published target; after it the adapter answers an error (never 0) and the
    /// HPA holds its count (default: 3 periods).
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub ttl: Option<f64>,
    /// Allow publishing 0 (the pools' min may then be 0); off: never below 1.
    #[arg(long)]
    pub scale_to_zero: bool,
    /// External metric name the HPAs read.
    #[arg(long, default_value = kis_autoscale::TARGET_REPLICAS_METRIC)]
    pub metric: String,
    /// Serve `/metrics` here (e.g. `0.0.0.0:9100`); off when absent.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Append one JSON line per decision (inputs, targets, reasons) to this file.
    #[arg(long)]
    pub decisions: Option<PathBuf>,
    /// Timeout of each Prometheus, apiserver and adapter request (default: a third of the period, 1–10 s).
    #[arg(long, value_parser = kis_units::parse_positive_secs)]
    pub request_timeout: Option<f64>,
    /// Stop after this many decisions (tests, demos); default: until SIGTERM / SIGINT.
    #[arg(long)]
    pub max_decisions: Option<u64>,
}
