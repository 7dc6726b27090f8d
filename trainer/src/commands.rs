//! Using a trained model: sampling, interpolation and reconstruction (short-run paper §4),
//! as library functions the CLI and the tests call.

use core::ops::ControlFlow;

use anyhow::{Context, bail};
use burn::prelude::*;
use shared::Stack;
use shared::file::Model;
use shared::generate::{Chain, batch_shape, canvas_shape, generate, interpolation_starts, synthesis_start};
use shared::nets::Polarity;
use shared::rng::HostRng;
use shared::sampler::{DeviceNoise, LangevinConfig, NetDensity};

pub use shared::generate::{Overrides, energy_net};

/// Samples with intermediate states.
pub struct Samples {
    /// Final states `[N, C, H, W]`.
    pub images: Tensor<4>,
    /// States every `frame_every` steps, starting with the initial one (empty if not asked).
    pub frames: Vec<Tensor<4>>,
}

/// `count` samples from the model's first energy net, started from the model's chain
/// initialisation drawn from the portable generator seeded with `seed` (so the same seed gives
/// the same start on every backend; with noise off, the same images — the browser runtime
/// runs the same [`Chain`]).
///
/// `canvas` (`[height, width]`) samples canvases of another size than the training images,
/// for nets without dense layers (textures).
pub fn sample(
    model: &Model,
    device: &Device,
    count: usize,
    canvas: Option<[usize; 2]>,
    config: &LangevinConfig,
    seed: u64,
    frame_every: Option<usize>,
) -> anyhow::Result<Samples> {
    let (stack, polarity) = energy_net(model)?;
    let mut rng = HostRng::new(seed);
    let shape = match canvas {
        Some(size) => canvas_shape(model, count, size)?,
        None => batch_shape(model, count),
    };
    let start = synthesis_start(model, shape, &mut rng, device)?;
    let density = NetDensity { stack, polarity };
    let mut noise = DeviceNoise::seeded(device, rng.fork_seed());
    let mut chain = Chain::new(start, *config, None);
    let Some(every) = frame_every else {
        chain.finish(&density, &mut noise);
        return Ok(Samples { images: chain.into_state(), frames: Vec::new() });
    };
    let mut frames = vec![chain.state().clone()];
    while chain.advance(&density, every.max(1), &mut noise, |_| ControlFlow::Continue(())) > 0 {
        frames.push(chain.state().clone());
    }
    Ok(Samples { images: chain.into_state(), frames })
}

/// Interpolation `z_ρ = ρ·z₁ + √(1−ρ²)·z₂`, `x_ρ = M_θ(z_ρ)` for `points` values of ρ from 0 to
/// 1 and `pairs` pairs (z₁, z₂) ~ `Uniform[−1, 1]`. Returns `[pairs·points, C, H, W]`, pair-major.
pub fn interpolate(model: &Model, device: &Device, pairs: usize, points: usize, config: &LangevinConfig, seed: u64) -> anyhow::Result<Tensor<4>> {
    let (stack, polarity) = energy_net(model)?;
    let z = interpolation_starts(model, pairs, points, &mut HostRng::new(seed), device)?;
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
