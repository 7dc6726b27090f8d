//! `trainer`: train energy-based generative ConvNets and use them from the command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::*;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use shared::file::Model;
use shared::nets::ShortRunConfig;
use shared::sampler::LangevinConfig;
use trainer::commands::{self, Overrides};
use trainer::data::{self, ImageSet, LoadOptions, Split};
use trainer::device::{self, DeviceChoice};
use trainer::imageio::{self, Layout};
use trainer::optim::{AdamSettings, LabSgdSettings, Update};
use trainer::run::{RunDir, atomic_write};
use trainer::shortrun::{self, Anneal, DataSource, TrainConfig, Trainer};

#[path = "cli/eval.rs"]
mod eval_cli;
#[path = "cli/frame.rs"]
mod frame_cli;
#[path = "cli/meg.rs"]
mod meg_cli;
#[path = "cli/multigrid.rs"]
mod multigrid_cli;
#[path = "cli/report.rs"]
mod report_cli;

/// Train energy-based generative ConvNets (short-run MCMC, multigrid, generative ConvNet, MEG)
/// and sample from them.
///
/// Start with `trainer train --preset quick` (a small short-run model on the bundled MNIST
/// digits, sample grids in runs/), then `trainer sample runs/NAME/model.ebm`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a short-run MCMC model (Nijkamp et al. 2019, Algorithm 1).
    Train(TrainArgs),
    /// Draw samples from a model file: a PNG grid, one PNG per image, optionally the chain as a GIF.
    Sample(SampleArgs),
    /// Interpolate between pairs of noise images through the noise-free short-run map.
    Interpolate(InterpolateArgs),
    /// Reconstruct held-out images by gradient descent on the chain's start, through all K steps.
    Reconstruct(ReconstructArgs),
    /// Turn a training checkpoint into a model file (drops optimiser state).
    Export(ExportArgs),
    /// Print what a model file holds.
    Info(InfoArgs),
    /// Measure Langevin steps/s, training iterations/s and peak memory (--torch: PyTorch beside it).
    Bench(BenchArgs),
    /// FID and KID (FID Inception features) of a model's samples or a folder of images against
    /// a data set; reference features are computed once and cached.
    Eval(eval_cli::EvalArgs),
    /// How the MNIST classifier reads a model's samples: the share labelled with confidence
    /// above 0.9 and the label histogram's entropy, beside real test digits.
    EvalDigits(eval_cli::EvalDigitsArgs),
    /// Compute and cache a data set's FID Inception features (MNIST, Fashion-MNIST, textures,
    /// any folder) and print the FID between its two halves, the floor at that sample size.
    EvalReference(eval_cli::EvalReferenceArgs),
    /// Generative ConvNet / FRAME model (Xie et al. 2016): textures, objects, CD-1 reconstruction.
    #[command(subcommand)]
    Frame(frame_cli::FrameCommand),
    /// Multigrid models (Gao et al. 2018): the 1×1 → 4×4 → 16×16 → 64×64 cascade, its
    /// baselines, inpainting and its table.
    #[command(subcommand)]
    Multigrid(multigrid_cli::MultigridCommand),
    /// MEG (Kumar et al. 2019): energy model + generator with an entropy term, latent MALA,
    /// toy densities.
    #[command(subcommand)]
    Meg(meg_cli::MegCommand),
    /// Run the reproduction experiments at a budget and write REPORT.md: short-run FID vs K,
    /// σ and n_f, reconstruction MSE, multigrid inpainting, MEG modes and anomaly AUPRC,
    /// FRAME texture statistics, each beside the paper's numbers.
    Report(report_cli::ReportArgs),
}

#[derive(Args, Debug)]
struct DeviceArgs {
    /// Compute device: `auto` uses the GPU through wgpu when one can be initialised, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// Minutes, not hours, on a CPU: n_f 16, 32×32, batch 32, K 40, 300 iterations, lr 3e-4 annealed to 3e-5 over the second half.
    Quick,
    /// The authors' code: n_f 64, batch 64, K 100, σ 0.03, Adam 1e-4 (0.9, 0.999), 100 000 iterations.
    Paper,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Training data: a folder of MNIST/Fashion-MNIST IDX files, an IDX file, CIFAR-10 binary
    /// batches (file or folder), a folder of PNG/JPEG images, or one image.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Run folder (config, metrics, samples, checkpoints, model).
    #[arg(long, default_value = "runs/shortrun-mnist")]
    run: PathBuf,
    /// Continue the run in --run from its last checkpoint (bit-for-bit the same as not stopping).
    #[arg(long)]
    resume: bool,
    /// Settings to start from (default: the authors' code); the flags below override them.
    #[arg(long, value_enum, default_value_t = Preset::Paper)]
    preset: Preset,
    /// Image side (4·2^d: 16, 32, 64, 128); smaller images are padded, larger ones resized.
    #[arg(long)]
    image_size: Option<usize>,
    /// Channels: 1 (gray) or 3 (RGB); default: the data's.
    #[arg(long)]
    channels: Option<usize>,
    /// Train on one class only (label of IDX / CIFAR data).
    #[arg(long)]
    class: Option<u8>,
    /// Use at most this many training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Width n_f of the energy net's first layer.
    #[arg(long)]
    n_f: Option<usize>,
    /// LeakyReLU slope.
    #[arg(long)]
    leak: Option<f64>,
    /// Batch size m.
    #[arg(long)]
    batch: Option<usize>,
    /// Iterations.
    #[arg(long)]
    iterations: Option<u64>,
    /// Langevin steps K per iteration.
    #[arg(long)]
    steps: Option<usize>,
    /// Langevin drift coefficient (1 in the paper's code).
    #[arg(long)]
    step_size: Option<f64>,
    /// Langevin noise (0.01 in the paper's code).
    #[arg(long)]
    langevin_noise: Option<f64>,
    /// Clamp the chains to the data's range after every Langevin step (`quick`: on; the
    /// paper's code: off); the model file carries it, so sampling clamps too.
    #[arg(long)]
    clip_chains: Option<bool>,
    /// Noise σ added to observed images.
    #[arg(long)]
    data_noise: Option<f64>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Adam β₁.
    #[arg(long)]
    beta1: Option<f64>,
    /// Adam β₂.
    #[arg(long)]
    beta2: Option<f64>,
    /// Anneal lr and σ linearly from this fraction of the run to its end (off by default).
    #[arg(long)]
    anneal_start: Option<f64>,
    /// Final learning-rate factor when annealing.
    #[arg(long, default_value_t = 0.1)]
    anneal_lr_factor: f64,
    /// Final data-noise factor when annealing.
    #[arg(long, default_value_t = 0.5)]
    anneal_noise_factor: f64,
    /// Stop as diverged once the samples' mean |x| exceeds this many times the data range's
    /// largest magnitude (default 1.5: the chains have left the data's range).
    #[arg(long)]
    sample_range_limit: Option<f64>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Write a sample grid every N iterations.
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// Write a checkpoint every N iterations.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// No progress bar (plain log lines instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct SamplerArgs {
    /// Langevin steps K (may differ from training).
    #[arg(long)]
    steps: Option<usize>,
    /// Drift coefficient.
    #[arg(long)]
    step_size: Option<f64>,
    /// Langevin noise.
    #[arg(long)]
    noise: Option<f64>,
    /// Switch the Langevin noise off.
    #[arg(long)]
    noise_free: bool,
    /// Seed of the chains' start.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl SamplerArgs {
    /// The user's changes to the model's Langevin settings.
    fn overrides(&self) -> Overrides {
        Overrides { steps: self.steps, step_size: self.step_size, noise: self.noise, noise_free: self.noise_free }
    }

    /// The model's own Langevin settings with the user's overrides.
    fn config(&self, model: &Model) -> anyhow::Result<LangevinConfig> {
        Ok(shared::generate::chain_config(model, &self.overrides())?)
    }
}

#[derive(Args, Debug)]
struct SampleArgs {
    /// Model file (or a training checkpoint).
    model: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    count: usize,
    /// Output folder.
    #[arg(long, default_value = "samples")]
    out: PathBuf,
    /// Also save the chain every N steps as an animated GIF and a frame strip.
    #[arg(long)]
    chain_every: Option<usize>,
    /// Canvas width, for models whose net takes any size (textures); default: the training width.
    #[arg(long)]
    width: Option<usize>,
    /// Canvas height (see --width).
    #[arg(long)]
    height: Option<usize>,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct InterpolateArgs {
    /// Model file.
    model: PathBuf,
    /// Number of (z₁, z₂) pairs, one row each.
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Points from ρ = 0 to ρ = 1.
    #[arg(long, default_value_t = 8)]
    points: usize,
    /// Output PNG.
    #[arg(long, default_value = "interpolation.png")]
    out: PathBuf,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct ReconstructArgs {
    /// Model file.
    model: PathBuf,
    /// Images to reconstruct (same forms as `train --data`); the test split is used when there is one.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Number of held-out images.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Gradient-descent iterations on z.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Step size η of the descent on z (a gap in the paper).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Output PNG (rows: originals, reconstructions).
    #[arg(long, default_value = "reconstruction.png")]
    out: PathBuf,
    /// Also write the MSE numbers as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Training checkpoint (runs/NAME/checkpoint.ebm).
    checkpoint: PathBuf,
    /// Model file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Model file.
    model: PathBuf,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// n_f of the short-run net.
    #[arg(long, default_value_t = 64)]
    n_f: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Langevin steps per batch.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Image side.
    #[arg(long, default_value_t = 32)]
    image_size: usize,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Skip the autodiff-tape reference runs of the short-run and multigrid benchmarks (burn's
    /// naive loop; beside PyTorch on a GPU they take most of the time).
    #[arg(long)]
    no_tape: bool,
    /// Time the multigrid cascade per grid instead (--batch images, --steps per grid).
    #[arg(long, conflicts_with_all = ["meg", "sweep"])]
    multigrid: bool,
    /// Time MEG iterations on this data set's networks instead (--batch, random data).
    #[arg(long, value_enum, conflicts_with = "sweep")]
    meg: Option<meg_cli::DatasetChoice>,
    /// MEG StackedMNIST: digits stacked per sample.
    #[arg(long, default_value_t = 3)]
    stacks: usize,
    /// Multigrid and MEG: divide the nets' widths by this.
    #[arg(long, default_value_t = 1)]
    width_divisor: usize,
    /// Print how the Langevin batch's time grows with batch size, n_f and image size around
    /// --batch, --n-f and --image-size (a markdown table).
    #[arg(long)]
    sweep: bool,
    /// Time the same nets and chains in PyTorch beside ours with this Python (which must have
    /// torch) and print the ratios.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// PyTorch's device for --torch: `cpu` or `cuda` (default: `cpu` with --device flex, else
    /// `cuda`).
    #[arg(long)]
    torch_device: Option<String>,
    /// Write what was timed as JSON for `scripts/bench-torch.py` (to run the reference elsewhere).
    #[arg(long, value_name = "FILE")]
    reference_spec: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// mimalloc with a peak counter (see [`trainer::bench::HEAP`]).
#[global_allocator]
static ALLOCATOR: &peakmem_alloc::PeakMemAlloc<mimalloc::MiMalloc> = &trainer::bench::HEAP;

fn main() {
    quiet_when_stdout_closes();
    if let Err(error) = dispatch(Cli::parse().command) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Ends the process quietly, with status 0, when the reader of stdout has gone away
/// (`trainer info MODEL | head`). Rust ignores SIGPIPE, so `println!` panics on the closed
/// pipe with a backtrace; a command-line tool should stop as Unix tools do instead.
fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Runs one command (also used by `trainer report`, which runs the commands it lists).
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train(args),
        Command::Sample(args) => sample(args),
        Command::Interpolate(args) => interpolate(args),
        Command::Reconstruct(args) => reconstruct(args),
        Command::Export(args) => export(args),
        Command::Info(args) => info(args),
        Command::Bench(args) => bench(args),
        Command::Eval(args) => eval_cli::run_eval(args),
        Command::EvalDigits(args) => eval_cli::run_digits(args),
        Command::EvalReference(args) => eval_cli::run_reference(args),
        Command::Frame(command) => frame_cli::run(command),
        Command::Multigrid(command) => multigrid_cli::run(command),
        Command::Meg(command) => meg_cli::run(command),
        Command::Report(args) => report_cli::run(args),
    }
}

fn select_device(args: &DeviceArgs) -> anyhow::Result<Device> {
    let selected = device::select(args.device)?;
    eprintln!("device: {}", selected.description);
    Ok(selected.device)
}

/// Loads training images and fits them to `size`×`size` with `channels` channels: images no
/// larger than the target are padded with black (MNIST 28 → 32), larger ones resized.
fn load_images(path: &Path, options: &LoadOptions, size: usize, channels: Option<usize>) -> anyhow::Result<ImageSet> {
    let set = data::open(path, options).or_else(|error| match error {
        data::DataError::InconsistentSizes { .. } => data::open_resized(path, options, size, channels.unwrap_or(3)),
        other => Err(other),
    });
    let set = set.with_context(|| format!("cannot read training data from {}", path.display()))?;
    let channels = channels.unwrap_or(set.channels);
    if channels != 1 && channels != 3 {
        bail!("--channels must be 1 or 3, not {channels}");
    }
    let set = if set.height <= size && set.width <= size && set.height == set.width && channels == set.channels {
        set.pad_to(size, 0.0)?
    } else {
        set.resize(size, channels)?
    };
    Ok(set)
}

fn grid_columns(count: usize) -> usize {
    (count as f64).sqrt().ceil().max(1.0) as usize
}

/// Layout of a `[N, C, H, W]` batch shown over `range`.
fn layout(dims: [usize; 4], range: [f64; 2]) -> Layout {
    let [count, channels, height, width] = dims;
    Layout { count, channels, height, width, range: range.map(|v| v as f32) }
}

/// Small images are shown twice as large.
fn display_scale(layout: &Layout) -> usize {
    if layout.height <= 32 { 2 } else { 1 }
}

fn save_images(path: &Path, images: Tensor<4>, range: [f64; 2]) -> anyhow::Result<()> {
    let layout = layout(images.dims(), range);
    imageio::save_grid(path, &shortrun::host_values(images)?, &layout, grid_columns(layout.count), display_scale(&layout))?;
    Ok(())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let device = select_device(&args.device)?;
    let resume_from = |config: TrainConfig, bytes: Vec<u8>| {
        let set = load_images(&config.source.path, &config.source.options(), config.net.image_size, Some(config.net.channels))?;
        let trainer = Trainer::from_checkpoint(&bytes, shortrun::images_tensor(&set, &device), &device)?;
        let iteration = trainer.iteration;
        Ok((trainer, iteration))
    };
    let mut trainer = open_run(&run, args.resume, resume_from, || {
        let mut config = train_config(&args)?;
        let set = load_images(&config.source.path, &config.source.options(), config.net.image_size, args.channels)?;
        eprintln!("data: {} images of {}×{}×{} from {}", set.count, set.channels, set.height, set.width, config.source.describe());
        // The net and the model file follow the data's channels unless --channels forced them.
        config.net.channels = set.channels;
        config.data = shortrun::data_spec(set.channels, config.net.image_size);
        let trainer = Trainer::new(config.clone(), shortrun::images_tensor(&set, &device), &device)?;
        Ok((config, trainer))
    })?;
    let total = trainer.config.iterations;
    let progress = training_progress(args.quiet, total, trainer.iteration);
    let started = Instant::now();
    let mut log = QuietLog::new(args.quiet, trainer.iteration);
    while trainer.iteration < total {
        let metrics = log_step(&run, &progress, started, trainer.step())?;
        let message = format!("f(data) {:+.4}  f(samples) {:+.4}  ‖∇f‖ {:.4}", metrics.f_data, metrics.f_samples, metrics.grad_norm);
        progress.set_message(message.clone());
        progress.set_position(metrics.iteration);
        log.log(metrics.iteration, total, metrics.iteration % args.sample_every.max(1) == 0, &message);
        let last = metrics.iteration == total;
        if metrics.iteration % args.sample_every.max(1) == 0 || last {
            save_images(&run.sample_grid(metrics.iteration), trainer.preview(64, 12345)?, trainer.config.data.range)?;
        }
        if metrics.iteration % args.checkpoint_every.max(1) == 0 || last {
            atomic_write(&run.checkpoint(), &trainer.checkpoint()?)?;
        }
    }
    progress.finish();
    atomic_write(&run.model(), &trainer.model().to_bytes()?)?;
    let final_grid = run.sample_grid(total);
    eprintln!("done: model {}, samples {}", run.model().display(), final_grid.display());
    Ok(())
}

/// The progress bar of a training loop at `position` of `total` iterations (hidden with `--quiet`).
/// The trainer of `run`: resumed from its saved configuration and checkpoint (`resume_from`,
/// returning the trainer and the iteration it is at), or new (`start`, returning the final
/// configuration and the trainer) in a folder that must not hold a run yet; the configuration
/// is then saved as `config.json`.
fn open_run<C, T>(
    run: &RunDir,
    resume: bool,
    resume_from: impl FnOnce(C, Vec<u8>) -> anyhow::Result<(T, u64)>,
    start: impl FnOnce() -> anyhow::Result<(C, T)>,
) -> anyhow::Result<T>
where
    C: serde::Serialize + serde::de::DeserializeOwned,
{
    if resume {
        let (config, bytes) = run.resume_state()?;
        let (trainer, iteration) = resume_from(config, bytes)?;
        run.truncate_metrics(iteration)?;
        eprintln!("resuming {} at iteration {iteration}", run.root().display());
        return Ok(trainer);
    }
    if run.checkpoint().exists() {
        bail!("{} already holds a run; pass --resume to continue it or choose another --run", run.root().display());
    }
    let (config, trainer) = start()?;
    run.create()?;
    atomic_write(&run.config(), serde_json::to_string_pretty(&config)?.as_bytes())?;
    Ok(trainer)
}

/// The `--quiet` log of a training loop: a line at every sample interval and at least once a
/// minute, with the pace since this process started training and the time left at that pace.
struct QuietLog {
    enabled: bool,
    started: Instant,
    /// The iteration training started from in this process (a resumed run's checkpoint).
    first: u64,
    last_line: Instant,
}

impl QuietLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    fn new(enabled: bool, first: u64) -> Self {
        let now = Instant::now();
        Self { enabled, started: now, first, last_line: now }
    }

    /// Prints `message` for `iteration` of `total` when `due` (a sample interval), at the first
    /// iteration, or when a minute has passed since the last line.
    fn log(&mut self, iteration: u64, total: u64, due: bool, message: &str) {
        if self.enabled && (due || iteration == 1 || self.last_line.elapsed() >= Self::EVERY) {
            eprintln!("{}", self.line(iteration, total, message));
            self.last_line = Instant::now();
        }
    }

    fn line(&self, iteration: u64, total: u64, message: &str) -> String {
        let done = iteration.saturating_sub(self.first);
        if done == 0 {
            return format!("iteration {iteration}/{total}: {message}");
        }
        let per_iteration = self.started.elapsed().as_secs_f64() / done as f64;
        let left = (per_iteration * total.saturating_sub(iteration) as f64).round() as u64;
        format!("iteration {iteration}/{total} ({per_iteration:.2} s/it, ETA {}:{:02}:{:02}): {message}", left / 3600, left / 60 % 60, left % 60)
    }
}

fn training_progress(quiet: bool, total: u64, position: u64) -> ProgressBar {
    let progress = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} it  {per_sec}  ETA {eta}  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_position(position);
    progress
}

/// A training step's metrics, logged to the run's `metrics.jsonl` with the seconds since
/// `started`; a failed step abandons the progress bar and returns its error.
fn log_step<M: serde::Serialize, E: Into<anyhow::Error>>(run: &RunDir, progress: &ProgressBar, started: Instant, step: Result<M, E>) -> anyhow::Result<M> {
    let metrics = step.map_err(|error| {
        progress.abandon();
        error.into()
    })?;
    let mut line = serde_json::to_value(&metrics)?;
    line["seconds"] = started.elapsed().as_secs_f64().into();
    run.log_metrics(&line)?;
    Ok(metrics)
}

fn train_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let source = DataSource { path: args.data.clone(), class: args.class, limit: args.limit };
    let mut config = match args.preset {
        Preset::Paper => TrainConfig::paper(ShortRunConfig::new(), shortrun::data_spec(3, 32), source),
        Preset::Quick => {
            let mut config = TrainConfig::paper(ShortRunConfig::new().with_n_f(16), shortrun::data_spec(1, 32), source);
            config.batch_size = 32;
            config.iterations = 300;
            config.langevin = LangevinConfig::short_run(40);
            // Unclamped, every seed run to the end but seed 1 (2, 3, 4, 5, 7) diverged before
            // iteration 200, its chains leaving [−1, 1]; clamped, seeds 1–7 trained stably.
            config.langevin.clip = Some(config.data.range);
            // A higher rate than the paper's learns digits in a few hundred iterations; it is
            // lowered over the second half because at a constant 3e-4 a run diverged after 340.
            config.adam.lr = 3e-4;
            config.anneal = Some(Anneal { start: 0.5, lr_factor: 0.1, noise_factor: 1.0 });
            config
        }
    };
    set(&mut config.net.image_size, args.image_size);
    set(&mut config.net.n_f, args.n_f);
    set(&mut config.net.leak, args.leak);
    set(&mut config.batch_size, args.batch);
    set(&mut config.iterations, args.iterations);
    set(&mut config.langevin.steps, args.steps);
    set(&mut config.langevin.step_size, args.step_size);
    set(&mut config.langevin.noise, args.langevin_noise);
    if let Some(clip) = args.clip_chains {
        config.langevin.clip = clip.then_some(config.data.range);
    }
    set(&mut config.data_noise, args.data_noise);
    set(&mut config.adam.lr, args.lr);
    set(&mut config.adam.beta1, args.beta1);
    set(&mut config.adam.beta2, args.beta2);
    set(&mut config.seed, args.seed);
    set(&mut config.sample_range_limit, args.sample_range_limit);
    if config.sample_range_limit.is_nan() || config.sample_range_limit <= 0.0 {
        bail!("--sample-range-limit must be positive, got {}", config.sample_range_limit);
    }
    if let Some(start) = args.anneal_start {
        if !(0.0..1.0).contains(&start) {
            bail!("--anneal-start must be in [0, 1), got {start}");
        }
        config.anneal = Some(Anneal { start, lr_factor: args.anneal_lr_factor, noise_factor: args.anneal_noise_factor });
    }
    if let Some(channels) = args.channels {
        if channels != 1 && channels != 3 {
            bail!("--channels must be 1 or 3, not {channels}");
        }
        config.net.channels = channels;
    }
    config.net.stack_spec().context("invalid network settings")?;
    Ok(config)
}

/// Overrides `target` with a value the user gave.
/// Which parameter update a trainer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimizerChoice {
    /// The lab's per-layer normalised, capped SGD (MatConvNet codes).
    Lab,
    /// Adam.
    Adam,
}

/// The parameter-update flags shared by the trainers whose default is the lab update or Adam.
#[derive(Args, Debug)]
struct UpdateArgs {
    /// Parameter update (default: the experiment's).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerChoice>,
    /// Learning rate (default: the experiment's).
    #[arg(long)]
    lr: Option<f64>,
    /// Lab update: cap on max|g| of the normalised gradient (0 = none).
    #[arg(long)]
    cap: Option<f64>,
    /// Lab update: weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Lab update: momentum.
    #[arg(long)]
    momentum: Option<f64>,
}

impl UpdateArgs {
    /// `preset` with these flags applied; switching kind starts from `lab` or `adam`.
    fn apply(&self, preset: Update, lab: LabSgdSettings, adam: AdamSettings) -> anyhow::Result<Update> {
        let choice = self.optimizer.unwrap_or(match preset {
            Update::Lab(_) => OptimizerChoice::Lab,
            Update::Adam(_) => OptimizerChoice::Adam,
        });
        Ok(match choice {
            OptimizerChoice::Lab => {
                let mut lab = if let Update::Lab(preset) = preset { preset } else { lab };
                set(&mut lab.lr, self.lr);
                set(&mut lab.weight_decay, self.weight_decay);
                set(&mut lab.momentum, self.momentum);
                if let Some(cap) = self.cap {
                    lab.cap = (cap > 0.0).then_some(cap);
                }
                Update::Lab(lab)
            }
            OptimizerChoice::Adam => {
                if self.cap.is_some() || self.weight_decay.is_some() || self.momentum.is_some() {
                    bail!("--cap, --weight-decay and --momentum belong to the lab update, not to Adam");
                }
                let mut adam = if let Update::Adam(preset) = preset { preset } else { adam };
                set(&mut adam.lr, self.lr);
                Update::Adam(adam)
            }
        })
    }
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

fn load_model(path: &Path, device: &Device) -> anyhow::Result<Model> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Model::from_bytes(&bytes, device).with_context(|| format!("{} is not a usable model file", path.display()))
}

fn sample(args: SampleArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    match model.manifest.model {
        shared::nets::ModelSpec::Multigrid(_) => bail!("{} is a multigrid model: it samples through its grids with `trainer multigrid sample`", args.model.display()),
        shared::nets::ModelSpec::Meg(_) => bail!("{} is a MEG model: it samples through its generator with `trainer meg sample`", args.model.display()),
        _ => {}
    }
    let config = args.sampler.config(&model)?;
    let started = Instant::now();
    let data = &model.manifest.data;
    let canvas = match (args.height, args.width) {
        (None, None) => None,
        (height, width) => Some([height.unwrap_or(data.height), width.unwrap_or(data.width)]),
    };
    let samples = commands::sample(&model, &device, args.count, canvas, &config, args.sampler.seed, args.chain_every)?;
    let samples_dims = samples.images.dims();
    let model_values = shortrun::host_values(samples.images)?;
    let (values, range) = data.display(&model_values, samples_dims);
    let layout = layout(samples_dims, range.map(f64::from));
    eprintln!("{} samples, {} steps, in {:.2} s", layout.count, config.steps, started.elapsed().as_secs_f64());
    let (columns, scale) = (grid_columns(layout.count), display_scale(&layout));
    imageio::save_grid(&args.out.join("grid.png"), &values, &layout, columns, scale)?;
    imageio::save_each(&args.out.join("images"), "sample_", &values, &layout)?;
    atomic_write(&args.out.join("samples.npy"), &imageio::npy_bytes(&model_values, &samples_dims))?;
    if !samples.frames.is_empty() {
        let frames = samples.frames.into_iter().map(|f| Ok(data.display(&shortrun::host_values(f)?, samples_dims).0)).collect::<anyhow::Result<Vec<_>>>()?;
        imageio::save_gif(&args.out.join("chain.gif"), &frames, &layout, columns, scale, 80)?;
        // The strip shows the first eight chains, one per row.
        let rows = Layout { count: layout.count.min(8), ..layout };
        let strip: Vec<Vec<f32>> = frames.iter().map(|f| f[..rows.count * layout.image_len()].to_vec()).collect();
        imageio::save_strip(&args.out.join("chain.png"), &strip, &rows, scale)?;
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn interpolate(args: InterpolateArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    let config = args.sampler.config(&model)?;
    let images = commands::interpolate(&model, &device, args.pairs, args.points, &config, args.sampler.seed)?;
    let layout = layout(images.dims(), model.manifest.data.range);
    imageio::save_grid(&args.out, &shortrun::host_values(images)?, &layout, args.points, display_scale(&layout))?;
    eprintln!("wrote {} ({} rows of ρ = 0 … 1)", args.out.display(), args.pairs);
    Ok(())
}

fn reconstruct(args: ReconstructArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let train_device = device.clone().autodiff();
    let model = load_model(&args.model, &train_device)?;
    let (stack, polarity) = commands::energy_net(&model)?;
    let config = args.sampler.config(&model)?;
    let data = &model.manifest.data;
    let options = LoadOptions { limit: Some(args.count), class: None, split: Split::Test };
    let set = load_images(&args.data, &options, data.height, Some(data.channels))?.truncate(args.count);
    let targets = shortrun::images_tensor(&set, &device);
    let result = commands::reconstruct(stack, polarity, targets.clone(), &config, args.iterations, args.lr, args.sampler.seed)?;
    let mean_image = targets.clone().mean_dim(0).expand(targets.dims());
    let baseline = shortrun::host_values((targets.clone() - mean_image).square().mean().reshape([1, 1, 1, 1]))?[0];
    eprintln!(
        "per-pixel MSE ([−1, 1] space): start {:.4} → after {} iterations {:.4}; held-out mean-image baseline {:.4}",
        result.mse[0],
        args.iterations,
        result.mse[result.mse.len() - 1],
        baseline
    );
    if let Some(path) = &args.json {
        let record = serde_json::json!({
            "count": set.count, "iterations": args.iterations, "start_mse": result.mse[0],
            "final_mse": result.mse[result.mse.len() - 1], "mean_image_mse": baseline,
        });
        atomic_write(path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    let both = Tensor::cat(vec![targets, result.images], 0);
    let layout = layout(both.dims(), data.range);
    imageio::save_grid(&args.out, &shortrun::host_values(both)?, &layout, layout.count / 2, display_scale(&layout))?;
    eprintln!("wrote {} (top: originals, bottom: reconstructions)", args.out.display());
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let bytes = fs::read(&args.checkpoint).with_context(|| format!("cannot read {}", args.checkpoint.display()))?;
    let model = shortrun::export_checkpoint(&bytes).with_context(|| format!("{} cannot be exported", args.checkpoint.display()))?;
    atomic_write(&args.out, &model)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let model = load_model(&args.model, &Device::flex())?;
    println!("{}", serde_json::to_string_pretty(&model.manifest)?);
    for stack in &model.stacks {
        let count: usize = stack.stack.parameters().iter().map(|(_, shape, _)| shape.iter().product::<usize>()).sum();
        println!("net {:<18} {:?}: {} blocks, {count} parameters", stack.name, stack.role, stack.stack.blocks.len());
    }
    for (name, tensor) in &model.extras {
        println!("extra {name:<16} shape {:?}", tensor.shape);
    }
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    use trainer::bench::{self, ReferenceSpec, Timing, TorchTimes};
    let device = select_device(&args.device)?;
    let timing = Timing { repeats: args.repeats, tape: !args.no_tape };
    if args.sweep {
        println!("{}", bench::sweep(&device, args.n_f, args.batch, args.image_size, args.steps, args.repeats)?);
        return Ok(());
    }
    let torch_device = args.torch_device.clone().unwrap_or_else(|| if args.device.device == DeviceChoice::Flex { "cpu" } else { "cuda" }.into());
    let reference = |spec: &ReferenceSpec| -> anyhow::Result<Option<TorchTimes>> {
        if let Some(path) = &args.reference_spec {
            atomic_write(path, &serde_json::to_vec_pretty(spec)?)?;
        }
        let Some(python) = &args.torch else { return Ok(None) };
        let times = bench::torch_reference(python, spec, &torch_device, args.repeats)?;
        println!("reference: {}", times.describe);
        Ok(Some(times))
    };
    let ratio = |name: &str, ours: f64, theirs: Option<f64>| {
        if let Some(theirs) = theirs {
            println!("  {name:<34}: PyTorch {:9.1} ms   ratio ours / PyTorch {:.2}", theirs * 1e3, ours / theirs);
        }
    };
    if args.multigrid {
        let report = bench::cascade(&device, args.width_divisor, args.batch, args.steps, timing)?;
        println!("{report}");
        if let Some(times) = reference(&report.reference)? {
            let theirs = times.grids_s.unwrap_or_default();
            for (grid, theirs) in report.grids.iter().zip(&theirs) {
                ratio(&format!("grid {0}×{0}", grid.side), grid.explicit_s, Some(*theirs));
            }
            ratio("whole cascade", report.total_s(), (theirs.len() == report.grids.len()).then(|| theirs.iter().sum()));
        }
        return Ok(());
    }
    if let Some(choice) = args.meg {
        let (dataset, data) = meg_cli::dataset(choice, trainer::data::toy::ToyDensity::Gaussians8, args.stacks, DataSource::new("random tensors"));
        let mut config = trainer::meg::MegTrainConfig::paper(dataset, data);
        config.net.width_divisor = args.width_divisor;
        config.batch_size = args.batch;
        let report = bench::meg(&device, config, args.repeats)?;
        println!("{report}");
        if let Some(times) = reference(&report.reference)? {
            ratio("MEG iteration", report.iteration_s, times.iteration_s);
        }
        return Ok(());
    }
    let report = bench::bench(&device, args.n_f, args.batch, args.steps, args.image_size, timing)?;
    println!("{report}");
    if let Some(times) = reference(&report.reference)? {
        ratio("Langevin batch", report.explicit_batch_s, times.langevin_s);
        ratio("training iteration", report.train_iteration_s, times.iteration_s);
        if let (Some(sampling), Some(training)) = (times.sampling_peak_bytes, times.training_peak_bytes) {
            println!("  PyTorch peak device memory        : sampling {:.1} MiB, training {:.1} MiB", sampling as f64 / 1048576.0, training as f64 / 1048576.0);
        }
    }
    Ok(())
}
