//! The end-to-end suite against a real Kubernetes control plane (see tests/README.md). One
//! control plane per test binary is shared by all tests, each working in its own namespace; it is
//! stopped by the harness's watchdog when the binary exits. Missing Kubernetes binaries make
//! every test fail with a message saying to run `scripts/setup.sh`.

mod adapter;
mod adapter_list;
mod adapter_watch;
mod common;
mod control_plane;
mod kustomize;
