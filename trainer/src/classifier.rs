//! The MNIST digit classifier that counts StackedMNIST modes (MEG paper Table 2.1), trained
//! by the project. The authors use the PyTorch MNIST-example CNN (two 5×5 convs with max
//! pooling, dropout, 50 hidden units); this one keeps its widths (10, 20, 50) with strided
//! convs in place of pooling and no dropout, so it is a [`Stack`] like every other net here.
//! It takes model-space digits in `[−1, 1]`.

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

/// The classifier's architecture: `[1, 28, 28]` → 10 logits.
pub fn spec() -> StackSpec {
    let relu = Activation::Relu;
    StackSpec {
        input: [1, 28, 28],
        layers: vec![
            LayerSpec::conv(10, 5, 2, 2, relu, Init::TorchDefault),
            LayerSpec::conv(20, 5, 2, 2, relu, Init::TorchDefault),
            LayerSpec::dense(50, relu, Init::TorchDefault),
            LayerSpec::dense(10, Activation::Identity, Init::TorchDefault),
        ],
    }
}

/// A trained digit classifier.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The net (no autodiff).
    pub net: Stack,
}

impl Classifier {
    /// Trains on `images` (`[N, 1, 28, 28]` in `[−1, 1]`) with their `labels` by Adam (lr
    /// 1e-3) on the cross-entropy, `epochs` passes in batches of 64 in a seeded random order;
    /// `on_epoch` sees each epoch's mean loss.
    pub fn train(images: &Tensor<4>, labels: &[u8], epochs: usize, seed: u64, device: &Device, mut on_epoch: impl FnMut(usize, f64)) -> anyhow::Result<Self> {
        let [count, ..] = images.dims();
        anyhow::ensure!(count > 0 && labels.len() == count, "{count} images but {} labels", labels.len());
        anyhow::ensure!(labels.iter().all(|l| *l < 10), "a label is not a digit 0–9");
        let autodiff = device.clone().autodiff();
        let mut rng = HostRng::new(seed);
        autodiff.seed(rng.fork_seed());
        let mut net = spec().init(&autodiff).context("cannot build the classifier")?;
        let mut adam = Adam::new(AdamSettings { lr: 1e-3, ..AdamSettings::default() });
        let inner = device.clone().inner();
        for epoch in 0..epochs {
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
        Ok(Self { net: net.valid() })
    }

    /// The most likely digit of every image of `images` (`[N, 1, 28, 28]`, `[−1, 1]`).
    pub fn predict(&self, images: Tensor<4>) -> anyhow::Result<Vec<u8>> {
        let [count, ..] = images.dims();
        let mut digits = Vec::with_capacity(count);
        for start in (0..count).step_by(1000) {
            let chunk = images.clone().narrow(0, start, 1000.min(count - start));
            let scores = host_values(logits(&self.net, chunk))?;
            digits.extend(scores.chunks_exact(10).map(|row| (0..10).fold(0u8, |best, d| if row[d] > row[best as usize] { d as u8 } else { best })));
        }
        Ok(digits)
    }

    /// File bytes (the project's model-file container).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let tensors = self
            .net
            .parameters()
            .into_iter()
            .map(|(name, _, values)| Ok(NamedTensor { name, shape: vec![values.dims()[0]], values: host_values(values)? }))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ModelFile { manifest: serde_json::json!({ "kind": KIND }), tensors }.to_bytes()?)
    }

    /// Reads a classifier file.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> anyhow::Result<Self> {
        let file = ModelFile::from_bytes(bytes).context("not a classifier file")?;
        anyhow::ensure!(file.manifest.get("kind").and_then(|k| k.as_str()) == Some(KIND), "the file is not an MNIST classifier");
        let net = spec().init(device)?.load_parameters(|name, shape| {
            let tensor = file.tensors.iter().find(|t| t.name == name).with_context(|| format!("the classifier lacks {name}"))?;
            let len: usize = shape.iter().product();
            anyhow::ensure!(tensor.values.len() == len, "{name} holds {} values, not {len}", tensor.values.len());
            Ok(Tensor::from_data(TensorData::new(tensor.values.clone(), [len]), device))
        })?;
        Ok(Self { net })
    }
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
