//! Traffic shapes and seeded arrival schedules shared by kis-loadgen and kis-sim.
