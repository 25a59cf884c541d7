//! Integration tests of kis-sim, linked as one binary.

// Shared builders.
mod common;
// Mean waits against M/M/1, M/M/c (Erlang C) and M/D/1 (Pollaczek–Khinchine).
mod queueing;
// Every arrival ends completed, rejected, killed or in flight, across scale-downs.
mod conservation;
// Same seed, same run.
mod determinism;
// Dynamic batching: max batch and max queue delay.
mod batching;
// Pending without a GPU, start-up delays, node autoscaler, deletion order.
mod lifecycle;
// The simulator drives kis-autoscale's controllers and the oracle correctly.
mod autoscaling;
// The RL environment and its vectorised form.
mod env;
// Round robin and least-outstanding routing, pool interleaving.
mod routing;
// Bad configuration names the field.
mod validation;
// The rate-dependent per-request overhead.
mod overhead;
// Exact trajectories pinned by hash (the engine made faster must not change them).
mod golden;
