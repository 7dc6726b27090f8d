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
            Ok(device) => Ok(Selected { description: describe_wgpu(&device, "any adapter, software ones included"), device }),
            Err(error) => anyhow::bail!("--device wgpu: no usable wgpu adapter ({error}); use --device flex for the CPU"),
        },
        DeviceChoice::Auto => {
            for kind in HARDWARE_KINDS {
                if let Ok(device) = Device::wgpu_options().device_kind(kind.clone()).init() {
                    return Ok(Selected { description: describe_wgpu(&device, &format!("{kind:?}, --device auto")), device });
                }
            }
            Ok(flex(": --device auto found no hardware GPU adapter"))
        }
    }
}

/// "GPU through wgpu (…)": the adapter, how `how` picked it, and what this build runs on it —
/// which decides the speed: the shader compiler and whether convolutions are autotuned.
fn describe_wgpu(device: &Device, how: &str) -> String {
    let adapter = device.identity().map_or_else(|| "unnamed adapter".to_string(), |identity| identity.name);
    let shaders = if cfg!(feature = "wgpu-spirv") { "SPIR-V shaders on Vulkan (wgpu-spirv)" } else { "WGSL shaders" };
    let convolutions = if cfg!(feature = "wgpu-tuned") { "autotuned convolutions (wgpu-tuned)" } else { "direct convolutions" };
    format!("GPU through wgpu ({adapter}; {how}; {shaders}, {convolutions})")
}
