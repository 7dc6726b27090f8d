//! Choosing the compute device: wgpu (Vulkan / Metal / DX12) or burn's `flex` CPU backend.

use burn::prelude::*;
use clap::ValueEnum;

/// Device requested on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DeviceChoice {
    /// The GPU through wgpu when one can be initialised, else the CPU.
    #[default]
    Auto,
    /// The GPU through wgpu (Vulkan, Metal or DX12); an error when none is available.
    Wgpu,
    /// burn's pure-Rust CPU backend.
    Flex,
}

/// A chosen device and a sentence saying what was picked and why.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The device.
    pub device: Device,
    /// What was picked, for the user.
    pub description: String,
}

/// Hardware GPUs, in the order `auto` tries them. Software adapters (lavapipe, SwiftShader)
/// are left out: on them burn's flex backend is much faster.
const HARDWARE_KINDS: [DeviceKind; 3] = [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0), DeviceKind::VirtualGpu(0)];

/// Initialises the requested device.
pub fn select(choice: DeviceChoice) -> anyhow::Result<Selected> {
    let flex = |why: &str| Selected { device: Device::flex(), description: format!("CPU (burn flex backend){why}") };
    match choice {
        DeviceChoice::Flex => Ok(flex("")),
        DeviceChoice::Wgpu => match Device::wgpu_options().init() {
            Ok(device) => Ok(Selected { device, description: "GPU through wgpu (any adapter, software ones included)".into() }),
            Err(error) => anyhow::bail!("--device wgpu: no usable wgpu adapter ({error}); use --device flex for the CPU"),
        },
        DeviceChoice::Auto => {
            for kind in HARDWARE_KINDS {
                if let Ok(device) = Device::wgpu_options().device_kind(kind.clone()).init() {
                    return Ok(Selected { device, description: format!("GPU through wgpu ({kind:?}, --device auto)") });
                }
            }
            Ok(flex(": --device auto found no hardware GPU adapter"))
        }
    }
}
