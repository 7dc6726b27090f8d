//! `trainer multigrid …`: multigrid training, its baselines, sampling and inpainting.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::*;
use clap::{Args, Subcommand, ValueEnum};
use shared::file::Model;
use shared::nets::{ModelSpec, MultigridVariant};
use trainer::data::{self, LoadOptions, Split};
use trainer::imageio::{self, Layout};
use trainer::multigrid::{self, IMAGE_SIZE, MaskKind, Method, MultigridTrainConfig, MultigridTrainer};
use trainer::run::{RunDir, atomic_write};
use trainer::shortrun::{DataSource, host_values};

use super::{DeviceArgs, QuietLog, SamplerArgs, UpdateArgs, grid_columns, load_model, open_run, select_device, set, training_progress};

/// Multigrid modeling and sampling (Gao et al. 2018): 1×1 → 4×4 → 16×16 → 64×64.
#[derive(Subcommand, Debug)]
pub enum MultigridCommand {
    /// Learn the three grid nets (or a baseline: single-grid, CD-1, persistent CD).
    Train(MultigridTrainArgs),
    /// Sample from scratch and save every grid's images (4×4, 16×16, 64×64).
    Sample(MultigridSampleArgs),
    /// Inpaint held-out images under one mask; saves originals | masked | inpainted.
    Inpaint(InpaintArgs),
    /// The inpainting table (error and PSNR on the missing pixels) of several models for the
    /// square, doodle and pepper-and-salt masks, beside the paper's Table 4.
    Table(TableArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodChoice {
    /// Three grids, L steps each (Algorithm 1).
    Multigrid,
    /// The 64×64 net alone from the 1×1 version, 3L steps.
    SingleGrid,
    /// One step from the data.
    Cd1,
    /// Persistent chains started at the data, 3L steps.
    Pcd,
}

impl From<MethodChoice> for Method {
    fn from(choice: MethodChoice) -> Self {
        match choice {
            MethodChoice::Multigrid => Method::Multigrid,
            MethodChoice::SingleGrid => Method::SingleGrid,
            MethodChoice::Cd1 => Method::ContrastiveDivergence,
            MethodChoice::Pcd => Method::PersistentCd,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VariantChoice {
    /// MatConvNet code (the paper's nets; ReLU, BatchNorm, N(0, 0.01²)).
    Matconvnet,
    /// The TensorFlow release (LeakyReLU 0.2, Xavier, four 5×5 s2 convs at 64×64).
    Tensorflow,
    /// The PyTorch port (LeakyReLU 0.01, 96-128-256-512 at 64×64).
    Pytorch,
}

#[derive(Args, Debug)]
pub struct MultigridTrainArgs {
    /// Method.
    #[arg(long, value_enum, default_value_t = MethodChoice::Multigrid)]
    method: MethodChoice,
    /// Training images (resized to 64×64): IDX folder (MNIST, Fashion-MNIST), CIFAR-10, a folder of images.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Run folder (config, metrics, samples, checkpoints, model, per-grid figures).
    #[arg(long, default_value = "runs/multigrid")]
    run: PathBuf,
    /// Continue the run in --run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Channels: 1 or 3 (default: the data's).
    #[arg(long)]
    channels: Option<usize>,
    /// Use at most this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// Only images with this label.
    #[arg(long)]
    class: Option<u8>,
    /// Which code base's nets.
    #[arg(long, value_enum, default_value_t = VariantChoice::Matconvnet)]
    variant: VariantChoice,
    /// Divide every width by this (1 = the paper's).
    #[arg(long)]
    width_divisor: Option<usize>,
    /// Images per iteration (100).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Passes over the data (MatConvNet: 1250).
    #[arg(long)]
    epochs: Option<u64>,
    /// Langevin steps L per grid (30; TensorFlow / PyTorch: 90).
    #[arg(long)]
    steps: Option<usize>,
    /// Steps of the single-grid and persistent-CD baselines (90).
    #[arg(long)]
    baseline_steps: Option<usize>,
    /// Langevin step δ.
    #[arg(long)]
    delta: Option<f64>,
    /// Reference σ (50).
    #[arg(long)]
    sigma: Option<f64>,
    /// No Langevin noise and no reference term, as the TensorFlow release.
    #[arg(long)]
    tensorflow_langevin: bool,
    /// Clip to [0, 255] after every step, as the TensorFlow release.
    #[arg(long)]
    clip: bool,
    /// Parameter update (default: the MatConvNet update, lr 0.3; Adam is the TF/PyTorch one).
    #[command(flatten)]
    update: UpdateArgs,
    /// Keep the learning rate constant (no 80-plateau log decay).
    #[arg(long)]
    no_lr_decay: bool,
    /// No top-layer learning-rate multipliers (×0.05 / ×0.1).
    #[arg(long)]
    no_top_lr: bool,
    /// Conditional learning for inpainting: a square hole of this side at a random position.
    #[arg(long)]
    hole: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the synthesised 64×64 images every N iterations.
    #[arg(long, default_value_t = 50)]
    sample_every: u64,
    /// Write a checkpoint every N iterations.
    #[arg(long, default_value_t = 50)]
    checkpoint_every: u64,
    /// No progress bar (plain log lines instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct MultigridSampleArgs {
    /// Model file.
    model: PathBuf,
    /// Number of chains.
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Start every chain from the same 1×1 image (the paper's diversity check).
    #[arg(long)]
    one_start: bool,
    /// Output folder (grid4.png, grid16.png, grid64.png).
    #[arg(long, default_value = "samples")]
    out: PathBuf,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MaskChoice {
    /// A 32×32 square at a random position.
    Square,
    /// Brush strokes over 25 % of the pixels.
    Doodle,
    /// 30 % of the pixels, independently.
    PepperSalt,
}

impl From<MaskChoice> for MaskKind {
    fn from(choice: MaskChoice) -> Self {
        let index = match choice {
            MaskChoice::Square => 0,
            MaskChoice::Doodle => 1,
            MaskChoice::PepperSalt => 2,
        };
        MaskKind::DEFAULTS[index]
    }
}

/// Held-out images to inpaint.
#[derive(Args, Debug)]
struct HeldOut {
    /// Images (resized to 64×64).
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Which split of a data set that has one.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Only images with this label.
    #[arg(long)]
    class: Option<u8>,
    /// Number of images.
    #[arg(long, default_value_t = 100)]
    count: usize,
}

#[derive(Args, Debug)]
pub struct InpaintArgs {
    /// Model file.
    model: PathBuf,
    #[command(flatten)]
    held_out: HeldOut,
    /// Mask.
    #[arg(long, value_enum, default_value_t = MaskChoice::Square)]
    mask: MaskChoice,
    /// Output PNG (rows: originals, masked, inpainted).
    #[arg(long, default_value = "inpainting.png")]
    out: PathBuf,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct TableArgs {
    /// A model as NAME=PATH (repeat: e.g. MG=runs/mg/model.ebm CD1=runs/cd/model.ebm).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    #[command(flatten)]
    held_out: HeldOut,
    /// Images per inpainting batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Markdown output.
    #[arg(long, default_value = "inpainting-table.md")]
    out: PathBuf,
    /// Also save each model's inpaintings of the first 8 images per mask in this folder.
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Also write the figures as JSON here: per mask, each model's error and PSNR and the
    /// paper's MG column.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(command: MultigridCommand) -> anyhow::Result<()> {
    match command {
        MultigridCommand::Train(args) => train(args),
        MultigridCommand::Sample(args) => sample(args),
        MultigridCommand::Inpaint(args) => inpaint(args),
        MultigridCommand::Table(args) => table(args),
    }
}

fn train_config(args: &MultigridTrainArgs) -> anyhow::Result<MultigridTrainConfig> {
    let source = DataSource { path: args.data.clone(), class: args.class, limit: args.limit };
    let mut config = MultigridTrainConfig::paper(args.method.into(), args.channels.unwrap_or(1), source);
    config.net.variant = match args.variant {
        VariantChoice::Matconvnet => MultigridVariant::Matconvnet,
        VariantChoice::Tensorflow => MultigridVariant::Tensorflow,
        VariantChoice::Pytorch => MultigridVariant::Pytorch,
    };
    set(&mut config.net.width_divisor, args.width_divisor);
    set(&mut config.batch_size, args.batch_size);
    set(&mut config.epochs, args.epochs);
    set(&mut config.langevin.steps, args.steps);
    set(&mut config.baseline_steps, args.baseline_steps);
    if let Some(delta) = args.delta {
        config.langevin.step_size = delta * delta / 2.0;
        config.langevin.noise = delta;
    }
    if let Some(sigma) = args.sigma {
        config.langevin.reference_sigma = Some(sigma);
    }
    if args.tensorflow_langevin {
        config.langevin = config.langevin.noise_free();
        config.langevin.reference_sigma = None;
    }
    if args.clip {
        config.langevin.clip = Some([0.0, 255.0]);
    }
    config.optimizer = args.update.apply(config.optimizer, MultigridTrainConfig::LAB_UPDATE, MultigridTrainConfig::ADAM_UPDATE)?;
    config.lr_decay &= !args.no_lr_decay;
    config.top_layer_lr &= !args.no_top_lr;
    config.inpainting_hole = args.hole;
    set(&mut config.seed, args.seed);
    config.validate()?;
    Ok(config)
}

/// Images of `source` resized to 64×64 with `channels` (default: the data's).
fn load(path: &Path, options: &LoadOptions, channels: Option<usize>) -> anyhow::Result<data::ImageSet> {
    let set = data::open(path, options).or_else(|error| match error {
        data::DataError::InconsistentSizes { .. } => data::open_resized(path, options, IMAGE_SIZE, channels.unwrap_or(3)),
        other => Err(other),
    });
    let set = set.with_context(|| format!("cannot read images from {}", path.display()))?;
    let channels = channels.unwrap_or(set.channels);
    Ok(set.resize(IMAGE_SIZE, channels)?)
}

fn train_images(config: &MultigridTrainConfig, channels: Option<usize>, device: &Device) -> anyhow::Result<Tensor<4>> {
    let set = load(&config.source.path, &config.source.options(), channels)?;
    multigrid::images_tensor(&set, device)
}

fn train(args: MultigridTrainArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let device = select_device(&args.device)?;
    let resume_from = |config: MultigridTrainConfig, bytes: Vec<u8>| {
        let images = train_images(&config, Some(config.net.channels), &device)?;
        let trainer = MultigridTrainer::from_checkpoint(&bytes, images, &device)?;
        let iteration = trainer.iteration;
        Ok((trainer, iteration))
    };
    let mut trainer = open_run(&run, args.resume, resume_from, || {
        let mut config = train_config(&args)?;
        let images = train_images(&config, args.channels, &device)?;
        let [count, channels, height, width] = images.dims();
        eprintln!("data: {count} image(s) of {channels}×{height}×{width} from {}", config.source.describe());
        config.net.channels = channels;
        let trainer = MultigridTrainer::new(config.clone(), images, &device)?;
        Ok((config, trainer))
    })?;
    let total = trainer.total_iterations();
    let progress = training_progress(args.quiet, total, trainer.iteration);
    let started = Instant::now();
    let mut log = QuietLog::new(args.quiet, trainer.iteration);
    while trainer.iteration < total {
        let (metrics, synthesised) = match trainer.step() {
            Ok(result) => result,
            Err(error) => {
                progress.abandon();
                return Err(error.into());
            }
        };
        let mut line = serde_json::to_value(&metrics)?;
        line["seconds"] = started.elapsed().as_secs_f64().into();
        run.log_metrics(&line)?;
        let gaps: Vec<String> = metrics.f_observed.iter().zip(&metrics.f_synthesised).map(|(o, s)| format!("{:+.2}", o - s)).collect();
        let message = format!("epoch {}  f(obs)−f(syn) {}  |syn−obs| {:.1}  lr {:.3}", metrics.epoch, gaps.join(" "), metrics.distance_to_data, metrics.lr);
        progress.set_message(message.clone());
        progress.set_position(metrics.iteration);
        log.log(metrics.iteration, total, metrics.iteration % args.sample_every.max(1) == 0, &message);
        let last = metrics.iteration == total;
        if (metrics.iteration % args.sample_every.max(1) == 0 || last)
            && let Some(finest) = synthesised.last()
        {
            save_images(&run.sample_grid(metrics.iteration), finest.clone(), 0)?;
        }
        if metrics.iteration % args.checkpoint_every.max(1) == 0 || last {
            atomic_write(&run.checkpoint(), &trainer.checkpoint()?)?;
        }
    }
    progress.finish();
    let model = trainer.model()?;
    atomic_write(&run.model(), &model.to_bytes()?)?;
    eprintln!("done in {:.0} s: model {}", started.elapsed().as_secs_f64(), run.model().display());
    let inner = device.clone();
    let overrides = shared::generate::Overrides::default();
    write_grids(&model, &inner, 16, false, &overrides, trainer.config.seed, run.root())?;
    write_grids(&model, &inner, 16, true, &overrides, trainer.config.seed, &run.root().join("one-start"))?;
    Ok(())
}

/// Samples `count` chains from scratch and saves every grid's images as `grid{side}.png` in
/// `dir`.
fn write_grids(model: &Model, device: &Device, count: usize, one_start: bool, overrides: &shared::generate::Overrides, seed: u64, dir: &Path) -> anyhow::Result<()> {
    let outputs = multigrid::synthesise(model, count, one_start, overrides, seed, device)?;
    for output in outputs {
        let side = output.dims()[2];
        let path = dir.join(format!("grid{side}.png"));
        // Coarse grids are shown at the finest grid's size.
        save_images(&path, output, (IMAGE_SIZE / side).max(1))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Saves 0–255 images `[N, C, H, W]` as a grid, each pixel `scale`× (0: 1×).
fn save_images(path: &Path, images: Tensor<4>, scale: usize) -> anyhow::Result<()> {
    let [count, channels, height, width] = images.dims();
    let values = host_values(images)?;
    imageio::save_grid(path, &values, &Layout { count, channels, height, width, range: [0.0, 255.0] }, grid_columns(count), scale.max(1))?;
    Ok(())
}

fn check_multigrid(model: &Model, path: &Path) -> anyhow::Result<()> {
    if !matches!(model.manifest.model, ModelSpec::Multigrid(_)) {
        bail!("{} is a {} model, not a multigrid one", path.display(), model.manifest.model.family_name());
    }
    Ok(())
}

fn sample(args: MultigridSampleArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    check_multigrid(&model, &args.model)?;
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    write_grids(&model, &device, args.count, args.one_start, &args.sampler.overrides(), args.sampler.seed, &args.out)
}

fn held_out_images(held_out: &HeldOut, channels: usize, device: &Device) -> anyhow::Result<Tensor<4>> {
    if held_out.count == 0 {
        bail!("--count must be at least 1");
    }
    let split = held_out.split;
    let set = load(&held_out.data, &LoadOptions { limit: Some(held_out.count), class: held_out.class, split }, Some(channels))?;
    multigrid::images_tensor(&set, device)
}

/// Originals, masked images (missing pixels mid-gray) and inpaintings, one row each.
fn inpainting_figure(path: &Path, originals: Tensor<4>, masks: &[Vec<bool>], inpainted: Tensor<4>, shown: usize) -> anyhow::Result<()> {
    let n = shown.min(originals.dims()[0]);
    let [_, channels, h, w] = originals.dims();
    let originals = originals.narrow(0, 0, n);
    let mut masked = host_values(originals.clone())?;
    for (value, missing) in masked.iter_mut().zip(multigrid::per_channel(&masks[..n], channels)) {
        if missing {
            *value = 128.0;
        }
    }
    let device = originals.device();
    let masked = Tensor::<4>::from_data(TensorData::new(masked, [n, channels, h, w]), &device);
    let rows = Tensor::cat(vec![originals, masked, inpainted.narrow(0, 0, n)], 0);
    let values = host_values(rows)?;
    imageio::save_grid(path, &values, &Layout { count: 3 * n, channels, height: h, width: w, range: [0.0, 255.0] }, n, 1)?;
    Ok(())
}

fn inpaint(args: InpaintArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    check_multigrid(&model, &args.model)?;
    let images = held_out_images(&args.held_out, model.manifest.data.channels, &device)?;
    let kind = MaskKind::from(args.mask);
    let (scores, result, masks) = multigrid::score_inpainting(&model, &images, kind, &args.sampler.overrides(), args.sampler.seed, 50)?;
    inpainting_figure(&args.out, images, &masks, result, 8)?;
    eprintln!("{} mask: error {:.4}, PSNR {:.2} dB over {} missing values; wrote {}", kind.name(), scores.error, scores.psnr, scores.values, args.out.display());
    Ok(())
}

/// The paper's Table 4 (1 000 CelebA test faces): PCD, CD1, SG, CE, MG.
const PAPER_TABLE: [(&str, [f64; 5]); 6] = [
    ("error square", [0.056, 0.081, 0.066, 0.045, 0.042]),
    ("error doodle", [0.055, 0.078, 0.055, 0.050, 0.045]),
    ("error pepper-salt", [0.069, 0.084, 0.054, 0.060, 0.036]),
    ("PSNR square", [12.81, 12.66, 15.97, 17.37, 16.42]),
    ("PSNR doodle", [12.92, 12.68, 14.79, 15.40, 16.98]),
    ("PSNR pepper-salt", [14.93, 15.00, 15.36, 17.04, 19.34]),
];

fn table(args: TableArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let mut models = Vec::new();
    for spec in &args.models {
        let (name, path) = spec.split_once('=').with_context(|| format!("--model {spec}: expected NAME=PATH"))?;
        let model = load_model(Path::new(path), &device)?;
        check_multigrid(&model, Path::new(path))?;
        models.push((name.to_string(), model));
    }
    let channels = models[0].1.manifest.data.channels;
    if let Some((name, _)) = models.iter().find(|(_, m)| m.manifest.data.channels != channels) {
        bail!("model {name} has a different number of channels from the first model");
    }
    let images = held_out_images(&args.held_out, channels, &device)?;
    let count = images.dims()[0];
    let overrides = args.sampler.overrides();
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut psnr_rows = Vec::new();
    let started = Instant::now();
    let mut by_mask = serde_json::Map::new();
    for (k, kind) in MaskKind::DEFAULTS.into_iter().enumerate() {
        let (mut errors, mut psnrs) = (Vec::new(), Vec::new());
        for (name, model) in &models {
            // Every model sees the same masks (seeded per mask kind).
            let (scores, result, masks) = multigrid::score_inpainting(model, &images, kind, &overrides, args.sampler.seed + k as u64, args.batch)?;
            eprintln!("{name:>12} {:>12}: error {:.4}  PSNR {:.2} dB  ({:.0} s)", kind.name(), scores.error, scores.psnr, started.elapsed().as_secs_f64());
            if let Some(dir) = &args.figures {
                inpainting_figure(&dir.join(format!("{name}-{}.png", kind.name())), images.clone(), &masks, result, 8)?;
            }
            errors.push(scores.error);
            psnrs.push(scores.psnr);
        }
        let mut entry: serde_json::Map<String, serde_json::Value> =
            models.iter().zip(errors.iter().zip(&psnrs)).map(|((name, _), (error, psnr))| (name.clone(), serde_json::json!({ "error": error, "psnr": psnr }))).collect();
        // The paper's MG column: the last of Table 4's five.
        entry.insert("paper_mg".into(), serde_json::json!({ "error": PAPER_TABLE[k].1[4], "psnr": PAPER_TABLE[k + 3].1[4] }));
        by_mask.insert(kind.name().to_string(), entry.into());
        rows.push((format!("error {}", kind.name()), errors));
        psnr_rows.push((format!("PSNR {}", kind.name()), psnrs));
    }
    rows.extend(psnr_rows);
    let mut text = String::new();
    let names: Vec<&str> = models.iter().map(|(n, _)| n.as_str()).collect();
    let class = args.held_out.class.map(|c| format!(", class {c}")).unwrap_or_default();
    let split = args.held_out.split;
    writeln!(text, "Inpainting of {count} held-out images from {} ({split} split{class}), 64×64, errors on a 0–1 scale over the missing pixels.", args.held_out.data.display())?;
    writeln!(text, "Masks: square 32×32 at a random position; doodle 25 % of the pixels; pepper-and-salt 30 %.\n")?;
    writeln!(text, "| metric | {} | paper PCD | paper CD1 | paper SG | paper CE | paper MG |", names.join(" | "))?;
    writeln!(text, "|---|{}---|---|---|---|---|", "---|".repeat(names.len()))?;
    for ((label, ours), (_, paper)) in rows.iter().zip(PAPER_TABLE) {
        let decimals = if label.starts_with("error") { 3 } else { 2 };
        let ours: Vec<String> = ours.iter().map(|v| format!("{v:.decimals$}")).collect();
        let paper: Vec<String> = paper.iter().map(|v| format!("{v:.decimals$}")).collect();
        writeln!(text, "| {label} | {} | {} |", ours.join(" | "), paper.join(" | "))?;
    }
    atomic_write(&args.out, text.as_bytes())?;
    if let Some(path) = &args.json {
        let value = serde_json::json!({ "count": count, "masks": by_mask });
        atomic_write(path, &serde_json::to_vec_pretty(&value)?)?;
    }
    print!("{text}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
