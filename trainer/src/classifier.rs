//! The MNIST digit classifier that counts StackedMNIST modes (MEG paper Table 2.1) and judges
//! the model zoo's digits, trained by the project. The authors use the PyTorch MNIST-example
//! CNN (two 5×5 convs with max pooling, dropout, 50 hidden units); this one is two 5×5 strided
//! convs and two dense layers, so it is a [`Stack`] like every other net here. Its widths are a
//! setting: the example's (10, 20, 50) or the default (32, 64, 128), which the model zoo's
//! digit figures need to reach 99 % on MNIST's test split. It takes model-space digits in
//! `[−1, 1]`.

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use modelfile::{ModelFile, NamedTensor};
use shared::layers::{Activation, Init, LayerSpec, Stack, StackSpec};
use shared::rng::HostRng;

use crate::optim::{Adam, AdamSettings};
use crate::shortrun::host_values;

/// Manifest key naming a classifier file.
const KIND: &str = "mnist_classifier";

/// The widths of the PyTorch MNIST example the MEG authors count modes with.
pub const EXAMPLE_WIDTHS: [usize; 3] = [10, 20, 50];
/// The default widths, for the model zoo's digit figures.
pub const DEFAULT_WIDTHS: [usize; 3] = [32, 64, 128];

/// The classifier's architecture with `widths` (two convs, one hidden dense layer):
/// `[1, 28, 28]` → 10 logits.
pub fn spec(widths: [usize; 3]) -> StackSpec {
    let relu = Activation::Relu;
    StackSpec {
        input: [1, 28, 28],
        layers: vec![
            LayerSpec::conv(widths[0], 5, 2, 2, relu, Init::TorchDefault),
            LayerSpec::conv(widths[1], 5, 2, 2, relu, Init::TorchDefault),
            LayerSpec::dense(widths[2], relu, Init::TorchDefault),
            LayerSpec::dense(10, Activation::Identity, Init::TorchDefault),
        ],
    }
}

/// A trained digit classifier.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The net (no autodiff).
    pub net: Stack,
    /// Its widths (see [`spec`]).
    pub widths: [usize; 3],
}

impl Classifier {
    /// Trains on `images` (`[N, 1, 28, 28]` in `[−1, 1]`) with their `labels` by Adam (lr
    /// 1e-3, 1e-4 over the last 30 % of five or more epochs) on the cross-entropy, `epochs`
    /// passes in batches of 64 in a seeded random order; `on_epoch` sees each epoch's mean loss.
    pub fn train(images: &Tensor<4>, labels: &[u8], widths: [usize; 3], epochs: usize, seed: u64, device: &Device, mut on_epoch: impl FnMut(usize, f64)) -> anyhow::Result<Self> {
        check_widths(widths)?;
        let [count, ..] = images.dims();
        anyhow::ensure!(count > 0 && labels.len() == count, "{count} images but {} labels", labels.len());
        anyhow::ensure!(labels.iter().all(|l| *l < 10), "a label is not a digit 0–9");
        let autodiff = device.clone().autodiff();
        let mut rng = HostRng::new(seed);
        autodiff.seed(rng.fork_seed());
        let mut net = spec(widths).init(&autodiff).context("cannot build the classifier")?;
        let mut adam = Adam::new(AdamSettings { lr: 1e-3, ..AdamSettings::default() });
        let inner = device.clone().inner();
        // The last 30 % of the epochs (from five epochs on) at a tenth of the rate: the test
        // accuracy settles instead of wandering with the last batches.
        let decay_from = if epochs >= 5 { (epochs * 7).div_ceil(10) } else { epochs };
        for epoch in 0..epochs {
            adam.settings.lr = if epoch >= decay_from { 1e-4 } else { 1e-3 };
            let order = crate::meg::permutation(count, &mut rng);
            let mut losses = Vec::new();
            for batch in order.chunks(64) {
                let index = Tensor::<1, Int>::from_data(TensorData::new(batch.iter().map(|&i| i as i64).collect::<Vec<_>>(), [batch.len()]), &inner);
                let x = images.clone().to_device(&inner).select(0, index);
                let targets = one_hot(batch.iter().map(|&i| labels[i]), &inner);
                let logits = logits(&net, Tensor::from_inner(x));
                let loss = (log_softmax(logits, 1) * Tensor::from_inner(targets)).sum().neg().div_scalar(batch.len() as f64);
                losses.push(loss.clone().inner());
                let grads = loss.backward();
                net = adam.step(net, &grads);
            }
            let mean = host_values(Tensor::cat(losses.into_iter().map(|l| l.reshape([1])).collect(), 0))?.iter().map(|v| f64::from(*v)).sum::<f64>();
            on_epoch(epoch + 1, mean / count.div_ceil(64) as f64);
        }
        Ok(Self { net: net.valid(), widths })
    }

    /// The most likely digit of every image of `images` (`[N, 1, 28, 28]`, `[−1, 1]`).
    pub fn predict(&self, images: Tensor<4>) -> anyhow::Result<Vec<u8>> {
        Ok(self.rows(images, |logits| logits)?.iter().map(|row| most_likely(row) as u8).collect())
    }

    /// Class probabilities (softmax of the logits) of every image of `images`
    /// (`[N, 1, 28, 28]`, `[−1, 1]`), ten per image.
    pub fn probabilities(&self, images: Tensor<4>) -> anyhow::Result<Vec<[f32; 10]>> {
        self.rows(images, |logits| burn::tensor::activation::softmax(logits, 1))
    }

    /// `map` of the logits of every image of `images`, ten values per image, in chunks of 1000
    /// images.
    fn rows(&self, images: Tensor<4>, map: impl Fn(Tensor<2>) -> Tensor<2>) -> anyhow::Result<Vec<[f32; 10]>> {
        let [count, ..] = images.dims();
        let mut rows = Vec::with_capacity(count);
        for start in (0..count).step_by(1000) {
            let chunk = images.clone().narrow(0, start, 1000.min(count - start));
            let values = host_values(map(logits(&self.net, chunk)))?;
            rows.extend(values.chunks_exact(10).map(|row| std::array::from_fn(|d| row[d])));
        }
        Ok(rows)
    }

    /// File bytes (the project's model-file container).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let tensors = self
            .net
            .parameters()
            .into_iter()
            .map(|(name, _, values)| Ok(NamedTensor { name, shape: vec![values.dims()[0]], values: host_values(values)? }))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ModelFile { manifest: serde_json::json!({ "kind": KIND, "widths": self.widths }), tensors }.to_bytes()?)
    }

    /// Reads a classifier file.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> anyhow::Result<Self> {
        let file = ModelFile::from_bytes(bytes).context("not a classifier file")?;
        anyhow::ensure!(file.manifest.get("kind").and_then(|k| k.as_str()) == Some(KIND), "the file is not an MNIST classifier");
        // Files written before the widths were a setting hold the example's.
        let widths = match file.manifest.get("widths") {
            None => EXAMPLE_WIDTHS,
            Some(value) => serde_json::from_value::<[usize; 3]>(value.clone()).context("the classifier's widths are not three counts")?,
        };
        check_widths(widths)?;
        let net = spec(widths).init(device)?.load_parameters(|name, shape| {
            let tensor = file.tensors.iter().find(|t| t.name == name).with_context(|| format!("the classifier lacks {name}"))?;
            let len: usize = shape.iter().product();
            anyhow::ensure!(tensor.values.len() == len, "{name} holds {} values, not {len}", tensor.values.len());
            Ok(Tensor::from_data(TensorData::new(tensor.values.clone(), [len]), device))
        })?;
        Ok(Self { net, widths })
    }
}

/// Widths a classifier may have (see [`spec`]).
pub fn check_widths(widths: [usize; 3]) -> anyhow::Result<()> {
    anyhow::ensure!(widths.iter().all(|w| (1..=1024).contains(w)), "classifier widths must be 1 to 1024, not {widths:?}");
    Ok(())
}

/// The index of the largest of ten scores (the first one on a tie).
pub fn most_likely(row: &[f32; 10]) -> usize {
    (0..10).fold(0, |best, d| if row[d] > row[best] { d } else { best })
}

fn logits(net: &Stack, x: Tensor<4>) -> Tensor<2> {
    let [n, ..] = x.dims();
    net.forward(x).reshape([n, 10])
}

fn one_hot(labels: impl Iterator<Item = u8>, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = labels.flat_map(|l| (0..10u8).map(move |d| if d == l { 1.0 } else { 0.0 })).collect();
    let n = values.len() / 10;
    Tensor::from_data(TensorData::new(values, [n, 10]), device)
}

/// How a set of images reads to the classifier: the digit-quality figures of the model zoo.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DigitScores {
    /// Images judged.
    pub count: usize,
    /// Share of images whose most likely digit has probability above [`CONFIDENT`].
    pub confident_share: f64,
    /// Mean probability of the most likely digit.
    pub mean_confidence: f64,
    /// How many images fall to each digit (their most likely one).
    pub histogram: [usize; 10],
    /// Entropy of the label histogram in nats (ln 10 ≈ 2.303 when every digit is equally common).
    pub label_entropy: f64,
}

/// The probability above which an image counts as confidently labelled.
pub const CONFIDENT: f32 = 0.9;

impl DigitScores {
    /// The figures of `probabilities` (one row of ten per image, as [`Classifier::probabilities`]).
    pub fn new(probabilities: &[[f32; 10]]) -> Self {
        let count = probabilities.len();
        let mut histogram = [0usize; 10];
        let (mut confident, mut confidence) = (0usize, 0.0f64);
        for row in probabilities {
            let best = most_likely(row);
            histogram[best] += 1;
            confidence += f64::from(row[best]);
            confident += usize::from(row[best] > CONFIDENT);
        }
        let total = count.max(1) as f64;
        let sum_p_ln_p: f64 = histogram.iter().filter(|c| **c > 0).map(|&c| c as f64 / total).map(|p| p * p.ln()).sum();
        // 0 − x rather than −x: one label gives +0, not −0.
        let label_entropy = 0.0 - sum_p_ln_p;
        Self { count, confident_share: confident as f64 / total, mean_confidence: confidence / total, histogram, label_entropy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_scores_count_confident_images_and_the_label_entropy() {
        // Four images: two confident 3s, one unsure 3 (0.6), one confident 7.
        let row = |digit: usize, p: f32| std::array::from_fn(|d| if d == digit { p } else { (1.0 - p) / 9.0 });
        let scores = DigitScores::new(&[row(3, 0.95), row(3, 0.99), row(3, 0.6), row(7, 0.91)]);
        assert_eq!(scores.count, 4);
        assert_eq!(scores.histogram[3], 3);
        assert_eq!(scores.histogram[7], 1);
        assert!((scores.confident_share - 0.75).abs() < 1e-12, "{}", scores.confident_share);
        assert!((scores.mean_confidence - (0.95 + 0.99 + 0.6 + 0.91) / 4.0).abs() < 1e-6);
        // Histogram (3/4, 1/4): −¾·ln ¾ − ¼·ln ¼.
        let expected = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!((scores.label_entropy - expected).abs() < 1e-12, "{}", scores.label_entropy);
        // Ten equally common digits reach ln 10; one digit alone gives +0.
        let uniform: Vec<[f32; 10]> = (0..10).map(|d| row(d, 1.0)).collect();
        assert!((DigitScores::new(&uniform).label_entropy - 10f64.ln()).abs() < 1e-12);
        assert!(DigitScores::new(&[row(4, 1.0)]).label_entropy.to_bits() == 0);
    }
}
