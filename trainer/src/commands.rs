//! Using a trained model: sampling, interpolation and reconstruction (short-run paper §4),
//! as library functions the CLI and the tests call.

use core::ops::ControlFlow;

use anyhow::{Context, bail};
use burn::prelude::*;
use shared::Stack;
use shared::file::Model;
use shared::nets::{Polarity, Role};
use shared::rng::HostRng;
use shared::sampler::{DeviceNoise, LangevinConfig, NetDensity, NoiseSource, langevin};

/// The model's energy net and its polarity (the first energy stack).
pub fn energy_net(model: &Model) -> anyhow::Result<(&Stack, Polarity)> {
    model
        .stacks
        .iter()
        .find_map(|s| match s.role {
            Role::Energy(polarity) => Some((&s.stack, polarity)),
            _ => None,
        })
        .context("the model has no energy net")
}

/// Sampler settings after the user's overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Number of steps K.
    pub steps: Option<usize>,
    /// Drift coefficient.
    pub step_size: Option<f64>,
    /// Langevin noise.
    pub noise: Option<f64>,
    /// Switch the noise off.
    pub noise_free: bool,
}

impl Overrides {
    /// Applies the overrides to a model's default.
    pub fn apply(&self, base: LangevinConfig) -> LangevinConfig {
        let mut config = base;
        if let Some(steps) = self.steps {
            config.steps = steps;
        }
        if let Some(step_size) = self.step_size {
            config.step_size = step_size;
        }
        if let Some(noise) = self.noise {
            config.noise = noise;
        }
        if self.noise_free {
            config = config.noise_free();
        }
        config
    }
}

/// Samples with intermediate states.
pub struct Samples {
    /// Final states `[N, C, H, W]`.
    pub images: Tensor<4>,
    /// States every `frame_every` steps, starting with the initial one (empty if not asked).
    pub frames: Vec<Tensor<4>>,
}

/// `count` samples from the model's first energy net, started from the model's chain
/// initialisation drawn from the portable generator seeded with `seed` (so the same seed gives
/// the same start on every backend; with noise off, the same images).
pub fn sample(model: &Model, device: &Device, count: usize, config: &LangevinConfig, seed: u64, frame_every: Option<usize>) -> anyhow::Result<Samples> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let (stack, polarity) = energy_net(model)?;
    let data = &model.manifest.data;
    let mut rng = HostRng::new(seed);
    let start = model
        .manifest
        .sampler
        .init
        .sample([count, data.channels, data.height, data.width], &mut rng, None, device)
        .context("this model's chains start from data; sampling from scratch needs a different start")?;
    let mut frames = Vec::new();
    if frame_every.is_some() {
        frames.push(start.clone());
    }
    let density = NetDensity { stack, polarity };
    let mut noise = DeviceNoise::seeded(device, rng.fork_seed());
    let chain = langevin(&density, start, config, None, &mut noise, |event| {
        if let Some(every) = frame_every
            && event.step > 1
            && (event.step - 1) % every.max(1) == 0
        {
            frames.push(event.x.clone());
        }
        ControlFlow::Continue(())
    });
    if frame_every.is_some() {
        frames.push(chain.x.clone());
    }
    Ok(Samples { images: chain.x, frames })
}

/// The noise-free short-run map `M_θ(z)` applied to a batch of starts.
pub fn generate(stack: &Stack, polarity: Polarity, z: Tensor<4>, config: &LangevinConfig) -> Tensor<4> {
    let density = NetDensity { stack, polarity };
    langevin(&density, z, &config.noise_free(), None, &mut NoiseFree, |_| ControlFlow::Continue(())).x
}

/// A noise source for chains that never draw noise.
struct NoiseFree;

impl NoiseSource for NoiseFree {
    fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::zeros(shape, device)
    }

    fn uniform<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::zeros(shape, device)
    }
}

/// Interpolation `z_ρ = ρ·z₁ + √(1−ρ²)·z₂`, `x_ρ = M_θ(z_ρ)` for `points` values of ρ from 0 to
/// 1 and `pairs` pairs (z₁, z₂) ~ `Uniform[−1, 1]`. Returns `[pairs·points, C, H, W]`, pair-major.
pub fn interpolate(model: &Model, device: &Device, pairs: usize, points: usize, config: &LangevinConfig, seed: u64) -> anyhow::Result<Tensor<4>> {
    if pairs == 0 || points < 2 {
        bail!("interpolation needs at least one pair and two points");
    }
    let (stack, polarity) = energy_net(model)?;
    let data = &model.manifest.data;
    let shape = [data.channels, data.height, data.width];
    let size: usize = shape.iter().product();
    let mut rng = HostRng::new(seed);
    let mut starts = Vec::with_capacity(pairs * points * size);
    for _ in 0..pairs {
        let z1: Vec<f64> = (0..size).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let z2: Vec<f64> = (0..size).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for k in 0..points {
            let rho = k as f64 / (points - 1) as f64;
            let other = (1.0 - rho * rho).max(0.0).sqrt();
            starts.extend(z1.iter().zip(&z2).map(|(a, b)| (rho * a + other * b) as f32));
        }
    }
    let z = Tensor::<4>::from_data(TensorData::new(starts, [pairs * points, shape[0], shape[1], shape[2]]), device);
    Ok(generate(stack, polarity, z, config))
}

/// Result of a reconstruction.
pub struct Reconstruction {
    /// `M_θ(z)` at the end `[N, C, H, W]`.
    pub images: Tensor<4>,
    /// Per-pixel MSE (model space) after each iteration, starting with the initial z.
    pub mse: Vec<f64>,
}

/// Reconstruction (short-run paper §4.2): gradient descent on `z` to minimise
/// `‖x − M_θ(z)‖²`, back-propagating through all K noise-free steps. `train_device` must have
/// autodiff; the net's own parameters are frozen. Exact for every supported net: the
/// explicit gradient is built from differentiable ops, so the backward pass through each
/// step `x + s·∇f(x)` includes `s·∇²f` (zero almost everywhere for piecewise-linear nets, the
/// true Hessian product for BatchNorm and tanh nets).
pub fn reconstruct(stack: &Stack, polarity: Polarity, targets: Tensor<4>, config: &LangevinConfig, iterations: usize, lr: f64, seed: u64) -> anyhow::Result<Reconstruction> {
    let device = stack.device();
    if !device.is_autodiff() {
        bail!("reconstruction needs an autodiff device");
    }
    let frozen = stack.clone().no_grad();
    let targets = Tensor::<4>::from_inner(targets.inner());
    let dims = targets.dims();
    let mut z = HostRng::new(seed).uniform_tensor(dims, -1.0, 1.0, &device);
    let config = config.noise_free();
    let evaluate = |z: &Tensor<4>| {
        let tracked = z.clone().detach().require_grad();
        let x = generate(&frozen, polarity, tracked.clone(), &config);
        let loss = (x.clone() - targets.clone()).square().mean();
        let value = crate::shortrun::host_values(loss.clone().inner()).unwrap_or_default();
        (tracked, x, loss, value.first().copied().unwrap_or(f32::NAN) as f64)
    };
    let mut mse = Vec::with_capacity(iterations + 1);
    for _ in 0..iterations {
        let (tracked, _, loss, value) = evaluate(&z);
        mse.push(value);
        // Descend on ‖x − M(z)‖² summed over each image's pixels (the paper's L(z)); the images
        // are independent, so the batch sum gives each its own gradient.
        let pixels = dims[1] * dims[2] * dims[3];
        let grads = loss.mul_scalar((dims[0] * pixels) as f64).backward();
        let gradient = tracked.grad(&grads).context("no gradient reached z")?;
        z = Tensor::from_inner(z.inner() - gradient.mul_scalar(lr));
    }
    let (_, x, _, value) = evaluate(&z);
    mse.push(value);
    Ok(Reconstruction { images: x.inner(), mse })
}
