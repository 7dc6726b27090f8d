//! One sampler core for every model: Langevin dynamics under the papers' conventions,
//! the multigrid cascade, latent-space MALA and chain initialisations.
//!
//! Conventions (research notes §5) map onto [`LangevinConfig`]:
//! - short-run: `x ← x + ∇f(x) + 0.01·N` → `LangevinConfig::short_run(K)`;
//! - multigrid / generative ConvNet: `I ← I + δ²/2·(∇f − I/σ²) + δ·N` →
//!   `LangevinConfig::delta(L, δ, σ)`;
//! - MEG: an energy `E` (`p ∝ e^{−E}`) is turned into a log-density by its [`Polarity`].

pub mod init;
pub mod langevin;
pub mod mala;
pub mod multigrid;

use burn::prelude::*;
use burn::tensor::Distribution;

pub use init::{ChainInit, PersistentChains};
pub use langevin::{ChainOutput, LangevinConfig, StepEvent, langevin};
pub use mala::{GeneratedEnergy, LatentEnergy, PixelEnergy, MalaConfig, MalaOutput, ProposalNorm, mala};
pub use multigrid::{CoarseObservation, Grid, Observation, cascade, downscale, downscale_mask, grid_start, upscale};

use crate::layers::Stack;
use crate::nets::Polarity;
use crate::rng::HostRng;

/// A target's unnormalised log-density `log p̃(x)` (without any Gaussian reference term) and
/// its gradient.
pub trait LogDensity {
    /// `x`: `[N, C, H, W]` → (`log p̃` per sample `[N]`, `∇ₓ Σₙ log p̃(xₙ)` `[N, C, H, W]`).
    fn value_and_grad(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<4>);
}

/// A network's output as a log-density, by the explicit input-gradient (no autodiff tape).
#[derive(Debug, Clone, Copy)]
pub struct NetDensity<'a> {
    /// The net.
    pub stack: &'a Stack,
    /// Whether its output is `f` or `E`.
    pub polarity: Polarity,
}

impl LogDensity for NetDensity<'_> {
    fn value_and_grad(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<4>) {
        let (value, grad) = self.stack.value_and_grad(x);
        match self.polarity {
            Polarity::NegativeEnergy => (value, grad),
            Polarity::Energy => (value.neg(), grad.neg()),
        }
    }
}

/// Where Gaussian and uniform noise come from.
pub trait NoiseSource {
    /// Standard normal values of `shape`.
    fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D>;
    /// `Uniform[0, 1)` values of `shape`.
    fn uniform<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D>;
}

/// The device's own generator: fast (no upload), but its stream differs between backends.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceNoise;

impl DeviceNoise {
    /// Seeds the device's generator and returns the source.
    pub fn seeded(device: &Device, seed: u64) -> Self {
        device.seed(seed);
        Self
    }
}

impl NoiseSource for DeviceNoise {
    fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        match host_seed(device) {
            Some(seed) => {
                let mut values = vec![0.0; shape.iter().product()];
                crate::rng::fill_normal(seed, &mut values);
                Tensor::from_data(TensorData::new(values, shape), device)
            }
            None => Tensor::random(shape, Distribution::Normal(0.0, 1.0), device),
        }
    }

    fn uniform<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Default, device)
    }
}

/// On the CPU backend, a seed for [`crate::rng::fill_normal`] drawn from the device's generator
/// (so the device's seed still decides the noise): burn's own normal values there cost a tenth
/// of a small net's Langevin step. `None` on other backends.
fn host_seed(device: &Device) -> Option<u64> {
    if device.clone().inner() != Device::flex() {
        return None;
    }
    let draws: Tensor<1> = Tensor::random([2], Distribution::Default, device);
    let uniforms = draws.into_data().try_to_vec::<f32>().ok()?;
    Some(uniforms.iter().fold(0, |seed, &u| (seed << 32) | (u as f64 * 4_294_967_296.0) as u64))
}

/// The portable host generator: the same numbers on every backend and platform.
impl NoiseSource for HostRng {
    fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        self.normal_tensor(shape, 1.0, device)
    }

    fn uniform<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| self.next_f64() as f32).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}
