//! Per-grid energy nets of the multigrid paper (Gao et al. 2018), three variants.
//!
//! Default is the MatConvNet code (`Matconvnet`), whose layers match the paper's §6.1:
//! each conv is followed by batch-statistics BatchNorm and ReLU, and a dense layer on the
//! whole map gives `f`. Grid 4×4: 96 5×5 s2 p2, 128 3×3 p2, 256 3×3 p2. Grid 16×16: the same
//! plus 512 3×3 p1. Grid 64×64: 64 5×5 s2 p2, 128 3×3 s2 p2, 256 3×3 p2. Weights N(0, 0.01²).
//!
//! `Tensorflow` (the official release) uses LeakyReLU 0.2, Xavier initialisation, "same"
//! padding (here symmetric: 2 for 5×5, 1 for 3×3 — TensorFlow pads stride-2 5×5 convs
//! asymmetrically, one pixel more at the bottom/right) and, at 64×64, four 5×5 stride-2 convs
//! 64-128-256-512. `Pytorch` (the port) is the same with slope 0.01, N(0, 0.02²) weights,
//! BN gains N(1, 0.02²) and 96-128-256-512 at 64×64.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{NamedStack, Polarity, Role, scaled};
use crate::error::ArchError;
use crate::layers::{Activation, Init, LayerSpec, NormMode, NormSpec, StackSpec};

/// Which code base the per-grid nets follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultigridVariant {
    /// MatConvNet code (matches the paper's text); the default.
    Matconvnet,
    /// The official TensorFlow release.
    Tensorflow,
    /// The PyTorch port.
    Pytorch,
}

/// Grid sides of the three learned grids.
pub const GRID_SIZES: [usize; 3] = [4, 16, 64];

/// Configuration of the three per-grid nets.
#[derive(Config, Debug, PartialEq)]
pub struct MultigridConfig {
    /// Code base followed.
    #[config(default = "MultigridVariant::Matconvnet")]
    pub variant: MultigridVariant,
    /// Image channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Activation slope; `None` takes the variant's (0 for MatConvNet, 0.2 TF, 0.01 PyTorch).
    #[config(default = "None")]
    pub leak: Option<f64>,
    /// BatchNorm epsilon; `None` takes the variant's (1e-4 MatConvNet, 1e-5 otherwise).
    #[config(default = "None")]
    pub bn_eps: Option<f64>,
    /// Divides every width (1 = the paper's; larger values make small nets for tests).
    #[config(default = 1)]
    pub width_divisor: usize,
    /// The learned grids, coarse to fine: `[4, 16, 64]`, or `[64]` for the baselines that
    /// sample with the 64×64 net alone (single-grid, CD-1, persistent CD).
    #[config(default = "GRID_SIZES.to_vec()")]
    pub grids: Vec<usize>,
}

impl MultigridConfig {
    /// Stack of the grid with side `size` (4, 16 or 64).
    pub fn grid_spec(&self, size: usize) -> Result<StackSpec, ArchError> {
        use MultigridVariant::*;
        let (default_leak, default_eps, init, gain_std) = match self.variant {
            Matconvnet => (0.0, 1e-4, Init::Normal { std: 0.01 }, 0.0),
            Tensorflow => (0.2, 1e-5, Init::XavierUniform, 0.0),
            Pytorch => (0.01, 1e-5, Init::Normal { std: 0.02 }, 0.02),
        };
        let act = Activation::leaky(self.leak.unwrap_or(default_leak));
        let norm = NormSpec { eps: self.bn_eps.unwrap_or(default_eps), mode: NormMode::BatchStatistics, gain_init_std: gain_std };
        let w = |c: usize| scaled(c, self.width_divisor);
        // (channels, kernel, stride, padding) per conv.
        let convs: Vec<(usize, usize, usize, usize)> = match (self.variant, size) {
            (Matconvnet, 4) => vec![(96, 5, 2, 2), (128, 3, 1, 2), (256, 3, 1, 2)],
            (Matconvnet, 16) => vec![(96, 5, 2, 2), (128, 3, 1, 2), (256, 3, 1, 2), (512, 3, 1, 1)],
            (Matconvnet, 64) => vec![(64, 5, 2, 2), (128, 3, 2, 2), (256, 3, 1, 2)],
            (_, 4) => vec![(96, 5, 2, 2), (128, 3, 1, 1), (256, 3, 1, 1)],
            (_, 16) => vec![(96, 5, 2, 2), (128, 3, 1, 1), (256, 3, 1, 1), (512, 3, 1, 1)],
            (Tensorflow, 64) => vec![(64, 5, 2, 2), (128, 5, 2, 2), (256, 5, 2, 2), (512, 5, 2, 2)],
            (Pytorch, 64) => vec![(96, 5, 2, 2), (128, 5, 2, 2), (256, 5, 2, 2), (512, 5, 2, 2)],
            _ => return Err(ArchError::Config(format!("multigrid grids are 4, 16 and 64 pixels wide, not {size}"))),
        };
        let mut layers: Vec<LayerSpec> =
            convs.into_iter().map(|(c, k, s, p)| LayerSpec::conv(w(c), k, s, p, act, init).with_norm(norm)).collect();
        layers.push(LayerSpec::dense(1, Activation::Identity, init));
        Ok(StackSpec { input: [self.channels, size, size], layers })
    }

    /// The grid nets, coarse to fine, named `grid4`, `grid16`, `grid64`.
    pub fn stacks(&self) -> Result<Vec<NamedStack>, ArchError> {
        if self.grids.is_empty() || !self.grids.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(ArchError::Config(format!("the grids must be a non-empty increasing list, not {:?}", self.grids)));
        }
        self.grids
            .iter()
            .map(|&size| {
                Ok(NamedStack { name: format!("grid{size}"), role: Role::Energy(Polarity::NegativeEnergy), spec: self.grid_spec(size)? })
            })
            .collect()
    }

    /// Learning-rate multiplier of the top dense layer in the MatConvNet code
    /// (0.05 at grid 4, 0.1 at grids 16 and 64).
    pub fn top_lr_multiplier(size: usize) -> f64 {
        if size == 4 { 0.05 } else { 0.1 }
    }
}
