//! Learned autoscaler: simulation, training, evaluation and live mode.
