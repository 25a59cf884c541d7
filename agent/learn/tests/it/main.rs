//! kis-learn's integration tests, one binary.

mod cartpole; // PPO solves CartPole-v1 within 500k steps, three seeds
mod forward; // the pure-Rust forward pass equals tch
mod masks; // a masked action is never sampled
mod resume; // a resumed run continues bit for bit on the CPU
mod sim; // the simulator adapter trains and its policy loads
