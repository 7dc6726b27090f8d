//! Short-run MCMC learning (Nijkamp et al. 2019, Algorithm 1, as the authors' code runs it).
//!
//! Every iteration: draw `m` observed images with replacement and add `N(0, σ²)` noise; start
//! `m` fresh chains from `Uniform[−1, 1]`; run `K` Langevin steps `x ← x + ∇f(x) + 0.01·N`
//! with the explicit input-gradient (no autodiff tape); ascend
//! `mean f(data + noise) − mean f(samples)` with Adam, negatives detached.
//!
//! All randomness is drawn from one portable generator whose state is checkpointed (the
//! device's generator is re-seeded from it every iteration), so a resumed run repeats the
//! uninterrupted one bit for bit on the same device.

use core::ops::ControlFlow;
use std::collections::BTreeMap;

use anyhow::{Context, bail};
use burn::prelude::*;
use burn::tensor::Distribution;
use modelfile::{ModelFile, NamedTensor};
use serde::{Deserialize, Serialize};
use shared::file::{DataSpec, Manifest, Model, ModelStack, Normalization, SamplerDefaults};
use shared::nets::{ModelSpec, Polarity, Role, ShortRunConfig};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, DeviceNoise, LangevinConfig, NetDensity, langevin};
use shared::Stack;

use crate::contrastive::Contrastive;
use crate::run::TRAINING_KEY;
use crate::optim::{Adam, AdamSettings};

/// Optional lowering of the learning rate and the data noise towards the end of training
/// (the paper "gradually lowers" both after 200k iterations without a schedule; this one is
/// linear from `start` (a fraction of the run) to the end, down to the given factors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Anneal {
    /// Fraction of the iterations after which annealing starts.
    pub start: f64,
    /// Learning-rate multiplier reached at the last iteration.
    pub lr_factor: f64,
    /// Data-noise multiplier reached at the last iteration.
    pub noise_factor: f64,
}

impl Anneal {
    /// Multipliers (lr, noise) at `iteration` of `total`.
    pub fn factors(&self, iteration: u64, total: u64) -> (f64, f64) {
        let progress = iteration as f64 / total.max(1) as f64;
        let t = ((progress - self.start) / (1.0 - self.start).max(1e-12)).clamp(0.0, 1.0);
        (1.0 + t * (self.lr_factor - 1.0), 1.0 + t * (self.noise_factor - 1.0))
    }
}

/// The training images: a path the data readers understand, optionally one class, at most
/// `limit` images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// File or folder.
    pub path: std::path::PathBuf,
    /// Only images with this label.
    pub class: Option<u8>,
    /// At most this many images.
    pub limit: Option<usize>,
}

impl DataSource {
    /// All images at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into(), class: None, limit: None }
    }

    /// Loader options for the training split.
    pub fn options(&self) -> crate::data::LoadOptions {
        crate::data::LoadOptions { limit: self.limit, class: self.class, split: crate::data::Split::Train }
    }

    /// A one-line description for provenance.
    pub fn describe(&self) -> String {
        let mut text = self.path.display().to_string();
        if let Some(class) = self.class {
            text.push_str(&format!(" (class {class})"));
        }
        if let Some(limit) = self.limit {
            text.push_str(&format!(" (first {limit})"));
        }
        text
    }
}

/// Refuses a δ-form chain `I ← I + δ²/2·(∂f/∂I − I/σ²) + δ·N` whose step or noise is not a
/// number it can run, or whose reference σ (required when `require_sigma`) is not positive.
pub fn check_delta_langevin(langevin: &LangevinConfig, require_sigma: bool) -> anyhow::Result<()> {
    let LangevinConfig { step_size, noise, reference_sigma, .. } = *langevin;
    if !(step_size.is_finite() && step_size > 0.0 && noise.is_finite() && noise >= 0.0) {
        bail!("the Langevin step δ must be a positive number");
    }
    let sigma_ok = reference_sigma.map_or(!require_sigma, |s| s.is_finite() && s > 0.0);
    if !sigma_ok {
        bail!("the reference σ must be a positive number");
    }
    Ok(())
}

/// Everything that defines a short-run training run (saved as `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Energy net.
    pub net: ShortRunConfig,
    /// Data description (written into the model file).
    pub data: DataSpec,
    /// Where the training images come from (read again on `--resume`).
    pub source: DataSource,
    /// Batch size `m` (observed and synthesised).
    pub batch_size: usize,
    /// Iterations to run.
    pub iterations: u64,
    /// Sampler (`K`, step, noise).
    pub langevin: LangevinConfig,
    /// Standard deviation σ of the noise added to observed images.
    pub data_noise: f64,
    /// Adam settings.
    pub adam: AdamSettings,
    /// Optional annealing of lr and σ.
    pub anneal: Option<Anneal>,
    /// Seed of the run.
    pub seed: u64,
    /// An iteration whose |f| exceeds this is treated as divergence.
    pub divergence_threshold: f64,
    /// An iteration whose samples' mean |x| exceeds this many times the data range's largest
    /// magnitude is treated as divergence (the chain has left the data's range: energies
    /// grow without bound soon after).
    #[serde(default = "default_sample_range_limit")]
    pub sample_range_limit: f64,
}

impl TrainConfig {
    /// The authors' minimal-code defaults (n_f 64, batch 64, K 100, σ 0.03, Adam 1e-4 (0.9, 0.999)).
    pub fn paper(net: ShortRunConfig, data: DataSpec, source: DataSource) -> Self {
        Self {
            net,
            data,
            source,
            batch_size: 64,
            iterations: 100_000,
            langevin: LangevinConfig::short_run(100),
            data_noise: 0.03,
            adam: AdamSettings { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            anneal: None,
            seed: 1,
            divergence_threshold: 1e8,
            sample_range_limit: default_sample_range_limit(),
        }
    }

    /// The model-file manifest for a model trained with this config.
    pub fn manifest(&self, iterations: u64) -> Manifest {
        Manifest {
            model: ModelSpec::ShortRun(self.net.clone()),
            data: self.data.clone(),
            sampler: SamplerDefaults { init: ChainInit::Uniform { low: -1.0, high: 1.0 }, langevin: vec![self.langevin], mala: None },
            provenance: crate::run::provenance(self.source.describe(), iterations, self.seed),
        }
    }
}

/// Numbers of one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Iteration just completed (1-based).
    pub iteration: u64,
    /// Mean f over the noisy observed batch.
    pub f_data: f64,
    /// Mean f over the synthesised batch.
    pub f_samples: f64,
    /// Mean ‖∇ₓf‖ over the chain's steps and samples.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Data noise σ used.
    pub data_noise: f64,
    /// Mean |x| of the synthesised batch.
    pub sample_abs_mean: f64,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Energies became NaN/Inf or exploded.
    #[error(
        "training diverged at iteration {iteration}: f(data) = {f_data}, f(samples) = {f_samples}, \
         mean |sample| = {sample_abs_mean}; the model was not updated with this step and the last \
         checkpoint is kept. Try a smaller learning rate (or --anneal-start) and resume"
    )]
    Diverged {
        /// Iteration that diverged.
        iteration: u64,
        /// Its f(data).
        f_data: f64,
        /// Its f(samples).
        f_samples: f64,
        /// Its samples' mean |x|.
        sample_abs_mean: f64,
    },
}

/// State saved in a checkpoint's manifest under `"training"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    config: TrainConfig,
    iteration: u64,
    rng: HostRng,
    adam_step: u64,
}

/// A training run in memory.
pub struct Trainer {
    /// Configuration.
    pub config: TrainConfig,
    /// The energy net, on the autodiff device.
    pub net: Stack,
    /// Optimiser.
    pub adam: Adam,
    /// Iterations completed.
    pub iteration: u64,
    /// Take the parameter gradients without a tape where the net allows (see
    /// [`crate::contrastive`]; the default), or always from burn's autodiff (`false`, for
    /// comparisons).
    pub explicit_gradients: bool,
    rng: HostRng,
    data: Tensor<4>,
    device: Device,
}

/// Maps `[0, 255]` pixels to the model's `[−1, 1]`.
pub fn to_model_space(pixels: &[f32]) -> Vec<f32> {
    pixels.iter().map(|v| v / 127.5 - 1.0).collect()
}

/// An image set as a `[N, C, H, W]` model-space tensor on `device`.
pub fn images_tensor(set: &crate::data::ImageSet, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(to_model_space(&set.pixels), [set.count, set.channels, set.height, set.width]), device)
}

/// Reads a tensor back to host floats (synchronously: native only).
pub fn host_values<const D: usize>(tensor: Tensor<D>) -> anyhow::Result<Vec<f32>> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("cannot read the device's result: {e:?}"))
}

/// A checkpoint turned into a model file: the training state and optimiser moments removed,
/// the rest validated.
pub fn export_checkpoint(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut file = ModelFile::from_bytes(bytes).context("not a checkpoint")?;
    if let Some(manifest) = file.manifest.as_object_mut() {
        manifest.remove(TRAINING_KEY);
    }
    file.tensors.retain(|t| !t.name.starts_with(ADAM_PREFIX) && !t.name.starts_with(crate::run::STATE_PREFIX));
    Model::from_model_file(file.clone(), &Device::flex()).context("the checkpoint's model does not validate")?;
    Ok(file.to_bytes()?)
}

impl Trainer {
    /// A new run on `device` (its autodiff version is used for learning) over `data`
    /// (`[N, C, H, W]` in model space, already on the device).
    pub fn new(config: TrainConfig, data: Tensor<4>, device: &Device) -> anyhow::Result<Self> {
        check_data(&config, &data)?;
        let train_device = device.clone().autodiff();
        let mut rng = HostRng::new(config.seed);
        train_device.seed(rng.fork_seed());
        let net = config.net.init(&train_device).context("cannot build the energy net")?;
        let adam = Adam::new(config.adam);
        Ok(Self { config, net, adam, iteration: 0, explicit_gradients: true, rng, data: data.inner(), device: train_device })
    }

    /// Resumes from checkpoint bytes.
    pub fn from_checkpoint(bytes: &[u8], data: Tensor<4>, device: &Device) -> anyhow::Result<Self> {
        let train_device = device.clone().autodiff();
        let mut file = ModelFile::from_bytes(bytes).context("the checkpoint is damaged")?;
        let state: TrainState = serde_json::from_value(file.manifest.get(TRAINING_KEY).cloned().unwrap_or_default())
            .context("the file is a model, not a training checkpoint (no training state)")?;
        check_data(&state.config, &data)?;
        let mut moments: BTreeMap<String, NamedTensor> = BTreeMap::new();
        file.tensors.retain(|t| {
            if t.name.starts_with(ADAM_PREFIX) {
                moments.insert(t.name.clone(), t.clone());
                false
            } else {
                true
            }
        });
        let model = Model::from_model_file(file, &train_device).context("the checkpoint's model is invalid")?;
        let net = model.stacks.into_iter().next().map(|s| s.stack).context("the checkpoint holds no energy net")?;
        let mut adam = Adam::new(state.config.adam);
        adam.step = state.adam_step;
        let parameter_count = crate::optim::collect_parameter_count(&net);
        adam.moments = (0..parameter_count)
            .map(|i| {
                let m = moments.remove(&format!("{ADAM_PREFIX}m.{i}"));
                let v = moments.remove(&format!("{ADAM_PREFIX}v.{i}"));
                m.zip(v).map(|(m, v)| (host_tensor(m.values, &train_device), host_tensor(v.values, &train_device)))
            })
            .collect();
        Ok(Self { config: state.config, net, adam, iteration: state.iteration, explicit_gradients: true, rng: state.rng, data: data.inner(), device: train_device })
    }

    /// Checkpoint bytes: model, optimiser moments, generator state, iteration.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let mut file = self.model().to_model_file()?;
        for (i, moments) in self.adam.moments.iter().enumerate() {
            if let Some((m, v)) = moments {
                for (kind, tensor) in [("m", m), ("v", v)] {
                    let values = host_values(tensor.clone())?;
                    file.tensors.push(NamedTensor { name: format!("{ADAM_PREFIX}{kind}.{i}"), shape: vec![values.len()], values });
                }
            }
        }
        let state = TrainState { config: self.config.clone(), iteration: self.iteration, rng: self.rng.clone(), adam_step: self.adam.step };
        if let Some(manifest) = file.manifest.as_object_mut() {
            manifest.insert(TRAINING_KEY.into(), serde_json::to_value(state)?);
        }
        Ok(file.to_bytes()?)
    }

    /// The model as it would be exported now (no optimiser state).
    pub fn model(&self) -> Model {
        Model {
            manifest: self.config.manifest(self.iteration),
            stacks: vec![ModelStack { name: "energy".into(), role: Role::Energy(Polarity::NegativeEnergy), stack: self.net.valid() }],
            extras: BTreeMap::new(),
        }
    }

    /// One iteration of Algorithm 1. On divergence the net is left unchanged.
    pub fn step(&mut self) -> Result<Metrics, TrainError> {
        let config = &self.config;
        let (lr_factor, noise_factor) = config.anneal.map_or((1.0, 1.0), |a| a.factors(self.iteration, config.iterations));
        let lr = config.adam.lr * lr_factor;
        let data_noise = config.data_noise * noise_factor;
        let inner = self.device.clone().inner();
        inner.seed(self.rng.fork_seed());
        let m = config.batch_size;
        let count = self.data.dims()[0];
        let indices: Vec<i64> = (0..m).map(|_| self.rng.below(count) as i64).collect();
        let indices = Tensor::<1, Int>::from_data(TensorData::new(indices, [m]), &inner);
        let observed = self.data.clone().select(0, indices);
        let observed = observed.clone() + observed.random_like(Distribution::Normal(0.0, 1.0)).mul_scalar(data_noise);
        let [_, c, h, w] = self.data.dims();
        let start = Tensor::<4>::random([m, c, h, w], Distribution::Uniform(-1.0, 1.0), &inner);

        let sampler = self.net.valid();
        let density = NetDensity { stack: &sampler, polarity: Polarity::NegativeEnergy };
        let mut norm_sum = Tensor::<1>::zeros([1], &inner);
        let chain = langevin(&density, start, &config.langevin, None, &mut DeviceNoise, |event| {
            norm_sum = norm_sum.clone() + event.grad.clone().square().sum_dims(&[1, 2, 3]).sqrt().mean().reshape([1]);
            ControlFlow::Continue(())
        });

        // Minimise −(mean f(data) − mean f(samples)).
        let loss = Contrastive::new(&self.net, observed, chain.x.clone(), [1.0, 1.0], self.explicit_gradients);
        let (f_data, f_samples) = (loss.f_positive.clone(), loss.f_negative.clone());
        let sample_abs_mean = chain.x.abs().mean().reshape([1]);
        let steps = config.langevin.steps.max(1) as f64;
        let summary = Tensor::cat(vec![f_data.reshape([1]), f_samples.reshape([1]), norm_sum.div_scalar(steps), sample_abs_mean], 0);
        let values = host_values(summary).unwrap_or_default();
        let [fd, fs, gn, sa] = [0, 1, 2, 3].map(|i| values.get(i).copied().unwrap_or(f32::NAN) as f64);
        let iteration = self.iteration + 1;
        let range = config.data.range[0].abs().max(config.data.range[1].abs());
        let finite = fd.is_finite() && fs.is_finite() && gn.is_finite() && sa.is_finite();
        if !finite || fd.abs().max(fs.abs()) > config.divergence_threshold || sa > config.sample_range_limit * range {
            return Err(TrainError::Diverged { iteration, f_data: fd, f_samples: fs, sample_abs_mean: sa });
        }
        self.adam.settings.lr = lr;
        let gradients = loss.gradients(&self.net);
        self.net = self.adam.step_with_gradients(self.net.clone(), gradients);
        self.iteration = iteration;
        Ok(Metrics { iteration, f_data: fd, f_samples: fs, grad_norm: gn, lr, data_noise, sample_abs_mean: sa })
    }

    /// `count` samples from the current model with its own sampler settings, from a fixed seed
    /// (so grids across training are comparable); does not touch the training generator.
    pub fn preview(&self, count: usize, seed: u64) -> anyhow::Result<Tensor<4>> {
        let model = self.model();
        Ok(crate::commands::sample(&model, &self.device.clone().inner(), count, None, &self.config.langevin, seed, None)?.images)
    }
}

/// Healthy chains stay near the data's range (MNIST's mean |x| ≈ 0.9 of 1); runs that went on to
/// diverge passed 1.5 tens of iterations before their energies exploded (and 10, the first
/// limit, a hundred).
fn default_sample_range_limit() -> f64 {
    1.5
}

/// Prefix of the optimiser moments in a checkpoint (under the model file's extra tensors).
const ADAM_PREFIX: &str = "extra.adam.";

fn host_tensor(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), &device.clone().inner())
}

fn check_data(config: &TrainConfig, data: &Tensor<4>) -> anyhow::Result<()> {
    let [n, c, h, w] = data.dims();
    let size = config.net.image_size;
    if n == 0 {
        bail!("the training set is empty");
    }
    if c != config.net.channels || h != size || w != size {
        bail!("the data is {c}×{h}×{w} but the net expects {}×{size}×{size}", config.net.channels);
    }
    if config.batch_size == 0 {
        bail!("the batch size must be at least 1");
    }
    Ok(())
}

/// The data description for `[−1, 1]` images of the given layout.
pub fn data_spec(channels: usize, size: usize) -> DataSpec {
    DataSpec { channels, height: size, width: size, range: [-1.0, 1.0], normalization: Normalization::MinusOneToOne }
}
