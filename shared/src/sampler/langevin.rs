//! Langevin dynamics `x ← x + s·(∇log p̃(x) − x/σ²) + η·N(0, I)`, optionally masked and clipped.

use core::ops::ControlFlow;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{LogDensity, NoiseSource};

/// Parameters of a Langevin chain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangevinConfig {
    /// Number of steps (K or L in the papers).
    pub steps: usize,
    /// Coefficient `s` of the drift (1 in short-run; δ²/2 in the δ-form).
    pub step_size: f64,
    /// Standard deviation `η` of the injected noise (0.01 in short-run; δ in the δ-form).
    pub noise: f64,
    /// σ of the Gaussian reference `N(0, σ²I)`, if the model has one.
    pub reference_sigma: Option<f64>,
    /// Clamp to `[low, high]` after every step (the multigrid TF code clips to [0, 255]).
    pub clip: Option<[f64; 2]>,
}

impl LangevinConfig {
    /// Short-run form `x ← x + ∇f + 0.01·N` with `steps` steps.
    pub fn short_run(steps: usize) -> Self {
        Self { steps, step_size: 1.0, noise: 0.01, reference_sigma: None, clip: None }
    }

    /// δ-form `I ← I + δ²/2·(∇f − I/σ²) + δ·N`.
    pub fn delta(steps: usize, delta: f64, sigma: f64) -> Self {
        Self { steps, step_size: delta * delta / 2.0, noise: delta, reference_sigma: Some(sigma), clip: None }
    }

    /// The same chain with the noise switched off (gradient ascent on the log-density).
    pub fn noise_free(self) -> Self {
        Self { noise: 0.0, ..self }
    }
}

/// What the step callback sees, before the update of step `step` (1-based).
#[derive(Debug)]
pub struct StepEvent<'a> {
    /// Step number, 1..=steps.
    pub step: usize,
    /// The state the step starts from `[N, C, H, W]`.
    pub x: &'a Tensor<4>,
    /// `log p̃(x)` per sample `[N]`.
    pub log_density: &'a Tensor<1>,
    /// `∇ₓ log p̃(x)` `[N, C, H, W]`.
    pub grad: &'a Tensor<4>,
}

/// Result of a chain.
#[derive(Debug, Clone)]
pub struct ChainOutput {
    /// Final state `[N, C, H, W]`.
    pub x: Tensor<4>,
    /// Steps actually run (fewer than requested when the callback stopped the chain).
    pub steps_run: usize,
}

/// Runs Langevin dynamics from `x`. Pixels where `frozen` is true never change (inpainting:
/// only the free pixels move). `on_step` may stop the chain by returning `Break`. No value is
/// read back from the device.
pub fn langevin(
    density: &impl LogDensity,
    x: Tensor<4>,
    config: &LangevinConfig,
    frozen: Option<&Tensor<4, Bool>>,
    noise: &mut impl NoiseSource,
    mut on_step: impl FnMut(&StepEvent<'_>) -> ControlFlow<()>,
) -> ChainOutput {
    let device = x.device();
    let shape = x.dims();
    let frozen = frozen.map(|m| m.clone().expand(shape));
    let mut x = x;
    for step in 1..=config.steps {
        let (log_density, grad) = density.value_and_grad(x.clone());
        if on_step(&StepEvent { step, x: &x, log_density: &log_density, grad: &grad }).is_break() {
            return ChainOutput { x, steps_run: step - 1 };
        }
        let drift = match config.reference_sigma {
            Some(sigma) => grad - x.clone().div_scalar(sigma * sigma),
            None => grad,
        };
        let mut next = x.clone() + drift.mul_scalar(config.step_size);
        if config.noise > 0.0 {
            next = next + noise.normal(shape, &device).mul_scalar(config.noise);
        }
        if let Some([low, high]) = config.clip {
            next = next.clamp(low, high);
        }
        x = match &frozen {
            Some(frozen) => next.mask_where(frozen.clone(), x),
            None => next,
        };
    }
    ChainOutput { x, steps_run: config.steps }
}
