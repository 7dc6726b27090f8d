//! One sampling request, run a few steps at a time so that the caller sees progress, can
//! cancel, and (in a browser) the event loop keeps turning. Platform-free: the wasm layer
//! supplies a [`Host`]; native tests supply their own.

use core::ops::ControlFlow;

use burn::prelude::*;
use shared::file::Model;
use shared::generate::{Chain, GenerateError, Overrides, batch_shape, canvas_shape, cascade_grids, cascade_start, chain_config, check_mala, energy_net, inpainting, interpolation_starts, latent_samples, meg_nets, synthesis_start, to_rgba};
use shared::rng::HostRng;
use shared::nets::ModelSpec;
use shared::sampler::{DeviceNoise, MalaConfig, NetDensity, Observation, grid_start, mala};

use crate::backend::Backend;
use crate::error::RuntimeError;

/// The most images one request may ask for, whatever the backend allows.
pub const MAX_IMAGES: usize = 1024;

/// What to sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `count` images from the model's chain initialisation.
    Synthesis {
        /// Images.
        count: usize,
        /// `[height, width]` of a canvas other than the training size (nets without dense
        /// layers only: a FRAME texture can be sampled larger than its training image).
        size: Option<[usize; 2]>,
    },
    /// `pairs` rows of `points` noise-free images along `z_ρ = ρ·z₁ + √(1−ρ²)·z₂`.
    Interpolation {
        /// Rows.
        pairs: usize,
        /// Images per row, ρ from 0 to 1.
        points: usize,
    },
    /// Coarse-to-fine cascade (multigrid): a 1×1 start up-scaled through every grid.
    Cascade {
        /// Images.
        count: usize,
    },
    /// Fill in the pixels where `missing` is non-zero; the others never move.
    Inpainting {
        /// Images in model space, `[count, C, H, W]` row-major.
        images: Vec<f32>,
        /// Same length; non-zero where a pixel is to be filled in.
        missing: Vec<f32>,
        /// Images.
        count: usize,
        /// `[height, width]` of a canvas other than the training size (textures; see
        /// [`Task::Synthesis`]).
        size: Option<[usize; 2]>,
        /// Start the free pixels from `images` instead of the model's initialisation (a texture
        /// strip seeded with a tile, then blended into its frozen neighbours).
        start_from_image: bool,
    },
}

/// Changes to a MEG model's latent-space MALA settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MalaOverrides {
    /// Proposals per chain (0: the generator alone).
    pub steps: Option<usize>,
    /// Step size α.
    pub step_size: Option<f64>,
    /// Temperature β: the chain targets `exp(−β·E(G(z)))`.
    pub temperature: Option<f64>,
}

impl MalaOverrides {
    /// `model`'s MALA settings (the authors' defaults when the file has none) with the
    /// overrides applied, checked.
    pub fn apply(&self, model: &Model) -> Result<MalaConfig, GenerateError> {
        let base = model.manifest.sampler.mala.unwrap_or_default();
        let config = MalaConfig {
            steps: self.steps.unwrap_or(base.steps),
            step_size: self.step_size.unwrap_or(base.step_size),
            temperature: self.temperature.unwrap_or(base.temperature),
            ..base
        };
        check_mala(&config)?;
        Ok(config)
    }
}

/// A request: task, seed, sampler overrides and how often to hand back pictures.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What to sample.
    pub task: Task,
    /// Seed of the chain starts (the same seed gives the same start natively); for MEG models
    /// also of the MALA noise.
    pub seed: u64,
    /// Changes to the model's Langevin settings (not for MEG models).
    pub overrides: Overrides,
    /// Changes to a MEG model's MALA settings (MEG models only).
    pub mala: MalaOverrides,
    /// Hand back the images every this many steps (with the progress event).
    pub frame_every: Option<usize>,
}

/// A batch of images, in model space and as display bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Model-space values, row-major.
    pub values: Vec<f32>,
    /// `N` RGBA images stacked vertically, `N·H·W·4` bytes.
    pub rgba: Vec<u8>,
    /// Model-space range that maps to black..white.
    pub range: [f32; 2],
    /// Fraction of MALA proposals accepted over all chains and steps (MEG models after at
    /// least one MALA step; `None` otherwise).
    pub acceptance_rate: Option<f64>,
}

/// Progress after a chunk of steps.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Steps done.
    pub step: usize,
    /// Steps in the chain.
    pub total: usize,
    /// Mean `log p̃` over the chains at the start of the latest step (the model's `f`, or `−E`;
    /// MEG models: `−E(G(z))` after the latest step).
    pub log_density: f64,
    /// MEG models: the fraction of MALA proposals accepted so far.
    pub acceptance_rate: Option<f64>,
    /// The current images, when a frame is due.
    pub frame: Option<&'a Images>,
}

/// The platform's side of a running request.
pub trait Host {
    /// Whether the caller has cancelled.
    fn cancelled(&self) -> bool;
    /// Whether anyone listens to progress (if not, chunks are longer).
    fn wants_progress(&self) -> bool;
    /// Reports progress; an error stops the request.
    fn progress(&mut self, progress: &Progress<'_>) -> Result<(), RuntimeError>;
    /// Lets the event loop run (abort signals, messages) between chunks.
    fn yield_now(&mut self) -> impl Future<Output = ()>;
    /// A monotonic clock in milliseconds (sizes chunks when nobody watches progress).
    fn now_ms(&self) -> f64;
}

/// When nobody watches progress, chunks grow or shrink so that each takes about this long:
/// long enough that waiting on the device costs little, short enough to cancel promptly.
const CHUNK_TARGET_MS: f64 = 100.0;
/// The longest chunk, in steps.
const MAX_CHUNK: usize = 64;

/// Checks that a batch of `shape` (`[N, C, H, W]`) fits buffers of `max_buffer_bytes`;
/// the error names the largest batch that does.
pub fn check_batch(model: &Model, shape: [usize; 4], max_buffer_bytes: u64) -> Result<(), RuntimeError> {
    let [count, _, height, width] = shape;
    let per_image = largest_activation(model, [height, width])? as u64 * 4;
    let max_count = ((max_buffer_bytes / per_image.max(1)) as usize).min(MAX_IMAGES);
    if count > max_count {
        const MIB: f64 = 1024.0 * 1024.0;
        return Err(RuntimeError::BatchTooLarge {
            count,
            max_count,
            needed_mib: (per_image * count as u64) as f64 / MIB,
            limit_mib: (max_buffer_bytes.min(per_image * MAX_IMAGES as u64)) as f64 / MIB,
        });
    }
    Ok(())
}

/// Values per image of the largest tensor the energy nets hold (input or any layer output)
/// on a `[height, width]` canvas (the training size for nets that only take that).
fn largest_activation(model: &Model, [height, width]: [usize; 2]) -> Result<usize, RuntimeError> {
    let mut largest = 0;
    let data = &model.manifest.data;
    for mut named in model.manifest.model.stacks().map_err(|e| RuntimeError::Model(e.into()))? {
        if [named.spec.input[1], named.spec.input[2]] == [data.height, data.width] {
            named.spec.input = [named.spec.input[0], height, width];
        }
        let input = named.spec.input;
        largest = largest.max(input.iter().product());
        for shape in named.spec.shapes().map_err(|e| RuntimeError::Model(e.into()))? {
            largest = largest.max(shape.iter().product());
        }
    }
    Ok(largest)
}

/// Reads a tensor back without blocking (a blocking read panics on WebGPU).
pub async fn read<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, RuntimeError> {
    let data = tensor.into_data_async().await.map_err(|e| execution_error(format!("{e:?}")))?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| execution_error(format!("{e:?}")))
}

/// A failed device operation. A destroyed or lost device can fail an operation before its
/// device-lost callback has run; those failures are reported as the loss they are.
fn execution_error(message: String) -> RuntimeError {
    let lower = message.to_lowercase();
    if ["device was destroyed", "device is poisoned", "device lost", "device is lost"].iter().any(|m| lower.contains(m)) {
        RuntimeError::DeviceLost(message)
    } else {
        RuntimeError::Execution(message)
    }
}

/// Reads a batch back as [`Images`]; non-finite values mean the chain diverged.
async fn read_images(model: &Model, tensor: Tensor<4>, steps: usize) -> Result<Images, RuntimeError> {
    let shape = tensor.dims();
    let values = read(tensor).await?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(RuntimeError::Diverged { steps });
    }
    let range = model.manifest.data.range.map(|v| v as f32);
    // Mean-subtracted data is shown with its mean added back.
    let (display, display_range) = model.manifest.data.display(&values, shape);
    let rgba = to_rgba(&display, shape, display_range);
    Ok(Images { shape, values, rgba, range, acceptance_rate: None })
}

/// `[count, C, H, W]` at the training size or on a canvas of `size`.
fn task_shape(model: &Model, count: usize, size: Option<[usize; 2]>) -> Result<[usize; 4], GenerateError> {
    match size {
        Some(size) => canvas_shape(model, count, size),
        None => Ok(batch_shape(model, count)),
    }
}

/// Runs `request` on `model` (loaded on `backend`'s device).
pub async fn run(model: &Model, backend: &Backend, request: &Request, host: &mut impl Host) -> Result<Images, RuntimeError> {
    backend.check_alive()?;
    if request.frame_every == Some(0) {
        return Err(GenerateError::Setting { name: "frame interval", value: 0.0, why: "it must be at least 1" }.into());
    }
    if matches!(model.manifest.model, ModelSpec::Meg(_)) {
        return run_meg(model, backend, request, host).await;
    }
    if request.mala != MalaOverrides::default() {
        return Err(GenerateError::Unsupported { task: "MALA (malaSteps, temperature, malaStepSize)", family: model.manifest.model.family_name() }.into());
    }
    let device = &backend.device;
    let mut rng = HostRng::new(request.seed);
    let (stack, polarity) = energy_net(model)?;
    let mut config = chain_config(model, &request.overrides)?;
    // A multigrid model's nets each take their own grid: it samples through the cascade.
    let multigrid = matches!(model.manifest.model, ModelSpec::Multigrid(_));
    let (start, frozen) = match &request.task {
        Task::Interpolation { .. } if multigrid => return Err(GenerateError::Unsupported { task: "interpolation", family: "multigrid" }.into()),
        Task::Cascade { count } => return cascade_from_scratch(model, backend, request, *count, &mut rng, host).await,
        Task::Synthesis { count, size: None } if multigrid => return cascade_from_scratch(model, backend, request, *count, &mut rng, host).await,
        // Multigrid models (and their single-net baselines) inpaint through the cascade, from
        // the known pixels' mean colour, with the known pixels imposed at every grid.
        Task::Inpainting { images, missing, count, size: None, .. } if multigrid => {
            let shape = batch_shape(model, *count);
            check_batch(model, shape, backend.info.max_buffer_bytes)?;
            let task = inpainting(model, images, missing, shape, true, &mut rng, device)?;
            let observation = Observation { images: task.start, known: task.frozen };
            let start = observation.known_mean();
            return run_cascade(model, backend, request, start, Some(&observation), &mut rng, host).await;
        }
        Task::Synthesis { count, size } => {
            let shape = task_shape(model, *count, *size)?;
            check_batch(model, shape, backend.info.max_buffer_bytes)?;
            (synthesis_start(model, shape, &mut rng, device)?, None)
        }
        Task::Interpolation { pairs, points } => {
            check_batch(model, batch_shape(model, pairs.saturating_mul(*points)), backend.info.max_buffer_bytes)?;
            config = config.noise_free();
            (interpolation_starts(model, *pairs, *points, &mut rng, device)?, None)
        }
        Task::Inpainting { images, missing, count, size, start_from_image } => {
            let shape = task_shape(model, *count, *size)?;
            check_batch(model, shape, backend.info.max_buffer_bytes)?;
            let task = inpainting(model, images, missing, shape, *start_from_image, &mut rng, device)?;
            (task.start, Some(task.frozen))
        }
    };
    let density = NetDensity { stack, polarity };
    let mut noise = DeviceNoise::seeded(device, rng.fork_seed());
    let mut chain = Chain::new(start, config, frozen);
    let total = chain.total_steps();
    drive(model, backend, request, &density, &mut chain, &mut noise, (0, total), host).await?;
    let steps = chain.steps_done();
    let images = read_images(model, chain.into_state(), steps).await?;
    backend.check_alive()?;
    Ok(images)
}

/// The cascade from `count` 1×1 starts drawn from the model's start colours.
async fn cascade_from_scratch(model: &Model, backend: &Backend, request: &Request, count: usize, rng: &mut HostRng, host: &mut impl Host) -> Result<Images, RuntimeError> {
    check_batch(model, batch_shape(model, count), backend.info.max_buffer_bytes)?;
    let start = cascade_start(model, count, rng, &backend.device)?;
    run_cascade(model, backend, request, start, None, rng, host).await
}

/// The multigrid cascade: `start` (`[N, C, 1, 1]`), then every grid's chain on the up-scaled
/// result of the previous one, with `observation`'s known pixels imposed and frozen at every
/// grid when inpainting. Progress counts steps over all grids; frames have the current grid's
/// size.
async fn run_cascade(
    model: &Model,
    backend: &Backend,
    request: &Request,
    start: Tensor<4>,
    observation: Option<&Observation>,
    rng: &mut HostRng,
    host: &mut impl Host,
) -> Result<Images, RuntimeError> {
    let grids = cascade_grids(model, &request.overrides)?;
    let device = &backend.device;
    let mut noise = DeviceNoise::seeded(device, rng.fork_seed());
    let total: usize = grids.iter().map(|g| g.config.steps).sum();
    let (mut done, mut x) = (0, start);
    for grid in &grids {
        let side = x.dims()[2];
        if grid.side % side != 0 {
            return Err(RuntimeError::Model(shared::ModelFileError::Data(format!("grid side {} is not a multiple of {side}", grid.side))));
        }
        let density = NetDensity { stack: grid.stack, polarity: grid.polarity };
        let (begin, frozen) = grid_start(x, grid.side, observation);
        let mut chain = Chain::new(begin, grid.config, frozen);
        drive(model, backend, request, &density, &mut chain, &mut noise, (done, total), host).await?;
        done += chain.steps_done();
        x = chain.into_state();
    }
    let images = read_images(model, x, done).await?;
    backend.check_alive()?;
    Ok(images)
}

/// A MEG model's samples: `z ~ N(0, I)`, latent-space MALA on `E(G(z))` a chunk of steps at
/// a time, then `G(z)`. The codes and the MALA noise come from the host generator seeded by
/// the request, so a seed gives the same chain on every backend, and the chunked chain is the
/// one [`latent_samples`] runs in one call (the trainer's `meg sample`).
async fn run_meg(model: &Model, backend: &Backend, request: &Request, host: &mut impl Host) -> Result<Images, RuntimeError> {
    let unsupported = |task| RuntimeError::Request(GenerateError::Unsupported { task, family: "meg" });
    let count = match request.task {
        Task::Synthesis { count, size: None } => count,
        Task::Synthesis { size: Some(_), .. } => return Err(unsupported("a canvas size other than the training size")),
        Task::Interpolation { .. } => return Err(unsupported("interpolation")),
        Task::Cascade { .. } => return Err(unsupported("the multigrid cascade")),
        Task::Inpainting { .. } => return Err(unsupported("inpainting")),
    };
    if request.overrides != Overrides::default() {
        return Err(unsupported("a Langevin setting (steps, stepSize, noise, noiseFree; use malaSteps, malaStepSize, temperature)"));
    }
    let config = request.mala.apply(model)?;
    check_batch(model, batch_shape(model, count), backend.info.max_buffer_bytes)?;
    let mut rng = HostRng::new(request.seed);
    let start = latent_samples(model, count, None, &mut rng, &backend.device)?;
    let nets = meg_nets(model)?;
    let (mut z, mut images) = (start.z, start.images);
    let latent = z.dims()[1];
    let mut pacer = Pacer::new(model, backend, request, host);
    let (mut done, mut accepted) = (0, 0.0);
    while done < config.steps {
        let chunk = pacer.begin(host, config.steps - done)?;
        let out = mala(&nets, z, &MalaConfig { steps: chunk, ..config }, &mut rng);
        z = out.z;
        images = nets.generator.forward(z.clone().reshape([count, latent, 1, 1]));
        // One read-back per chunk: the chunk's acceptance rate and the mean −E(G(z)).
        let read_back = read(Tensor::cat(vec![out.acceptance_rate, nets.energy.value(images.clone()).mean().neg()], 0)).await?;
        let &[rate, log_density] = read_back.as_slice() else {
            return Err(execution_error(format!("read back {} values instead of 2", read_back.len())));
        };
        // The rate is a count over `count · chunk` proposals: summed as counts, it stays exact.
        accepted += (f64::from(rate) * (count * chunk) as f64).round();
        done += chunk;
        let acceptance_rate = Some(accepted / (count * done) as f64);
        let progress = Progress { step: done, total: config.steps, log_density: f64::from(log_density), acceptance_rate, frame: None };
        pacer.end(host, progress, config.steps - done, &images).await?;
    }
    let mut result = read_images(model, images, done).await?;
    result.acceptance_rate = (done > 0).then(|| accepted / (count * done) as f64);
    backend.check_alive()?;
    Ok(result)
}

/// Advances `chain` to its end in chunks, reporting progress (`offset` steps already done of
/// `total`) and honouring cancellation and device loss between chunks.
#[allow(clippy::too_many_arguments)]
async fn drive(
    model: &Model,
    backend: &Backend,
    request: &Request,
    density: &NetDensity<'_>,
    chain: &mut Chain,
    noise: &mut DeviceNoise,
    (offset, total): (usize, usize),
    host: &mut impl Host,
) -> Result<(), RuntimeError> {
    let mut pacer = Pacer::new(model, backend, request, host);
    while chain.remaining() > 0 {
        let chunk = pacer.begin(host, chain.remaining())?;
        chain.advance(density, chunk, noise, |_| ControlFlow::Continue(()));
        let step = offset + chain.steps_done();
        // Reading something back is what waits for the device; the mean log-density is small.
        let log_density = match chain.last_log_density() {
            Some(values) => read(values.clone().mean()).await?.first().copied().unwrap_or(f32::NAN) as f64,
            None => f64::NAN,
        };
        let progress = Progress { step, total, log_density, acceptance_rate: None, frame: None };
        pacer.end(host, progress, chain.remaining(), chain.state()).await?;
    }
    Ok(())
}

/// The rhythm of one chain run in chunks: chunk sizes, cancellation, checks after each chunk,
/// progress events with frames when due, and turns of the event loop.
struct Pacer<'a> {
    model: &'a Model,
    backend: &'a Backend,
    /// Hand back the images every this many steps.
    frame_every: Option<usize>,
    /// A chunk size the caller fixed (frames, or progress after every step).
    fixed: Option<usize>,
    /// Steps in the next chunk.
    chunk: usize,
    /// When the current chunk began, ms.
    began: f64,
}

impl<'a> Pacer<'a> {
    fn new(model: &'a Model, backend: &'a Backend, request: &Request, host: &impl Host) -> Self {
        let fixed = request.frame_every.or(host.wants_progress().then_some(1));
        Self { model, backend, frame_every: request.frame_every, fixed, chunk: fixed.unwrap_or(1), began: 0.0 }
    }

    /// Begins a chunk: the steps to run (at most `remaining`), or `Cancelled`.
    fn begin(&mut self, host: &impl Host, remaining: usize) -> Result<usize, RuntimeError> {
        if host.cancelled() {
            return Err(RuntimeError::Cancelled);
        }
        self.began = host.now_ms();
        Ok(self.chunk.min(remaining))
    }

    /// Ends a chunk after the device answered: checks the device and the chain, sizes the next
    /// chunk, reports `progress` (with a frame of `state` when one is due; `remaining` steps
    /// left) and lets the event loop run.
    async fn end(&mut self, host: &mut impl Host, progress: Progress<'_>, remaining: usize, state: &Tensor<4>) -> Result<(), RuntimeError> {
        self.backend.check_alive()?;
        if !progress.log_density.is_finite() {
            return Err(RuntimeError::Diverged { steps: progress.step });
        }
        if self.fixed.is_none() {
            let elapsed = host.now_ms() - self.began;
            if elapsed < CHUNK_TARGET_MS / 2.0 {
                self.chunk = (self.chunk * 2).min(MAX_CHUNK);
            } else if elapsed > CHUNK_TARGET_MS * 2.0 {
                self.chunk = (self.chunk / 2).max(1);
            }
        }
        if host.wants_progress() {
            let frame_due = self.frame_every.is_some_and(|every| progress.step.is_multiple_of(every) || remaining == 0);
            let frame = if frame_due { Some(read_images(self.model, state.clone(), progress.step).await?) } else { None };
            host.progress(&Progress { frame: frame.as_ref(), ..progress })?;
        }
        host.yield_now().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_a_destroyed_device_are_device_loss() {
        let lost = execution_error("the device failed: The device is poisoned\nCaused by: Destroyed: Device was destroyed.".into());
        assert_eq!(lost.code(), "device-lost");
        let other = execution_error("shader compilation failed".into());
        assert_eq!(other.code(), "execution-failed");
    }
}
