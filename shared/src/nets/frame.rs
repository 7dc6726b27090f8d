//! Generative ConvNet / FRAME nets (Xie et al. 2016, §8), grown one layer at a time.
//!
//! Texture net: 100 15×15 stride 3 → 64 5×5 → 30 3×3, ReLU after each, no BatchNorm, padding
//! ⌊k/2⌋ as in the lab's MatConvNet code; `f` is the sum of the top layer's ReLU responses over
//! all positions and channels, so the net applies to a canvas of any size. Object net:
//! 100 7×7 stride 2 → 64 5×5 → 20 3×3 → one fully connected filter over the whole map.
//! Weights N(0, 0.01²), biases zero.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::scaled;
use crate::error::ArchError;
use crate::layers::{Activation, Init, LayerSpec, Stack, StackSpec};

/// Texture (stationary, any canvas size) or aligned-object net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// Experiment 1: textures from one image.
    Texture,
    /// Experiment 2: aligned objects, with a fully connected top filter.
    Object,
}

/// Configuration of a FRAME net `f(I)`: `[N, C, H, W]` → `[N]`.
#[derive(Config, Debug, PartialEq)]
pub struct FrameNetConfig {
    /// Texture or object net.
    #[config(default = "FrameKind::Texture")]
    pub kind: FrameKind,
    /// Training image side (paper: 224).
    #[config(default = 224)]
    pub image_size: usize,
    /// Image channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Convolution layers in use, 1 to 3 (layer growing adds one at a time).
    #[config(default = 3)]
    pub layers: usize,
    /// Divides every width (1 = the paper's).
    #[config(default = 1)]
    pub width_divisor: usize,
}

impl FrameNetConfig {
    /// The stack this config describes.
    pub fn stack_spec(&self) -> Result<StackSpec, ArchError> {
        if !(1..=3).contains(&self.layers) {
            return Err(ArchError::Config(format!("a FRAME net has 1 to 3 conv layers, not {}", self.layers)));
        }
        let convs: [(usize, usize, usize); 3] = match self.kind {
            FrameKind::Texture => [(100, 15, 3), (64, 5, 1), (30, 3, 1)],
            FrameKind::Object => [(100, 7, 2), (64, 5, 1), (20, 3, 1)],
        };
        let init = Init::Normal { std: 0.01 };
        let mut layers: Vec<LayerSpec> = convs[..self.layers]
            .iter()
            .map(|&(c, k, s)| LayerSpec::conv(scaled(c, self.width_divisor), k, s, k / 2, Activation::Relu, init))
            .collect();
        if self.kind == FrameKind::Object {
            layers.push(LayerSpec::dense(1, Activation::Identity, init));
        }
        Ok(StackSpec { input: [self.channels, self.image_size, self.image_size], layers })
    }

    /// Builds the net with fresh weights.
    pub fn init(&self, device: &Device) -> Result<Stack, ArchError> {
        self.stack_spec()?.init(device)
    }
}
