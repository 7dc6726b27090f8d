//! Using a trained model, the same way natively and in the browser: chain starts for
//! synthesis, interpolation and inpainting, a resumable Langevin chain, and display pixels.
//!
//! The trainer's CLI runs a [`Chain`] to the end in one call; the browser runtime advances it
//! a few steps at a time and reads the state back asynchronously in between. Both draw starts
//! from the portable [`HostRng`], so one seed means one start everywhere and a noise-free
//! chain gives the same images on every backend.

use core::ops::ControlFlow;

use burn::prelude::*;
use thiserror::Error;

use crate::file::Model;
use crate::layers::{OpSpec, Stack, StackSpec};
use crate::nets::{Polarity, Role};
use crate::rng::HostRng;
use crate::sampler::{GeneratedEnergy, LangevinConfig, LogDensity, MalaConfig, NetDensity, NoiseSource, StepEvent, langevin, mala};

/// A request the model cannot serve.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum GenerateError {
    /// The model has no energy net to sample from.
    #[error("the model has no energy net to sample from")]
    NoEnergyNet,
    /// The model's chains start from data, so they cannot start from scratch.
    #[error("this model's chains start from data; sampling from scratch needs a different start")]
    StartsFromData,
    /// Zero images asked for.
    #[error("the number of images must be at least 1")]
    NoImages,
    /// Interpolation needs a pair and at least two points.
    #[error("interpolation needs at least one pair and two points (got {pairs} pairs, {points} points)")]
    Interpolation {
        /// Pairs asked for.
        pairs: usize,
        /// Points asked for.
        points: usize,
    },
    /// A sampler setting is unusable.
    #[error("sampler setting {name} = {value} is invalid: {why}")]
    Setting {
        /// Setting name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What is required.
        why: &'static str,
    },
    /// An image or mask has the wrong number of values.
    #[error("{what} has {found} values, but {count} image(s) of {channels}×{height}×{width} need {expected}")]
    Length {
        /// Which input.
        what: &'static str,
        /// Values given.
        found: usize,
        /// Values needed.
        expected: usize,
        /// Images.
        count: usize,
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// A canvas size the model's nets cannot take.
    #[error("a {height}×{width} canvas does not fit this model: {why}")]
    Canvas {
        /// Height asked for.
        height: usize,
        /// Width asked for.
        width: usize,
        /// Why not.
        why: String,
    },
    /// A task this family of models does not do.
    #[error("{task} is not available for {family} models")]
    Unsupported {
        /// The task asked for.
        task: &'static str,
        /// The model family.
        family: &'static str,
    },
    /// Image values are not finite.
    #[error("{what} holds a non-finite value at index {index}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// First bad index.
        index: usize,
    },
}

/// The model's energy net and its polarity (the first energy stack).
pub fn energy_net(model: &Model) -> Result<(&Stack, Polarity), GenerateError> {
    model
        .stacks
        .iter()
        .find_map(|s| match s.role {
            Role::Energy(polarity) => Some((&s.stack, polarity)),
            _ => None,
        })
        .ok_or(GenerateError::NoEnergyNet)
}

/// Sampler settings a caller may change from the model's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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
    /// Applies the overrides to a model's default, rejecting values that would break a chain.
    pub fn apply(&self, base: LangevinConfig) -> Result<LangevinConfig, GenerateError> {
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
        config.validate()?;
        Ok(config)
    }
}

/// The model's default chain settings for its first energy net with `overrides` applied.
pub fn chain_config(model: &Model, overrides: &Overrides) -> Result<LangevinConfig, GenerateError> {
    let base = model.manifest.sampler.langevin.first().copied().ok_or(GenerateError::NoEnergyNet)?;
    overrides.apply(base)
}

/// `[count, C, H, W]` for the model's data.
pub fn batch_shape(model: &Model, count: usize) -> [usize; 4] {
    let data = &model.manifest.data;
    [count, data.channels, data.height, data.width]
}

/// `[count, C, height, width]` for a canvas of another size than the training images, which
/// only nets without dense layers accept (their energy sums over positions: FRAME textures).
pub fn canvas_shape(model: &Model, count: usize, [height, width]: [usize; 2]) -> Result<[usize; 4], GenerateError> {
    let channels = model.manifest.data.channels;
    if height == 0 || width == 0 {
        return Err(GenerateError::Canvas { height, width, why: "both sides must be at least 1".into() });
    }
    let specs = model.manifest.model.stacks().map_err(|e| GenerateError::Canvas { height, width, why: e.to_string() })?;
    for named in specs.into_iter().filter(|s| matches!(s.role, Role::Energy(_))) {
        if named.spec.layers.iter().any(|l| matches!(l.op, OpSpec::Dense { .. })) {
            return Err(GenerateError::Canvas { height, width, why: format!("net \"{}\" has a dense layer, so it only takes its training size", named.name) });
        }
        let resized = StackSpec { input: [channels, height, width], ..named.spec };
        resized.shapes().map_err(|e| GenerateError::Canvas { height, width, why: e.to_string() })?;
    }
    Ok([count, channels, height, width])
}

/// Chain starts of `shape` (`[N, C, H, W]`) from the model's initialisation, drawn from `rng`.
pub fn synthesis_start(model: &Model, shape: [usize; 4], rng: &mut HostRng, device: &Device) -> Result<Tensor<4>, GenerateError> {
    if shape[0] == 0 {
        return Err(GenerateError::NoImages);
    }
    model.manifest.sampler.init.sample(shape, rng, None, device).ok_or(GenerateError::StartsFromData)
}

/// Interpolation starts `z_ρ = ρ·z₁ + √(1−ρ²)·z₂` (short-run paper §4.1) for `points` values
/// of ρ from 0 to 1 and `pairs` pairs `(z₁, z₂) ~ Uniform[−1, 1]`: `[pairs·points, C, H, W]`,
/// pair-major.
pub fn interpolation_starts(model: &Model, pairs: usize, points: usize, rng: &mut HostRng, device: &Device) -> Result<Tensor<4>, GenerateError> {
    if pairs == 0 || points < 2 {
        return Err(GenerateError::Interpolation { pairs, points });
    }
    let [_, c, h, w] = batch_shape(model, 1);
    let size = c * h * w;
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
    Ok(Tensor::from_data(TensorData::new(starts, [pairs * points, c, h, w]), device))
}

/// A MEG model's generator and energy net.
pub fn meg_nets(model: &Model) -> Result<GeneratedEnergy<'_>, GenerateError> {
    let (energy, _) = energy_net(model)?;
    let generator = model.stacks.iter().find(|s| s.role == Role::Generator).map(|s| &s.stack);
    let generator = generator.ok_or(GenerateError::Unsupported { task: "sampling through a generator", family: model.manifest.model.family_name() })?;
    Ok(GeneratedEnergy { generator, energy })
}

/// Longest Langevin chain a model file or a caller may ask for (the papers' longest is a few
/// thousand steps).
pub const MAX_LANGEVIN_STEPS: usize = 1_000_000;

impl LangevinConfig {
    /// Checks that a chain with these settings can run and end: at most
    /// [`MAX_LANGEVIN_STEPS`] steps, a finite non-negative step size and noise, a finite
    /// positive reference σ, and a clip range of two finite numbers, low below high. Model files
    /// (every stage of `sampler.langevin`) and callers' overrides both pass through here.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |name, value: f64, why| Err(GenerateError::Setting { name, value, why });
        if self.steps > MAX_LANGEVIN_STEPS {
            return bad("steps", self.steps as f64, "at most 1 000 000 steps (MAX_LANGEVIN_STEPS)");
        }
        if !(self.step_size.is_finite() && self.step_size >= 0.0) {
            return bad("step size", self.step_size, "it must be finite and non-negative");
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad("noise", self.noise, "it must be finite and non-negative");
        }
        if let Some(sigma) = self.reference_sigma
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return bad("reference sigma", sigma, "it must be a finite number above 0");
        }
        if let Some([low, high]) = self.clip
            && !(low.is_finite() && high.is_finite() && low < high)
        {
            return bad("clip low", low, "the clip range must be two finite numbers, the low one below the high one");
        }
        Ok(())
    }
}

/// Longest MALA chain a caller may ask for (the authors' longest is 100).
pub const MAX_MALA_STEPS: usize = 10_000;
const MALA_STEPS_LIMIT: &str = "at most 10 000 steps (MAX_MALA_STEPS)";

/// Checks MALA settings a caller gave.
pub fn check_mala(config: &MalaConfig) -> Result<(), GenerateError> {
    let bad = |name, value: f64, why| Err(GenerateError::Setting { name, value, why });
    if config.steps > MAX_MALA_STEPS {
        return bad("mala steps", config.steps as f64, MALA_STEPS_LIMIT);
    }
    if !(config.step_size.is_finite() && config.step_size > 0.0) {
        return bad("mala step size", config.step_size, "a finite number above 0");
    }
    if !(config.temperature.is_finite() && config.temperature > 0.0) {
        return bad("mala temperature", config.temperature, "a finite number above 0");
    }
    Ok(())
}

/// MEG samples: the latent codes, the images `G(z)` and MALA's acceptance rate.
#[derive(Debug, Clone)]
pub struct LatentSamples {
    /// Final codes `[N, D]`.
    pub z: Tensor<2>,
    /// `G(z)` `[N, C, H, W]`.
    pub images: Tensor<4>,
    /// Fraction of accepted MALA proposals (one element; `None` without MALA).
    pub acceptance_rate: Option<Tensor<1>>,
}

/// `count` MEG samples: `z ~ N(0, I)` drawn from `noise`, refined by latent-space MALA on
/// `E(G(z))` when `mala` is given with at least one step (else the generator alone, and no
/// acceptance rate), then `G(z)`.
pub fn latent_samples(model: &Model, count: usize, mala_config: Option<&MalaConfig>, noise: &mut impl NoiseSource, device: &Device) -> Result<LatentSamples, GenerateError> {
    if count == 0 {
        return Err(GenerateError::NoImages);
    }
    let nets = meg_nets(model)?;
    let latent = nets.generator.input_shape()[0];
    let z = noise.normal([count, latent], device);
    let (z, acceptance_rate) = match mala_config {
        Some(config) if config.steps > 0 => {
            check_mala(config)?;
            let out = mala(&nets, z, config, noise);
            (out.z, Some(out.acceptance_rate))
        }
        Some(config) => {
            check_mala(config)?;
            (z, None)
        }
        None => (z, None),
    };
    let images = nets.generator.forward(z.clone().reshape([count, latent, 1, 1]));
    Ok(LatentSamples { z, images, acceptance_rate })
}

/// The extra tensor holding the training images' 1×1 versions `[M, C]`: the multigrid
/// cascade's start is drawn from them (multigrid paper §3.3).
pub const START_COLORS: &str = "extra.start_colors";

/// One grid of a coarse-to-fine cascade: its net, its side and its chain settings.
#[derive(Debug, Clone, Copy)]
pub struct CascadeGrid<'a> {
    /// The grid's energy net.
    pub stack: &'a Stack,
    /// Its polarity.
    pub polarity: Polarity,
    /// Image side at this grid.
    pub side: usize,
    /// Langevin settings at this grid (overrides applied).
    pub config: LangevinConfig,
}

/// The model's energy nets as a cascade, coarse to fine, with `overrides` applied to every
/// grid. A single-net model is a one-grid cascade.
pub fn cascade_grids<'a>(model: &'a Model, overrides: &Overrides) -> Result<Vec<CascadeGrid<'a>>, GenerateError> {
    let energies = model.stacks.iter().filter_map(|s| match s.role {
        Role::Energy(polarity) => Some((&s.stack, polarity)),
        _ => None,
    });
    let grids = energies
        .zip(&model.manifest.sampler.langevin)
        .map(|((stack, polarity), base)| Ok(CascadeGrid { stack, polarity, side: stack.input_shape()[1], config: overrides.apply(*base)? }))
        .collect::<Result<Vec<_>, GenerateError>>()?;
    if grids.is_empty() {
        return Err(GenerateError::NoEnergyNet);
    }
    Ok(grids)
}

/// `count` 1×1 cascade starts `[N, C, 1, 1]`: rows drawn uniformly from the model's
/// [`START_COLORS`] when it has them, else from its chain initialisation.
pub fn cascade_start(model: &Model, count: usize, rng: &mut HostRng, device: &Device) -> Result<Tensor<4>, GenerateError> {
    if count == 0 {
        return Err(GenerateError::NoImages);
    }
    let channels = model.manifest.data.channels;
    let Some(colors) = model.extras.get(START_COLORS).filter(|t| t.shape.len() == 2 && t.shape[1] == channels && t.shape[0] > 0) else {
        return model.manifest.sampler.init.sample([count, channels, 1, 1], rng, None, device).ok_or(GenerateError::StartsFromData);
    };
    let rows = colors.shape[0];
    let mut values = Vec::with_capacity(count * channels);
    for _ in 0..count {
        let row = rng.below(rows);
        values.extend_from_slice(&colors.values[row * channels..(row + 1) * channels]);
    }
    Ok(Tensor::from_data(TensorData::new(values, [count, channels, 1, 1]), device))
}

/// Checks that `values` holds finite images of `shape`.
fn check_images(what: &'static str, values: &[f32], shape: [usize; 4]) -> Result<(), GenerateError> {
    let expected: usize = shape.iter().product();
    if shape[0] == 0 {
        return Err(GenerateError::NoImages);
    }
    if values.len() != expected {
        let [count, channels, height, width] = shape;
        return Err(GenerateError::Length { what, found: values.len(), expected, count, channels, height, width });
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(GenerateError::NonFinite { what, index });
    }
    Ok(())
}

/// An inpainting task: the observed images, which pixels are free, and where the chains start.
#[derive(Debug, Clone)]
pub struct Inpainting {
    /// Start: observed values where frozen, the model's initialisation where free `[N, C, H, W]`.
    pub start: Tensor<4>,
    /// True where a pixel is observed and must not move `[N, C, H, W]`.
    pub frozen: Tensor<4, Bool>,
}

/// Builds an inpainting task from images of `shape` in model space (`[N, C, H, W]` row-major;
/// see [`batch_shape`] and [`canvas_shape`]) and a mask of the same length that is non-zero
/// where a pixel is missing (to be filled in). The missing pixels start from the model's
/// initialisation, or from `images` itself when `start_from_image` is set. A texture extended at
/// its border is an inpainting task on a larger canvas with the known part frozen.
pub fn inpainting(
    model: &Model,
    images: &[f32],
    missing: &[f32],
    shape: [usize; 4],
    start_from_image: bool,
    rng: &mut HostRng,
    device: &Device,
) -> Result<Inpainting, GenerateError> {
    check_images("the image", images, shape)?;
    check_images("the mask", missing, shape)?;
    let observed = Tensor::<4>::from_data(TensorData::new(images.to_vec(), shape), device);
    let frozen = Tensor::<4>::from_data(TensorData::new(missing.to_vec(), shape), device).equal_elem(0.0);
    if start_from_image {
        return Ok(Inpainting { start: observed, frozen });
    }
    let noise = synthesis_start(model, shape, rng, device)?;
    Ok(Inpainting { start: noise.mask_where(frozen.clone(), observed), frozen })
}

/// A Langevin chain that can be advanced a few steps at a time (so a caller can read the state
/// back, report progress or stop in between) and gives the same result as one long chain.
#[derive(Debug, Clone)]
pub struct Chain {
    x: Tensor<4>,
    config: LangevinConfig,
    frozen: Option<Tensor<4, Bool>>,
    steps_done: usize,
    last_log_density: Option<Tensor<1>>,
}

impl Chain {
    /// A chain from `start` that will run `config.steps` steps; pixels where `frozen` is true
    /// never move.
    pub fn new(start: Tensor<4>, config: LangevinConfig, frozen: Option<Tensor<4, Bool>>) -> Self {
        Self { x: start, config, frozen, steps_done: 0, last_log_density: None }
    }

    /// Runs up to `max_steps` more steps (never past the configured total); returns how many
    /// ran. `on_step` sees every step and may stop early.
    pub fn advance(
        &mut self,
        density: &impl LogDensity,
        max_steps: usize,
        noise: &mut impl NoiseSource,
        mut on_step: impl FnMut(&StepEvent<'_>) -> ControlFlow<()>,
    ) -> usize {
        let steps = max_steps.min(self.remaining());
        if steps == 0 {
            return 0;
        }
        let config = LangevinConfig { steps, ..self.config };
        let offset = self.steps_done;
        let mut last = None;
        let output = langevin(density, self.x.clone(), &config, self.frozen.as_ref(), noise, |event| {
            last = Some(event.log_density.clone());
            on_step(&StepEvent { step: event.step + offset, ..*event })
        });
        self.x = output.x;
        self.steps_done += output.steps_run;
        self.last_log_density = last;
        output.steps_run
    }

    /// Runs all remaining steps.
    pub fn finish(&mut self, density: &impl LogDensity, noise: &mut impl NoiseSource) {
        let remaining = self.remaining();
        self.advance(density, remaining, noise, |_| ControlFlow::Continue(()));
    }

    /// Steps still to run.
    pub fn remaining(&self) -> usize {
        self.config.steps - self.steps_done.min(self.config.steps)
    }

    /// Steps run so far.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// Total steps the chain will run.
    pub fn total_steps(&self) -> usize {
        self.config.steps
    }

    /// Current state `[N, C, H, W]`.
    pub fn state(&self) -> &Tensor<4> {
        &self.x
    }

    /// The final state `[N, C, H, W]`.
    pub fn into_state(self) -> Tensor<4> {
        self.x
    }

    /// `log p̃` per chain `[N]` at the start of the latest step, if a step has run.
    pub fn last_log_density(&self) -> Option<&Tensor<1>> {
        self.last_log_density.as_ref()
    }
}

/// A noise source for chains that never draw noise (noise-free chains, `M_θ(z)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNoise;

impl NoiseSource for NoNoise {
    fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::zeros(shape, device)
    }

    fn uniform<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::zeros(shape, device)
    }
}

/// The noise-free short-run map `M_θ(z)` applied to a batch of starts.
pub fn generate(stack: &Stack, polarity: Polarity, z: Tensor<4>, config: &LangevinConfig) -> Tensor<4> {
    let density = NetDensity { stack, polarity };
    let mut chain = Chain::new(z, config.noise_free(), None);
    chain.finish(&density, &mut NoNoise);
    chain.into_state()
}

/// Maps model-space values in `range` to display bytes (clamped, rounded); NaN maps to 0 and
/// a reversed range inverts.
#[must_use]
pub fn to_u8(values: &[f32], range: [f32; 2]) -> Vec<u8> {
    let [lo, hi] = range;
    let scale = 255.0 / (hi - lo);
    // `as u8` saturates and maps NaN to 0.
    values.iter().map(|&v| ((v - lo) * scale).round().clamp(0.0, 255.0) as u8).collect()
}

/// `[N, C, H, W]` model-space values (C = 1 or 3) → `N` RGBA images stacked vertically
/// (`N·H·W·4` bytes, `ImageData`-ready), gray replicated into R, G and B, alpha opaque.
#[must_use]
pub fn to_rgba(values: &[f32], [count, channels, height, width]: [usize; 4], range: [f32; 2]) -> Vec<u8> {
    let bytes = to_u8(values, range);
    let plane = height * width;
    let mut rgba = vec![255u8; count * plane * 4];
    for n in 0..count {
        let image = &bytes[n * channels * plane..(n + 1) * channels * plane];
        for p in 0..plane {
            let out = &mut rgba[(n * plane + p) * 4..(n * plane + p) * 4 + 3];
            for (k, value) in out.iter_mut().enumerate() {
                *value = image[k.min(channels - 1) * plane + p];
            }
        }
    }
    rgba
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_u8_maps_and_clamps() {
        let values = [0.0, 1.0, 0.5, -3.0, 7.0, f32::NAN, 0.25];
        assert_eq!(to_u8(&values, [0.0, 1.0]), vec![0, 255, 128, 0, 255, 0, 64]);
        assert_eq!(to_u8(&[-1.0, 0.0, 1.0], [-1.0, 1.0]), vec![0, 128, 255]);
        assert_eq!(to_u8(&[0.0, 255.0], [0.0, 255.0]), vec![0, 255]);
        assert_eq!(to_u8(&[0.0, 1.0], [1.0, 0.0]), vec![255, 0]);
        assert_eq!(
            to_u8(&[f32::INFINITY, f32::NEG_INFINITY], [0.0, 1.0]),
            vec![255, 0]
        );
    }

    #[test]
    fn rgba_replicates_gray_and_interleaves_colour() {
        // Two 1×2 gray images, then one 1×1 RGB image.
        let gray = to_rgba(&[0.0, 1.0, 0.5, -1.0], [2, 1, 1, 2], [0.0, 1.0]);
        assert_eq!(gray, vec![0, 0, 0, 255, 255, 255, 255, 255, 128, 128, 128, 255, 0, 0, 0, 255]);
        let colour = to_rgba(&[1.0, 0.0, 0.5], [1, 3, 1, 1], [0.0, 1.0]);
        assert_eq!(colour, vec![255, 0, 128, 255]);
    }

    #[test]
    fn langevin_settings_that_cannot_run_are_named() {
        let base = LangevinConfig::delta(10, 0.3, 1.0);
        assert_eq!(base.validate(), Ok(()));
        assert_eq!(LangevinConfig { steps: MAX_LANGEVIN_STEPS, clip: Some([0.0, 255.0]), ..base }.validate(), Ok(()));
        let cases = [
            (LangevinConfig { steps: MAX_LANGEVIN_STEPS + 1, ..base }, "steps"),
            (LangevinConfig { noise: -0.01, ..base }, "noise"),
            (LangevinConfig { step_size: f64::INFINITY, ..base }, "step size"),
            (LangevinConfig { reference_sigma: Some(0.0), ..base }, "reference sigma"),
            (LangevinConfig { reference_sigma: Some(f64::NAN), ..base }, "reference sigma"),
            (LangevinConfig { clip: Some([1.0, -1.0]), ..base }, "clip low"),
            (LangevinConfig { clip: Some([0.0, 0.0]), ..base }, "clip low"),
            (LangevinConfig { clip: Some([f64::NEG_INFINITY, 1.0]), ..base }, "clip low"),
        ];
        for (config, name) in cases {
            match config.validate() {
                Err(GenerateError::Setting { name: found, .. }) => assert_eq!(found, name, "{config:?}"),
                other => panic!("{config:?}: expected {name} to be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn overrides_reject_unusable_values() {
        let base = LangevinConfig::short_run(10);
        let bad = Overrides { noise: Some(f64::NAN), ..Overrides::default() };
        assert!(matches!(bad.apply(base), Err(GenerateError::Setting { name: "noise", .. })));
        let endless = Overrides { steps: Some(1_000_000_000_000_000), ..Overrides::default() };
        assert!(matches!(endless.apply(base), Err(GenerateError::Setting { name: "steps", .. })));
        let negative = Overrides { step_size: Some(-1.0), ..Overrides::default() };
        assert!(matches!(negative.apply(base), Err(GenerateError::Setting { name: "step size", .. })));
        let good = Overrides { steps: Some(3), noise_free: true, ..Overrides::default() }.apply(base).expect("valid overrides");
        assert_eq!((good.steps, good.noise), (3, 0.0));
    }
}
