//! Integration tests for kis-loadgen (one test binary; modules by topic).

// Shared servers and helpers.
mod common;
// Coordinated omission: a server frozen for a known time.
mod co;
// The scheduler: Poisson gaps and step timing as dispatched.
mod schedule;
// Outputs: Locust CSV columns, JSON schema, HDR log, plot, /metrics.
mod outputs;
// Load models: closed loop, overflow policies, plain HTTP and KServe bodies.
mod load;
// Exact shards: the union of the shards is the single schedule.
mod shards;
// Shard processes merged; refusals.
mod merge;
// Bad input and shutdown, through the real binary.
mod cli;
// End to end against the real Triton fixture.
mod triton;
