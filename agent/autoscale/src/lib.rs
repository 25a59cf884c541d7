//! Autoscaling algorithms (HPA, KEDA, Knative KPA, fixed, external target) as pure decision logic.
