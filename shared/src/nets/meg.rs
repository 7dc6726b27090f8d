//! MEG networks (Kumar et al. 2019, authors' code): energy `E`, generator `G` and statistics
//! network `T(x, z)` for 2-D toy data, KDD99 vectors, MNIST/StackedMNIST 28×28×C, CIFAR-like
//! 32×32 and CelebA-like 64×64.
//!
//! `T` is two stacks: a trunk on `x` (images: the energy net's conv trunk with its own weights,
//! then a dense layer to `z_dim`; vectors: none) and a head on the concatenation of the trunk's
//! output with `z`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{NamedStack, Polarity, Role, scaled};
use crate::error::ArchError;
use crate::layers::{Activation, Init, LayerSpec, NormMode, NormSpec, OpSpec, StackSpec};

/// Which of the paper's data sets the networks are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MegDataset {
    /// 2-D toy data (25 gaussians, swiss roll, 8 gaussians).
    Toy2d,
    /// KDD99 one-hot vectors (121 features).
    Kdd,
    /// MNIST or StackedMNIST, 28×28 with `channels` stacks.
    Mnist {
        /// Number of stacked digits (1 = MNIST).
        channels: usize,
    },
    /// CIFAR-like 32×32×3.
    Cifar,
    /// CelebA-like 64×64×3.
    Celeba,
}

/// Configuration of MEG's three networks.
#[derive(Config, Debug, PartialEq)]
pub struct MegConfig {
    /// Data set the networks are shaped for.
    pub dataset: MegDataset,
    /// Latent size; `None` takes the authors' (2 toy, 32 KDD, 128 images).
    #[config(default = "None")]
    pub z_dim: Option<usize>,
    /// Divides every hidden width (1 = the paper's); the DCGAN-style N(0, 0.02²) weights are
    /// then drawn with std 0.02·√divisor to keep the activations' scale.
    #[config(default = 1)]
    pub width_divisor: usize,
    /// BatchNorm statistics of the generator: batch while training, running for evaluation.
    #[config(default = "NormMode::BatchStatistics")]
    pub generator_norm: NormMode,
}

impl MegConfig {
    /// Latent size in use.
    pub fn latent_dim(&self) -> usize {
        self.z_dim.unwrap_or(match self.dataset {
            MegDataset::Toy2d => 2,
            MegDataset::Kdd => 32,
            _ => 128,
        })
    }

    /// Data layout `[C, H, W]` (vectors as `[D, 1, 1]`).
    pub fn data_shape(&self) -> [usize; 3] {
        match self.dataset {
            MegDataset::Toy2d => [2, 1, 1],
            MegDataset::Kdd => [121, 1, 1],
            MegDataset::Mnist { channels } => [channels, 28, 28],
            MegDataset::Cifar => [3, 32, 32],
            MegDataset::Celeba => [3, 64, 64],
        }
    }

    /// `E`, `G`, and `T`'s trunk (images only) and head.
    pub fn stacks(&self) -> Result<Vec<NamedStack>, ArchError> {
        let z = self.latent_dim();
        if z == 0 || z > 4096 {
            return Err(ArchError::Config(format!("latent size must be 1..=4096, got {z}")));
        }
        let w = |c: usize| scaled(c, self.width_divisor);
        let data = self.data_shape();
        let torch = Init::TorchDefault;
        // DCGAN's N(0, 0.02²) assumes the paper's widths: with widths ÷k the std grows by √k so
        // that activations keep their scale through the layers (at ÷8 the statistics net's
        // features would otherwise start ~100× smaller and it could not learn for a long time).
        let dcgan = Init::Normal { std: 0.02 * (self.width_divisor.max(1) as f64).sqrt() };
        let gen_norm = NormSpec { eps: 1e-5, mode: self.generator_norm, gain_init_std: 0.02 };
        let relu = Activation::Relu;
        let mut stacks = Vec::new();
        let mut push = |name: &str, role, input, layers| stacks.push(NamedStack { name: name.into(), role, spec: StackSpec { input, layers } });
        let energy_role = Role::Energy(Polarity::Energy);
        match self.dataset {
            MegDataset::Toy2d | MegDataset::Kdd => {
                let (lrelu, generator, energy, head): (_, Vec<usize>, Vec<usize>, Vec<usize>) = match self.dataset {
                    MegDataset::Toy2d => (Activation::leaky(0.2), vec![512, 512, 512], vec![512, 512, 512], vec![512, 512, 512]),
                    _ => (Activation::leaky(0.2), vec![64, 128], vec![256, 128, 128], vec![256, 128, 128]),
                };
                let mlp = |hidden: &[usize], act, out| {
                    let mut layers: Vec<LayerSpec> = hidden.iter().map(|&h| LayerSpec::dense(w(h), act, torch)).collect();
                    layers.push(LayerSpec::dense(out, Activation::Identity, torch));
                    layers
                };
                push("generator", Role::Generator, [z, 1, 1], mlp(&generator, relu, data[0]));
                push("energy", energy_role, data, mlp(&energy, lrelu, 1));
                push("statistics_head", Role::Statistics, [data[0] + z, 1, 1], mlp(&head, lrelu, 1));
            }
            MegDataset::Mnist { channels } => {
                if channels == 0 || channels > 8 {
                    return Err(ArchError::Config(format!("StackedMNIST takes 1 to 8 stacks, got {channels}")));
                }
                let lrelu = Activation::leaky(0.2);
                let up = |c, op, act| LayerSpec::conv_transpose(c, 5, 2, 2, op, act, dcgan);
                let dense = OpSpec::Dense { out_features: w(512) * 4, bias: true, reshape: Some([w(512), 2, 2]) };
                push(
                    "generator",
                    Role::Generator,
                    [z, 1, 1],
                    vec![
                        LayerSpec { op: dense, norm: Some(gen_norm), act: relu, init: torch },
                        up(w(256), 1, relu).with_norm(gen_norm),
                        up(w(128), 0, relu).with_norm(gen_norm),
                        up(w(64), 1, relu).with_norm(gen_norm),
                        up(channels, 1, Activation::Tanh),
                    ],
                );
                let trunk = || -> Vec<LayerSpec> { [64, 128, 256, 512].iter().map(|&c| LayerSpec::conv(w(c), 5, 2, 2, lrelu, dcgan)).collect() };
                self.push_image_nets(&mut push, data, trunk, lrelu, torch);
            }
            MegDataset::Cifar | MegDataset::Celeba => {
                let lrelu = Activation::leaky(0.1);
                let celeba = self.dataset == MegDataset::Celeba;
                let init = if celeba { torch } else { dcgan };
                let ups: &[usize] = if celeba { &[512, 256, 128, 64] } else { &[256, 128, 64] };
                let dense = OpSpec::Dense { out_features: w(512) * 16, bias: true, reshape: Some([w(512), 4, 4]) };
                let mut generator = vec![LayerSpec { op: dense, norm: None, act: Activation::Identity, init: torch }];
                generator.extend(ups.iter().map(|&c| LayerSpec::conv_transpose(w(c), 4, 2, 1, 0, relu, init).with_norm(gen_norm)));
                generator.push(LayerSpec::conv_transpose(3, 3, 1, 1, 0, Activation::Tanh, init));
                push("generator", Role::Generator, [z, 1, 1], generator);
                let widths: &[usize] = if celeba { &[64, 64, 128, 128, 256, 256, 512, 512, 512] } else { &[64, 64, 128, 128, 256, 256, 512] };
                let trunk = || -> Vec<LayerSpec> {
                    widths
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| if i % 2 == 1 { LayerSpec::conv(w(c), 4, 2, 1, lrelu, init) } else { LayerSpec::conv(w(c), 3, 1, 1, lrelu, init) })
                        .collect()
                };
                self.push_image_nets(&mut push, data, trunk, lrelu, torch);
            }
        }
        Ok(stacks)
    }

    fn push_image_nets(
        &self,
        push: &mut impl FnMut(&str, Role, [usize; 3], Vec<LayerSpec>),
        data: [usize; 3],
        trunk: impl Fn() -> Vec<LayerSpec>,
        lrelu: Activation,
        dense_init: Init,
    ) {
        let z = self.latent_dim();
        let mut energy = trunk();
        energy.push(LayerSpec::dense(1, Activation::Identity, dense_init));
        push("energy", Role::Energy(Polarity::Energy), data, energy);
        let mut statistics = trunk();
        statistics.push(LayerSpec::dense(z, Activation::Identity, dense_init));
        push("statistics_trunk", Role::Statistics, data, statistics);
        let head = vec![
            LayerSpec::dense(scaled(512, self.width_divisor), lrelu, dense_init),
            LayerSpec::dense(1, Activation::Identity, dense_init),
        ];
        push("statistics_head", Role::Statistics, [2 * z, 1, 1], head);
    }
}
