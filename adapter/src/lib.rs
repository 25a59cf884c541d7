//! kis-adapter: an `external.metrics.k8s.io/v1beta1` aggregated API server that serves replica
//! targets published by the KIS agent to the stock HorizontalPodAutoscaler.
//!
//! - [`router`]: routes, JSON shapes, the auth middleware and the publish API;
//! - [`store`]: targets with TTLs (stale → error, never 0), state file;
//! - [`selector`]: the full label-selector grammar;
//! - [`auth`] and [`tls`]: front-proxy/client-certificate authentication, SubjectAccessReview
//!   authorization, rustls serving with reloadable certificates and CAs;
//! - [`server`]: [`server::run`] wires flags ([`cli::Cli`]) to a listening server;
//! - [`watch`]: the ConfigMap watcher behind CA rotation and `--targets-configmap`;
//! - [`client`]: a small HTTPS client for the publish API (used by the agent, tests and benches).

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod metrics;
pub mod pki;
pub mod router;
pub mod selector;
pub mod server;
pub mod store;
pub mod tls;
pub mod watch;
