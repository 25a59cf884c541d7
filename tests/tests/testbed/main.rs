//! The live testbed (tests/README.md): the real scheduler and ReplicaSet controller place Pods
//! that the process kubelet (the stand-in) runs as real Triton servers serving the emulated
//! accelerator. One testbed is shared by the in-process tests, which take turns (a lock) so that
//! at most three Tritons run at once on a small machine; the up/down test runs its own through
//! the `kis-e2e testbed` command. `faults` covers a probe that never passes and an apiserver
//! restart; `prometheus` what Prometheus scrapes.

mod common;
mod demo;
mod drain;
mod faults;
mod hpa;
mod lifecycle;
mod live;
mod prometheus;
mod sim_to_real;
mod up_down;
