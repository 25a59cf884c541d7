//! kis-adapter: an `external.metrics.k8s.io/v1beta1` aggregated API server that serves replica
//! targets published by the KIS agent to the stock HorizontalPodAutoscaler.
//!
//! Always built (what a publisher such as `kis-agent live` links, with `default-features = false`):
//! - [`api`]: wire types (external metrics list, discovery, `Status`, publish API bodies);
//! - [`client`]: a small HTTPS client for the publish API and reads;
//! - [`tls`]: PEM parsing and rustls configuration;
//! - [`pki`] (feature `pki`): certificates made with rcgen, for `--self-signed`, tests and benches.
//!
//! The server (feature `server`, on by default):
//! - [`cli`] → [`config`]: flags, then one validation stage ([`config::Config::from_cli`]);
//! - [`server`]: [`server::start`] loads the inputs and starts the supervised tasks;
//! - [`accept`]: the accept loop with connection limits and timeouts;
//! - [`reload`]: file re-reading and the one place TLS/authentication settings are swapped;
//! - [`targets`]: the targets document format and the targets ConfigMap loader;
//! - [`watch`]: the ConfigMap watcher behind CA rotation and `--targets-configmap`;
//! - [`lifecycle`]: readiness and background-task supervision;
//! - [`router`]: routes, JSON shapes, the auth middleware and the publish API;
//! - [`store`]: targets with TTLs (stale → error, never 0), state file;
//! - [`selector`]: the full label-selector grammar;
//! - [`auth`]: front-proxy/client-certificate authentication, SubjectAccessReview authorization;
//! - [`metrics`]: the adapter's own Prometheus metrics;
//! - [`error`]: start-up errors.

// Every public item documented, and `pub` only where reachable from outside the crate.
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "server")]
pub mod accept;
pub mod api;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod cli;
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod lifecycle;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "server")]
pub mod reload;
#[cfg(feature = "server")]
pub mod router;
#[cfg(feature = "server")]
pub mod selector;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod targets;
pub mod tls;
#[cfg(feature = "server")]
pub mod watch;
