//! Generative ConvNet / FRAME learning (Xie et al. 2016, Algorithm 1, §7 and §8).
//!
//! `p(I) ∝ exp(f(I))·N(0, σ²I)` on `[0, 255]` images with their mean subtracted. Maximum
//! likelihood keeps `M̃` persistent chains (initialised at zero, the mean image) and advances
//! them `L` Langevin steps `I ← I + δ²/2·(∂f/∂I − I/σ²) + δ·N` between updates of
//! `mean f(observed) − mean f(synthesised)`. Layers are grown one at a time: `T` iterations
//! with layer 1, then layer 2 is added and all layers learn, and so on. Contrastive divergence
//! starts one Langevin step from the observed images instead, with all layers at once; its
//! reconstruction is `B = σ²·∂f/∂I` at the observed image (Proposition 3).
//!
//! Defaults where the paper is silent follow the lab's MatConvNet code (δ = 0.3, weights
//! N(0, 0.01²), persistent chains started at zero); its per-layer normalised, capped update is
//! `--optimizer lab` ([`LabSgdSettings`]), and the default update is Adam, for the reasons
//! measured at [`FrameTrainConfig::texture`]. Randomness comes from one portable generator whose state is
//! checkpointed with the chains, so a resumed run repeats the uninterrupted one on the same
//! device.

use core::ops::ControlFlow;
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use burn::prelude::*;
use modelfile::NamedTensor;
use serde::{Deserialize, Serialize};
use shared::Stack;
use shared::file::{DataSpec, Manifest, Model, ModelStack, Normalization, SamplerDefaults};
use shared::nets::{FrameKind, FrameNetConfig, ModelSpec, Polarity, Role};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, DeviceNoise, LangevinConfig, NetDensity, langevin};

use crate::contrastive::Contrastive;
use crate::data::ImageSet;
use crate::run::{open_checkpoint, seal_checkpoint};
use crate::optim::{AdamSettings, LabSgdSettings, ParameterRole, Update, Updater, parameter_roles};
use crate::shortrun::{DataSource, check_delta_langevin, host_values};

/// How the synthesised images of an update are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learning {
    /// Algorithm 1: persistent chains from zero, never re-initialised.
    Persistent,
    /// Contrastive divergence: chains start at the observed images every iteration (§7).
    ContrastiveDivergence,
    /// Short-run learning (papers 001/003) with this net: `M̃` fresh chains from white noise of
    /// the training pixels' RMS every iteration. The model then learns to make *fresh* chains
    /// produce the texture, which is what sampling a new canvas (of any size) needs; models
    /// learned with persistent chains tend to have spurious modes that fresh chains fall into.
    NonPersistent,
}

/// How the mean is subtracted from the training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeanKind {
    /// One mean per channel (textures: subtracting the mean *image* of one image would leave
    /// nothing).
    PerChannel,
    /// The mean image, per pixel (aligned objects, as in the paper).
    PerPixel,
}

/// Everything that defines a generative ConvNet run (saved as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameTrainConfig {
    /// The net at its final depth.
    pub net: FrameNetConfig,
    /// Where the training images come from.
    pub source: DataSource,
    /// How the mean is subtracted.
    pub mean: MeanKind,
    /// Persistent chains or contrastive divergence.
    pub learning: Learning,
    /// Number of persistent chains M̃ (16).
    pub chains: usize,
    /// Side of the synthesised canvases as a multiple of the training image's (1 in the paper).
    /// Texture nets take any canvas, and with 2 the chains themselves are a synthesis twice as
    /// large; `f` of a larger canvas is weighted by the ratio of pixel counts, so what is matched
    /// is each filter's mean response per position (FRAME's statistics).
    #[serde(default = "one")]
    pub chain_scale: usize,
    /// Langevin between updates (L = 10, δ = 0.3, σ = 1).
    pub langevin: LangevinConfig,
    /// Iterations T per added layer (700), or in all without layer growing.
    pub iterations_per_layer: u64,
    /// Grow the net one layer at a time (the paper's choice for synthesis).
    pub grow_layers: bool,
    /// Halve the learning rate whenever a layer is added (one lab code copy does).
    pub halve_lr_per_layer: bool,
    /// Parameter update.
    pub optimizer: Update,
    /// Langevin steps the model file asks for when sampling from scratch (the persistent
    /// chains ran `L × iterations` steps; a fresh chain needs a few hundred, and a stored chain
    /// continued by `trainer frame figure` or the browser takes as many more).
    pub synthesis_steps: usize,
    /// Seed of the run.
    pub seed: u64,
    /// An iteration whose |f| per pixel or mean |I| exceeds this is divergence.
    pub divergence_threshold: f64,
}

impl FrameTrainConfig {
    /// The lab update (`--optimizer lab`): γ = 1e-2, cap 20, weight decay 1e-4, no momentum.
    pub const LAB_UPDATE: LabSgdSettings = LabSgdSettings { lr: 1e-2, momentum: 0.0, weight_decay: 1e-4, cap: Some(20.0), bias_lr_factor: 2.0 };
    /// Adam with the Paddle port's β₁ 0.5 (its lr is 5e-4; the presets use 2e-3 or 1e-3).
    pub const ADAM_UPDATE: AdamSettings = AdamSettings { lr: 5e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8 };

    /// Experiment 1, textures from one image: texture net grown to 3 layers, 16 persistent
    /// chains from zero, L = 10, δ = 0.3, σ = 1, T = 700 per layer; Adam (lr 2e-3, β₁ 0.5).
    ///
    /// The learning rate is a gap in the paper and the code. The lab's update
    /// ([`FrameTrainConfig::LAB_UPDATE`], `--optimizer lab`) moves each weight by up to γ·20 per
    /// step whatever the scale of its layer's inputs, and on the scikit-image textures here no γ
    /// worked for all three layers: the chains' mean |I| was still 7.6 after 30 iterations at
    /// 3e-4 and 9.7 after 150 at 3e-3 (the brick texture's is about 18), 3e-2
    /// oscillated, and at 3e-3 and 1e-2 (also halved per layer, as one lab copy does) the freshly
    /// added layer 2 was pushed to all-negative responses within a few iterations
    /// ([`FrameTrainError::DeadTopLayer`]). Adam's per-weight steps do not depend on the inputs'
    /// scale; 2e-3 learned all three layers of brick, grass and gravel here.
    pub fn texture(image_size: usize, channels: usize, source: DataSource) -> Self {
        Self {
            net: FrameNetConfig::new().with_kind(FrameKind::Texture).with_image_size(image_size).with_channels(channels),
            source,
            mean: MeanKind::PerChannel,
            learning: Learning::Persistent,
            chains: 16,
            chain_scale: 1,
            langevin: LangevinConfig::delta(10, 0.3, 1.0),
            iterations_per_layer: 700,
            grow_layers: true,
            halve_lr_per_layer: false,
            optimizer: Update::Adam(AdamSettings { lr: 2e-3, ..Self::ADAM_UPDATE }),
            synthesis_steps: 300,
            seed: 1,
            divergence_threshold: 1e6,
        }
    }

    /// Experiment 2, aligned objects: the object net (with its fully connected top filter),
    /// the mean image subtracted, Adam at the Paddle port's 5e-4 (at 2e-3 the chains of 10
    /// Fashion-MNIST sneakers ran away once the third layer was added: the linear top filter
    /// is unbounded), otherwise as [`FrameTrainConfig::texture`].
    pub fn objects(image_size: usize, channels: usize, source: DataSource) -> Self {
        let mut config = Self::texture(image_size, channels, source);
        config.net.kind = FrameKind::Object;
        config.mean = MeanKind::PerPixel;
        config.optimizer = Update::Adam(Self::ADAM_UPDATE);
        config
    }

    /// Experiment 3, contrastive divergence: texture net, all three layers at once, one
    /// Langevin step from the observed images (per-pixel mean subtracted), T = 1200. The update
    /// is Adam (lr 1e-3, β₁ 0.5): the lab's CD branch (cap 1, γ unknown) barely moved a 3-layer
    /// net from its N(0, 0.01²) start here (MSE 104.5 → 101.2 in 60 iterations at γ = 1e-2,
    /// against 104.5 → 27.9 with Adam); `--optimizer lab --cap 1` selects it.
    pub fn reconstruction(image_size: usize, channels: usize, source: DataSource) -> Self {
        let mut config = Self::texture(image_size, channels, source);
        config.mean = MeanKind::PerPixel;
        config.learning = Learning::ContrastiveDivergence;
        config.langevin.steps = 1;
        config.iterations_per_layer = 1200;
        config.grow_layers = false;
        config.optimizer = Update::Adam(AdamSettings { lr: 1e-3, ..Self::ADAM_UPDATE });
        config
    }

    /// Chains kept by the trainer: none for contrastive divergence (it starts at the data).
    pub fn chain_count(&self) -> usize {
        if self.learning == Learning::ContrastiveDivergence { 0 } else { self.chains }
    }

    /// Conv layers of `net` built from this config (an object net's top filter is not one).
    fn conv_layers(&self, net: &Stack) -> usize {
        net.blocks.len() - usize::from(self.net.kind == FrameKind::Object)
    }

    /// Iterations of the whole run.
    pub fn total_iterations(&self) -> u64 {
        if self.grow_layers { self.iterations_per_layer * self.net.layers as u64 } else { self.iterations_per_layer }
    }

    /// Conv layers in use at (0-based) iteration `iteration`.
    pub fn layers_at(&self, iteration: u64) -> usize {
        if self.grow_layers {
            let grown = 1 + iteration / self.iterations_per_layer.max(1);
            (grown as usize).min(self.net.layers)
        } else {
            self.net.layers
        }
    }

    /// Checks the settings before anything is built.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.net.stack_spec().context("invalid network settings")?;
        if self.chains == 0 && self.learning != Learning::ContrastiveDivergence {
            bail!("--chains must be at least 1");
        }
        if !(1..=8).contains(&self.chain_scale) || self.chain_scale > 1 && (self.net.kind == FrameKind::Object || self.learning == Learning::ContrastiveDivergence) {
            bail!("--chain-scale must be 1 to 8, and 1 for objects and contrastive divergence (their chains have the images' size)");
        }
        if self.iterations_per_layer == 0 {
            bail!("--iterations must be at least 1");
        }
        check_delta_langevin(&self.langevin, true)?;
        self.optimizer.check()
    }
}

/// The training images with their mean subtracted.
#[derive(Debug, Clone)]
pub struct FrameData {
    /// `[M, C, H, W]` model-space images.
    pub images: Tensor<4>,
    /// The data description (with the subtracted mean) the model file records.
    pub spec: DataSpec,
    /// Root-mean-square of the mean-subtracted pixels.
    pub rms: f64,
}

impl FrameData {
    /// Subtracts the mean of `set` (per channel or per pixel) and puts it on `device`.
    pub fn new(set: &ImageSet, mean: MeanKind, device: &Device) -> anyhow::Result<Self> {
        if set.is_empty() {
            bail!("the training set is empty");
        }
        let plane = set.height * set.width;
        let image = set.channels * plane;
        let mut per_pixel = vec![0f64; image];
        for i in 0..set.count {
            for (sum, &v) in per_pixel.iter_mut().zip(set.image(i)) {
                *sum += f64::from(v);
            }
        }
        let per_pixel: Vec<f32> = per_pixel.iter().map(|s| (s / set.count as f64) as f32).collect();
        let mean_values = match mean {
            MeanKind::PerPixel => per_pixel,
            MeanKind::PerChannel => per_pixel.chunks(plane).map(|c| c.iter().sum::<f32>() / plane as f32).collect(),
        };
        let values: Vec<f32> = set.pixels.iter().enumerate().map(|(i, v)| v - mean_values[if mean_values.len() == image { i % image } else { (i % image) / plane }]).collect();
        let rms = (values.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        let spec = DataSpec {
            channels: set.channels,
            height: set.height,
            width: set.width,
            range: [-255.0, 255.0],
            normalization: Normalization::MeanSubtracted { mean: mean_values },
        };
        let images = Tensor::from_data(TensorData::new(values, [set.count, set.channels, set.height, set.width]), device);
        Ok(Self { images, spec, rms })
    }
}

/// Numbers of one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameMetrics {
    /// Iteration just completed (1-based).
    pub iteration: u64,
    /// Conv layers in use.
    pub layers: usize,
    /// Mean f over the observed images.
    pub f_observed: f64,
    /// Mean f over the synthesised images.
    pub f_synthesised: f64,
    /// Mean |I| of the synthesised images (model space).
    pub sample_abs_mean: f64,
    /// CD only: per-pixel MSE between the observed images and `B = σ²·∂f/∂I` before the update.
    pub reconstruction_mse: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum FrameTrainError {
    /// Values became NaN/Inf or exploded.
    #[error(
        "training diverged at iteration {iteration}: f(observed) = {f_observed}, f(synthesised) = {f_synthesised}, \
         mean |I| = {sample_abs_mean}; the model was not updated with this step and the last checkpoint is kept. \
         Try a smaller --lr or --delta and resume"
    )]
    Diverged {
        /// Iteration that diverged.
        iteration: u64,
        /// Its f(observed).
        f_observed: f64,
        /// Its f(synthesised).
        f_synthesised: f64,
        /// Its synthesised images' mean |I|.
        sample_abs_mean: f64,
    },
    /// No top-layer unit responds to any image: f and all its gradients are zero, so learning
    /// cannot go on (a too large step pushed a freshly added layer's weights negative).
    #[error(
        "the top layer died at iteration {iteration} ({layers} layers): no unit responds to any image, so nothing can be \
         learned any more. Resume from the last checkpoint with a smaller --lr"
    )]
    DeadTopLayer {
        /// Iteration.
        iteration: u64,
        /// Conv layers in use.
        layers: usize,
    },
    /// The next layer could not be added.
    #[error("cannot add layer {layers}: {reason}")]
    Grow {
        /// Layers the net was growing to.
        layers: usize,
        /// What went wrong.
        reason: String,
    },
}

/// State saved in a checkpoint's manifest under `"training"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    config: FrameTrainConfig,
    iteration: u64,
    rng: HostRng,
    adam_step: u64,
}

/// A generative ConvNet run in memory.
pub struct FrameTrainer {
    /// Configuration.
    pub config: FrameTrainConfig,
    /// The net at its current depth, on the autodiff device.
    pub net: Stack,
    /// Iterations completed.
    pub iteration: u64,
    /// The persistent chains `[M̃, C, H, W]` (empty for contrastive divergence).
    pub chains: Tensor<4>,
    /// Take the parameter gradients without a tape where the net allows (see
    /// [`crate::contrastive`]; the default), or always from burn's autodiff (`false`).
    pub explicit_gradients: bool,
    data: FrameData,
    optimizer: Updater,
    roles: Vec<ParameterRole>,
    rng: HostRng,
    device: Device,
}

/// The persistent chains in a model file `[M̃, C, H', W']`: samples of the model that a sampler
/// (the browser's endless texture) can continue from.
pub const CHAINS: &str = "extra.chains";

impl FrameTrainer {
    /// A new run on `device` (its autodiff version learns) over `data`.
    pub fn new(config: FrameTrainConfig, data: FrameData, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let train_device = device.clone().autodiff();
        let data = FrameData { images: data.images.to_device(&device.clone().inner()), ..data };
        check_data(&config, &data)?;
        let mut rng = HostRng::new(config.seed);
        train_device.seed(rng.fork_seed());
        let net = config.net.clone().with_layers(config.layers_at(0)).init(&train_device).context("cannot build the net")?;
        let [_, c, h, w] = data.images.dims();
        let scale = config.chain_scale;
        let chains = Tensor::zeros([config.chain_count(), c, h * scale, w * scale], &device.clone().inner());
        let roles = parameter_roles(&net_spec(&config, config.layers_at(0))?)?;
        let optimizer = Updater::new(config.optimizer);
        Ok(Self { config, net, iteration: 0, chains, explicit_gradients: true, data, optimizer, roles, rng, device: train_device })
    }

    /// Resumes from checkpoint bytes, with the training images loaded again.
    pub fn from_checkpoint(bytes: &[u8], data: FrameData, device: &Device) -> anyhow::Result<Self> {
        let train_device = device.clone().autodiff();
        let inner = device.clone().inner();
        let (file, state, mut saved): (_, TrainState, _) = open_checkpoint(bytes, "generative ConvNet")?;
        let data = FrameData { images: data.images.to_device(&inner), ..data };
        check_data(&state.config, &data)?;
        let model = Model::from_model_file(file, &train_device).context("the checkpoint's model is invalid")?;
        let net = model.stacks.first().map(|s| s.stack.clone()).context("the checkpoint holds no net")?;
        let layers = state.config.conv_layers(&net);
        let roles = parameter_roles(&net_spec(&state.config, layers)?)?;
        let [_, c, h, w] = data.images.dims();
        let (h, w) = (h * state.config.chain_scale, w * state.config.chain_scale);
        let chains = match model.extras.get(CHAINS) {
            Some(t) if t.shape.len() == 4 && t.shape[1..] == [c, h, w] => Tensor::from_data(TensorData::new(t.values.clone(), [t.shape[0], c, h, w]), &inner),
            Some(t) => bail!("the checkpoint's chains have shape {:?}, not [M, {c}, {h}, {w}]", t.shape),
            None if state.config.learning == Learning::Persistent => bail!("the checkpoint lacks its persistent chains"),
            None => Tensor::zeros([state.config.chain_count(), c, h, w], &inner),
        };
        let count = crate::optim::collect_parameter_count(&net);
        let optimizer = Updater::restore(state.config.optimizer, count, state.adam_step, |name| saved.remove(&name).map(|t| flat(t.values, &inner)));
        let mut trainer = Self { config: state.config, net, iteration: state.iteration, chains, explicit_gradients: true, data, optimizer, roles, rng: state.rng, device: train_device };
        trainer.optimizer.set_lr(trainer.lr());
        Ok(trainer)
    }

    /// Checkpoint bytes: model, chains, optimiser state, generator state, iteration.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let adam_step = self.optimizer.adam_step();
        let state = TrainState { config: self.config.clone(), iteration: self.iteration, rng: self.rng.clone(), adam_step };
        seal_checkpoint(self.model().to_model_file()?, self.optimizer.state(), &state)
    }

    /// The model as it would be exported now: the net at its current depth, the subtracted
    /// mean, and a sampler for fresh canvases: `synthesis_steps` Langevin steps from white
    /// noise with the training pixels' RMS. (Learning starts its persistent chains at zero, as
    /// the paper does; a fresh chain started at exactly zero is first pushed along `∂f/∂I(0)`,
    /// which repeats with the first layer's stride, and tends to stay in that lattice.)
    pub fn model(&self) -> Model {
        let layers = self.conv_layers();
        let manifest = Manifest {
            model: ModelSpec::Frame(self.config.net.clone().with_layers(layers)),
            data: self.data.spec.clone(),
            sampler: SamplerDefaults {
                init: ChainInit::Normal { std: self.data.rms },
                langevin: vec![LangevinConfig { steps: self.config.synthesis_steps, ..self.config.langevin }],
                mala: None,
            },
            provenance: crate::run::provenance(self.config.source.describe(), self.iteration, self.config.seed),
        };
        let mut extras = BTreeMap::new();
        if self.config.learning == Learning::Persistent
            && let Ok(values) = host_values(self.chains.clone())
        {
            extras.insert(CHAINS.to_string(), NamedTensor { name: CHAINS.to_string(), shape: self.chains.dims().to_vec(), values });
        }
        Model {
            manifest,
            stacks: vec![ModelStack { name: "energy".into(), role: Role::Energy(Polarity::NegativeEnergy), stack: self.net.valid() }],
            extras,
        }
    }

    /// The observed images `[M, C, H, W]` (model space).
    pub fn observed(&self) -> &Tensor<4> {
        &self.data.images
    }

    /// The data description.
    pub fn data_spec(&self) -> &DataSpec {
        &self.data.spec
    }

    /// Conv layers of the net now.
    pub fn conv_layers(&self) -> usize {
        self.config.conv_layers(&self.net)
    }

    /// The learning rate at the current depth.
    fn lr(&self) -> f64 {
        let base = self.config.optimizer.lr();
        let added = self.conv_layers().saturating_sub(1);
        if self.config.halve_lr_per_layer { base / f64::from(1u32 << added.min(30)) } else { base }
    }

    /// Grows the net to `layers` conv layers: lower layers keep their weights (and keep
    /// learning), the new one (and an object net's top filter, whose input changed) starts
    /// fresh from the device's generator; the optimiser state starts over. [`FrameTrainer::step`]
    /// calls this when the schedule adds a layer.
    pub fn grow(&mut self, layers: usize) -> anyhow::Result<()> {
        let old: BTreeMap<String, Tensor<1>> = self.net.parameters().into_iter().map(|(name, _, values)| (name, values.inner())).collect();
        let spec = net_spec(&self.config, layers)?;
        let kept_blocks = layers - 1;
        let fresh = spec.init(&self.device)?;
        let initial: BTreeMap<String, Tensor<1>> = fresh.parameters().into_iter().map(|(name, _, values)| (name, values.inner())).collect();
        self.net = fresh.load_parameters::<anyhow::Error>(|name, _| {
            let block: usize = name.split('.').next().and_then(|b| b.parse().ok()).unwrap_or(usize::MAX);
            let kept = if block < kept_blocks { old.get(name) } else { None };
            kept.or_else(|| initial.get(name)).cloned().map(Tensor::from_inner).with_context(|| format!("no value for parameter {name}"))
        })?;
        self.roles = parameter_roles(&spec)?;
        self.optimizer = Updater::new(self.config.optimizer);
        Ok(())
    }

    /// One iteration. On divergence the net and the chains are left unchanged.
    pub fn step(&mut self) -> Result<FrameMetrics, FrameTrainError> {
        let inner = self.device.clone().inner();
        // Seeded before a new layer is drawn, so a resumed run grows the same layer.
        inner.seed(self.rng.fork_seed());
        let layers = self.config.layers_at(self.iteration);
        if layers != self.conv_layers() {
            self.grow(layers).map_err(|e| FrameTrainError::Grow { layers, reason: format!("{e:#}") })?;
        }
        let lr = self.lr();
        self.optimizer.set_lr(lr);
        let sampler = self.net.valid();
        let density = NetDensity { stack: &sampler, polarity: Polarity::NegativeEnergy };
        let sigma = self.config.langevin.reference_sigma.unwrap_or(1.0);
        let cd = self.config.learning == Learning::ContrastiveDivergence;
        let start = match self.config.learning {
            Learning::Persistent => self.chains.clone(),
            Learning::ContrastiveDivergence => self.data.images.clone(),
            Learning::NonPersistent => Tensor::random(self.chains.dims(), burn::tensor::Distribution::Normal(0.0, self.data.rms), &inner),
        };
        let mut reconstruction = None;
        let chain = langevin(&density, start, &self.config.langevin, None, &mut DeviceNoise, |event| {
            if cd && event.step == 1 {
                reconstruction = Some((self.data.images.clone() - event.grad.clone().mul_scalar(sigma * sigma)).square().mean().reshape([1]));
            }
            ControlFlow::Continue(())
        });
        let synthesised = chain.x;
        // A larger canvas counts by its share of pixels (mean response per position).
        let ratio = 1.0 / (self.config.chain_scale * self.config.chain_scale) as f64;
        let loss = Contrastive::new(&self.net, self.data.images.clone(), synthesised.clone(), [1.0, ratio], self.explicit_gradients);
        let mut parts = vec![loss.f_positive.clone(), loss.f_negative.clone(), synthesised.clone().abs().mean().reshape([1])];
        parts.extend(reconstruction);
        let values = host_values(Tensor::cat(parts, 0)).unwrap_or_default();
        let value = |i: usize| values.get(i).copied().map_or(f64::NAN, f64::from);
        let (fo, fs, sa) = (value(0), value(1), value(2));
        let iteration = self.iteration + 1;
        let [_, c, h, w] = self.data.images.dims();
        let per_pixel = (c * h * w) as f64;
        let threshold = self.config.divergence_threshold;
        if !(fo.is_finite() && fs.is_finite() && sa.is_finite()) || fo.abs().max(fs.abs()) / per_pixel > threshold || sa > threshold {
            return Err(FrameTrainError::Diverged { iteration, f_observed: fo, f_synthesised: fs, sample_abs_mean: sa });
        }
        if fo == 0.0 && fs == 0.0 {
            return Err(FrameTrainError::DeadTopLayer { iteration, layers });
        }
        let gradients = loss.gradients(&self.net);
        self.net = self.optimizer.step_with_gradients(self.net.clone(), gradients, &self.roles);
        if !cd {
            // Persistent chains continue from here; non-persistent ones are only shown.
            self.chains = synthesised;
        }
        self.iteration = iteration;
        Ok(FrameMetrics {
            iteration,
            layers,
            f_observed: fo,
            f_synthesised: fs,
            sample_abs_mean: sa,
            reconstruction_mse: cd.then(|| value(3)),
            lr,
        })
    }
}

/// The stack spec of the configured net at `layers` conv layers, at the training size.
fn net_spec(config: &FrameTrainConfig, layers: usize) -> anyhow::Result<shared::StackSpec> {
    Ok(config.net.clone().with_layers(layers).stack_spec()?)
}

fn flat(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

fn one() -> usize {
    1
}

fn check_data(config: &FrameTrainConfig, data: &FrameData) -> anyhow::Result<()> {
    let [n, c, h, w] = data.images.dims();
    let size = config.net.image_size;
    if n == 0 {
        bail!("the training set is empty");
    }
    if c != config.net.channels || h != size || w != size {
        bail!("the data is {c}×{h}×{w} but the net expects {}×{size}×{size}", config.net.channels);
    }
    Ok(())
}

/// CD reconstruction `B = σ²·∂f/∂I` of `images` (`[N, C, H, W]`, model space) and its
/// per-pixel MSE against them.
pub fn reconstruct(net: &Stack, images: Tensor<4>, sigma: f64) -> (Tensor<4>, f64) {
    let (_, grad) = net.value_and_grad(images.clone());
    let reconstruction = grad.mul_scalar(sigma * sigma);
    let mse = host_values((images - reconstruction.clone()).square().mean()).ok().and_then(|v| v.first().copied()).map_or(f64::NAN, f64::from);
    (reconstruction, mse)
}

/// Mean ReLU response of every first-layer filter over all positions and images of `images`
/// (`[N, C, H, W]`): the statistics a learned FRAME model matches between observed and
/// synthesised images (its moment-matching property).
pub fn first_layer_responses(net: &Stack, images: Tensor<4>) -> Vec<f32> {
    let Some(first) = net.blocks.first() else { return Vec::new() };
    let response = Stack { blocks: vec![first.clone()], input: net.input }.forward(images);
    let [n, k, h, w] = response.dims();
    host_values(response.swap_dims(0, 1).reshape([k, n * h * w]).mean_dim(1).reshape([k])).unwrap_or_default()
}

/// Relative distance `‖a − b‖ / ‖b‖` between two statistic vectors.
pub fn relative_distance(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}
