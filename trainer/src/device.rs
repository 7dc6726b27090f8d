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

/// Initialises the requested device.
pub fn select(choice: DeviceChoice) -> anyhow::Result<Selected> {
    let flex = || Selected { device: Device::flex(), description: "CPU (burn flex backend)".into() };
    match choice {
        DeviceChoice::Flex => Ok(flex()),
        DeviceChoice::Wgpu => match Device::wgpu_options().init() {
            Ok(device) => Ok(Selected { device, description: "GPU through wgpu".into() }),
            Err(error) => anyhow::bail!("--device wgpu: no usable GPU adapter ({error}); use --device flex for the CPU"),
        },
        DeviceChoice::Auto => match Device::wgpu_options().init() {
            Ok(device) => Ok(Selected { device, description: "GPU through wgpu (--device auto)".into() }),
            Err(error) => {
                let mut selected = flex();
                selected.description = format!("CPU (burn flex backend): no wgpu adapter could be initialised ({error})");
                Ok(selected)
            }
        },
    }
}
