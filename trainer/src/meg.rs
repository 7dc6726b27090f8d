//! MEG training (Kumar et al. 2019, Algorithm 1 as the authors' code runs it): an energy net
//! `E`, a generator `G` and a statistics net `T`, each with its own Adam.
//!
//! One iteration is one `G`+`T` step on `mean E(G(z)) + L_H`, where
//! `L_H = ½·[mean softplus(−T(G(z), z)) + mean softplus(T(G(z), z̃))] = −½·I_JSD` and `z̃` is
//! `z` shuffled, followed by `n_φ` energy steps on
//! `mean E(x) − mean E(G(z)) + λ·penalty(∇ₓE(x))` with fresh real and generated batches.
//! The penalty's input-gradient is the nets' explicit transposed path, so the tape of the
//! energy loss holds it and its parameter gradient is the double backward (burn's autodiff is
//! first-order only).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use burn::prelude::*;
use burn::tensor::activation::softplus;
use burn::tensor::{Distribution, Gradients};
use serde::{Deserialize, Serialize};
use shared::file::{DataSpec, Manifest, Model, ModelStack, Normalization, SamplerDefaults};
use shared::layers::{NormMode, Stack};
use shared::nets::{MegConfig, MegDataset, ModelSpec, Polarity, Role};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, LangevinConfig, MalaConfig};

use crate::data::toy::ToyDensity;
use crate::optim::{AdamSettings, Update, Updater, collect_parameter_count};
use crate::run::{open_checkpoint, seal_checkpoint};
use crate::shortrun::{DataSource, host_values};

/// How the zero-centred gradient penalty averages `(∂E/∂x)²`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyForm {
    /// The authors' code: the norm over channels only, squared, averaged over `N·H·W` (for
    /// vectors this is the paper's form; for images it weighs λ by `1/(H·W)`).
    Channel,
    /// The paper: the per-sample squared norm over all of `x`, averaged over `N`.
    Sample,
}

/// How `z̃`, the "product of marginals" partner of `G(z)`, is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Shuffle {
    /// The authors' code: whole latent vectors permuted across the batch.
    Batch,
    /// The paper's Algorithm 1: every latent dimension permuted on its own.
    PerDimension,
}

/// Training data of a MEG run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MegData {
    /// A 2-D toy density, drawn fresh every batch.
    Toy {
        /// Which one.
        density: ToyDensity,
    },
    /// Images (or feature vectors) loaded from `source`, in `[−1, 1]` (vectors as they are);
    /// with `stacks > 1` every sample stacks that many independently drawn one-channel images
    /// as channels (StackedMNIST).
    Loaded {
        /// Where the data comes from.
        source: DataSource,
        /// Images stacked per sample (1 = plain).
        stacks: usize,
    },
}

impl MegData {
    fn describe(&self) -> String {
        match self {
            Self::Toy { density } => format!("toy {}", density.name()),
            Self::Loaded { source, stacks: 1 } => source.describe(),
            Self::Loaded { source, stacks } => format!("{}-StackedMNIST from {}", stacks, source.describe()),
        }
    }
}

/// Everything that defines a MEG run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MegTrainConfig {
    /// The three networks.
    pub net: MegConfig,
    /// Training data.
    pub data: MegData,
    /// Gradient-penalty weight λ.
    pub lambda: f64,
    /// How the penalty averages.
    pub penalty: PenaltyForm,
    /// How `z̃` is made.
    pub shuffle: Shuffle,
    /// Energy steps per generator step `n_φ`.
    pub energy_steps: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Iterations (one generator step each).
    pub iterations: u64,
    /// The three Adams' settings.
    pub adam: AdamSettings,
    /// Momentum of the generator's BatchNorm running statistics (PyTorch's 0.1).
    pub bn_momentum: f64,
    /// Latent MALA settings saved as the model's sampling default.
    pub mala: MalaConfig,
    /// Seed of every random choice.
    pub seed: u64,
    /// Training stops as diverged when `|mean E|` exceeds this.
    pub divergence_threshold: f64,
}

impl MegTrainConfig {
    /// The authors' settings for `dataset`: Adam 1e-4 (0.5, 0.9), `n_φ` 5 (KDD: a generator
    /// step every batch, so 1), batch 256 for vectors and 64 for images, λ 0.1 (toy), 100
    /// (KDD) or 10 (images), 100 000 iterations, MALA 5 steps, α 0.01, β 0.2.
    pub fn paper(dataset: MegDataset, data: MegData) -> Self {
        let (lambda, batch_size) = match dataset {
            MegDataset::Toy2d => (0.1, 256),
            MegDataset::Kdd => (100.0, 256),
            _ => (10.0, 64),
        };
        Self {
            net: MegConfig::new(dataset),
            data,
            lambda,
            penalty: PenaltyForm::Channel,
            shuffle: Shuffle::Batch,
            energy_steps: if dataset == MegDataset::Kdd { 1 } else { 5 },
            batch_size,
            iterations: 100_000,
            adam: AdamSettings { lr: 1e-4, beta1: 0.5, beta2: 0.9, eps: 1e-8 },
            bn_momentum: 0.1,
            mala: MalaConfig::default(),
            seed: 0,
            divergence_threshold: 1e6,
        }
    }

    /// Refuses settings no run can use.
    pub fn validate(&self) -> anyhow::Result<()> {
        Update::Adam(self.adam).check()?;
        self.net.stacks().context("the MEG networks cannot be built")?;
        anyhow::ensure!(self.lambda.is_finite() && self.lambda >= 0.0, "λ must be a non-negative number, not {}", self.lambda);
        anyhow::ensure!(self.batch_size >= 2, "the batch size must be at least 2 (the shuffled pairs need two samples)");
        anyhow::ensure!(self.energy_steps >= 1, "at least one energy step per generator step is needed");
        anyhow::ensure!((0.0..=1.0).contains(&self.bn_momentum), "the BatchNorm momentum must lie in [0, 1]");
        shared::generate::check_mala(&self.mala)?;
        match (&self.data, self.net.dataset) {
            (MegData::Toy { .. }, MegDataset::Toy2d) => {}
            (MegData::Toy { .. }, _) | (_, MegDataset::Toy2d) => bail!("toy data goes with the toy networks and only with them"),
            (MegData::Loaded { stacks, .. }, MegDataset::Mnist { channels }) if *stacks != 1 && *stacks != channels => {
                bail!("{stacks} stacked digits but the networks take {channels} channels")
            }
            (MegData::Loaded { stacks, .. }, dataset) if *stacks != 1 && !matches!(dataset, MegDataset::Mnist { .. }) => {
                bail!("stacking is for StackedMNIST only")
            }
            _ => {}
        }
        Ok(())
    }
}

/// Numbers of one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MegMetrics {
    /// Iteration just completed (1-based).
    pub iteration: u64,
    /// Mean `E` of the real batch (last energy step).
    pub energy_real: f64,
    /// Mean `E` of the generated batch (last energy step).
    pub energy_generated: f64,
    /// Gradient penalty before λ (last energy step).
    pub penalty: f64,
    /// `L_H = −½·I_JSD` of the generator step (`ln 2 ≈ 0.693` when `T` cannot tell pairs apart).
    pub entropy_loss: f64,
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum MegTrainError {
    /// Energies or losses became NaN/Inf or exploded.
    #[error(
        "training diverged at iteration {iteration} ({stage}): {what} = {value}; no network was updated in \
         this iteration and the last checkpoint is kept. Try a smaller learning rate or a larger λ and resume"
    )]
    Diverged {
        /// Iteration that diverged.
        iteration: u64,
        /// Generator or energy step.
        stage: &'static str,
        /// The quantity that went wrong.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

/// The three networks, on the autodiff device.
#[derive(Debug, Clone)]
pub struct MegNets {
    /// Energy `E`.
    pub energy: Stack,
    /// Generator `G` (batch statistics; running statistics tracked for evaluation).
    pub generator: Stack,
    /// `T`'s trunk on images (none for vectors).
    pub statistics_trunk: Option<Stack>,
    /// `T`'s head on `[features, z]`.
    pub statistics_head: Stack,
}

impl MegNets {
    /// `T(x, z)` per sample for each `z` in `latents`: `x` `[N, C, H, W]`, each `z` `[N, D]` →
    /// `[N]` each. The trunk sees `x` once (its features are the same for every `z`; the
    /// authors' code runs it per pair, which gives the same values and gradients).
    pub fn statistics<const K: usize>(&self, x: Tensor<4>, latents: [Tensor<2>; K]) -> [Tensor<1>; K] {
        let [n, c, h, w] = x.dims();
        let features = match &self.statistics_trunk {
            Some(trunk) => {
                let out = trunk.forward(x);
                let [_, d, oh, ow] = out.dims();
                out.reshape([n, d * oh * ow])
            }
            None => x.reshape([n, c * h * w]),
        };
        latents.map(|z| {
            let width = features.dims()[1] + z.dims()[1];
            self.statistics_head.value(Tensor::cat(vec![features.clone(), z], 1).reshape([n, width, 1, 1]))
        })
    }

    fn named(&self) -> Vec<(&'static str, &Stack)> {
        let mut out = vec![("generator", &self.generator), ("energy", &self.energy)];
        out.extend(self.statistics_trunk.as_ref().map(|t| ("statistics_trunk", t)));
        out.push(("statistics_head", &self.statistics_head));
        out
    }

    fn from_stacks(mut stacks: BTreeMap<String, Stack>) -> anyhow::Result<Self> {
        let mut take = |name: &str| stacks.remove(name).with_context(|| format!("the MEG model lacks its {name} net"));
        Ok(Self {
            generator: take("generator")?.with_norm_mode(NormMode::BatchStatistics),
            energy: take("energy")?,
            statistics_head: take("statistics_head")?,
            statistics_trunk: stacks.remove("statistics_trunk"),
        })
    }
}

/// State saved in a checkpoint's manifest under `"training"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    config: MegTrainConfig,
    iteration: u64,
    rng: HostRng,
    adam_steps: BTreeMap<String, u64>,
}

/// A MEG run in memory.
pub struct MegTrainer {
    /// Configuration.
    pub config: MegTrainConfig,
    /// The networks.
    pub nets: MegNets,
    /// Iterations completed.
    pub iteration: u64,
    updaters: BTreeMap<String, Updater>,
    batches: Batches,
    rng: HostRng,
    device: Device,
}

impl MegTrainer {
    /// A new run on `device` (its autodiff version learns). `data` is `[N, C, H, W]` in model
    /// space (one channel for StackedMNIST); toy runs take none.
    pub fn new(config: MegTrainConfig, data: Option<Tensor<4>>, device: &Device) -> anyhow::Result<Self> {
        config.validate()?;
        let train_device = device.clone().autodiff();
        let batches = check_data(&config, data, device)?;
        let mut rng = HostRng::new(config.seed);
        train_device.seed(rng.fork_seed());
        let stacks = config
            .net
            .stacks()?
            .into_iter()
            .map(|s| Ok((s.name, s.spec.init(&train_device)?)))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()
            .context("cannot build the MEG networks")?;
        let nets = MegNets::from_stacks(stacks)?;
        let updaters = nets.named().into_iter().map(|(name, _)| (name.to_string(), Updater::new(Update::Adam(config.adam)))).collect();
        Ok(Self { config, nets, iteration: 0, updaters, batches, rng, device: train_device })
    }

    /// Resumes from checkpoint bytes with the data loaded again.
    pub fn from_checkpoint(bytes: &[u8], data: Option<Tensor<4>>, device: &Device) -> anyhow::Result<Self> {
        let train_device = device.clone().autodiff();
        let (file, state, mut saved): (_, TrainState, _) = open_checkpoint(bytes, "MEG")?;
        let batches = check_data(&state.config, data, device)?;
        let model = Model::from_model_file(file, &train_device).context("the checkpoint's model is invalid")?;
        let nets = MegNets::from_stacks(model.stacks.into_iter().map(|s| (s.name, s.stack)).collect())?;
        let inner = device.clone().inner();
        let updaters = nets
            .named()
            .into_iter()
            .map(|(name, net)| {
                let step = state.adam_steps.get(name).copied().unwrap_or(0);
                let updater = Updater::restore(Update::Adam(state.config.adam), collect_parameter_count(net), step, |key| {
                    saved.remove(&format!("{name}.{key}")).map(|t| {
                        let len = t.values.len();
                        Tensor::from_data(TensorData::new(t.values, [len]), &inner)
                    })
                });
                (name.to_string(), updater)
            })
            .collect();
        Ok(Self { config: state.config, nets, iteration: state.iteration, updaters, batches, rng: state.rng, device: train_device })
    }

    /// Checkpoint bytes: the model, the three Adams' moments, the generator state.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let file = self.model()?.to_model_file()?;
        let adam_steps = self.updaters.iter().map(|(name, u)| (name.clone(), u.adam_step())).collect();
        let state = TrainState { config: self.config.clone(), iteration: self.iteration, rng: self.rng.clone(), adam_steps };
        let optimiser = self.updaters.iter().flat_map(|(name, u)| u.state().into_iter().map(move |(key, t)| (format!("{name}.{key}"), t)));
        seal_checkpoint(file, optimiser, &state)
    }

    /// The model as it would be exported now: the generator in evaluation mode (running
    /// statistics), the MALA defaults, and a pixel-space chain setting for comparison.
    pub fn model(&self) -> anyhow::Result<Model> {
        let net = MegConfig { generator_norm: NormMode::RunningStatistics, ..self.config.net.clone() };
        let [channels, height, width] = net.data_shape();
        let (range, normalization) = match self.config.net.dataset {
            MegDataset::Toy2d => ([-2.0, 2.0], Normalization::Identity),
            MegDataset::Kdd => ([0.0, 1.0], Normalization::Identity),
            _ => ([-1.0, 1.0], Normalization::MinusOneToOne),
        };
        let manifest = Manifest {
            model: ModelSpec::Meg(net),
            data: DataSpec { channels, height, width, range, normalization },
            sampler: SamplerDefaults {
                init: ChainInit::Uniform { low: range[0], high: range[1] },
                // Pixel-space MALA/Langevin step of the authors' latent chain (α = 0.01).
                langevin: vec![LangevinConfig { steps: self.config.mala.steps, step_size: self.config.mala.step_size, noise: (2.0 * self.config.mala.step_size).sqrt(), reference_sigma: None, clip: None }],
                mala: Some(self.config.mala),
            },
            provenance: crate::run::provenance(self.config.data.describe(), self.iteration, self.config.seed),
        };
        let stacks = self
            .nets
            .named()
            .into_iter()
            .map(|(name, stack)| {
                let (role, stack) = match name {
                    "generator" => (Role::Generator, stack.valid().with_norm_mode(NormMode::RunningStatistics)),
                    "energy" => (Role::Energy(Polarity::Energy), stack.valid()),
                    _ => (Role::Statistics, stack.valid()),
                };
                ModelStack { name: name.into(), role, stack }
            })
            .collect();
        Ok(Model { manifest, stacks, extras: BTreeMap::new() })
    }

    /// One iteration: the generator + statistics step, then `n_φ` energy steps. On divergence
    /// every network and optimiser is left as it was before the iteration.
    pub fn step(&mut self) -> Result<MegMetrics, MegTrainError> {
        let before = (self.nets.clone(), self.updaters.clone());
        let result = self.try_step();
        if result.is_err() {
            (self.nets, self.updaters) = before;
        }
        result
    }

    fn try_step(&mut self) -> Result<MegMetrics, MegTrainError> {
        let inner = self.device.clone().inner();
        inner.seed(self.rng.fork_seed());
        let iteration = self.iteration + 1;
        let m = self.config.batch_size;
        let d = self.config.net.latent_dim();
        let diverged = |stage, what, value: f64| MegTrainError::Diverged { iteration, stage, what, value };

        // Generator and statistics net: minimise mean E(G(z)) + L_H (T and G both raise I_JSD).
        let z = Tensor::<2>::random([m, d], Distribution::Normal(0.0, 1.0), &inner);
        let shuffled = self.shuffle(z.clone(), &inner);
        let latent = Tensor::from_inner(z.clone().reshape([m, d, 1, 1]));
        let generated = self.nets.generator.forward(latent.clone());
        let energy_generated = self.nets.energy.value(generated.clone()).mean();
        let [joint, marginal] = self.nets.statistics(generated.clone(), [z, shuffled].map(Tensor::from_inner));
        let entropy_loss = (softplus(joint.neg(), 1.0).mean() + softplus(marginal, 1.0).mean()).div_scalar(2.0);
        let values = read(vec![energy_generated.clone(), entropy_loss.clone()]);
        check_finite(&values, &["mean E(G(z))", "L_H"], self.config.divergence_threshold).map_err(|(what, value)| diverged("generator step", what, value))?;
        let grads = (energy_generated + entropy_loss).backward();
        self.nets.generator = self.nets.generator.clone().track_running_statistics(latent, self.config.bn_momentum);
        self.nets.generator = self.update("generator", self.nets.generator.clone(), &grads);
        if let Some(trunk) = self.nets.statistics_trunk.clone() {
            self.nets.statistics_trunk = Some(self.update("statistics_trunk", trunk, &grads));
        }
        self.nets.statistics_head = self.update("statistics_head", self.nets.statistics_head.clone(), &grads);
        let entropy_loss = f64::from(values[1]);

        // Energy: n_φ steps of mean E(x) − mean E(G(z)) + λ·penalty on fresh batches.
        let mut last = [0.0; 3];
        for _ in 0..self.config.energy_steps {
            let real = self.real_batch(&inner);
            let z = Tensor::<4>::random([m, d, 1, 1], Distribution::Normal(0.0, 1.0), &inner);
            // The batch-statistics forward pass and the running statistics in one pass.
            let (generated, generator) = self.nets.generator.clone().forward_tracking_statistics(Tensor::from_inner(z), self.config.bn_momentum);
            self.nets.generator = generator;
            let (energy_real, penalty) = energy_and_penalty(&self.nets.energy, Tensor::from_inner(real), self.config.penalty);
            let energy_real = energy_real.mean();
            let energy_generated = self.nets.energy.value(Tensor::from_inner(generated)).mean();
            let values = read(vec![energy_real.clone(), energy_generated.clone(), penalty.clone()]);
            check_finite(&values, &["mean E(x)", "mean E(G(z))", "gradient penalty"], self.config.divergence_threshold)
                .map_err(|(what, value)| diverged("energy step", what, value))?;
            let loss = energy_real - energy_generated + penalty.mul_scalar(self.config.lambda);
            let grads = loss.backward();
            self.nets.energy = self.update("energy", self.nets.energy.clone(), &grads);
            last = [0, 1, 2].map(|i| f64::from(values[i]));
        }
        self.iteration = iteration;
        Ok(MegMetrics { iteration, energy_real: last[0], energy_generated: last[1], penalty: last[2], entropy_loss })
    }

    fn update(&mut self, name: &str, net: Stack, grads: &Gradients) -> Stack {
        match self.updaters.get_mut(name) {
            Some(updater) => updater.step(net, grads, &[]),
            None => net,
        }
    }

    /// `z̃`: `z` `[N, D]` with its rows permuted, or every column permuted on its own.
    fn shuffle(&mut self, z: Tensor<2>, device: &Device) -> Tensor<2> {
        let [n, d] = z.dims();
        match self.config.shuffle {
            Shuffle::Batch => {
                let order: Vec<i64> = permutation(n, &mut self.rng).into_iter().map(|i| i as i64).collect();
                z.select(0, Tensor::<1, Int>::from_data(TensorData::new(order, [n]), device))
            }
            Shuffle::PerDimension => {
                let columns: Vec<Vec<usize>> = (0..d).map(|_| permutation(n, &mut self.rng)).collect();
                let index: Vec<i64> = (0..n).flat_map(|row| columns.iter().map(move |c| c[row] as i64)).collect();
                z.gather(0, Tensor::<2, Int>::from_data(TensorData::new(index, [n, d]), device))
            }
        }
    }

    /// A batch of real data `[m, C, H, W]` on the inner device.
    fn real_batch(&mut self, device: &Device) -> Tensor<4> {
        let m = self.config.batch_size;
        match &self.batches {
            Batches::Loaded { data, stacks } => {
                let [count, channels, h, w] = data.dims();
                let picks = m * stacks;
                let index: Vec<i64> = (0..picks).map(|_| self.rng.below(count) as i64).collect();
                let chosen = data.as_ref().clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(index, [picks]), device));
                chosen.reshape([m, stacks * channels, h, w])
            }
            Batches::Toy(density) => {
                let points = density.sample(m, &mut self.rng);
                Tensor::from_data(TensorData::new(points, [m, 2, 1, 1]), device)
            }
        }
    }
}

/// Where real batches come from.
#[derive(Debug, Clone)]
enum Batches {
    Toy(ToyDensity),
    /// `[N, C, H, W]` on the inner device; `stacks` images per sample.
    Loaded { data: Box<Tensor<4>>, stacks: usize },
}

/// `E(x)` per sample `[N]` and the zero-centred gradient penalty (one element) of `net` on
/// `x`, both on `net`'s device so that a backward pass reaches the penalty's parameter
/// gradient through the explicit input-gradient.
pub fn energy_and_penalty(net: &Stack, x: Tensor<4>, form: PenaltyForm) -> (Tensor<1>, Tensor<1>) {
    let [n, ..] = x.dims();
    let (energy, grad) = net.value_and_grad(x);
    let squared = grad.square();
    let penalty = match form {
        PenaltyForm::Channel => squared.sum_dim(1).mean(),
        PenaltyForm::Sample => squared.sum().div_scalar(n as f64),
    };
    (energy, penalty)
}

/// A uniformly random permutation of `0..n` (Fisher–Yates on the host generator).
pub fn permutation(n: usize, rng: &mut HostRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

fn read(values: Vec<Tensor<1>>) -> Vec<f32> {
    let scalars = values.into_iter().map(|v| v.inner().reshape([1])).collect();
    host_values(Tensor::cat(scalars, 0)).unwrap_or_default()
}

fn check_finite(values: &[f32], names: &[&'static str], threshold: f64) -> Result<(), (&'static str, f64)> {
    for (i, name) in names.iter().enumerate() {
        let value = values.get(i).copied().map_or(f64::NAN, f64::from);
        if !value.is_finite() || value.abs() > threshold {
            return Err((name, value));
        }
    }
    Ok(())
}

/// Checks the loaded data against the networks and puts it on the inner device.
fn check_data(config: &MegTrainConfig, data: Option<Tensor<4>>, device: &Device) -> anyhow::Result<Batches> {
    match (&config.data, data) {
        (MegData::Toy { density }, None) => Ok(Batches::Toy(*density)),
        (MegData::Toy { .. }, Some(_)) => bail!("toy runs draw their own data; none may be given"),
        (MegData::Loaded { .. }, None) => bail!("this run needs its training data"),
        (MegData::Loaded { stacks, .. }, Some(data)) => {
            let [n, c, h, w] = data.dims();
            let [nc, nh, nw] = config.net.data_shape();
            if n == 0 {
                bail!("the training set is empty");
            }
            if (c * stacks, h, w) != (nc, nh, nw) {
                bail!("the data is {}×{h}×{w} (× {stacks} stacked) but the networks take {nc}×{nh}×{nw}", c);
            }
            Ok(Batches::Loaded { data: Box::new(data.to_device(&device.clone().inner())), stacks: *stacks })
        }
    }
}

/// The toy density figure: `softmax(−E)` over a `resolution × resolution` grid of cell centres
/// covering `[−extent, extent]²` (the paper's sample-based partition function), row-major
/// with row 0 at the top (largest y).
pub fn toy_density(energy: &Stack, resolution: usize, extent: f64) -> anyhow::Result<Vec<f64>> {
    anyhow::ensure!(resolution > 0 && extent.is_finite() && extent > 0.0, "the density grid needs a resolution ≥ 1 and a positive extent");
    let device = energy.device();
    let mut negative_energy = Vec::with_capacity(resolution * resolution);
    let points: Vec<f32> = (0..resolution * resolution).flat_map(|i| grid_point(i, resolution, extent).map(|v| v as f32)).collect();
    for chunk in points.chunks(2 * 16_384) {
        let count = chunk.len() / 2;
        let x = Tensor::<4>::from_data(TensorData::new(chunk.to_vec(), [count, 2, 1, 1]), &device);
        negative_energy.extend(host_values(energy.value(x))?.into_iter().map(|e| -f64::from(e)));
    }
    let top = negative_energy.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    anyhow::ensure!(top.is_finite(), "the energy is not finite on the grid");
    let weights: Vec<f64> = negative_energy.iter().map(|v| (v - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    Ok(weights.into_iter().map(|w| w / total).collect())
}

/// Centre `[x, y]` of cell `index` of the [`toy_density`] grid.
pub fn grid_point(index: usize, resolution: usize, extent: f64) -> [f64; 2] {
    let cell = 2.0 * extent / resolution as f64;
    let (row, col) = (index / resolution, index % resolution);
    [-extent + (col as f64 + 0.5) * cell, extent - (row as f64 + 0.5) * cell]
}

/// Probability mass of a [`toy_density`] grid within `radius` of the nearest `support` point.
pub fn mass_within(density: &[f64], resolution: usize, extent: f64, support: &[[f64; 2]], radius: f64) -> f64 {
    density
        .iter()
        .enumerate()
        .filter(|(i, _)| crate::data::toy::nearest_distance(support, grid_point(*i, resolution, extent)) <= radius)
        .map(|(_, p)| p)
        .sum()
}

/// The MNIST anomaly protocol of the authors' code: `normal` = every image whose label is not
/// `anomaly`, shuffled (seed `seed`; the code's numpy seed 42 cannot be reproduced here), its
/// first 80 % for training; the test set = the other 20 % plus every image of the anomalous
/// digit. Returns (training indices, test indices, test labels with `true` = anomaly).
pub fn anomaly_split(labels: &[u8], anomaly: u8, seed: u64) -> (Vec<usize>, Vec<usize>, Vec<bool>) {
    let normal: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] != anomaly).collect();
    let mut rng = HostRng::new(seed);
    let order = permutation(normal.len(), &mut rng);
    let cut = normal.len() * 8 / 10;
    let train = order[..cut].iter().map(|&k| normal[k]).collect();
    let mut test: Vec<usize> = order[cut..].iter().map(|&k| normal[k]).collect();
    test.extend((0..labels.len()).filter(|&i| labels[i] == anomaly));
    let is_anomaly = test.iter().map(|&i| labels[i] == anomaly).collect();
    (train, test, is_anomaly)
}

/// Anomaly scores of `images` (`[N, C, H, W]`) under `energy`: `E(x)` and `‖∇ₓE(x)‖`, in
/// batches of 500.
pub fn anomaly_scores(energy: &Stack, images: &Tensor<4>) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let [count, ..] = images.dims();
    let (mut energies, mut norms) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for start in (0..count).step_by(500) {
        let chunk = images.clone().narrow(0, start, 500.min(count - start));
        let [n, ..] = chunk.dims();
        let (value, grad) = energy.value_and_grad(chunk);
        energies.extend(host_values(value)?.into_iter().map(f64::from));
        let norm = grad.square().reshape([n as i32, -1]).sum_dim(1).sqrt().reshape([n]);
        norms.extend(host_values(norm)?.into_iter().map(f64::from));
    }
    Ok((energies, norms))
}

/// The KDD99 protocol of the authors' code: a random 50/50 split (seed `seed`; the code's
/// scikit-learn `random_state` 42 cannot be reproduced here); training on the attack records
/// of the first half only; testing on the attack records of the second half plus its normal
/// records (the anomalies) amounting to ρ/(1−ρ) times as many, ρ = 0.2. Returns (training
/// indices, test indices, test labels with `true` = anomaly).
pub fn kdd_split(normal: &[bool], seed: u64) -> (Vec<usize>, Vec<usize>, Vec<bool>) {
    let mut rng = HostRng::new(seed);
    let order = permutation(normal.len(), &mut rng);
    let (first, second) = order.split_at(normal.len() / 2);
    let train = first.iter().copied().filter(|&i| !normal[i]).collect();
    let mut test: Vec<usize> = second.iter().copied().filter(|&i| !normal[i]).collect();
    let wanted = test.len() / 4;
    test.extend(second.iter().copied().filter(|&i| normal[i]).take(wanted));
    let labels = test.iter().map(|&i| normal[i]).collect();
    (train, test, labels)
}
