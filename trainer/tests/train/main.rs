//! Trainer tests on real MNIST digits (the bundled `assets/mnist-mini`), on the flex backend.

mod bench;
mod cli;
mod fid;
mod frame;
mod learning;
mod meg;
mod multigrid;
mod zoo;

use std::path::PathBuf;

use burn::prelude::*;
use shared::nets::ShortRunConfig;
use shared::sampler::LangevinConfig;
use trainer::data::{self, LoadOptions, Split};
use trainer::shortrun::{self, TrainConfig};

/// burn's device generator is process-wide: tests that train take turns so that each run's
/// random stream is its own (a resumed run must repeat the uninterrupted one bit for bit).
pub fn device_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The bundled MNIST subset.
pub fn mnist_mini() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/mnist-mini"))
}

/// The bundled Fashion-MNIST ankle boots (300 training, 100 test images).
pub fn fashion_boots() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/fashion-boots"))
}

/// MNIST digits resized to 16×16, in model space, on `device`.
pub fn digits(split: Split, count: usize, device: &Device) -> Tensor<4> {
    let set = data::open(&mnist_mini(), &LoadOptions { limit: None, class: None, split }).expect("bundled MNIST").truncate(count).resize(16, 1).expect("resize");
    shortrun::images_tensor(&set, device)
}

/// A small short-run configuration for 16×16 digits.
pub fn tiny_config(iterations: u64) -> TrainConfig {
    let mut config = TrainConfig::paper(ShortRunConfig::new().with_image_size(16).with_channels(1).with_n_f(8), shortrun::data_spec(1, 16), shortrun::DataSource::new(mnist_mini()));
    config.batch_size = 32;
    config.iterations = iterations;
    config.langevin = LangevinConfig::short_run(20);
    config.data_noise = 0.1;
    config.adam.lr = 1e-3;
    config.seed = 11;
    config
}

/// `‖a − b‖ / ‖b‖`, asserting `b` is not all zeros.
pub fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let reference = norm(&mut b.iter().copied());
    assert!(reference > 0.0, "the reference is all zeros");
    norm(&mut a.iter().zip(b).map(|(x, y)| x - y)) / reference
}

/// Host values of a tensor.
pub fn host(t: Tensor<4>) -> Vec<f32> {
    shortrun::host_values(t).expect("f32")
}

/// wgpu (lavapipe in CI, where `EBM_REQUIRE_WGPU=1` makes its absence a failure), or `None`;
/// initialised once per process (wgpu's runtime registers only once).
pub fn wgpu() -> Option<Device> {
    static DEVICE: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    match DEVICE.get_or_init(|| trainer::device::select(trainer::device::DeviceChoice::Wgpu).map(|s| s.device).map_err(|e| e.to_string())) {
        Ok(device) => Some(device.clone()),
        Err(error) if std::env::var("EBM_REQUIRE_WGPU").as_deref() == Ok("1") => panic!("EBM_REQUIRE_WGPU=1: {error}"),
        Err(error) => {
            eprintln!("skipped: {error}");
            None
        }
    }
}
