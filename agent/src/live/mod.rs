//! `kis-agent live`: the closed loop in a cluster. Every period it reads Prometheus and the
//! apiserver, builds the pools' views and the policy's observation with the same builder as
//! training (`kis_autoscale::obs`), runs the policy file (pure Rust, no libtorch) and the rule,
//! picks per the safety mode, and publishes each pool's target through kis-adapter with a TTL.
//!
//! - [`args`]: the flags; [`config`]: checked settings (scenario capacity, pools, rule, policy);
//! - [`prom`]: the Prometheus query client; [`apiserver`]: Deployments and Pods;
//! - [`observe`]: readings → views, rate history, stale/NaN checks;
//! - [`safety`]: modes, fallback reasons, clamp, training-range check (pure);
//! - [`publish`]: kis-adapter's publish client to every adapter replica;
//! - [`metrics`]: the agent's `/metrics`; [`agent`]: the loop.

pub mod agent;
pub mod apiserver;
pub mod args;
pub mod config;
pub mod metrics;
pub mod observe;
pub mod prom;
pub mod publish;
pub mod safety;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

pub use args::LiveArgs;
use config::LiveConfig;

/// Runs `kis-agent live` until SIGTERM / SIGINT. Bad flags or files, an unreachable
/// Prometheus / apiserver / adapter at start, and a refused token are errors (one line, exit 1).
pub fn run(args: &LiveArgs) -> Result<()> {
    let cfg = LiveConfig::from_args(args.clone())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(start(cfg))
}

async fn start(cfg: LiveConfig) -> Result<()> {
    let timeout = Duration::from_secs_f64(cfg.timeout);
    let a = &cfg.args;
    let publisher = publish::Publisher::new(
        &a.adapter,
        &a.adapter_server_name,
        &a.adapter_ca,
        a.token_file.clone(),
        timeout,
    )
    .map_err(|e| anyhow!(e))?;
    let prom = prom::Prometheus::new(&a.prometheus, timeout).map_err(|e| anyhow!(e))?;
    let p = prom.clone();
    tokio::task::spawn_blocking(move || p.query("vector(1)"))
        .await
        .context("Prometheus check")??;
    let api = apiserver::connect(a.kubeconfig.as_deref(), a.apiserver.as_deref(), timeout).await?;
    for p in cfg.pools.iter().flatten() {
        api.pool(&p.deployment).await.map_err(|e| anyhow!(e))?;
    }
    let metrics = Arc::new(metrics::Metrics::new());
    if let Some(addr) = &a.metrics_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-addr {addr}"))?;
        tracing::info!("serving /metrics on http://{}", l.local_addr()?);
        tokio::spawn(metrics::serve(l, metrics.clone()));
    }
    let out = match &a.decisions {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("--decisions {}", p.display()))?,
        ),
        None => None,
    };
    tracing::info!(
        mode = %cfg.mode,
        policy = a.policy.as_deref().unwrap_or("none"),
        rule = %a.rule,
        period_s = cfg.period,
        ttl_s = cfg.ttl,
        obs = %cfg.obs.spec_id(),
        "kis-agent live: prometheus {}, apiserver {}, adapter {}",
        prom.url(),
        api.url(),
        a.adapter
    );
    let agent = agent::Agent::new(cfg, prom, api, publisher, metrics, out);
    agent::run_loop(agent).await
}
