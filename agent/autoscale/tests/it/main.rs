//! Behaviour tests for every autoscaler. Expected values are derived by hand from the documented
//! upstream rules (each test's comments show the arithmetic), never copied from running the code.

// Helpers to build views and drive an autoscaler over time.
mod util;

// The stock HPA v2 controller: tolerance, stabilization, policies, readiness, External maths.
mod hpa;
// KEDA: activation from zero, cooldown to zero, the HPA it hands over to.
mod keda;
// Knative KPA: stable-window averaging, panic mode, scale to zero.
mod kpa;
// Config: serde defaults, validation naming the field, the tuning parameter space.
mod spec;
// Properties over many random views: bounds, determinism, no scale-down in panic.
mod invariants;
