//! Multigrid modeling and sampling (Gao et al. 2018, Algorithm 1), its baselines, and
//! inpainting.
//!
//! Images are 64×64 on the raw 0–255 scale. Every iteration starts each chain from its
//! training image's own 1×1 version (block average), runs `L` Langevin steps
//! `I ← I + δ²/2·(∂f/∂I − I/σ²) + δ·N` with the 4×4 net on the up-scaled start, up-scales the
//! result into the 16×16 grid, and so on; each grid's net is then updated from
//! `mean f(observed at that grid) − mean f(synthesised)`, all three separately. The baselines
//! use the 64×64 net alone with the same MCMC budget: single-grid (1×1 up-scaled straight to
//! 64×64, `3L` steps), CD-1 (one step from the data) and persistent CD (chains started at the
//! data in the first epoch and carried over, `3L` steps).
//!
//! Conditional learning for inpainting (§5.3) draws a square hole at a random position per
//! training image and iteration; only the hole's pixels move, at every grid. A coarse pixel is
//! known only when its whole block is (the paper does not say how its mask reaches the coarse
//! grids), and the 1×1 start is the mean colour of the known pixels.
//!
//! Defaults follow the MatConvNet code: batch 100 in a fixed order, the normalised, capped
//! momentum SGD ([`LabSgdSettings`], lr 0.3, momentum 0.9, cap 1, weight decay 1e-4, biases
//! ×2, top layer ×0.05 / ×0.1) with the learning rate decayed over 80 log-spaced plateaus from
//! 1 to 0.01. The TensorFlow / PyTorch choices (Adam, no noise, clipping to [0, 255], L = 90,
//! their nets) are options.

use core::ops::ControlFlow;
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use burn::prelude::*;
use modelfile::NamedTensor;
use serde::{Deserialize, Serialize};
use shared::Stack;
use shared::file::{DataSpec, Manifest, Model, ModelStack, Normalization, SamplerDefaults};
use shared::generate::{Overrides, START_COLORS, cascade_grids, cascade_start};
use shared::nets::{ModelSpec, MultigridConfig, Polarity, Role};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, DeviceNoise, Grid, LangevinConfig, NetDensity, NoiseSource, Observation, cascade, downscale, langevin};

use crate::contrastive::Contrastive;
use crate::data::ImageSet;
use crate::metrics::{MaskedScores, masked_scores};
use crate::run::{open_checkpoint, seal_checkpoint};
use crate::optim::{AdamSettings, LabSgdSettings, ParameterRole, Update, Updater, collect_parameter_count, parameter_roles};
use crate::shortrun::{DataSource, check_delta_langevin, host_values};

/// Image side of every multigrid model.
pub const IMAGE_SIZE: usize = 64;

/// How the synthesised images of an update are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Algorithm 1: 1×1 → 4×4 → 16×16 → 64×64, `L` steps per grid, three nets.
    Multigrid,
    /// The 64×64 net alone from the 1×1 version up-scaled to 64×64, `3L` steps.
    SingleGrid,
    /// One Langevin step from the observed images (CD-1).
    ContrastiveDivergence,
    /// Chains started at the observed images in the first epoch and carried across epochs.
    PersistentCd,
}

impl Method {
    /// The grids this method learns.
    pub fn grids(self) -> Vec<usize> {
        match self {
            Self::Multigrid => shared::nets::multigrid::GRID_SIZES.to_vec(),
            _ => vec![IMAGE_SIZE],
        }
    }
}

/// Everything that defines a multigrid run (saved as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultigridTrainConfig {
    /// The grid nets (their `grids` follow the method).
    pub net: MultigridConfig,
    /// Where the training images come from.
    pub source: DataSource,
    /// Multigrid or a baseline.
    pub method: Method,
    /// Images per iteration (100).
    pub batch_size: usize,
    /// Langevin per grid (L = 30, δ = 0.3, σ = 50).
    pub langevin: LangevinConfig,
    /// Steps of the single-grid and persistent-CD baselines (90 = three grids × 30).
    pub baseline_steps: usize,
    /// Parameter update.
    pub optimizer: Update,
    /// Decay the learning rate over 80 log-spaced plateaus from 1 to 0.01 (MatConvNet).
    pub lr_decay: bool,
    /// The MatConvNet top-layer learning-rate multipliers (×0.05 at grid 4, ×0.1 above).
    pub top_layer_lr: bool,
    /// Passes over the training images.
    pub epochs: u64,
    /// Conditional learning for inpainting: a square hole of this side at a random position per
    /// image and iteration.
    pub inpainting_hole: Option<usize>,
    /// Seed of the run.
    pub seed: u64,
    /// An iteration whose |f| per pixel or mean |I| exceeds this is divergence.
    pub divergence_threshold: f64,
}

impl MultigridTrainConfig {
    /// The MatConvNet update: lr 0.3, momentum 0.9, weight decay 1e-4, cap 1, biases ×2.
    pub const LAB_UPDATE: LabSgdSettings = LabSgdSettings { lr: 0.3, momentum: 0.9, weight_decay: 1e-4, cap: Some(1.0), bias_lr_factor: 2.0 };
    /// The TensorFlow release's Adam: lr 0.3 (sic), β₁ 0.5.
    pub const ADAM_UPDATE: AdamSettings = AdamSettings { lr: 0.3, beta1: 0.5, beta2: 0.999, eps: 1e-8 };

    /// The MatConvNet code's settings for `method` (1250 epochs; batch 100).
    pub fn paper(method: Method, channels: usize, source: DataSource) -> Self {
        Self {
            net: MultigridConfig::new().with_channels(channels).with_grids(method.grids()),
            source,
            method,
            batch_size: 100,
            langevin: LangevinConfig::delta(30, 0.3, 50.0),
            baseline_steps: 90,
            optimizer: Update::Lab(Self::LAB_UPDATE),
            lr_decay: true,
            top_layer_lr: true,
            epochs: 1250,
            inpainting_hole: None,
            seed: 1,
            divergence_threshold: 1e7,
        }
    }

    /// Langevin settings of each learned grid (what the model file records for sampling).
    pub fn grid_langevin(&self) -> Vec<LangevinConfig> {
        match self.method {
            Method::Multigrid => vec![self.langevin; 3],
            _ => vec![LangevinConfig { steps: self.baseline_steps, ..self.langevin }],
        }
    }

    /// Checks the settings before anything is built.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.net.grids != self.method.grids() {
            bail!("the {:?} method learns grids {:?}, but the net has {:?}", self.method, self.method.grids(), self.net.grids);
        }
        self.net.stacks().context("invalid network settings")?;
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        // No reference term is the TensorFlow release's chain.
        check_delta_langevin(&self.langevin, false)?;
        if self.langevin.steps == 0 || self.baseline_steps == 0 {
            bail!("--steps must be at least 1");
        }
        if let Some(hole) = self.inpainting_hole
            && !(1..IMAGE_SIZE).contains(&hole)
        {
            bail!("--hole must be 1 to {}, not {hole}", IMAGE_SIZE - 1);
        }
        self.optimizer.check()
    }

    /// The learning-rate factor in epoch `epoch` (0-based): 80 log-spaced values from 1 to
    /// 0.01, each held for ⌊epochs/80⌋ epochs (at least one), then 0.01.
    pub fn lr_factor(&self, epoch: u64) -> f64 {
        if !self.lr_decay {
            return 1.0;
        }
        let plateau = (self.epochs / 80).max(1);
        let index = (epoch / plateau).min(79) as f64;
        10f64.powf(-2.0 * index / 79.0)
    }
}

/// Numbers of one iteration, per learned grid (coarse to fine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultigridMetrics {
    /// Iteration just completed (1-based).
    pub iteration: u64,
    /// Epoch it belonged to (0-based).
    pub epoch: u64,
    /// Mean f over the observed images at each grid.
    pub f_observed: Vec<f64>,
    /// Mean f over the synthesised images at each grid.
    pub f_synthesised: Vec<f64>,
    /// Mean |I − observed| per pixel of the final grid's synthesis (0–255 scale).
    pub distance_to_data: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum MultigridTrainError {
    /// Values became NaN/Inf or exploded.
    #[error(
        "training diverged at iteration {iteration} (grid {side}×{side}): f(observed) = {f_observed}, f(synthesised) = {f_synthesised}, \
         mean |I| = {sample_abs_mean}; no net was updated with this step and the last checkpoint is kept. Try a smaller --lr and resume"
    )]
    Diverged {
        /// Iteration that diverged.
        iteration: u64,
        /// Side of the grid that diverged.
        side: usize,
        /// Its f(observed).
        f_observed: f64,
        /// Its f(synthesised).
        f_synthesised: f64,
        /// Its synthesised images' mean |I|.
        sample_abs_mean: f64,
    },
}

/// State saved in a checkpoint's manifest under `"training"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    config: MultigridTrainConfig,
    iteration: u64,
    rng: HostRng,
    adam_steps: Vec<u64>,
}

/// The persistent-CD chains in a checkpoint `[M, C, 64, 64]`.
const CHAINS: &str = "extra.chains";

/// A multigrid (or baseline) run in memory.
pub struct MultigridTrainer {
    /// Configuration.
    pub config: MultigridTrainConfig,
    /// One net per learned grid, coarse to fine, on the autodiff device.
    pub nets: Vec<Stack>,
    /// Iterations completed.
    pub iteration: u64,
    /// Take the parameter gradients without a tape where the nets allow (see
    /// [`crate::contrastive`]; the default), or always from burn's autodiff (`false`).
    pub explicit_gradients: bool,
    images: Tensor<4>,
    chains: Option<Tensor<4>>,
    updaters: Vec<Updater>,
    roles: Vec<Vec<ParameterRole>>,
    rng: HostRng,
    device: Device,
}

/// The training images as a `[M, C, 64, 64]` tensor on `device` (0–255).
pub fn images_tensor(set: &ImageSet, device: &Device) -> anyhow::Result<Tensor<4>> {
    if set.is_empty() {
        bail!("the training set is empty");
    }
    if set.height != IMAGE_SIZE || set.width != IMAGE_SIZE {
        bail!("multigrid images are {IMAGE_SIZE}×{IMAGE_SIZE}, not {}×{}", set.height, set.width);
    }
    Ok(Tensor::from_data(TensorData::new(set.pixels.clone(), [set.count, set.channels, IMAGE_SIZE, IMAGE_SIZE]), device))
}

impl MultigridTrainer {
    /// A new run on `device` (its autodiff version learns) over `images` (`[M, C, 64, 64]`).
    pub fn new(config: MultigridTrainConfig, images: Tensor<4>, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let train_device = device.clone().autodiff();
        let inner = device.clone().inner();
        let images = images.to_device(&inner);
        check_images(&config, &images)?;
        let mut rng = HostRng::new(config.seed);
        train_device.seed(rng.fork_seed());
        let specs = config.net.stacks()?;
        let nets = specs.iter().map(|s| s.spec.init(&train_device)).collect::<Result<Vec<_>, _>>().context("cannot build the nets")?;
        let roles = grid_roles(&config)?;
        let updaters = nets.iter().map(|_| Updater::new(config.optimizer)).collect();
        let chains = (config.method == Method::PersistentCd).then(|| images.clone());
        Ok(Self { config, nets, iteration: 0, explicit_gradients: true, images, chains, updaters, roles, rng, device: train_device })
    }

    /// Resumes from checkpoint bytes, with the training images loaded again.
    pub fn from_checkpoint(bytes: &[u8], images: Tensor<4>, device: &Device) -> anyhow::Result<Self> {
        let train_device = device.clone().autodiff();
        let inner = device.clone().inner();
        let (file, state, mut saved): (_, TrainState, _) = open_checkpoint(bytes, "multigrid")?;
        let images = images.to_device(&inner);
        check_images(&state.config, &images)?;
        let model = Model::from_model_file(file, &train_device).context("the checkpoint's model is invalid")?;
        let nets: Vec<Stack> = model.stacks.iter().map(|s| s.stack.clone()).collect();
        if nets.len() != state.config.net.grids.len() {
            bail!("the checkpoint holds {} nets, its configuration {} grids", nets.len(), state.config.net.grids.len());
        }
        let chains = match (state.config.method, model.extras.get(CHAINS)) {
            (Method::PersistentCd, Some(t)) if t.shape == images.dims().to_vec() => Some(Tensor::from_data(TensorData::new(t.values.clone(), images.dims()), &inner)),
            (Method::PersistentCd, _) => bail!("the checkpoint lacks persistent chains for these {} images", images.dims()[0]),
            _ => None,
        };
        let updaters = nets
            .iter()
            .zip(&state.config.net.grids)
            .zip(state.adam_steps.iter().chain(core::iter::repeat(&0)))
            .map(|((net, side), adam_step)| {
                Updater::restore(state.config.optimizer, collect_parameter_count(net), *adam_step, |name| {
                    saved.remove(&format!("grid{side}.{name}")).map(|t| flat(t.values, &inner))
                })
            })
            .collect();
        let roles = grid_roles(&state.config)?;
        Ok(Self { config: state.config, nets, iteration: state.iteration, explicit_gradients: true, images, chains, updaters, roles, rng: state.rng, device: train_device })
    }

    /// Checkpoint bytes: the model, optimiser state, persistent chains, generator state.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let mut file = self.model()?.to_model_file()?;
        if let Some(chains) = &self.chains {
            file.tensors.push(NamedTensor { name: CHAINS.into(), shape: chains.dims().to_vec(), values: host_values(chains.clone())? });
        }
        let adam_steps = self.updaters.iter().map(Updater::adam_step).collect();
        let state = TrainState { config: self.config.clone(), iteration: self.iteration, rng: self.rng.clone(), adam_steps };
        let optimiser = self
            .updaters
            .iter()
            .zip(&self.config.net.grids)
            .flat_map(|(updater, side)| updater.state().into_iter().map(move |(name, tensor)| (format!("grid{side}.{name}"), tensor)));
        seal_checkpoint(file, optimiser, &state)
    }

    /// The model: the grid nets, each grid's Langevin settings, and the training images' 1×1
    /// versions ([`START_COLORS`]) that sampling from scratch draws its start from.
    pub fn model(&self) -> anyhow::Result<Model> {
        let [count, channels, ..] = self.images.dims();
        let colors = host_values(downscale(self.images.clone(), IMAGE_SIZE))?;
        let manifest = Manifest {
            model: ModelSpec::Multigrid(self.config.net.clone()),
            data: DataSpec { channels, height: IMAGE_SIZE, width: IMAGE_SIZE, range: [0.0, 255.0], normalization: Normalization::Raw255 },
            sampler: SamplerDefaults { init: ChainInit::Uniform { low: 0.0, high: 255.0 }, langevin: self.config.grid_langevin(), mala: None },
            provenance: crate::run::provenance(self.config.source.describe(), self.iteration, self.config.seed),
        };
        let stacks = self
            .nets
            .iter()
            .zip(&self.config.net.grids)
            .map(|(net, side)| ModelStack { name: format!("grid{side}"), role: Role::Energy(Polarity::NegativeEnergy), stack: net.valid() })
            .collect();
        let extras = BTreeMap::from([(START_COLORS.to_string(), NamedTensor { name: START_COLORS.into(), shape: vec![count, channels], values: colors })]);
        Ok(Model { manifest, stacks, extras })
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn batches_per_epoch(&self) -> u64 {
        self.images.dims()[0].div_ceil(self.config.batch_size) as u64
    }

    /// Iterations of the whole run.
    pub fn total_iterations(&self) -> u64 {
        self.config.epochs * self.batches_per_epoch()
    }

    /// The training images `[M, C, 64, 64]`.
    pub fn images(&self) -> &Tensor<4> {
        &self.images
    }

    /// One iteration: synthesis for the next batch, then every grid's update. On divergence
    /// nothing is updated. Returns the metrics and the synthesised images of each grid.
    pub fn step(&mut self) -> Result<(MultigridMetrics, Vec<Tensor<4>>), MultigridTrainError> {
        let inner = self.device.clone().inner();
        inner.seed(self.rng.fork_seed());
        let batches = self.batches_per_epoch();
        let epoch = self.iteration / batches;
        let lr = self.config.optimizer.lr() * self.config.lr_factor(epoch);
        let total = self.images.dims()[0];
        let first = (self.iteration % batches) as usize * self.config.batch_size;
        let count = self.config.batch_size.min(total - first);
        let observed = self.images.clone().narrow(0, first, count);
        let [_, channels, ..] = observed.dims();
        let observation = self.config.inpainting_hole.map(|hole| Observation {
            images: observed.clone(),
            known: square_holes(count, channels, hole, &mut self.rng, &inner).bool_not(),
        });
        let synthesised = self.synthesise(&observed, observation.as_ref(), first);

        let mut losses = Vec::new();
        let mut readback = Vec::new();
        for ((net, side), syn) in self.nets.iter().zip(&self.config.net.grids).zip(&synthesised) {
            let obs = downscale(observed.clone(), IMAGE_SIZE / side);
            let loss = Contrastive::new(net, obs, syn.clone(), [1.0, 1.0], self.explicit_gradients);
            readback.extend([loss.f_positive.clone(), loss.f_negative.clone(), syn.clone().abs().mean().reshape([1])]);
            losses.push(loss);
        }
        let finest = synthesised.last().cloned().unwrap_or_else(|| observed.clone());
        readback.push((finest - observed).abs().mean().reshape([1]));
        let values = host_values(Tensor::cat(readback, 0)).unwrap_or_default();
        let value = |i: usize| values.get(i).copied().map_or(f64::NAN, f64::from);
        let iteration = self.iteration + 1;
        let (mut f_observed, mut f_synthesised) = (Vec::new(), Vec::new());
        for (g, side) in self.config.net.grids.iter().enumerate() {
            let (fo, fs, sa) = (value(3 * g), value(3 * g + 1), value(3 * g + 2));
            let per_pixel = (channels * side * side) as f64;
            let threshold = self.config.divergence_threshold;
            if !(fo.is_finite() && fs.is_finite() && sa.is_finite()) || fo.abs().max(fs.abs()) / per_pixel > threshold || sa > threshold {
                return Err(MultigridTrainError::Diverged { iteration, side: *side, f_observed: fo, f_synthesised: fs, sample_abs_mean: sa });
            }
            f_observed.push(fo);
            f_synthesised.push(fs);
        }
        let distance_to_data = value(3 * self.config.net.grids.len());
        for (g, loss) in losses.into_iter().enumerate() {
            let gradients = loss.gradients(&self.nets[g]);
            self.updaters[g].set_lr(lr);
            self.nets[g] = self.updaters[g].step_with_gradients(self.nets[g].clone(), gradients, &self.roles[g]);
        }
        if let (Some(chains), Some(last)) = (&mut self.chains, synthesised.last()) {
            *chains = chains.clone().slice_assign([first..first + count, 0..channels, 0..IMAGE_SIZE, 0..IMAGE_SIZE], last.clone());
        }
        self.iteration = iteration;
        Ok((MultigridMetrics { iteration, epoch, f_observed, f_synthesised, distance_to_data, lr }, synthesised))
    }

    /// The synthesised images of every learned grid for the batch `observed` (starting at
    /// training index `first`).
    fn synthesise(&self, observed: &Tensor<4>, observation: Option<&Observation>, first: usize) -> Vec<Tensor<4>> {
        let samplers: Vec<Stack> = self.nets.iter().map(Stack::valid).collect();
        let densities: Vec<NetDensity<'_>> = samplers.iter().map(|stack| NetDensity { stack, polarity: Polarity::NegativeEnergy }).collect();
        let one_by_one = || observation.map_or_else(|| downscale(observed.clone(), IMAGE_SIZE), Observation::known_mean);
        let run = |grids: &[Grid<'_, NetDensity<'_>>], start: Tensor<4>| cascade(grids, start, observation, &mut DeviceNoise, |_, _| ControlFlow::Continue(()));
        let grids: Vec<_> = densities
            .iter()
            .zip(&self.config.net.grids)
            .zip(self.config.grid_langevin())
            .map(|((density, side), langevin)| Grid { side: *side, density, langevin })
            .collect();
        match self.config.method {
            Method::Multigrid | Method::SingleGrid => run(&grids, one_by_one()),
            Method::ContrastiveDivergence | Method::PersistentCd => {
                let (start, steps) = match (&self.chains, self.config.method) {
                    (Some(chains), Method::PersistentCd) => (chains.clone().narrow(0, first, observed.dims()[0]), self.config.baseline_steps),
                    _ => (observed.clone(), 1),
                };
                let start = observation.map_or(start.clone(), |o| o.impose(start));
                let config = LangevinConfig { steps, ..self.config.langevin };
                vec![langevin(&densities[0], start, &config, observation.map(|o| &o.known), &mut DeviceNoise, |_| ControlFlow::Continue(())).x]
            }
        }
    }
}

/// Lab-update roles of every grid's parameters, with the top layer's multiplier.
fn grid_roles(config: &MultigridTrainConfig) -> anyhow::Result<Vec<Vec<ParameterRole>>> {
    config
        .net
        .grids
        .iter()
        .map(|&side| {
            let spec = config.net.grid_spec(side)?;
            let top = (spec.layers.len() - 1).to_string();
            let names = spec.parameter_shapes()?;
            let mut roles = parameter_roles(&spec)?;
            if config.top_layer_lr {
                for (role, (name, _)) in roles.iter_mut().zip(names) {
                    if name.split('.').next() == Some(top.as_str()) {
                        role.layer_lr = MultigridConfig::top_lr_multiplier(side);
                    }
                }
            }
            Ok(roles)
        })
        .collect()
}

fn check_images(config: &MultigridTrainConfig, images: &Tensor<4>) -> anyhow::Result<()> {
    let [n, c, h, w] = images.dims();
    if n == 0 {
        bail!("the training set is empty");
    }
    if c != config.net.channels || h != IMAGE_SIZE || w != IMAGE_SIZE {
        bail!("the data is {c}×{h}×{w} but the nets expect {}×{IMAGE_SIZE}×{IMAGE_SIZE}", config.net.channels);
    }
    Ok(())
}

fn flat(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// `[N, C, 64, 64]`, true inside one `hole`×`hole` square per image at a position drawn
/// uniformly from `rng`.
pub fn square_holes(count: usize, channels: usize, hole: usize, rng: &mut HostRng, device: &Device) -> Tensor<4, Bool> {
    missing_tensor(&test_masks(MaskKind::Square { side: hole }, count, rng), channels, device)
}

/// 64×64 masks, one per image, repeated over `channels`: `N·C·64·64` values, image after image.
pub fn per_channel(masks: &[Vec<bool>], channels: usize) -> Vec<bool> {
    masks.iter().flat_map(|mask| (0..channels).flat_map(move |_| mask.iter().copied())).collect()
}

/// `[N, C, 64, 64]`, true where `masks` (one per image, shared by the channels) is true.
fn missing_tensor(masks: &[Vec<bool>], channels: usize, device: &Device) -> Tensor<4, Bool> {
    let values: Vec<f32> = per_channel(masks, channels).into_iter().map(|m| f32::from(u8::from(m))).collect();
    Tensor::<4>::from_data(TensorData::new(values, [masks.len(), channels, IMAGE_SIZE, IMAGE_SIZE]), device).greater_elem(0.5)
}

/// The three test masks of the paper's inpainting experiment. Their sizes were lost from the
/// paper; these defaults are ours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaskKind {
    /// A square hole at a random position (default side 32: a quarter of the image).
    Square {
        /// Side in pixels.
        side: usize,
    },
    /// Random brush strokes (radius 2) until at least `fraction` of the pixels are missing.
    Doodle {
        /// Fraction of missing pixels (default 0.25).
        fraction: f64,
    },
    /// Each pixel missing independently with probability `fraction` (default 0.3, the ratio in
    /// the MatConvNet code's data preparation).
    PepperSalt {
        /// Probability that a pixel is missing.
        fraction: f64,
    },
}

impl MaskKind {
    /// The three masks with their default sizes.
    pub const DEFAULTS: [MaskKind; 3] = [MaskKind::Square { side: 32 }, MaskKind::Doodle { fraction: 0.25 }, MaskKind::PepperSalt { fraction: 0.3 }];

    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Square { .. } => "square",
            Self::Doodle { .. } => "doodle",
            Self::PepperSalt { .. } => "pepper-salt",
        }
    }
}

/// `count` masks of 64×64 pixels (true = missing), drawn from `rng`.
pub fn test_masks(kind: MaskKind, count: usize, rng: &mut HostRng) -> Vec<Vec<bool>> {
    let n = IMAGE_SIZE;
    (0..count)
        .map(|_| {
            let mut mask = vec![false; n * n];
            match kind {
                MaskKind::Square { side } => {
                    let side = side.min(n);
                    let (top, left) = (rng.below(n - side + 1), rng.below(n - side + 1));
                    for y in top..top + side {
                        mask[y * n + left..y * n + left + side].fill(true);
                    }
                }
                MaskKind::Doodle { fraction } => {
                    let target = (fraction.clamp(0.0, 0.9) * (n * n) as f64) as usize;
                    let (mut x, mut y) = (rng.uniform(0.0, n as f64), rng.uniform(0.0, n as f64));
                    let mut heading = rng.uniform(0.0, core::f64::consts::TAU);
                    while mask.iter().filter(|m| **m).count() < target {
                        // A stroke: turn a little, move one pixel, paint a disc of radius 2; new
                        // strokes start elsewhere now and then.
                        if rng.next_f64() < 0.01 {
                            (x, y) = (rng.uniform(0.0, n as f64), rng.uniform(0.0, n as f64));
                        }
                        heading += rng.uniform(-0.35, 0.35);
                        x += heading.cos();
                        y += heading.sin();
                        if !(0.0..n as f64).contains(&x) || !(0.0..n as f64).contains(&y) {
                            heading += core::f64::consts::PI;
                            (x, y) = (x.clamp(0.0, n as f64 - 1.0), y.clamp(0.0, n as f64 - 1.0));
                        }
                        let (cx, cy) = (x as i64, y as i64);
                        for dy in -2i64..=2 {
                            for dx in -2i64..=2 {
                                let (px, py) = (cx + dx, cy + dy);
                                if dx * dx + dy * dy <= 5 && (0..n as i64).contains(&px) && (0..n as i64).contains(&py) {
                                    mask[py as usize * n + px as usize] = true;
                                }
                            }
                        }
                    }
                }
                MaskKind::PepperSalt { fraction } => mask.iter_mut().for_each(|m| *m = rng.next_f64() < fraction),
            }
            mask
        })
        .collect()
}

/// Inpaints `images` (`[N, C, 64, 64]`, 0–255) where `missing` (one 64×64 mask per image) is
/// true, with the model's cascade: the known pixels' mean colour at 1×1, then every grid's
/// chain with the known pixels imposed and frozen. Single-net baselines run their one chain
/// from the 1×1 start up-scaled to 64×64.
pub fn inpaint(model: &Model, images: Tensor<4>, missing: &[Vec<bool>], overrides: &Overrides, noise: &mut impl NoiseSource) -> anyhow::Result<Tensor<4>> {
    let [count, channels, ..] = images.dims();
    if missing.len() != count {
        bail!("{} masks for {count} images", missing.len());
    }
    let known = missing_tensor(missing, channels, &images.device()).bool_not();
    let observation = Observation { images, known };
    let outputs = model_cascade(model, overrides, observation.known_mean(), Some(&observation), noise)?;
    outputs.into_iter().last().context("the model has no grid")
}

/// The model's grids as a cascade from `start` (see [`cascade`]), every grid's images.
fn model_cascade(model: &Model, overrides: &Overrides, start: Tensor<4>, observation: Option<&Observation>, noise: &mut impl NoiseSource) -> anyhow::Result<Vec<Tensor<4>>> {
    let cascade_grids = cascade_grids(model, overrides)?;
    let densities: Vec<NetDensity<'_>> = cascade_grids.iter().map(|g| NetDensity { stack: g.stack, polarity: g.polarity }).collect();
    let grids: Vec<_> = cascade_grids.iter().zip(&densities).map(|(g, density)| Grid { side: g.side, density, langevin: g.config }).collect();
    Ok(cascade(&grids, start, observation, noise, |_, _| ControlFlow::Continue(())))
}

/// Samples from scratch: `count` 1×1 starts drawn from the training images' 1×1 versions (one
/// start shared by all chains with `one_start`: the paper's diversity check), then the
/// cascade. Returns every grid's images, coarse to fine.
pub fn synthesise(model: &Model, count: usize, one_start: bool, overrides: &Overrides, seed: u64, device: &Device) -> anyhow::Result<Vec<Tensor<4>>> {
    let mut rng = HostRng::new(seed);
    let start = cascade_start(model, if one_start { 1 } else { count }, &mut rng, device)?;
    let start = if one_start { start.repeat_dim(0, count) } else { start };
    model_cascade(model, overrides, start, None, &mut DeviceNoise::seeded(device, rng.fork_seed()))
}

/// Inpainting scores of `model` on `images` for one mask kind (the masks are drawn from `seed`,
/// so every model sees the same ones), in batches of `batch`.
pub fn score_inpainting(model: &Model, images: &Tensor<4>, kind: MaskKind, overrides: &Overrides, seed: u64, batch: usize) -> anyhow::Result<(MaskedScores, Tensor<4>, Vec<Vec<bool>>)> {
    let [count, channels, h, w] = images.dims();
    let device = images.device();
    let masks = test_masks(kind, count, &mut HostRng::new(seed));
    let mut noise = DeviceNoise::seeded(&device, seed ^ 0x9e37_79b9);
    let mut results = Vec::new();
    for start in (0..count).step_by(batch.max(1)) {
        let n = batch.max(1).min(count - start);
        results.push(inpaint(model, images.clone().narrow(0, start, n), &masks[start..start + n], overrides, &mut noise)?);
    }
    let result = Tensor::cat(results, 0);
    let scores = masked_scores(&host_values(images.clone())?, &host_values(result.clone())?, &per_channel(&masks, channels), channels * h * w, 255.0);
    Ok((scores, result, masks))
}
