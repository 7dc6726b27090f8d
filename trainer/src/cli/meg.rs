//! `trainer meg …`: MEG training, sampling through the generator with latent MALA, and the
//! toy density figure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use clap::{Args, Subcommand, ValueEnum};
use shared::file::Model;
use shared::generate::latent_samples;
use shared::nets::{MegDataset, ModelSpec};
use shared::rng::HostRng;
use shared::sampler::{MalaConfig, PixelEnergy, ProposalNorm};
use trainer::data::toy::ToyDensity;
use trainer::classifier::Classifier;
use trainer::data::{self, LoadOptions, Split};
use trainer::imageio::{self, Layout};
use trainer::metrics;
use trainer::meg::{self, MegData, MegTrainConfig, MegTrainer, PenaltyForm, Shuffle};
use trainer::run::{RunDir, atomic_write};
use trainer::shortrun::{self, DataSource, host_values};

use super::{DeviceArgs, QuietLog, grid_columns, layout, load_model, log_step, open_run, select_device, set, training_progress};

/// MEG (Kumar et al. 2019): energy model + generator with a mutual-information entropy term.
#[derive(Subcommand, Debug)]
pub enum MegCommand {
    /// Train E, G and T (Algorithm 1 as the authors' code runs it).
    Train(MegTrainArgs),
    /// Generator samples refined by latent-space MALA on E(G(z)); prints the acceptance rate.
    Sample(MegSampleArgs),
    /// The toy density figure: softmax of −E on a grid over [−2, 2]², as a PNG.
    Density(DensityArgs),
    /// Train the MNIST digit classifier that counts StackedMNIST modes.
    Classifier(ClassifierArgs),
    /// Count StackedMNIST modes and the KL to uniform of a model's samples (Table 2.1).
    Modes(ModesArgs),
    /// MNIST anomaly detection: each digit held out in turn, AUPRC of E(x) and ‖∇E(x)‖
    /// (Table 2.4); trains one model per digit.
    Anomaly(AnomalyArgs),
    /// KDD99 network-intrusion anomaly detection (Table 2.3): precision, recall and F1 at the
    /// 80th percentile of E(x) and of ‖∇E(x)‖.
    Kdd(KddArgs),
}

#[derive(Args, Debug)]
pub struct KddArgs {
    /// The `kddcup.data_10_percent_corrected` CSV (not installable here; see docs/meg.md).
    #[arg(long)]
    data: PathBuf,
    /// Iterations (one generator and one energy step each, batch 256).
    #[arg(long, default_value_t = 2000)]
    iterations: u64,
    /// Scale every feature to [0, 1] (the authors' code fits a scaler but trains unscaled).
    #[arg(long)]
    min_max: bool,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Seed of the split and the training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct ClassifierArgs {
    /// MNIST IDX folder.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Passes over the training split.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Widths of the two convolutions and the hidden layer (the MEG authors' PyTorch example:
    /// 10,20,50).
    #[arg(long, value_delimiter = ',', default_values_t = trainer::classifier::DEFAULT_WIDTHS)]
    widths: Vec<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long, default_value = "mnist-classifier.ebm")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct ModesArgs {
    /// StackedMNIST MEG model file.
    model: PathBuf,
    /// Classifier file (`trainer meg classifier`).
    #[arg(long, default_value = "mnist-classifier.ebm")]
    classifier: PathBuf,
    /// Samples to classify (paper: 26 000 for 3 stacks).
    #[arg(long, default_value_t = 26_000)]
    samples: usize,
    /// MALA steps before classifying (0 = the generator alone).
    #[arg(long, default_value_t = 0)]
    mala_steps: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the counts as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct AnomalyArgs {
    /// MNIST IDX folder (train and test splits are pooled, as the authors do).
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Anomalous digits, one model each (the paper reports 1, 4, 5, 7, 9).
    #[arg(long, value_delimiter = ',', default_value = "1,4,5,7,9")]
    digits: Vec<u8>,
    /// Iterations per model.
    #[arg(long, default_value_t = 500)]
    iterations: u64,
    /// Divide every hidden width by this.
    #[arg(long, default_value_t = 1)]
    width_divisor: usize,
    /// Gradient-penalty weight (the anomaly script: 100).
    #[arg(long, default_value_t = 100.0)]
    lambda: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Seed of the split and the training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Markdown table output.
    #[arg(long, default_value = "meg-anomaly.md")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetChoice {
    /// A 2-D toy density (--toy).
    Toy,
    /// MNIST digits, 28×28 (--data: IDX files).
    Mnist,
    /// StackedMNIST: --stacks digits as channels.
    StackedMnist,
    /// CIFAR-like 32×32 colour images (--data: CIFAR-10 batches or any images, resized).
    Cifar,
    /// CelebA-like 64×64 colour images (--data: a folder of faces or any images, resized).
    Celeba,
}

#[derive(Args, Debug)]
pub struct MegTrainArgs {
    /// What to learn.
    #[arg(long, value_enum, default_value_t = DatasetChoice::Toy)]
    dataset: DatasetChoice,
    /// Toy density (with --dataset toy).
    #[arg(long, value_enum, default_value_t = ToyDensity::Gaussians8)]
    toy: ToyDensity,
    /// MNIST IDX folder (image data sets).
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Digits stacked per StackedMNIST sample.
    #[arg(long, default_value_t = 3)]
    stacks: usize,
    /// Use at most this many training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Run folder.
    #[arg(long, default_value = "runs/meg-toy")]
    run: PathBuf,
    /// Continue the run in --run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Iterations (one generator step and --energy-steps energy steps each; paper 100 000).
    #[arg(long)]
    iterations: Option<u64>,
    /// Batch size (paper: 256 toy, 64 images).
    #[arg(long)]
    batch: Option<usize>,
    /// Energy steps per generator step n_φ (5).
    #[arg(long)]
    energy_steps: Option<usize>,
    /// Gradient-penalty weight λ (authors' scripts: 0.1 toy, 10 images; the paper says 0.1).
    #[arg(long)]
    lambda: Option<f64>,
    /// Penalty averaging: `channel` (authors' code) or `sample` (the paper's per-sample norm).
    #[arg(long, value_enum)]
    penalty: Option<PenaltyForm>,
    /// z̃ for the JSD estimator: `batch` (code: permute whole codes) or `per-dimension` (paper).
    #[arg(long, value_enum)]
    shuffle: Option<Shuffle>,
    /// Adam learning rate of all three nets (1e-4).
    #[arg(long)]
    lr: Option<f64>,
    /// Divide every hidden width by this (1 = the paper's nets).
    #[arg(long)]
    width_divisor: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Save samples (and the toy density) every this many iterations.
    #[arg(long, default_value_t = 500)]
    sample_every: u64,
    /// Write a checkpoint every this many iterations.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// No progress bar (a line per sample interval instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct MegSampleArgs {
    /// MEG model file.
    model: PathBuf,
    /// Number of samples (points of a toy model's scatter plot).
    #[arg(long, default_value_t = 64)]
    count: usize,
    /// MALA steps (default: the model's; 0 = the generator alone).
    #[arg(long)]
    mala_steps: Option<usize>,
    /// Temperature β: the chain targets exp(−β·E(G(z))) (default: the model's, 0.2).
    #[arg(long)]
    temperature: Option<f64>,
    /// MALA step size α (default: the model's, 0.01).
    #[arg(long)]
    step_size: Option<f64>,
    /// Use the authors' code's un-squared norm in the proposal density.
    #[arg(long)]
    unsquared: bool,
    /// Run MALA on E(x) in pixel space, from the generator's samples (the paper's comparison),
    /// instead of on E(G(z)) in latent space.
    #[arg(long)]
    pixel: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output PNG (a grid; toy models: a scatter plot over [−2, 2]²).
    #[arg(long, default_value = "meg-samples.png")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct DensityArgs {
    /// MEG model file of a toy density.
    model: PathBuf,
    /// Grid cells per side (the paper: 500).
    #[arg(long, default_value_t = 500)]
    resolution: usize,
    /// The density the model learned: prints the share of the density and of 2 000 generator
    /// samples within 0.1 and 0.3 of its modes (swiss roll: of its curve).
    #[arg(long, value_enum)]
    truth: Option<ToyDensity>,
    /// Output PNG.
    #[arg(long, default_value = "meg-density.png")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs a `meg` subcommand.
pub fn run(command: MegCommand) -> anyhow::Result<()> {
    match command {
        MegCommand::Train(args) => train(args),
        MegCommand::Sample(args) => sample(args),
        MegCommand::Density(args) => density(args),
        MegCommand::Classifier(args) => classifier(args),
        MegCommand::Modes(args) => modes(args),
        MegCommand::Anomaly(args) => anomaly(args),
        MegCommand::Kdd(args) => kdd(args),
    }
}

/// The networks' data set and the data description for `choice`.
pub fn dataset(choice: DatasetChoice, toy: ToyDensity, stacks: usize, source: DataSource) -> (MegDataset, MegData) {
    match choice {
        DatasetChoice::Toy => (MegDataset::Toy2d, MegData::Toy { density: toy }),
        DatasetChoice::Mnist => (MegDataset::Mnist { channels: 1 }, MegData::Loaded { source, stacks: 1 }),
        DatasetChoice::StackedMnist => (MegDataset::Mnist { channels: stacks }, MegData::Loaded { source, stacks }),
        DatasetChoice::Cifar => (MegDataset::Cifar, MegData::Loaded { source, stacks: 1 }),
        DatasetChoice::Celeba => (MegDataset::Celeba, MegData::Loaded { source, stacks: 1 }),
    }
}

fn train_config(args: &MegTrainArgs) -> MegTrainConfig {
    let source = DataSource { path: args.data.clone(), class: None, limit: args.limit };
    let (dataset, data) = dataset(args.dataset, args.toy, args.stacks, source);
    let mut config = MegTrainConfig::paper(dataset, data);
    set(&mut config.net.width_divisor, args.width_divisor);
    set(&mut config.iterations, args.iterations);
    set(&mut config.batch_size, args.batch);
    set(&mut config.energy_steps, args.energy_steps);
    set(&mut config.lambda, args.lambda);
    set(&mut config.penalty, args.penalty);
    set(&mut config.shuffle, args.shuffle);
    set(&mut config.adam.lr, args.lr);
    set(&mut config.seed, args.seed);
    config
}

/// The run's training data in model space (`[−1, 1]`): 28×28 gray digits as they are (one
/// channel; StackedMNIST stacks them per batch), colour images resized to the nets' size.
fn train_data(config: &MegTrainConfig, device: &Device) -> anyhow::Result<Option<Tensor<4>>> {
    let MegData::Loaded { source, .. } = &config.data else { return Ok(None) };
    let options = source.options();
    let set = match config.net.dataset {
        MegDataset::Mnist { .. } => {
            let set = data::open(&source.path, &options).with_context(|| format!("cannot read MNIST from {}", source.path.display()))?;
            anyhow::ensure!(set.height == 28 && set.width == 28 && set.channels == 1, "MEG's MNIST nets take 28×28 gray digits, not {}×{}×{}", set.channels, set.height, set.width);
            set
        }
        dataset => {
            let [channels, size, _] = config.net.data_shape();
            let set = data::open(&source.path, &options).or_else(|error| match error {
                data::DataError::InconsistentSizes { .. } => data::open_resized(&source.path, &options, size, channels),
                other => Err(other),
            });
            let set = set.with_context(|| format!("cannot read {dataset:?} images from {}", source.path.display()))?;
            set.resize(size, channels)?
        }
    };
    Ok(Some(shortrun::images_tensor(&set, device)))
}

fn train(args: MegTrainArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let device = select_device(&args.device)?;
    let resume_from = |config: MegTrainConfig, bytes: Vec<u8>| {
        let trainer = MegTrainer::from_checkpoint(&bytes, train_data(&config, &device)?, &device)?;
        let iteration = trainer.iteration;
        Ok((trainer, iteration))
    };
    let mut trainer = open_run(&run, args.resume, resume_from, || {
        let config = train_config(&args);
        config.validate()?;
        let trainer = MegTrainer::new(config.clone(), train_data(&config, &device)?, &device)?;
        Ok((config, trainer))
    })?;
    let total = trainer.config.iterations;
    let progress = training_progress(args.quiet, total, trainer.iteration);
    let started = Instant::now();
    let mut log = QuietLog::new(args.quiet, trainer.iteration);
    while trainer.iteration < total {
        let metrics = log_step(&run, &progress, started, trainer.step())?;
        let message = format!(
            "E(x) {:+.3}  E(G(z)) {:+.3}  penalty {:.3}  L_H {:.3}",
            metrics.energy_real, metrics.energy_generated, metrics.penalty, metrics.entropy_loss
        );
        progress.set_message(message.clone());
        progress.set_position(metrics.iteration);
        let last = metrics.iteration == total;
        log.log(metrics.iteration, total, metrics.iteration % args.sample_every.max(1) == 0 || last, &message);
        if metrics.iteration % args.sample_every.max(1) == 0 || last {
            let model = trainer.model()?;
            write_pictures(&model, &device, picture_count(&model), None, trainer.config.seed, &run.sample_grid(metrics.iteration))?;
        }
        if metrics.iteration % args.checkpoint_every.max(1) == 0 || last {
            atomic_write(&run.checkpoint(), &trainer.checkpoint()?)?;
        }
    }
    progress.finish();
    let model = trainer.model()?;
    atomic_write(&run.model(), &model.to_bytes()?)?;
    eprintln!("done in {:.0} s: model {}", started.elapsed().as_secs_f64(), run.model().display());
    write_pictures(&model, &device, picture_count(&model), None, trainer.config.seed, &run.root().join("samples.png"))?;
    if is_toy(&model) {
        save_density(&model, 500, &run.root().join("density.png"))?;
    }
    Ok(())
}

/// Images in a training grid, or points in a toy scatter plot.
fn picture_count(model: &Model) -> usize {
    if is_toy(model) { 2000 } else { 64 }
}

fn is_toy(model: &Model) -> bool {
    matches!(&model.manifest.model, ModelSpec::Meg(c) if c.dataset == MegDataset::Toy2d)
}

/// Where a MALA chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Latent,
    Pixel,
}

/// Samples (`mala` in `space`, or the generator alone) as a grid, or as a scatter plot for
/// toy models; returns the acceptance rate when MALA ran.
fn write_pictures(model: &Model, device: &Device, count: usize, mala: Option<(&MalaConfig, Space)>, seed: u64, path: &Path) -> anyhow::Result<Option<f64>> {
    let mut rng = HostRng::new(seed);
    let latent = mala.filter(|(_, space)| *space == Space::Latent).map(|(config, _)| config);
    let samples = latent_samples(model, count, latent, &mut rng, device)?;
    let (images, acceptance) = match mala {
        Some((config, Space::Pixel)) => {
            let (energy, _) = shared::generate::energy_net(model)?;
            let dims = samples.images.dims();
            let out = shared::sampler::mala(&PixelEnergy { energy }, samples.images.reshape([dims[0] as i32, -1]), config, &mut rng);
            (out.z.reshape(dims), Some(out.acceptance_rate))
        }
        _ => (samples.images, samples.acceptance_rate),
    };
    let acceptance = acceptance.map(|a| host_values(a).map(|v| f64::from(v[0]))).transpose()?;
    let dims = images.dims();
    let values = host_values(images)?;
    if is_toy(model) {
        let counts: Vec<f64> = scatter(&values, 200, 2.0).into_iter().map(f64::sqrt).collect();
        imageio::save_grid(path, &imageio::heat_colours(&counts), &Layout { count: 1, channels: 3, height: 200, width: 200, range: [0.0, 255.0] }, 1, 2)?;
    } else {
        imageio::save_grid(path, &values, &layout(dims, model.manifest.data.range), grid_columns(count), 2)?;
    }
    Ok(acceptance)
}

/// Counts of 2-D points per cell of a `resolution²` grid over `[−extent, extent]²` (row 0 at
/// the top).
fn scatter(points: &[f32], resolution: usize, extent: f64) -> Vec<f64> {
    let mut counts = vec![0.0; resolution * resolution];
    for point in points.chunks_exact(2) {
        let cell = |v: f64| ((v + extent) / (2.0 * extent) * resolution as f64).floor();
        let (col, row) = (cell(f64::from(point[0])), resolution as f64 - 1.0 - cell(f64::from(point[1])));
        if (0.0..resolution as f64).contains(&col) && (0.0..resolution as f64).contains(&row) {
            counts[row as usize * resolution + col as usize] += 1.0;
        }
    }
    counts
}

fn save_density(model: &Model, resolution: usize, path: &Path) -> anyhow::Result<()> {
    let (energy, _) = shared::generate::energy_net(model)?;
    let grid = meg::toy_density(energy, resolution, 2.0)?;
    imageio::save_grid(path, &imageio::heat_colours(&grid), &Layout { count: 1, channels: 3, height: resolution, width: resolution, range: [0.0, 255.0] }, 1, 1)?;
    eprintln!("density: {}", path.display());
    Ok(())
}

fn sample(args: MegSampleArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    anyhow::ensure!(matches!(model.manifest.model, ModelSpec::Meg(_)), "{} is a {} model; `trainer meg sample` takes MEG models", args.model.display(), model.manifest.model.family_name());
    let mut mala = model.manifest.sampler.mala.unwrap_or_default();
    set(&mut mala.steps, args.mala_steps);
    set(&mut mala.temperature, args.temperature);
    set(&mut mala.step_size, args.step_size);
    if args.unsquared {
        mala.proposal_norm = ProposalNorm::Unsquared;
    }
    let space = if args.pixel { Space::Pixel } else { Space::Latent };
    let acceptance = write_pictures(&model, &device, args.count, (mala.steps > 0).then_some((&mala, space)), args.seed, &args.out)?;
    match acceptance {
        Some(rate) => eprintln!(
            "{} samples after {} {} MALA steps (α {}, β {}): acceptance rate {:.3}",
            args.count,
            mala.steps,
            if args.pixel { "pixel-space" } else { "latent" },
            mala.step_size,
            mala.temperature,
            rate
        ),
        None => eprintln!("{} generator samples", args.count),
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn density(args: DensityArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    anyhow::ensure!(is_toy(&model), "{} is not a MEG model of a 2-D toy density", args.model.display());
    anyhow::ensure!((1..=4000).contains(&args.resolution), "the resolution must be 1..=4000, not {}", args.resolution);
    save_density(&model, args.resolution, &args.out)?;
    if let Some(truth) = args.truth {
        let support = truth.support();
        let (energy, _) = shared::generate::energy_net(&model)?;
        let grid = meg::toy_density(energy, args.resolution, 2.0)?;
        let points = host_values(latent_samples(&model, 2000, None, &mut HostRng::new(0), &device)?.images)?;
        let near = |radius: f64| points.chunks_exact(2).filter(|p| data::toy::nearest_distance(&support, [f64::from(p[0]), f64::from(p[1])]) <= radius).count() as f64 / 2000.0;
        let uniform = vec![1.0 / grid.len() as f64; grid.len()];
        for radius in [0.1, 0.3] {
            println!(
                "{}: within {radius} of the truth: density mass {:.3} (a uniform density: {:.3}), generator samples {:.3}",
                truth.name(),
                meg::mass_within(&grid, args.resolution, 2.0, &support, radius),
                meg::mass_within(&uniform, args.resolution, 2.0, &support, radius),
                near(radius)
            );
        }
    }
    Ok(())
}

/// Both splits of an MNIST IDX folder, in model space, with labels.
fn labelled_digits(path: &Path, split: Split, device: &Device) -> anyhow::Result<(Tensor<4>, Vec<u8>)> {
    let set = data::open(path, &LoadOptions { split, ..LoadOptions::default() }).with_context(|| format!("cannot read MNIST ({split}) from {}", path.display()))?;
    anyhow::ensure!(set.height == 28 && set.width == 28 && set.channels == 1, "MNIST digits are 28×28 gray, not {}×{}×{}", set.channels, set.height, set.width);
    let labels = set.labels.clone().with_context(|| format!("{} has no labels", path.display()))?;
    Ok((shortrun::images_tensor(&set, device), labels))
}

fn classifier(args: ClassifierArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    // Bad widths are reported before the digits are read.
    let widths: [usize; 3] = args.widths.as_slice().try_into().map_err(|_| anyhow::anyhow!("--widths takes three numbers, e.g. 32,64,128"))?;
    trainer::classifier::check_widths(widths)?;
    let (images, labels) = labelled_digits(&args.data, Split::Train, &device)?;
    let (test_images, test_labels) = labelled_digits(&args.data, Split::Test, &device)?;
    eprintln!("training on {} digits, {} epochs", labels.len(), args.epochs);
    let classifier = Classifier::train(&images, &labels, widths, args.epochs, args.seed, &device, |epoch, loss| eprintln!("epoch {epoch}: cross-entropy {loss:.4}"))?;
    let predicted = classifier.predict(test_images)?;
    let correct = predicted.iter().zip(&test_labels).filter(|(p, l)| p == l).count();
    eprintln!("test accuracy {:.2} % ({correct}/{})", 100.0 * correct as f64 / test_labels.len().max(1) as f64, test_labels.len());
    atomic_write(&args.out, &classifier.to_bytes()?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn modes(args: ModesArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    let stacks = match &model.manifest.model {
        ModelSpec::Meg(c) => match c.dataset {
            MegDataset::Mnist { channels } => channels,
            _ => anyhow::bail!("{} is not a (Stacked)MNIST MEG model", args.model.display()),
        },
        other => anyhow::bail!("{} is a {} model, not MEG", args.model.display(), other.family_name()),
    };
    anyhow::ensure!(args.samples > 0, "at least one sample is needed");
    let bytes = std::fs::read(&args.classifier).with_context(|| format!("cannot read {} (train one with `trainer meg classifier`)", args.classifier.display()))?;
    let classifier = Classifier::from_bytes(&bytes, &device)?;
    let mut mala = model.manifest.sampler.mala.unwrap_or_default();
    mala.steps = args.mala_steps;
    let mut rng = HostRng::new(args.seed);
    let mut tuples = Vec::with_capacity(args.samples);
    for start in (0..args.samples).step_by(1000) {
        let count = 1000.min(args.samples - start);
        let images = latent_samples(&model, count, (mala.steps > 0).then_some(&mala), &mut rng, &device)?.images;
        let digits = classifier.predict(images.reshape([(count * stacks) as i32, 1, 28, 28]))?;
        tuples.extend(digits.chunks_exact(stacks).map(|d| d.iter().fold(0usize, |t, &digit| t * 10 + usize::from(digit))));
    }
    let categories = 10usize.pow(stacks as u32);
    let (found, kl) = metrics::mode_statistics(&tuples, categories);
    println!("{stacks}-StackedMNIST: {found} modes of {categories}, KL(samples ‖ uniform) {kl:.4} from {} samples", args.samples);
    if let Some(path) = &args.json {
        let record = serde_json::json!({ "stacks": stacks, "modes": found, "categories": categories, "kl": kl, "samples": args.samples, "mala_steps": mala.steps });
        atomic_write(path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    Ok(())
}

fn anomaly(args: AnomalyArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let (train_images, mut labels) = labelled_digits(&args.data, Split::Train, &device)?;
    let (test_images, test_labels) = labelled_digits(&args.data, Split::Test, &device)?;
    let images = Tensor::cat(vec![train_images, test_images], 0);
    labels.extend(test_labels);
    let mut rows = Vec::new();
    for &digit in &args.digits {
        anyhow::ensure!(digit < 10, "{digit} is not a digit");
        let (train, test, is_anomaly) = meg::anomaly_split(&labels, digit, args.seed);
        let select = |index: &[usize]| images.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(index.iter().map(|&i| i as i64).collect::<Vec<_>>(), [index.len()]), &device));
        let mut config = MegTrainConfig::paper(MegDataset::Mnist { channels: 1 }, MegData::Loaded { source: DataSource::new(&args.data), stacks: 1 });
        config.net.width_divisor = args.width_divisor;
        config.lambda = args.lambda;
        config.adam.lr = args.lr;
        config.iterations = args.iterations;
        config.seed = args.seed;
        let (energies, norms) = train_and_score(config, select(&train), &select(&test), &format!("digit {digit} held out"), &device)?;
        let by_energy = metrics::auprc(&energies, &is_anomaly).context("the energy scores are not finite")?;
        let by_gradient = metrics::auprc(&norms, &is_anomaly).context("the gradient scores are not finite")?;
        let base_rate = is_anomaly.iter().filter(|a| **a).count() as f64 / is_anomaly.len() as f64;
        eprintln!("digit {digit}: AUPRC E(x) {by_energy:.3}, ‖∇E‖ {by_gradient:.3} (anomaly share {base_rate:.3}, {} training images)", train.len());
        rows.push((digit, by_energy, by_gradient, base_rate, train.len()));
    }
    let paper = |digit: u8| match digit {
        1 => "0.281 ± 0.035",
        4 => "0.401 ± 0.061",
        5 => "0.402 ± 0.062",
        7 => "0.290 ± 0.040",
        9 => "0.342 ± 0.034",
        _ => "—",
    };
    let mut table = String::from("| held-out digit | AUPRC E(x) | AUPRC ‖∇E(x)‖ | chance (anomaly share) | training images | paper MEG |\n|---|---|---|---|---|---|\n");
    for (digit, by_energy, by_gradient, base_rate, train) in rows {
        table.push_str(&format!("| {digit} | {by_energy:.3} | {by_gradient:.3} | {base_rate:.3} | {train} | {} |\n", paper(digit)));
    }
    table.push_str(&format!(
        "\n{} iterations per model (n_φ 5, batch 64), widths ÷{}, λ {}, Adam {} (0.5, 0.9), seed {}, data {}.\n",
        args.iterations, args.width_divisor, args.lambda, args.lr, args.seed, args.data.display()
    ));
    atomic_write(&args.out, table.as_bytes())?;
    print!("{table}");
    Ok(())
}

fn kdd(args: KddArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let mut table = data::kdd::read(&args.data)?;
    anyhow::ensure!(
        table.features == data::kdd::FEATURES,
        "{} encodes to {} features, but MEG's KDD99 nets take {} (the one-hot columns of the full 10 % file)",
        args.data.display(),
        table.features,
        data::kdd::FEATURES
    );
    if args.min_max {
        table.min_max_scale();
    }
    let (train, test, is_anomaly) = meg::kdd_split(&table.normal, args.seed);
    anyhow::ensure!(train.len() >= 2 && is_anomaly.iter().any(|a| *a), "the file has too few attack or normal records for the protocol");
    let rows = |index: &[usize]| {
        let values: Vec<f32> = index.iter().flat_map(|&i| table.values[i * table.features..(i + 1) * table.features].iter().copied()).collect();
        Tensor::<4>::from_data(TensorData::new(values, [index.len(), table.features, 1, 1]), &device)
    };
    let mut config = MegTrainConfig::paper(MegDataset::Kdd, MegData::Loaded { source: DataSource::new(&args.data), stacks: 1 });
    config.adam.lr = args.lr;
    config.iterations = args.iterations;
    config.seed = args.seed;
    let (energies, norms) = train_and_score(config, rows(&train), &rows(&test), "KDD99", &device)?;
    println!("KDD99: {} training (attack) records, {} test records ({} anomalies)", train.len(), test.len(), is_anomaly.iter().filter(|a| **a).count());
    println!("| score | precision | recall | F1 |\n|---|---|---|---|");
    for (name, scores) in [("E(x)", &energies), ("‖∇E(x)‖", &norms)] {
        let (precision, recall, f1) = metrics::threshold_scores(scores, &is_anomaly, 80.0).context("the scores are not finite")?;
        println!("| {name} | {precision:.4} | {recall:.4} | {f1:.4} |");
    }
    println!("| paper MEG | 0.9354 ± 0.016 | 0.9521 ± 0.014 | 0.9441 ± 0.015 |");
    Ok(())
}

/// Trains a MEG model on `train` for its configured iterations (with a progress bar showing
/// `label`) and returns the anomaly scores `E(x)` and `‖∇ₓE(x)‖` of `test`.
fn train_and_score(config: MegTrainConfig, train: Tensor<4>, test: &Tensor<4>, label: &str, device: &Device) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let iterations = config.iterations;
    let mut trainer = MegTrainer::new(config, Some(train), device)?;
    let progress = training_progress(false, iterations, 0);
    progress.set_message(label.to_string());
    while trainer.iteration < iterations {
        trainer.step()?;
        progress.set_position(trainer.iteration);
    }
    progress.finish();
    meg::anomaly_scores(&trainer.nets.energy.valid(), test)
}
