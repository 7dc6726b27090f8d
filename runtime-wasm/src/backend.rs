//! Choosing where to compute: WebGPU through burn's wgpu runtime, or burn's `flex` CPU backend.
//!
//! `auto` tries WebGPU and falls back to the CPU, saying why. The WebGPU device is set up once
//! per runtime instance (burn registers it globally); a lost device is recorded by its
//! callback and reported on the next call, after which the JavaScript wrapper starts a fresh
//! instance.

use std::str::FromStr;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use serde::Serialize;

use crate::error::RuntimeError;

/// The caller's device preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preference {
    /// WebGPU when it initialises, else the CPU.
    #[default]
    Auto,
    /// WebGPU or an error.
    WebGpu,
    /// The CPU (`flex`).
    Cpu,
}

impl FromStr for Preference {
    type Err = RuntimeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(Self::Auto),
            "webgpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(RuntimeError::Option { name: "device".into(), why: format!("\"{other}\" is not one of auto, webgpu, cpu") }),
        }
    }
}

/// The largest buffer the CPU backend is allowed: wasm32 memory tops out at 4 GiB and a chain
/// keeps several activations alive.
const CPU_MAX_BUFFER_BYTES: u64 = 256 << 20;

/// What the runtime computes on, as reported to the caller.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendInfo {
    /// `"webgpu"` or `"cpu"`.
    pub kind: &'static str,
    /// Adapter name, vendor and type (WebGPU only).
    pub adapter: Option<AdapterSummary>,
    /// Why `auto` fell back to the CPU.
    pub fallback_reason: Option<String>,
    /// The largest storage buffer one tensor may take, bytes.
    pub max_buffer_bytes: u64,
}

/// The WebGPU adapter in use.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdapterSummary {
    /// Adapter name (may be empty in browsers that hide it).
    pub name: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// Integrated, discrete, virtual, CPU or other.
    pub device_type: String,
    /// Graphics API under wgpu.
    pub backend: String,
    /// Driver description.
    pub driver: String,
}

/// A device ready for tensors.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The burn device.
    pub device: Device,
    /// What it is.
    pub info: BackendInfo,
    /// Set by the device-lost callback, with its message.
    lost: Option<Arc<LostFlag>>,
}

#[derive(Debug, Default)]
struct LostFlag {
    lost: AtomicBool,
    message: Mutex<String>,
}

impl Backend {
    /// The CPU backend; `fallback_reason` says why WebGPU was not used, if it was wanted.
    pub fn cpu(fallback_reason: Option<String>) -> Self {
        let info = BackendInfo { kind: "cpu", adapter: None, fallback_reason, max_buffer_bytes: CPU_MAX_BUFFER_BYTES };
        Self { device: Device::flex(), info, lost: None }
    }

    /// An error if the device has been lost since it was set up.
    pub fn check_alive(&self) -> Result<(), RuntimeError> {
        match &self.lost {
            Some(flag) if flag.lost.load(Ordering::SeqCst) => {
                let message = flag.message.lock().map(|m| m.clone()).unwrap_or_default();
                Err(RuntimeError::DeviceLost(message))
            }
            _ => Ok(()),
        }
    }

    /// Destroys the WebGPU device (tests of the device-loss path); no effect on the CPU.
    pub fn destroy_device(&self) {
        if self.lost.is_some()
            && let Some(destroy) = WEBGPU.with_borrow(|slot| slot.as_ref().map(|(_, destroy)| destroy.clone()))
        {
            destroy();
        }
    }
}

/// A destroy action for the registered WebGPU device.
type Destroy = Rc<dyn Fn()>;

thread_local! {
    /// The WebGPU backend of this runtime instance, once set up (burn cannot register it
    /// twice). wgpu handles are not `Send` in browsers, hence per thread.
    static WEBGPU: RefCell<Option<(Backend, Destroy)>> = const { RefCell::new(None) };
}

/// Sets up the device the caller prefers.
pub async fn select(preference: Preference) -> Result<Backend, RuntimeError> {
    match preference {
        Preference::Cpu => Ok(Backend::cpu(None)),
        Preference::WebGpu => webgpu().await.map_err(RuntimeError::NoWebGpu),
        Preference::Auto => Ok(match webgpu().await {
            Ok(backend) => match software_adapter(&backend.info) {
                Some(why) => Backend::cpu(Some(why)),
                None => backend,
            },
            Err(why) => Backend::cpu(Some(format!("WebGPU is not available: {why}"))),
        }),
    }
}

/// Why `auto` passes over this WebGPU device, if it does: a software adapter (SwiftShader, a
/// CPU emulation of a GPU) samples 12–30× slower than the CPU backend (bench page, batch ≥ 4).
fn software_adapter(info: &BackendInfo) -> Option<String> {
    let adapter = info.adapter.as_ref().filter(|adapter| adapter.device_type == "Cpu")?;
    let name = if adapter.name.is_empty() { "the WebGPU adapter".to_string() } else { format!("the WebGPU adapter \"{}\"", adapter.name) };
    Some(format!("{name} is a software renderer, slower than the CPU backend (ask for device \"webgpu\" to use it anyway)"))
}

async fn webgpu() -> Result<Backend, String> {
    if let Some(backend) = WEBGPU.with_borrow(|slot| slot.as_ref().map(|(backend, _)| backend.clone())) {
        backend.check_alive().map_err(|e| e.to_string())?;
        return Ok(backend);
    }
    let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| e.to_string())?;
    let adapter = setup.adapter.get_info();
    let limits = setup.device.limits();
    let flag = Arc::new(LostFlag::default());
    let callback_flag = flag.clone();
    setup.device.set_device_lost_callback(move |reason, message| {
        if let Ok(mut slot) = callback_flag.message.lock() {
            *slot = format!("{reason:?}: {message}");
        }
        callback_flag.lost.store(true, Ordering::SeqCst);
    });
    let info = BackendInfo {
        kind: "webgpu",
        adapter: Some(AdapterSummary {
            name: adapter.name,
            vendor: adapter.vendor,
            device_type: format!("{:?}", adapter.device_type),
            backend: format!("{:?}", adapter.backend),
            driver: format!("{} {}", adapter.driver, adapter.driver_info).trim().to_string(),
        }),
        fallback_reason: None,
        max_buffer_bytes: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
    };
    let backend = Backend { device, info, lost: Some(flag) };
    let wgpu_device = setup.device.clone();
    let destroy: Destroy = Rc::new(move || wgpu_device.destroy());
    WEBGPU.set(Some((backend.clone(), destroy)));
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webgpu_info(device_type: &str, name: &str) -> BackendInfo {
        let adapter = AdapterSummary { name: name.into(), vendor: 0, device_type: device_type.into(), backend: "BrowserWebGpu".into(), driver: String::new() };
        BackendInfo { kind: "webgpu", adapter: Some(adapter), fallback_reason: None, max_buffer_bytes: 1 << 28 }
    }

    #[test]
    fn auto_passes_over_software_adapters_only() {
        let why = software_adapter(&webgpu_info("Cpu", "swiftshader")).expect("a software adapter is passed over");
        assert!(why.contains("\"swiftshader\" is a software renderer"), "{why}");
        let unnamed = software_adapter(&webgpu_info("Cpu", "")).expect("also without a name");
        assert!(unnamed.starts_with("the WebGPU adapter is a software renderer"), "{unnamed}");
        for hardware in ["DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Other"] {
            assert_eq!(software_adapter(&webgpu_info(hardware, "gpu")), None, "{hardware}");
        }
        assert_eq!(software_adapter(&Backend::cpu(None).info), None);
    }
}
