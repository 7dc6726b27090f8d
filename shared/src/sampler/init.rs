//! Chain initialisations: non-persistent (fresh noise every time), persistent (a bank of
//! chains carried across iterations) and contrastive divergence (start at the data).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::HostRng;

/// Where a chain starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainInit {
    /// Fresh `Uniform[low, high)` noise (short-run: `[−1, 1]`).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Fresh `N(0, std²)` noise.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Zeros (the generative ConvNet's start: the mean image in mean-subtracted space).
    Zeros,
    /// The observed batch itself (contrastive divergence).
    Data,
}

impl ChainInit {
    /// Initial states of `shape`, drawn from the portable generator so that every backend
    /// starts from the same numbers. `data` is required for [`ChainInit::Data`].
    pub fn sample(&self, shape: [usize; 4], rng: &mut HostRng, data: Option<&Tensor<4>>, device: &Device) -> Option<Tensor<4>> {
        Some(match *self {
            Self::Uniform { low, high } => rng.uniform_tensor(shape, low, high, device),
            Self::Normal { std } => rng.normal_tensor(shape, std, device),
            Self::Zeros => Tensor::zeros(shape, device),
            Self::Data => data?.clone(),
        })
    }
}

/// A bank of persistent chains; a batch is read, advanced and written back.
#[derive(Debug, Clone)]
pub struct PersistentChains {
    bank: Tensor<4>,
}

impl PersistentChains {
    /// A bank holding `initial` (`[M, C, H, W]`).
    pub fn new(initial: Tensor<4>) -> Self {
        Self { bank: initial }
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.bank.dims()[0]
    }

    /// Whether the bank is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chains `start..start+count` (wrapping around the bank's end is not done: the range must fit).
    pub fn get(&self, start: usize, count: usize) -> Tensor<4> {
        self.bank.clone().narrow(0, start, count)
    }

    /// Stores advanced chains back at `start`.
    pub fn put(&mut self, start: usize, chains: Tensor<4>) {
        let [count, c, h, w] = chains.dims();
        self.bank = self.bank.clone().slice_assign([start..start + count, 0..c, 0..h, 0..w], chains.detach());
    }

    /// The whole bank `[M, C, H, W]`.
    pub fn all(&self) -> &Tensor<4> {
        &self.bank
    }
}
