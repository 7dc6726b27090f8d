//! Batch-statistics BatchNorm followed by a LeakyReLU, in a few passes over burn's NCHW order
//! instead of a dozen element-wise ops: per-channel sums run over each image's planes on all
//! cores, then one pass writes every output.

use super::kernel::{before_activation, for_each_part, for_each_pair_of_parts, leaky};

/// Batch shape `[N, C, H·W]` of values in burn's NCHW order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Images.
    pub batch: usize,
    /// Channels, each normalised on its own.
    pub channels: usize,
    /// Pixels per channel plane.
    pub plane: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Where image `n`'s plane of channel `c` lies.
    fn plane_range(&self, n: usize, c: usize) -> std::ops::Range<usize> {
        let start = (n * self.channels + c) * self.plane;
        start..start + self.plane
    }

    /// Values each channel's statistics run over.
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
}

/// The forward pass's results: the activations and `x̂ = (h − mean)/σ` `[N, C, H·W]`, and
/// `1/σ = 1/√(var + ε)` per channel `[C]`.
pub struct NormForward {
    /// `LeakyReLU(γ·x̂ + β)`.
    pub outputs: Vec<f32>,
    /// `x̂`.
    pub normalised: Vec<f32>,
    /// `1/σ`.
    pub inv_std: Vec<f32>,
}

/// BatchNorm with the batch's mean and (biased) variance of `h`, gain `gamma` and shift
/// `beta` `[C]`, then a LeakyReLU of `slope` (0: ReLU).
pub fn forward(shape: NormShape, h: &[f32], gamma: &[f32], beta: &[f32], eps: f64, slope: f32) -> NormForward {
    let NormShape { channels, plane, .. } = shape;
    let count = shape.count();
    let planes = |n: usize, c: usize| &h[shape.plane_range(n, c)];
    // Two passes (mean, then centred squares): a one-pass variance loses digits when the mean
    // is large against the spread.
    let sums = channel_sums(shape, |n, c| lane_sum([planes(n, c)], |[v]| v));
    let mean: Vec<f32> = sums.iter().map(|&sum| (sum / count) as f32).collect();
    let squares = channel_sums(shape, |n, c| lane_sum([planes(n, c)], |[v]| (v - mean[c]) * (v - mean[c])));
    let inv_std: Vec<f32> = squares.iter().map(|&sum| (1.0 / (sum / count + eps).sqrt()) as f32).collect();
    let mut outputs = vec![0.0; shape.len()];
    let mut normalised = vec![0.0; shape.len()];
    for_each_pair_of_parts(&mut outputs, &mut normalised, channels * plane, |n, outputs, normalised| {
        let planes_out = outputs.chunks_exact_mut(plane).zip(normalised.chunks_exact_mut(plane));
        for (c, (outputs, normalised)) in planes_out.enumerate() {
            // Locals, not captures read through a pointer: the loop then vectorises.
            let (scale, shift, m, s, slope) = (gamma[c], beta[c], mean[c], inv_std[c], slope);
            for ((a, x), &v) in outputs.iter_mut().zip(normalised.iter_mut()).zip(planes(n, c)) {
                *x = (v - m) * s;
                *a = leaky(scale * *x + shift, slope);
            }
        }
    });
    NormForward { outputs, normalised, inv_std }
}

/// The backward pass of [`forward`] for `grad` on its outputs, given them, `x̂` and `1/σ`:
/// the input's cotangent `[N, C, H·W]` and the gradients of `gamma` and `beta` `[C]`.
pub fn backward(shape: NormShape, grad: &[f32], outputs: &[f32], normalised: &[f32], inv_std: &[f32], gamma: &[f32], slope: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let NormShape { channels, plane, .. } = shape;
    let count = shape.count();
    let planes = |n: usize, c: usize| {
        let within = shape.plane_range(n, c);
        [&grad[within.clone()], &outputs[within.clone()], &normalised[within]]
    };
    let beta_grad = channel_sums(shape, |n, c| lane_sum(planes(n, c), |[g, a, _]| before_activation(g, a, slope)));
    let gamma_grad = channel_sums(shape, |n, c| lane_sum(planes(n, c), |[g, a, x]| before_activation(g, a, slope) * x));
    // The batch's mean and variance depend on every input: `∂h = γ/σ · (g − mean g − x̂ · mean g·x̂)`.
    let mut input_grad = vec![0.0; shape.len()];
    for_each_part(&mut input_grad, channels * plane, |n, image| {
        for (c, out) in image.chunks_exact_mut(plane).enumerate() {
            let [g, a, x] = planes(n, c);
            let (scale, slope) = (gamma[c] * inv_std[c], slope);
            let (mean_grad, mean_weighted) = ((beta_grad[c] / count) as f32, (gamma_grad[c] / count) as f32);
            for (((out, &g), &a), &x) in out.iter_mut().zip(g).zip(a).zip(x) {
                *out = scale * (before_activation(g, a, slope) - mean_grad - x * mean_weighted);
            }
        }
    });
    let single = |sums: Vec<f64>| sums.into_iter().map(|sum| sum as f32).collect();
    (input_grad, single(gamma_grad), single(beta_grad))
}

/// Per-channel sums `[C]` of `plane_sum(n, c)` over the images, the images on all cores.
fn channel_sums(shape: NormShape, plane_sum: impl Fn(usize, usize) -> f32 + Send + Sync) -> Vec<f64> {
    let NormShape { batch, channels, .. } = shape;
    let mut per_image = vec![0.0; batch * channels];
    for_each_part(&mut per_image, channels, |n, sums| sums.iter_mut().enumerate().for_each(|(c, sum)| *sum = plane_sum(n, c)));
    (0..channels).map(|c| (0..batch).map(|n| f64::from(per_image[n * channels + c])).sum()).collect()
}

/// Values summed side by side: a vector's worth, each lane its own partial sum.
const LANES: usize = 8;

/// `Σᵢ term([p[i] for p in planes])` over planes of one length, in [`LANES`] interleaved
/// partial sums (whole chunks without bounds checks, so the lanes vectorise).
fn lane_sum<const K: usize>(planes: [&[f32]; K], term: impl Fn([f32; K]) -> f32) -> f32 {
    let len = planes.iter().map(|plane| plane.len()).min().unwrap_or(0);
    let whole = len - len % LANES;
    let mut lanes = [0.0f32; LANES];
    for start in (0..whole).step_by(LANES) {
        let chunks: [&[f32; LANES]; K] = planes.map(|plane| plane[start..start + LANES].try_into().unwrap_or(&[0.0; LANES]));
        for (lane, sum) in lanes.iter_mut().enumerate() {
            *sum += term(chunks.map(|chunk| chunk[lane]));
        }
    }
    lanes.iter().sum::<f32>() + (whole..len).map(|i| term(planes.map(|plane| plane[i]))).sum::<f32>()
}
