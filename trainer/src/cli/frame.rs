//! `trainer frame …`: the generative ConvNet's experiments from the command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::prelude::*;
use clap::{Args, Subcommand, ValueEnum};
use shared::file::{DataSpec, Model};
use trainer::commands;
use trainer::data::{LoadOptions, Split};
use trainer::frame::{self, FrameData, FrameTrainConfig, FrameTrainer, Learning};
use trainer::imageio::{self, Layout};
use trainer::run::{RunDir, atomic_write};
use trainer::shortrun::{DataSource, host_values};

use super::{DeviceArgs, QuietLog, SamplerArgs, UpdateArgs, grid_columns, load_images, load_model, log_step, open_run, select_device, set, training_progress};

/// The generative ConvNet (FRAME model with a Gaussian reference, Xie et al. 2016).
#[derive(Subcommand, Debug)]
pub enum FrameCommand {
    /// Learn from one texture image, from aligned object images, or by CD-1 (reconstruction).
    Train(Box<FrameTrainArgs>),
    /// Training image | synthesis of the same size | synthesis at a larger size, as one PNG.
    Figure(FigureArgs),
    /// The CD auto-encoder's reconstructions B = σ²·∂f/∂I of images, with their error.
    Reconstruct(FrameReconstructArgs),
    /// First-layer statistics of a texture model's fresh, long-run and stored chains against its
    /// training image.
    Eval(FrameEvalArgs),
}

/// The paper's three experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Experiment {
    /// Exp. 1: texture net grown layer by layer, persistent chains, one image.
    Texture,
    /// Exp. 2: object net (fully connected top filter), mean image subtracted, ~10 images.
    Objects,
    /// Exp. 3: contrastive divergence (one step from the data), all layers at once, T = 1200.
    Reconstruction,
}

#[derive(Args, Debug)]
pub struct FrameTrainArgs {
    /// Which experiment's settings to start from.
    #[arg(long, value_enum, default_value_t = Experiment::Texture)]
    experiment: Experiment,
    /// Training data: one image (textures) or a folder of images (objects, reconstruction).
    #[arg(long, default_value = "assets/textures/brick.png")]
    data: PathBuf,
    /// Run folder (config, metrics, chains, checkpoints, model, figure).
    #[arg(long, default_value = "runs/frame-texture")]
    run: PathBuf,
    /// Continue the run in --run from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Training image side (paper: 224; the CPU figures in docs/frame.md use 48, objects 32).
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Channels: 1 or 3 (default: the data's).
    #[arg(long)]
    channels: Option<usize>,
    /// Use at most this many images.
    #[arg(long)]
    limit: Option<usize>,
    /// Only images with this label (IDX / CIFAR data: e.g. one Fashion-MNIST class as objects).
    #[arg(long)]
    class: Option<u8>,
    /// Conv layers at the end of training (1–3).
    #[arg(long)]
    layers: Option<usize>,
    /// Divide every layer's filter count by this (1 = the paper's 100/64/30).
    #[arg(long)]
    width_divisor: Option<usize>,
    /// Persistent chains M̃.
    #[arg(long)]
    chains: Option<usize>,
    /// Persistent chains this many times the training image's side (textures): the chains are
    /// then themselves the larger synthesis.
    #[arg(long)]
    chain_scale: Option<usize>,
    /// Langevin steps L between updates.
    #[arg(long)]
    steps: Option<usize>,
    /// Langevin step δ (update I + δ²/2·(∂f/∂I − I/σ²) + δ·N).
    #[arg(long)]
    delta: Option<f64>,
    /// Reference σ (σ² = 1 in the paper).
    #[arg(long)]
    sigma: Option<f64>,
    /// Iterations T per added layer (or in all, without growing).
    #[arg(long)]
    iterations: Option<u64>,
    /// Fresh chains from white noise every iteration (short-run learning) instead of
    /// persistent ones: what sampling new canvases (the browser's endless texture) needs.
    #[arg(long)]
    non_persistent: bool,
    /// Learn all layers at once instead of growing them.
    #[arg(long)]
    no_grow: bool,
    /// Halve the learning rate whenever a layer is added (as one lab code copy does).
    #[arg(long)]
    halve_lr: bool,
    /// Parameter update (default Adam: lr 2e-3 for texture, 5e-4 for objects, 1e-3 for
    /// reconstruction).
    #[command(flatten)]
    update: UpdateArgs,
    /// Langevin steps the model file asks for when sampling from scratch.
    #[arg(long)]
    synthesis_steps: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the chains (or reconstructions) every N iterations.
    #[arg(long, default_value_t = 100)]
    sample_every: u64,
    /// Write a checkpoint every N iterations.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Side factor of the larger synthesis in the final figure.
    #[arg(long, default_value_t = 2)]
    figure_scale: usize,
    /// No progress bar (plain log lines instead).
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct FigureArgs {
    /// Model file.
    model: PathBuf,
    /// The training image (shown first).
    #[arg(long)]
    data: PathBuf,
    /// Output PNG.
    #[arg(long, default_value = "texture-figure.png")]
    out: PathBuf,
    /// Side factor of the larger synthesis. Models that keep their training chains (`extra.chains`,
    /// `--chain-scale`) continue one of them for the sampler's steps; others start fresh chains.
    #[arg(long, default_value_t = 2)]
    scale: usize,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct FrameReconstructArgs {
    /// Model file (a CD-trained model).
    model: PathBuf,
    /// Images to reconstruct.
    #[arg(long)]
    data: PathBuf,
    /// At most this many images.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Output PNG (rows: images, reconstructions).
    #[arg(long, default_value = "frame-reconstruction.png")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct FrameEvalArgs {
    /// Model file (a texture model).
    model: PathBuf,
    /// The training image.
    #[arg(long)]
    data: PathBuf,
    /// Chains scored at each stage.
    #[arg(long, default_value_t = 8)]
    chains: usize,
    /// Rounds of the sampler's steps the long-run chains take.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Side factor of the larger canvas.
    #[arg(long, default_value_t = 2)]
    scale: usize,
    /// A persistently trained model of the same image whose stored chains are the yardstick
    /// (default: the model's own stored chains, where it keeps them).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Also write the scores as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    sampler: SamplerArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub fn run(command: FrameCommand) -> anyhow::Result<()> {
    match command {
        FrameCommand::Train(args) => train(*args),
        FrameCommand::Figure(args) => figure(args),
        FrameCommand::Reconstruct(args) => reconstruct(args),
        FrameCommand::Eval(args) => evaluate(args),
    }
}

fn train_config(args: &FrameTrainArgs) -> anyhow::Result<FrameTrainConfig> {
    let source = DataSource { path: args.data.clone(), class: args.class, limit: args.limit };
    let channels = args.channels.unwrap_or(1);
    let mut config = match args.experiment {
        Experiment::Texture => FrameTrainConfig::texture(args.image_size, channels, source),
        Experiment::Objects => FrameTrainConfig::objects(args.image_size, channels, source),
        Experiment::Reconstruction => FrameTrainConfig::reconstruction(args.image_size, channels, source),
    };
    set(&mut config.net.layers, args.layers);
    set(&mut config.net.width_divisor, args.width_divisor);
    set(&mut config.chains, args.chains);
    set(&mut config.chain_scale, args.chain_scale);
    set(&mut config.langevin.steps, args.steps);
    if let Some(delta) = args.delta {
        config.langevin.step_size = delta * delta / 2.0;
        config.langevin.noise = delta;
    }
    if let Some(sigma) = args.sigma {
        config.langevin.reference_sigma = Some(sigma);
    }
    set(&mut config.iterations_per_layer, args.iterations);
    config.grow_layers &= !args.no_grow;
    if args.non_persistent {
        if config.learning != Learning::Persistent {
            bail!("--non-persistent replaces persistent chains; the reconstruction experiment has none");
        }
        config.learning = Learning::NonPersistent;
        // The model samples with the chain it learned with.
        config.synthesis_steps = config.langevin.steps;
    }
    config.halve_lr_per_layer |= args.halve_lr;
    set(&mut config.synthesis_steps, args.synthesis_steps);
    set(&mut config.seed, args.seed);
    config.optimizer = args.update.apply(config.optimizer, FrameTrainConfig::LAB_UPDATE, FrameTrainConfig::ADAM_UPDATE)?;
    config.validate()?;
    Ok(config)
}

fn frame_data(config: &FrameTrainConfig, channels: Option<usize>, device: &Device) -> anyhow::Result<FrameData> {
    let set = load_images(&config.source.path, &config.source.options(), config.net.image_size, channels)?;
    FrameData::new(&set, config.mean, device)
}

fn train(args: FrameTrainArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run);
    let device = select_device(&args.device)?;
    let resume_from = |config: FrameTrainConfig, bytes: Vec<u8>| {
        let data = frame_data(&config, Some(config.net.channels), &device)?;
        let trainer = FrameTrainer::from_checkpoint(&bytes, data, &device)?;
        let iteration = trainer.iteration;
        Ok((trainer, iteration))
    };
    let mut trainer = open_run(&run, args.resume, resume_from, || {
        let mut config = train_config(&args)?;
        let data = frame_data(&config, args.channels, &device)?;
        let [count, channels, height, width] = data.images.dims();
        eprintln!("data: {count} image(s) of {channels}×{height}×{width} from {}", config.source.describe());
        config.net.channels = channels;
        let trainer = FrameTrainer::new(config.clone(), data, &device)?;
        Ok((config, trainer))
    })?;
    let total = trainer.config.total_iterations();
    let progress = training_progress(args.quiet, total, trainer.iteration);
    let started = Instant::now();
    let mut log = QuietLog::new(args.quiet, trainer.iteration);
    while trainer.iteration < total {
        let metrics = log_step(&run, &progress, started, trainer.step())?;
        let mut message = format!("layers {}  f(obs) {:+.1}  f(syn) {:+.1}  |I| {:.1}", metrics.layers, metrics.f_observed, metrics.f_synthesised, metrics.sample_abs_mean);
        if let Some(mse) = metrics.reconstruction_mse {
            message.push_str(&format!("  recon MSE {mse:.1}"));
        }
        progress.set_message(message.clone());
        progress.set_position(metrics.iteration);
        log.log(metrics.iteration, total, metrics.iteration % args.sample_every.max(1) == 0, &message);
        let last = metrics.iteration == total;
        if metrics.iteration % args.sample_every.max(1) == 0 || last {
            let shown = match trainer.config.learning {
                Learning::Persistent | Learning::NonPersistent => trainer.chains.clone(),
                Learning::ContrastiveDivergence => {
                    let sigma = trainer.config.langevin.reference_sigma.unwrap_or(1.0);
                    frame::reconstruct(&trainer.net.valid(), trainer.observed().clone(), sigma).0
                }
            };
            save_batch(&run.sample_grid(metrics.iteration), shown, trainer.data_spec())?;
        }
        if metrics.iteration % args.checkpoint_every.max(1) == 0 || last {
            atomic_write(&run.checkpoint(), &trainer.checkpoint()?)?;
        }
    }
    progress.finish();
    let model = trainer.model();
    atomic_write(&run.model(), &model.to_bytes()?)?;
    eprintln!("done in {:.0} s: model {}", started.elapsed().as_secs_f64(), run.model().display());
    let inner = device.clone();
    let observed = trainer.observed().clone();
    match trainer.config.learning {
        Learning::Persistent | Learning::NonPersistent if trainer.config.net.kind == shared::nets::FrameKind::Object => {
            // Objects: the training images in the first row(s), the chains below.
            let path = run.root().join("figure.png");
            let count = observed.dims()[0];
            let both = Tensor::cat(vec![observed, trainer.chains.clone()], 0);
            let dims = both.dims();
            let (values, range) = trainer.data_spec().display(&host_values(both)?, dims);
            let [n, channels, height, width] = dims;
            imageio::save_grid(&path, &values, &Layout { count: n, channels, height, width, range }, count, 2)?;
            eprintln!("wrote {} (first row: training images; below: synthesised)", path.display());
        }
        Learning::Persistent | Learning::NonPersistent => {
            let first = |t: Tensor<4>| t.narrow(0, 0, 1);
            let path = run.root().join("figure.png");
            let config = model.manifest.sampler.langevin[0];
            let chain = first(trainer.chains.clone());
            let [_, _, height, width] = observed.dims();
            let scale = trainer.config.chain_scale;
            // Chains larger than the image are the large synthesis; their corner is the small one.
            let (same_size, large) = if scale > 1 { (chain.clone().narrow(2, 0, height).narrow(3, 0, width), Some(chain)) } else { (chain, None) };
            texture_figure(&model, &inner, first(observed), Some(same_size), large, args.figure_scale, &config, 1, &path)?;
        }
        Learning::ContrastiveDivergence => {
            let path = run.root().join("reconstruction.png");
            reconstruction_figure(&model, observed, &path)?;
        }
    }
    Ok(())
}

/// Saves a batch of model-space images as a grid, shown with the mean added back.
fn save_batch(path: &Path, images: Tensor<4>, spec: &DataSpec) -> anyhow::Result<()> {
    let dims = images.dims();
    let (values, range) = spec.display(&host_values(images)?, dims);
    let [count, channels, height, width] = dims;
    imageio::save_grid(path, &values, &Layout { count, channels, height, width, range }, grid_columns(count), 1)?;
    Ok(())
}

/// Writes `training | same-size synthesis | scale× synthesis` and prints the first-layer
/// statistics of each synthesis against the training image. `same_size` and `large` default
/// to fresh chains from the model's start.
#[allow(clippy::too_many_arguments)]
fn texture_figure(
    model: &Model,
    device: &Device,
    training: Tensor<4>,
    same_size: Option<Tensor<4>>,
    large: Option<Tensor<4>>,
    scale: usize,
    config: &shared::sampler::LangevinConfig,
    seed: u64,
    path: &Path,
) -> anyhow::Result<()> {
    if !(1..=8).contains(&scale) {
        bail!("the figure's scale must be 1 to 8, not {scale}");
    }
    let [_, _, height, width] = training.dims();
    // A model that keeps chains of the large size continues one (as the browser does); others
    // start fresh chains.
    let large = match large {
        Some(images) => Some(images),
        None => continue_stored_chain(model, device, [height * scale, width * scale], config, seed)?,
    };
    let (large, same_size) = match large {
        Some(images) => {
            let corner = images.clone().narrow(2, 0, height).narrow(3, 0, width);
            (images, same_size.unwrap_or(corner))
        }
        None => (
            commands::sample(model, device, 1, Some([height * scale, width * scale]), config, seed + 1, None)?.images,
            match same_size {
                Some(images) => images,
                None => commands::sample(model, device, 1, None, config, seed, None)?.images,
            },
        ),
    };
    let scale = large.dims()[2] / height.max(1);
    let (net, _) = commands::energy_net(model)?;
    let reference = frame::first_layer_responses(net, training.clone());
    let start = Tensor::zeros(training.dims(), device);
    for (name, images) in [("start (zeros)", start), ("synthesis, same size", same_size.clone()), (&format!("synthesis, {scale}× size") as &str, large.clone())] {
        let distance = frame::relative_distance(&frame::first_layer_responses(net, images), &reference);
        eprintln!("first-layer mean responses, {name}: relative distance to the training image {distance:.3}");
    }
    let spec = &model.manifest.data;
    let panels = [training, same_size, large]
        .into_iter()
        .map(|t| {
            let dims = t.dims();
            let (values, range) = spec.display(&host_values(t)?, dims);
            let [_, channels, height, width] = dims;
            Ok((values, Layout { count: 1, channels, height, width, range }))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let borrowed: Vec<(&[f32], Layout)> = panels.iter().map(|(v, l)| (v.as_slice(), *l)).collect();
    imageio::save_row(path, &borrowed)?;
    eprintln!("wrote {} (training | synthesis | {scale}× synthesis)", path.display());
    Ok(())
}

/// One of the model's stored chains (`extra.chains`, chosen by `seed`) cut to `[height, width]`
/// and advanced by `config.steps` more Langevin steps; `None` when the model keeps no chains
/// that large.
fn continue_stored_chain(model: &Model, device: &Device, [height, width]: [usize; 2], config: &shared::sampler::LangevinConfig, seed: u64) -> anyhow::Result<Option<Tensor<4>>> {
    let Some(stored) = model.extras.get(frame::CHAINS) else { return Ok(None) };
    let &[count, channels, h, w] = stored.shape.as_slice() else { return Ok(None) };
    if count == 0 || h < height || w < width || channels != model.manifest.data.channels {
        return Ok(None);
    }
    let index = seed as usize % count;
    let plane = channels * h * w;
    let chain = Tensor::<4>::from_data(TensorData::new(stored.values[index * plane..(index + 1) * plane].to_vec(), [1, channels, h, w]), device);
    let start = chain.narrow(2, 0, height).narrow(3, 0, width);
    let (stack, polarity) = commands::energy_net(model)?;
    let density = shared::sampler::NetDensity { stack, polarity };
    let mut noise = shared::sampler::DeviceNoise::seeded(device, seed);
    let mut chain = shared::generate::Chain::new(start, *config, None);
    chain.finish(&density, &mut noise);
    Ok(Some(chain.into_state()))
}

/// Rows of images and their reconstructions `B = σ²·∂f/∂I`, with the per-pixel error printed.
fn reconstruction_figure(model: &Model, images: Tensor<4>, path: &Path) -> anyhow::Result<()> {
    let (net, _) = commands::energy_net(model)?;
    let sigma = model.manifest.sampler.langevin[0].reference_sigma.unwrap_or(1.0);
    let (reconstruction, mse) = frame::reconstruct(net, images.clone(), sigma);
    let count = images.dims()[0];
    let both = Tensor::cat(vec![images, reconstruction], 0);
    let dims = both.dims();
    let (values, range) = model.manifest.data.display(&host_values(both)?, dims);
    let [n, channels, height, width] = dims;
    imageio::save_grid(path, &values, &Layout { count: n, channels, height, width, range }, count, 1)?;
    eprintln!("reconstruction per-pixel MSE {mse:.2} ([0, 255] scale); wrote {} (top: images, bottom: B = σ²·∂f/∂I)", path.display());
    Ok(())
}

fn figure(args: FigureArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    let training = training_image(&model, &args.data, &device)?;
    let config = args.sampler.config(&model)?;
    texture_figure(&model, &device, training, None, None, args.scale, &config, args.sampler.seed, &args.out)
}

/// The model's training image `[1, C, H, W]` (model space), read from `path` at the model's size.
fn training_image(model: &Model, path: &Path, device: &Device) -> anyhow::Result<Tensor<4>> {
    let spec = &model.manifest.data;
    let options = LoadOptions { limit: Some(1), class: None, split: Split::Train };
    let set = load_images(path, &options, spec.height, Some(spec.channels))?.truncate(1);
    model_space(&set.pixels, spec, [1, set.channels, set.height, set.width], device)
}

fn evaluate(args: FrameEvalArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    let training = training_image(&model, &args.data, &device)?;
    let reference = args.reference.as_ref().map(|path| load_model(path, &device)).transpose()?;
    if let Some(other) = &reference
        && (other.manifest.data.height, other.manifest.data.width, other.manifest.data.channels) != (model.manifest.data.height, model.manifest.data.width, model.manifest.data.channels)
    {
        bail!("the reference model was trained at another image size or channel count than the model");
    }
    let config = args.sampler.config(&model)?;
    let scores = trainer::eval::texture_scores(&model, reference.as_ref(), &device, training, args.chains, args.rounds, args.scale, &config, args.sampler.seed)?;
    let line = |name: &str, s: &trainer::eval::Spread| eprintln!("  {name:<34} {:.3}  (min {:.3}, max {:.3})", s.mean, s.min, s.max);
    eprintln!("first-layer statistics, relative distance to the training image ({} chains, {} steps a round):", scores.chains, scores.steps);
    line("fresh chains, one round", &scores.fresh);
    line(&format!("same chains, {} rounds", scores.rounds), &scores.long_run);
    if let Some(persistent) = &scores.persistent {
        line("persistent chains, end of training", persistent);
    }
    line(&format!("fresh chains, {}× side", scores.scale), &scores.large);
    match scores.fresh_over_persistent {
        Some(ratio) => eprintln!("fresh over persistent: {ratio:.2}"),
        None => eprintln!("no persistent chains to compare with (pass --reference a persistently trained model)"),
    }
    if let Some(path) = &args.json {
        atomic_write(path, &serde_json::to_vec_pretty(&scores)?)?;
    }
    Ok(())
}

fn reconstruct(args: FrameReconstructArgs) -> anyhow::Result<()> {
    let device = select_device(&args.device)?;
    let model = load_model(&args.model, &device)?;
    let spec = model.manifest.data.clone();
    let options = LoadOptions { limit: Some(args.count), class: None, split: Split::Train };
    let set = load_images(&args.data, &options, spec.height, Some(spec.channels))?.truncate(args.count);
    let images = model_space(&set.pixels, &spec, [set.count, set.channels, set.height, set.width], &device)?;
    reconstruction_figure(&model, images, &args.out)
}

/// `[0, 255]` pixels minus the model's mean, as a tensor.
fn model_space(pixels: &[f32], spec: &DataSpec, shape: [usize; 4], device: &Device) -> anyhow::Result<Tensor<4>> {
    if !matches!(spec.normalization, shared::file::Normalization::MeanSubtracted { .. }) {
        bail!("this is not a generative ConvNet model (its data is not mean-subtracted)");
    }
    // Displaying zeros gives the mean itself, laid out like the images.
    let mean = spec.display(&vec![0.0; pixels.len()], shape).0;
    let values: Vec<f32> = pixels.iter().zip(&mean).map(|(p, m)| p - m).collect();
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}
