//! Command-line flags, as parsed. Generic apiserver flags keep the names of `k8s.io/apiserver`
//! so the adapter registers with a real aggregator like any Go adapter; KIS flags follow.
//! Parsing checks syntax only; [`crate::config::Config::from_cli`] checks meaning.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// kis-adapter: external.metrics.k8s.io server publishing replica targets for the stock HPA.
#[derive(Debug, Clone, Parser)]
#[command(name = "kis-adapter", version, about)]
pub struct Cli {
    /// HTTPS port (HTTP/1.1 and h2).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address for the HTTPS port and --metrics-port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Serving certificate chain (PEM), re-read when it changes.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// Serving private key (PEM), re-read when it changes.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Generate an in-memory self-signed serving certificate (development only).
    #[arg(long, conflicts_with_all = ["tls_cert_file", "tls_private_key_file"])]
    pub self_signed: bool,
    /// SANs of the self-signed certificate.
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    pub self_signed_hosts: Vec<String>,
    /// With --self-signed: also write the certificate and key here (apiserver.crt/.key), as Go does.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// CA for client-certificate users (user = CN, groups = O).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Front-proxy CA: only its verified clients may assert identity through headers.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Allowed front-proxy certificate CNs (empty: any CN signed by the front-proxy CA).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers holding the user name.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    pub requestheader_username_headers: Vec<String>,
    /// Headers holding groups.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    pub requestheader_group_headers: Vec<String>,
    /// Prefixes of headers holding extra user attributes.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Kubeconfig for delegated authentication and authorization.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig used to read kube-system/extension-apiserver-authentication.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Kubeconfig used for SubjectAccessReviews.
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Do not read the extension-apiserver-authentication ConfigMap.
    #[arg(long)]
    pub authentication_skip_lookup: bool,
    /// How often the certificate, CA, token and targets files are re-read (the ConfigMaps are
    /// watched, not polled).
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "10s")]
    pub authentication_config_resync: Duration,
    /// Groups that skip the SubjectAccessReview.
    #[arg(long, value_delimiter = ',', default_value = "system:masters")]
    pub authorization_always_allow_groups: Vec<String>,
    /// Paths served without authentication.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// How long an allowed SubjectAccessReview is cached.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "10s")]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// How long a denied SubjectAccessReview is cached.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "10s")]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// Development only: allow every authenticated user, no SubjectAccessReview.
    #[arg(long)]
    pub no_delegated_authorization: bool,
    /// Bearer token file of the publish API (without it publishing is disabled).
    #[arg(long)]
    pub publish_token_file: Option<PathBuf>,
    /// JSON targets for manual operation, re-read when it changes.
    #[arg(long)]
    pub targets_file: Option<PathBuf>,
    /// NAMESPACE/NAME of a ConfigMap holding targets (the --targets-file format under
    /// --targets-configmap-key), watched by every replica.
    #[arg(long, value_parser = crate::watch::parse_object_ref, conflicts_with = "targets_file")]
    pub targets_configmap: Option<(String, String)>,
    /// Key of --targets-configmap holding the JSON document.
    #[arg(long, default_value = "targets.json")]
    pub targets_configmap_key: String,
    /// Where published targets are saved and restored from across restarts.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Also serve /metrics over plain HTTP on this port.
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Log format on stderr (RUST_LOG filters).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// A connection must finish its TLS handshake, and then send a complete first request
    /// header, each within this time (slow or silent clients are closed).
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "10s")]
    pub request_header_timeout: Duration,
    /// A request (its body read and its answer) must finish within this; a slower one is
    /// answered 504 and its connection closed.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "60s")]
    pub request_timeout: Duration,
    /// A keep-alive connection with no request in flight for this long is closed.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "90s")]
    pub idle_timeout: Duration,
    /// Most connections open at once on the HTTPS port; more are closed on accept. About 25 KB
    /// each, so the default stays far below deploy/'s 128 Mi limit.
    #[arg(long, default_value_t = 2048)]
    pub max_connections: usize,
    /// Most connections open at once from one client IP address (the aggregator multiplexes
    /// requests over a few h2 connections).
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_client: usize,
    /// A ConfigMap watch failing without a break for longer than this makes /readyz fail.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "2m")]
    pub watch_failure_budget: Duration,
    /// On SIGTERM: how long open connections get to finish their requests.
    #[arg(long, value_parser = kis_units::parse_duration, default_value = "5s")]
    pub shutdown_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "kis-adapter",
            "--self-signed",
            "--requestheader-allowed-names",
            "a,b",
            "--authorization-always-allow-groups=system:masters,ops",
        ])
        .unwrap();
        assert_eq!(c.requestheader_allowed_names, ["a", "b"]);
        assert_eq!(
            c.authorization_always_allow_groups,
            ["system:masters", "ops"]
        );
        assert_eq!(c.secure_port, 6443);
        assert!(
            Cli::try_parse_from(["kis-adapter", "--self-signed", "--tls-cert-file", "x"]).is_err()
        );
    }
}
