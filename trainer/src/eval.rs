//! Scoring samples against real data with the FID Inception network: a model's samples (any
//! family, drawn with the model's own sampler settings) or a folder of images, against a data
//! set whose features are computed once and cached.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::*;
use serde::Serialize;
use shared::file::Model;
use shared::generate::{Overrides, chain_config, latent_samples};
use shared::nets::ModelSpec;
use shared::sampler::DeviceNoise;

use crate::data::{self, DataError, ImageSet, LoadOptions};
use crate::inception::{FEATURES, Inception, SOURCE_SHA256};
use crate::metrics::{frechet_distance, kernel_distance};
use crate::run::atomic_write;
use crate::safetensors::{NamedTensor, TensorFile};
use crate::{commands, multigrid, shortrun};

/// Images per Inception batch.
pub const BATCH: usize = 16;

/// A reference data set: which images of which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Data set path (IDX folder, CIFAR folder, image folder or file).
    pub path: PathBuf,
    /// Which images: split, class, and at most this many (`limit`).
    pub options: LoadOptions,
}

impl Reference {
    /// The cache file for these features under `cache`: named after the folder, the split, the
    /// class and the count, plus a hash of the full path so two folders of the same name differ.
    pub fn cache_file(&self, cache: &Path) -> PathBuf {
        let canonical = self.path.canonicalize().unwrap_or_else(|_| self.path.clone());
        let name = canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let class = self.options.class.map(|c| format!("-class{c}")).unwrap_or_default();
        let count = self.options.limit.map_or("all".into(), |n| n.to_string());
        let hash = canonical.to_string_lossy().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        cache.join(format!("{name}-{}{class}-{count}-{:08x}.safetensors", self.options.split, hash as u32))
    }
}

/// Where reference features are cached: `$EBM_CACHE/fid`, else `~/.cache/ebm/fid`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("EBM_CACHE") {
        Some(dir) => PathBuf::from(dir).join("fid"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ebm/fid"),
    }
}

/// Features of a reference set, from the cache when it holds them, else computed and cached.
/// `progress(done, total)` follows the computation. Returns the features and the cache file.
pub fn reference_features(
    network: &Inception,
    reference: &Reference,
    cache: &Path,
    progress: impl FnMut(usize, usize) + Send,
) -> anyhow::Result<(Vec<f32>, PathBuf)> {
    let file = reference.cache_file(cache);
    if file.exists() {
        if let Some(features) = cached_features(&file)? {
            return Ok((features, file));
        }
        eprintln!("{}: stale or foreign feature cache, recomputing", file.display());
    } else if let Some(larger) = larger_cached(reference, cache) {
        return Ok(larger);
    }
    let images = open_images(&reference.path, &reference.options)
        .with_context(|| format!("cannot read reference images from {}", reference.path.display()))?;
    let features = image_features(network, &images, progress);
    let mut out = TensorFile::default();
    out.tensors.insert("features".into(), NamedTensor { shape: vec![features.len() / FEATURES, FEATURES], values: features.clone() });
    out.metadata.insert("source".into(), reference.path.display().to_string());
    out.metadata.insert("split".into(), reference.options.split.to_string());
    out.metadata.insert("class".into(), reference.options.class.map_or("all".into(), |c| c.to_string()));
    out.metadata.insert("inception_sha256".into(), SOURCE_SHA256.into());
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    atomic_write(&file, &out.to_bytes())?;
    Ok((features, file))
}

/// The first `limit` features of a cached larger set of the same reference (same images in the
/// same order: a limit takes the first images) and that set's file, when one is cached.
fn larger_cached(reference: &Reference, cache: &Path) -> Option<(Vec<f32>, PathBuf)> {
    let wanted = reference.options.limit?;
    let entries = std::fs::read_dir(cache).ok()?;
    let mut candidates: Vec<(usize, PathBuf)> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            // The count is one of the name's dash-separated parts; the full name must match.
            let count = name.split('-').filter_map(|part| part.parse::<usize>().ok()).filter(|&count| count > wanted).find(|&count| {
                let larger = Reference { path: reference.path.clone(), options: LoadOptions { limit: Some(count), ..reference.options.clone() } };
                larger.cache_file(cache) == path
            })?;
            Some((count, path))
        })
        .collect();
    candidates.sort();
    let (_, file) = candidates.into_iter().next()?;
    let mut features = cached_features(&file).ok()??;
    (features.len() >= wanted * FEATURES).then(|| {
        features.truncate(wanted * FEATURES);
        (features, file)
    })
}

/// The features a cache file holds, `None` when it was written with other Inception weights or
/// holds no `N × 2048` matrix; an unreadable file is an error.
fn cached_features(file: &Path) -> anyhow::Result<Option<Vec<f32>>> {
    let mut cached = TensorFile::read(file)?;
    let features = cached.tensor(file, "features")?;
    let matches = cached.metadata.get("inception_sha256").map(String::as_str) == Some(SOURCE_SHA256) && features.shape.len() == 2 && features.shape[1] == FEATURES;
    Ok(if matches { cached.tensors.remove("features").map(|t| t.values) } else { None })
}

/// The images of `path` to score: one set, or, from a folder of differently sized images
/// (textures, photos), one set per image — the network resizes each to its input on its own, so
/// the features are those of the images alone. At most `options.limit` images.
pub fn open_images(path: &Path, options: &LoadOptions) -> Result<Vec<ImageSet>, DataError> {
    match data::open(path, options) {
        Err(DataError::InconsistentSizes { .. }) => {
            let single = LoadOptions { limit: None, ..options.clone() };
            let files = data::image_files(path)?;
            files.iter().take(options.limit.unwrap_or(usize::MAX)).map(|file| data::open(file, &single)).collect()
        }
        other => other.map(|set| vec![set]),
    }
}

/// Inception features of every image of `sets`, in order, in batches of [`BATCH`];
/// `progress(done, total)` follows them.
pub fn image_features(network: &Inception, sets: &[ImageSet], mut progress: impl FnMut(usize, usize) + Send) -> Vec<f32> {
    let total = sets.iter().map(|set| set.count).sum();
    let mut features = Vec::with_capacity(total * FEATURES);
    for set in sets {
        let before = features.len() / FEATURES;
        features.extend(network.features(set, BATCH, |done| progress(before + done, total)));
    }
    features
}

/// `count` samples of any model family with the model's own sampler settings and `overrides`,
/// as 0–255 images: short-run and FRAME chains from their initialisation, the multigrid
/// cascade's finest grid, MEG's generator after its latent MALA steps.
pub fn model_images(model: &Model, device: &Device, count: usize, overrides: &Overrides, seed: u64) -> anyhow::Result<ImageSet> {
    if count == 0 {
        bail!("the sample count must be at least 1");
    }
    let images = match &model.manifest.model {
        ModelSpec::ShortRun(_) | ModelSpec::Frame(_) => {
            let config = chain_config(model, overrides)?;
            commands::sample(model, device, count, None, &config, seed, None)?.images
        }
        ModelSpec::Multigrid(_) => {
            multigrid::synthesise(model, count, false, overrides, seed, device)?.pop().context("the cascade produced no grid")?
        }
        ModelSpec::Meg(_) => {
            let mala = model.manifest.sampler.mala.unwrap_or_default();
            latent_samples(model, count, Some(&mala), &mut DeviceNoise::seeded(device, seed), device)?.images
        }
    };
    let dims = images.dims();
    let values = shortrun::host_values(images)?;
    let (shown, [low, high]) = model.manifest.data.display(&values, dims);
    let span = (high - low).max(f32::MIN_POSITIVE);
    let pixels = shown.iter().map(|v| ((v - low) / span * 255.0).clamp(0.0, 255.0)).collect();
    Ok(ImageSet::new(pixels, dims[0], dims[1], dims[2], dims[3], None)?)
}

/// FID and KID of one feature set against another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// Fréchet Inception Distance.
    pub fid: f64,
    /// Kernel Inception Distance (unbiased MMD², cubic kernel).
    pub kid: f64,
    /// Images scored.
    pub count: usize,
    /// Reference images.
    pub reference_count: usize,
}

/// FID and KID of `features` against `reference` (both `N × 2048`).
pub fn scores(features: &[f32], reference: &[f32]) -> anyhow::Result<Scores> {
    Ok(Scores {
        fid: frechet_distance(features, reference, FEATURES)?,
        kid: kernel_distance(features, reference, FEATURES)?,
        count: features.len() / FEATURES,
        reference_count: reference.len() / FEATURES,
    })
}

/// Mean, smallest and largest of a statistic over several chains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Mean over the chains.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; NaN everywhere when there are none.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Spread { mean: f64::NAN, min: f64::NAN, max: f64::NAN };
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Spread { mean, min, max }
    }
}

/// How closely a texture model's chains reproduce the training image's first-layer statistics:
/// per chain, the relative distance `‖r(chain) − r(image)‖ / ‖r(image)‖` of the mean ReLU
/// response of every first-layer filter of the scored model (0 = matched; chains still at their
/// start score ≈ 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextureScores {
    /// Chains scored at each stage.
    pub chains: usize,
    /// Langevin steps of one round (the model's own sampler, as a new canvas runs it).
    pub steps: usize,
    /// Rounds the long-run chains ran.
    pub rounds: usize,
    /// Fresh chains after one round, at the training size: what a new canvas shows.
    pub fresh: Spread,
    /// The same chains after `rounds` rounds: chains kept across rounds without the learning
    /// in between.
    pub long_run: Spread,
    /// Persistent chains as training left them: the reference model's (or, without one, the
    /// scored model's own) stored `extra.chains`, cut to the training size; `None` when neither
    /// keeps chains.
    pub persistent: Option<Spread>,
    /// Fresh chains on a canvas `scale`× the training side, after one round.
    pub large: Spread,
    /// Side factor of `large`.
    pub scale: usize,
    /// `fresh.mean / persistent.mean`: 1 means a new canvas is as faithful as the chains that
    /// persistent learning keeps; `None` without persistent chains.
    pub fresh_over_persistent: Option<f64>,
}

/// Scores `chains` fresh chains of a FRAME texture `model` against `training` (`[1, C, H, W]`,
/// model space), continues them to `rounds` rounds, scores the persistent chains stored in
/// `reference` (a persistently trained model of the same image) or in `model`, and `chains`
/// fresh chains at `scale`× the side. Every image is read by `model`'s first-layer filters, so
/// the figures of two models share one yardstick.
#[allow(clippy::too_many_arguments)]
pub fn texture_scores(
    model: &Model,
    reference: Option<&Model>,
    device: &Device,
    training: Tensor<4>,
    chains: usize,
    rounds: usize,
    scale: usize,
    config: &shared::sampler::LangevinConfig,
    seed: u64,
) -> anyhow::Result<TextureScores> {
    for m in std::iter::once(model).chain(reference) {
        if !matches!(m.manifest.model, ModelSpec::Frame(_)) {
            bail!("texture statistics need generative ConvNet (FRAME) models, not a {} model", m.manifest.model.family_name());
        }
    }
    if chains == 0 || rounds == 0 || !(1..=8).contains(&scale) {
        bail!("need at least one chain and one round and a scale of 1 to 8 (got {chains} chains, {rounds} rounds, scale {scale})");
    }
    let [_, channels, height, width] = training.dims();
    let (net, polarity) = commands::energy_net(model)?;
    let target = crate::frame::first_layer_responses(net, training);
    let per_chain = |images: &Tensor<4>| -> Vec<f64> {
        (0..images.dims()[0])
            .map(|i| crate::frame::relative_distance(&crate::frame::first_layer_responses(net, images.clone().narrow(0, i, 1)), &target))
            .collect()
    };
    let fresh_images = commands::sample(model, device, chains, Some([height, width]), config, seed, None)?.images;
    let fresh = Spread::of(&per_chain(&fresh_images));
    let density = shared::sampler::NetDensity { stack: net, polarity };
    let mut noise = DeviceNoise::seeded(device, seed.wrapping_add(1));
    let mut state = fresh_images;
    for _ in 1..rounds {
        let mut chain = shared::generate::Chain::new(state, *config, None);
        chain.finish(&density, &mut noise);
        state = chain.into_state();
    }
    let long_run = Spread::of(&per_chain(&state));
    let persistent = match reference.unwrap_or(model).extras.get(crate::frame::CHAINS) {
        None => None,
        Some(kept) => {
            let &[count, c, h, w] = kept.shape.as_slice() else { bail!("the stored chains have shape {:?}, not [N, C, H, W]", kept.shape) };
            if c != channels || h < height || w < width || count == 0 || kept.values.len() != count * c * h * w {
                bail!("the stored chains ({:?}) do not cover the {channels}×{height}×{width} training image", kept.shape);
            }
            let all = Tensor::<4>::from_data(TensorData::new(kept.values.clone(), [count, c, h, w]), device);
            Some(Spread::of(&per_chain(&all.narrow(2, 0, height).narrow(3, 0, width))))
        }
    };
    let large_images = commands::sample(model, device, chains, Some([height * scale, width * scale]), config, seed.wrapping_add(2), None)?.images;
    let large = Spread::of(&per_chain(&large_images));
    let fresh_over_persistent = persistent.map(|p| fresh.mean / p.mean.max(1e-12));
    Ok(TextureScores { chains, steps: config.steps, rounds, fresh, long_run, persistent, large, scale, fresh_over_persistent })
}
