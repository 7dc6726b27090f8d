//! Energy nets of the short-run MCMC paper (Nijkamp et al. 2019, appendix 7.4 and the
//! authors' minimal code).
//!
//! 32×32: conv 3×3 s1 → n_f, then 4×4 stride-2 convs to 2n_f, 4n_f, 8n_f, then a 4×4 valid
//! conv to one channel; LeakyReLU after every conv but the last; no normalisation; biases on;
//! PyTorch default initialisation. 64×64 and 128×128 add one or two more 4×4 stride-2 convs;
//! their widths were lost from the paper, so they are `min(2^(i+1), max_width_multiplier)·n_f`
//! (default cap 8, i.e. the extra layers keep 8n_f).

use burn::prelude::*;

use crate::error::ArchError;
use crate::layers::{Activation, Init, LayerSpec, Stack, StackSpec};

/// Configuration of a short-run energy net `f(x)`: `[N, C, S, S]` → `[N]`.
#[derive(Config, Debug, PartialEq)]
pub struct ShortRunConfig {
    /// Image side `S`: 4·2ᵈ with d ≥ 1 (paper: 32, 64, 128).
    #[config(default = 32)]
    pub image_size: usize,
    /// Image channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Width of the first layer (paper: 32, 64, 128; authors' code 64).
    #[config(default = 64)]
    pub n_f: usize,
    /// LeakyReLU slope (authors' code 0.2; the apex variant uses 0.01).
    #[config(default = 0.2)]
    pub leak: f64,
    /// Cap on the width multiplier of the stride-2 layers (a gap in the paper for 64/128 px).
    #[config(default = 8)]
    pub max_width_multiplier: usize,
}

impl ShortRunConfig {
    /// The stack this config describes.
    pub fn stack_spec(&self) -> Result<StackSpec, ArchError> {
        let size = self.image_size;
        if size < 8 || !size.is_multiple_of(4) || !(size / 4).is_power_of_two() {
            return Err(ArchError::Config(format!("short-run image size must be 4·2^d with d ≥ 1 (8, 16, 32, 64, 128, …), got {size}")));
        }
        let downs = (size / 4).trailing_zeros() as usize;
        let act = Activation::leaky(self.leak);
        let init = Init::TorchDefault;
        let mut layers = vec![LayerSpec::conv(self.n_f, 3, 1, 1, act, init)];
        for i in 0..downs {
            let multiplier = (2usize << i).min(self.max_width_multiplier.max(1));
            layers.push(LayerSpec::conv(self.n_f * multiplier, 4, 2, 1, act, init));
        }
        layers.push(LayerSpec::conv(1, 4, 1, 0, Activation::Identity, init));
        Ok(StackSpec { input: [self.channels, size, size], layers })
    }

    /// Builds the net with fresh weights.
    pub fn init(&self, device: &Device) -> Result<Stack, ArchError> {
        self.stack_spec()?.init(device)
    }
}
