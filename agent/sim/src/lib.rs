//! Discrete-event simulator of GPU/CPU inference replicas on Kubernetes.
