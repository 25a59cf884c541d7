//! external.metrics.k8s.io aggregated API server publishing replica targets.
