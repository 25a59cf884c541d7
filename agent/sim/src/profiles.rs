//! Service-time profiles shipped with the simulator, embedded at build time from `agent/sim/profiles/`.

use crate::profile::ServiceProfile;

/// The KIS-S paper's GPU replica (RTX 3080, MobileNetV4 via JSON over HTTP, batch 1): mean 77.17 ms,
/// p95 80.61 ms over 100 sequential requests (kis-s-original §1.3), fitted as a log-normal.
pub fn kis_s_gpu() -> ServiceProfile {
    parse(include_str!("../profiles/kis-s-rtx3080.json"))
}

/// The KIS-S paper's CPU replica (same model and client): mean 81.55 ms, p95 90.17 ms.
pub fn kis_s_cpu() -> ServiceProfile {
    parse(include_str!("../profiles/kis-s-cpu.json"))
}

fn parse(s: &str) -> ServiceProfile {
    // The files are part of the crate and checked by the test below.
    serde_json::from_str(s).unwrap_or_else(|e| panic!("embedded profile is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_are_valid_and_match_their_source() {
        for (p, mean) in [(kis_s_gpu(), 0.07717), (kis_s_cpu(), 0.08155)] {
            p.validate("profile").unwrap();
            assert!((p.mean_batch_time(1) - mean).abs() < 1e-9);
        }
    }
}
