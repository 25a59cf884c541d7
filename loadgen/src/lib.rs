//! Open-loop load generator for KServe-v2 / Triton servers.
