//! `--device auto|cpu|cuda`. CUDA is only selectable in a build with the `cuda` feature, whose
//! binary links libtorch_cuda (kis-agent's build.rs, shared/reference/tch-setup.md §2b); without
//! it the CUDA backend is not in the process and no GPU could ever be seen.

use std::str::FromStr;

use tch::Device;

use crate::{Error, Result};

/// Where to train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU if this build can use one and one is visible, else the CPU.
    #[default]
    Auto,
    /// The CPU (deterministic for a seed).
    Cpu,
    /// The first GPU; an error if there is none.
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            other => Err(Error::Device(format!(
                "unknown device {other:?} (expected auto, cpu or cuda)"
            ))),
        }
    }
}

impl DeviceChoice {
    /// The tch device, or why it cannot be had.
    pub fn resolve(self) -> Result<Device> {
        let cuda_built = cfg!(feature = "cuda");
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto if cuda_built && tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Auto => Ok(Device::Cpu),
            DeviceChoice::Cuda if !cuda_built => Err(Error::Device(
                "cuda: this binary was built without the `cuda` feature (cargo build --features kis-agent/cuda with the full torch install)".into(),
            )),
            DeviceChoice::Cuda if !tch::Cuda::is_available() => Err(Error::Device(
                "cuda: no CUDA device is visible to libtorch (tch::Cuda::is_available() is false)".into(),
            )),
            DeviceChoice::Cuda => Ok(Device::Cuda(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_on_a_cpu_machine() {
        assert_eq!(
            "cpu".parse::<DeviceChoice>().unwrap().resolve().unwrap(),
            Device::Cpu
        );
        let e = "gpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(e.contains("unknown device \"gpu\""), "{e}");
        if !tch::Cuda::is_available() {
            assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
            assert!(DeviceChoice::Cuda.resolve().is_err());
        }
    }
}
