//! `trainer eval` and `trainer eval-reference`: FID and KID of a model's samples or a folder
//! of images against a data set, with the FID Inception network.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use trainer::classifier::{Classifier, DigitScores, most_likely};
use trainer::data::{ImageSet, LoadOptions, Split};
use trainer::eval::{self, Reference};
use trainer::imageio::{self, Layout};
use trainer::inception::{self, FEATURES, Inception};
use trainer::run::atomic_write;

use super::{DeviceArgs, SamplerArgs, grid_columns, load_model, select_device};

/// Which reference images, shared by both commands.
#[derive(Args, Debug)]
pub struct ReferenceArgs {
    /// Split of a data set that has one (MNIST, Fashion-MNIST, CIFAR-10).
    #[arg(long, value_enum, default_value_t = Split::Train)]
    split: Split,
    /// Only this class (label) of a labelled data set.
    #[arg(long)]
    class: Option<u8>,
    /// Use at most this many reference images (their features are cached per count).
    #[arg(long, default_value_t = 2000)]
    reference_count: usize,
    /// FID Inception weights (default: $EBM_INCEPTION or ~/.cache/ebm/weights/inception-fid.safetensors,
    /// written by `bash scripts/fetch-inception.sh`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Cache folder for reference features (default: $EBM_CACHE/fid or ~/.cache/ebm/fid).
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// What to score: a model file (.ebm, any family: its samples are drawn with its own
    /// sampler settings), or images (a folder, an IDX folder or file, CIFAR batches).
    input: PathBuf,
    /// Real images to compare with (same kinds of source as the input).
    #[arg(long)]
    reference: PathBuf,
    /// Samples to draw from a model, or at most this many images from a folder.
    #[arg(long, default_value_t = 500)]
    count: usize,
    #[command(flatten)]
    reference_args: ReferenceArgs,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Also write the scored images as a PNG grid (at most 64 of them).
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Also write the scores as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EvalDigitsArgs {
    /// Model file whose samples are gray digits (short-run, multigrid or MEG trained on MNIST).
    model: PathBuf,
    /// The MNIST classifier (`trainer meg classifier`; default
    /// ~/.cache/ebm/weights/mnist-classifier.ebm, which `scripts/train-zoo.sh` trains).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// MNIST IDX folder: its test split gives the classifier's accuracy and the real digits'
    /// figures beside the samples'.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Samples to judge (and real test digits beside them).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Also write the figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub struct EvalReferenceArgs {
    /// Data set: an MNIST/Fashion-MNIST IDX folder, CIFAR batches, or a folder of images.
    data: PathBuf,
    /// Also write the floor (FID and KID between the two halves) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    reference_args: ReferenceArgs,
}

impl ReferenceArgs {
    fn reference(&self, path: &Path) -> anyhow::Result<Reference> {
        if self.reference_count < 2 {
            bail!("--reference-count must be at least 2 (FID needs a covariance)");
        }
        Ok(Reference { path: path.to_owned(), options: LoadOptions { limit: Some(self.reference_count), class: self.class, split: self.split } })
    }

    fn network(&self) -> anyhow::Result<Inception> {
        let device = select_device(&self.device)?;
        let path = self.weights.clone().unwrap_or_else(inception::default_path);
        Ok(Inception::load(&path, &device)?)
    }

    fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(eval::cache_dir)
    }

    /// The reference features with a progress bar while they are computed.
    fn features(&self, network: &Inception, path: &Path) -> anyhow::Result<(Vec<f32>, PathBuf)> {
        let reference = self.reference(path)?;
        let bar = image_bar("reference");
        let result = eval::reference_features(network, &reference, &self.cache(), |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        result
    }
}

fn image_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} features {{bar:30}} {{pos}}/{{len}} images  {{per_sec}}  ETA {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `trainer eval`.
pub fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    if args.count < 2 {
        bail!("--count must be at least 2 (FID needs a covariance)");
    }
    let network = args.reference_args.network()?;
    let started = Instant::now();
    // A bad input is reported before minutes of reference features.
    let input = open_input(&args, &network)?;
    let (reference, cache_file) = args.reference_args.features(&network, &args.reference)?;
    eprintln!("reference: {} images ({})", reference.len() / FEATURES, cache_file.display());
    let sets = match input {
        Input::Images(sets) => sets,
        Input::Model(model) => {
            let sampling = Instant::now();
            let images = eval::model_images(&model, network.device(), args.count, &args.sampler.overrides(), args.sampler.seed)?;
            eprintln!("{} samples from {} in {:.1} s", images.count, args.input.display(), sampling.elapsed().as_secs_f64());
            vec![images]
        }
    };
    let bar = image_bar("sample");
    let features = eval::image_features(&network, &sets, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let scores = eval::scores(&features, &reference)?;
    println!("FID {:.3}  KID {:.5}  ({} images against {} reference images, {:.1} s)", scores.fid, scores.kid, scores.count, scores.reference_count, started.elapsed().as_secs_f64());
    if let Some(path) = &args.grid {
        let images = grid_images(sets)?;
        let shown = images.count.min(64);
        let layout = Layout { count: shown, channels: images.channels, height: images.height, width: images.width, range: [0.0, 255.0] };
        imageio::save_grid(path, &images.pixels[..shown * layout.image_len()], &layout, grid_columns(shown), 1)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let record = serde_json::json!({
            "input": args.input.display().to_string(),
            "reference": args.reference.display().to_string(),
            "split": args.reference_args.split.to_string(),
            "class": args.reference_args.class,
            "scores": scores,
        });
        atomic_write(path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    Ok(())
}

/// What `trainer eval` scores: a model (sampled after the reference is ready) or images.
enum Input {
    Model(Box<shared::file::Model>),
    Images(Vec<ImageSet>),
}

fn open_input(args: &EvalArgs, network: &Inception) -> anyhow::Result<Input> {
    if starts_like_a_model(&args.input) {
        return Ok(Input::Model(Box::new(load_model(&args.input, network.device())?)));
    }
    let options = LoadOptions { limit: Some(args.count), class: None, split: Split::Test };
    let sets = eval::open_images(&args.input, &options).with_context(|| format!("{} is neither a model file nor readable images", args.input.display()))?;
    let count: usize = sets.iter().map(|set| set.count).sum();
    if count < 2 {
        bail!("{}: FID needs at least 2 images, found {count}", args.input.display());
    }
    Ok(Input::Images(sets))
}

/// The scored images as one set for a picture: as they are, or, when their sizes differ, each
/// resized to 64×64 (the first 64 of them).
fn grid_images(sets: Vec<ImageSet>) -> anyhow::Result<ImageSet> {
    if sets.len() == 1 {
        return Ok(sets.into_iter().next().expect("one set"));
    }
    let channels = sets.iter().map(|set| set.channels).max().unwrap_or(1);
    let mut pixels = Vec::new();
    let mut count = 0;
    for set in sets.into_iter().take(64) {
        let resized = set.resize(64, channels)?;
        count += resized.count;
        pixels.extend(resized.pixels);
    }
    Ok(ImageSet::new(pixels, count, channels, 64, 64, None)?)
}

/// Whether `path` is a file that begins with the model format's magic bytes.
fn starts_like_a_model(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic)).is_ok() && magic == modelfile::MAGIC
}

/// The default classifier file: `~/.cache/ebm/weights/mnist-classifier.ebm`.
pub fn default_classifier() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ebm/weights/mnist-classifier.ebm")
}

/// Digits as the classifier takes them: `[N, 1, 28, 28]` in `[−1, 1]`. 32×32 images (MNIST
/// padded by 2 pixels a side for the short-run nets) lose that padding again; other sizes are
/// resized.
fn classifier_input(set: ImageSet, device: &burn::prelude::Device) -> anyhow::Result<burn::prelude::Tensor<4>> {
    if set.channels != 1 {
        bail!("the samples have {} channels; digits are gray", set.channels);
    }
    let set = if set.height == 32 && set.width == 32 {
        let mut pixels = Vec::with_capacity(set.count * 28 * 28);
        for image in set.pixels.chunks_exact(32 * 32) {
            for row in image.chunks_exact(32).skip(2).take(28) {
                pixels.extend_from_slice(&row[2..30]);
            }
        }
        ImageSet::new(pixels, set.count, 1, 28, 28, None)?
    } else {
        set.resize(28, 1)?
    };
    Ok(trainer::shortrun::images_tensor(&set, device))
}

/// `trainer eval-digits`: how the MNIST classifier reads a model's samples, beside real test
/// digits and with the classifier's own test accuracy.
pub fn run_digits(args: EvalDigitsArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let device = select_device(&args.device)?;
    let path = args.classifier.clone().unwrap_or_else(default_classifier);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read the classifier {} (train one with `trainer meg classifier --data MNIST --out FILE`)", path.display()))?;
    let classifier = Classifier::from_bytes(&bytes, &device)?;
    let test = trainer::data::open(&args.data, &LoadOptions { split: Split::Test, ..LoadOptions::default() })
        .with_context(|| format!("cannot read MNIST's test split from {}", args.data.display()))?;
    let labels = test.labels.clone().with_context(|| format!("{} has no labels", args.data.display()))?;
    let real_count = args.count.min(test.count);
    let test_images = classifier_input(test, &device)?;
    // One pass over the test split gives both the accuracy and the real digits' figures.
    let test_probabilities = classifier.probabilities(test_images)?;
    let correct = test_probabilities.iter().zip(&labels).filter(|(row, label)| most_likely(row) == usize::from(**label)).count();
    let accuracy = correct as f64 / labels.len().max(1) as f64;
    let real = DigitScores::new(&test_probabilities[..real_count]);
    let model = load_model(&args.model, &device)?;
    let started = Instant::now();
    let samples = eval::model_images(&model, &device, args.count, &args.sampler.overrides(), args.sampler.seed)?;
    eprintln!("{} samples from {} in {:.1} s", samples.count, args.model.display(), started.elapsed().as_secs_f64());
    let scores = DigitScores::new(&classifier.probabilities(classifier_input(samples, &device)?)?);
    println!("classifier: {:.2} % correct on {} MNIST test digits", 100.0 * accuracy, labels.len());
    for (what, s) in [("samples", &scores), ("real test digits", &real)] {
        println!(
            "{what}: {:.1} % labelled with confidence > 0.9, mean confidence {:.3}, label entropy {:.3} nats (ln 10 = 2.303), histogram {:?} ({} images)",
            100.0 * s.confident_share,
            s.mean_confidence,
            s.label_entropy,
            s.histogram,
            s.count
        );
    }
    if let Some(json) = &args.json {
        let record = serde_json::json!({
            "model": args.model.display().to_string(),
            "classifier": path.display().to_string(),
            "classifier_test_accuracy": accuracy,
            "samples": scores,
            "real": real,
            "seed": args.sampler.seed,
        });
        atomic_write(json, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    Ok(())
}

/// `trainer eval-reference`.
pub fn run_reference(args: EvalReferenceArgs) -> anyhow::Result<()> {
    let network = args.reference_args.network()?;
    let started = Instant::now();
    let (features, file) = args.reference_args.features(&network, &args.data)?;
    let count = features.len() / FEATURES;
    println!("{count} reference images' features in {} ({:.1} s)", file.display(), started.elapsed().as_secs_f64());
    // The FID between two halves of the reference itself: the floor any model's FID at this
    // sample size is measured against.
    let half = count / 2 * FEATURES;
    if count >= 4 {
        let floor = eval::scores(&features[..half], &features[half..2 * half])?;
        println!("FID between its two halves ({} images each): {:.3}  KID {:.5}", count / 2, floor.fid, floor.kid);
        if let Some(path) = &args.json {
            let record = serde_json::json!({
                "reference": args.data.display().to_string(),
                "split": args.reference_args.split.to_string(),
                "class": args.reference_args.class,
                "floor": floor,
            });
            atomic_write(path, serde_json::to_string_pretty(&record)?.as_bytes())?;
        }
    } else if args.json.is_some() {
        bail!("the floor needs at least 4 reference images, found {count}");
    }
    Ok(())
}
