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
use shared::sampler::{MalaConfig, ProposalNorm};
use trainer::data::toy::ToyDensity;
use trainer::data;
use trainer::imageio::{self, Layout};
use trainer::meg::{self, MegData, MegTrainConfig, MegTrainer, PenaltyForm, Shuffle};
use trainer::run::{RunDir, atomic_write};
use trainer::shortrun::{self, DataSource, host_values};

use super::{DeviceArgs, grid_columns, layout, load_model, open_run, select_device, set, training_progress};

/// MEG (Kumar et al. 2019): energy model + generator with a mutual-information entropy term.
#[derive(Subcommand, Debug)]
pub enum MegCommand {
    /// Train E, G and T (Algorithm 1 as the authors' code runs it).
    Train(MegTrainArgs),
    /// Generator samples refined by latent-space MALA on E(G(z)); prints the acceptance rate.
    Sample(MegSampleArgs),
    /// The toy density figure: softmax of −E on a grid over [−2, 2]², as a PNG.
    Density(DensityArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetChoice {
    /// A 2-D toy density (--toy).
    Toy,
    /// MNIST digits, 28×28 (--data: IDX files).
    Mnist,
    /// StackedMNIST: --stacks digits as channels.
    StackedMnist,
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
    /// Number of samples.
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
    }
}

fn train_config(args: &MegTrainArgs) -> MegTrainConfig {
    let source = DataSource { path: args.data.clone(), class: None, limit: args.limit };
    let (dataset, data) = match args.dataset {
        DatasetChoice::Toy => (MegDataset::Toy2d, MegData::Toy { density: args.toy }),
        DatasetChoice::Mnist => (MegDataset::Mnist { channels: 1 }, MegData::Loaded { source, stacks: 1 }),
        DatasetChoice::StackedMnist => (MegDataset::Mnist { channels: args.stacks }, MegData::Loaded { source, stacks: args.stacks }),
    };
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

/// The run's training data in model space (`[−1, 1]`), one channel per image.
fn train_data(config: &MegTrainConfig, device: &Device) -> anyhow::Result<Option<Tensor<4>>> {
    match &config.data {
        MegData::Toy { .. } => Ok(None),
        MegData::Loaded { source, .. } => {
            let set = data::open(&source.path, &source.options()).with_context(|| format!("cannot read MNIST from {}", source.path.display()))?;
            anyhow::ensure!(set.height == 28 && set.width == 28 && set.channels == 1, "MEG's MNIST nets take 28×28 gray digits, not {}×{}×{}", set.channels, set.height, set.width);
            Ok(Some(shortrun::images_tensor(&set, device)))
        }
    }
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
    while trainer.iteration < total {
        let metrics = match trainer.step() {
            Ok(metrics) => metrics,
            Err(error) => {
                progress.abandon();
                return Err(error.into());
            }
        };
        let mut line = serde_json::to_value(metrics)?;
        line["seconds"] = started.elapsed().as_secs_f64().into();
        run.log_metrics(&line)?;
        let message = format!(
            "E(x) {:+.3}  E(G(z)) {:+.3}  penalty {:.3}  L_H {:.3}",
            metrics.energy_real, metrics.energy_generated, metrics.penalty, metrics.entropy_loss
        );
        progress.set_message(message.clone());
        progress.set_position(metrics.iteration);
        let last = metrics.iteration == total;
        if metrics.iteration % args.sample_every.max(1) == 0 || last {
            if args.quiet {
                eprintln!("iteration {}/{total}: {message}", metrics.iteration);
            }
            let model = trainer.model()?;
            write_pictures(&model, &device, 64, None, trainer.config.seed, &run.sample_grid(metrics.iteration))?;
        }
        if metrics.iteration % args.checkpoint_every.max(1) == 0 || last {
            atomic_write(&run.checkpoint(), &trainer.checkpoint()?)?;
        }
    }
    progress.finish();
    let model = trainer.model()?;
    atomic_write(&run.model(), &model.to_bytes()?)?;
    eprintln!("done in {:.0} s: model {}", started.elapsed().as_secs_f64(), run.model().display());
    write_pictures(&model, &device, 64, None, trainer.config.seed, &run.root().join("samples.png"))?;
    if is_toy(&model) {
        save_density(&model, 500, &run.root().join("density.png"))?;
    }
    Ok(())
}

fn is_toy(model: &Model) -> bool {
    matches!(&model.manifest.model, ModelSpec::Meg(c) if c.dataset == MegDataset::Toy2d)
}

/// Samples (`mala` or the generator alone) as a grid, or as a scatter plot for toy models;
/// returns the acceptance rate when MALA ran.
fn write_pictures(model: &Model, device: &Device, count: usize, mala: Option<&MalaConfig>, seed: u64, path: &Path) -> anyhow::Result<Option<f64>> {
    let mut rng = HostRng::new(seed);
    let samples = latent_samples(model, count, mala, &mut rng, device)?;
    let acceptance = samples.acceptance_rate.map(|a| host_values(a).map(|v| f64::from(v[0]))).transpose()?;
    let dims = samples.images.dims();
    let values = host_values(samples.images)?;
    if is_toy(model) {
        imageio::save_grid(path, &imageio::heat_colours(&scatter(&values, 200, 2.0)), &Layout { count: 1, channels: 3, height: 200, width: 200, range: [0.0, 255.0] }, 1, 2)?;
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
    let acceptance = write_pictures(&model, &device, args.count, (mala.steps > 0).then_some(&mala), args.seed, &args.out)?;
    match acceptance {
        Some(rate) => eprintln!("{} samples after {} MALA steps (α {}, β {}): acceptance rate {:.3}", args.count, mala.steps, mala.step_size, mala.temperature, rate),
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
    save_density(&model, args.resolution, &args.out)
}
