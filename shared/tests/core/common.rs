//! Devices and helpers shared by the tests.

use std::sync::OnceLock;

use burn::prelude::*;
use burn::tensor::Distribution;

/// The wgpu device, initialised once per process. `None` when no adapter exists, unless
/// `EBM_REQUIRE_WGPU=1` (set by CI, where lavapipe provides one), which makes absence a failure.
pub fn wgpu_device() -> Option<Device> {
    static DEVICE: OnceLock<Option<Device>> = OnceLock::new();
    let device = DEVICE
        .get_or_init(|| match Device::wgpu_options().init() {
            Ok(device) => Some(device),
            Err(error) => {
                eprintln!("no wgpu adapter: {error}");
                None
            }
        })
        .clone();
    if device.is_none() && std::env::var("EBM_REQUIRE_WGPU").as_deref() == Ok("1") {
        panic!("EBM_REQUIRE_WGPU=1 but no wgpu adapter could be initialised");
    }
    device
}

/// Generates `flex::name` and `wgpu::name` tests calling `name(&device)` for each listed body.
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        mod flex {
            $( #[test] fn $name() { super::$name(&burn::prelude::Device::flex()); } )*
        }
        mod wgpu {
            $(
                #[test]
                fn $name() {
                    match crate::common::wgpu_device() {
                        Some(device) => super::$name(&device),
                        None => eprintln!("skipped: no wgpu adapter on this machine"),
                    }
                }
            )*
        }
    };
}

/// Reads a tensor to host floats.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
}

/// Reads a one-element tensor.
pub fn scalar<const D: usize>(t: Tensor<D>) -> f64 {
    let v = host(t);
    assert_eq!(v.len(), 1, "expected one element");
    v[0] as f64
}

/// `‖a − b‖ / ‖b‖`.
pub fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    diff / norm.max(1e-30)
}

/// `Uniform[−1, 1)` tensor.
pub fn uniform(shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}
