//! kis-adapter integration tests (one binary).

mod common;

// Discovery, metric reads, errors and JSON shapes over real TLS.
mod api;
// Front-proxy and client-certificate authentication, SubjectAccessReview authorization.
mod auth;
// Publish API: staleness, never-zero, concurrency, restart, targets file.
mod publish;
// Debian's kubectl get --raw against the running adapter over mTLS.
mod kubectl;
// Every manifest in deploy/ parsed into k8s-openapi types, unknown fields rejected.
mod manifests;
// Label-selector property tests (the stable-Rust twin of the cargo-fuzz target).
mod selector_props;
// Slow/idle connection floods bounded in count and memory (the real binary).
mod limits;
// Flags and files: one clear error each.
mod startup;
// --targets-configmap: watched targets shared by replicas.
mod targets_configmap;
