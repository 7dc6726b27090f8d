//! Metropolis-adjusted Langevin in a latent space (MEG, §2.4 of the thesis).
//!
//! Proposal `z̃ = z − α·β·∇E(z) + √(2α)·ε`; acceptance `min(1, r)` with
//! `log r = −β·E(z̃) + β·E(z) + log q(z | z̃) − log q(z̃ | z)` and
//! `log q(z' | z) = −‖z' − z + α·β·∇E(z)‖² / (4α)` (the paper's squared norm; the authors'
//! code uses the un-squared norm, available as [`ProposalNorm::Unsquared`]).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::NoiseSource;
use crate::layers::Stack;

/// An energy over latent codes, e.g. `E(G(z))`.
pub trait LatentEnergy {
    /// `z`: `[N, D]` → (`E` per sample `[N]`, `∇_z Σₙ E` `[N, D]`).
    fn energy_and_grad(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>);
}

/// `E(G(z))` of a MEG model over latent codes, through the explicit input-gradients of both
/// nets (no autodiff tape).
#[derive(Debug, Clone, Copy)]
pub struct GeneratedEnergy<'a> {
    /// The generator `G`, input `[D, 1, 1]`.
    pub generator: &'a Stack,
    /// The energy net `E` over `G`'s outputs.
    pub energy: &'a Stack,
}

impl LatentEnergy for GeneratedEnergy<'_> {
    fn energy_and_grad(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, d] = z.dims();
        let (x, trace) = self.generator.forward_traced(z.reshape([n, d, 1, 1]));
        let (energy, grad_x) = self.energy.value_and_grad(x);
        (energy, self.generator.vjp(&trace, grad_x).reshape([n, d]))
    }
}

/// An energy net's `E(x)` over flattened data `[N, C·H·W]`: MALA in pixel space, the
/// comparison the MEG paper makes with its latent chain.
#[derive(Debug, Clone, Copy)]
pub struct PixelEnergy<'a> {
    /// The energy net.
    pub energy: &'a Stack,
}

impl LatentEnergy for PixelEnergy<'_> {
    fn energy_and_grad(&self, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, len] = x.dims();
        let [c, h, w] = self.energy.input_shape();
        let (energy, grad) = self.energy.value_and_grad(x.reshape([n, c, h, w]));
        (energy, grad.reshape([n, len]))
    }
}

/// Norm in the proposal's log-density.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalNorm {
    /// `‖·‖²` as in the paper (a correct MH correction).
    Squared,
    /// `‖·‖` as in the authors' code.
    Unsquared,
}

/// Parameters of a MALA chain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MalaConfig {
    /// Number of proposals.
    pub steps: usize,
    /// Step size α (authors' code 0.01).
    pub step_size: f64,
    /// Temperature multiplier β on the energy (authors' final evaluation 0.2).
    pub temperature: f64,
    /// Norm used in log q.
    pub proposal_norm: ProposalNorm,
}

impl Default for MalaConfig {
    fn default() -> Self {
        Self { steps: 5, step_size: 0.01, temperature: 0.2, proposal_norm: ProposalNorm::Squared }
    }
}

/// Result of a MALA chain.
#[derive(Debug, Clone)]
pub struct MalaOutput {
    /// Final codes `[N, D]`.
    pub z: Tensor<2>,
    /// Fraction of accepted proposals over all chains and steps (a one-element tensor, read it
    /// when needed).
    pub acceptance_rate: Tensor<1>,
}

fn log_q(to: &Tensor<2>, from: &Tensor<2>, from_grad: &Tensor<2>, config: &MalaConfig) -> Tensor<1> {
    let alpha = config.step_size;
    let diff = to.clone() - from.clone() + from_grad.clone().mul_scalar(alpha * config.temperature);
    let [n, _] = diff.dims();
    let squared = diff.square().sum_dim(1).reshape([n]);
    let norm = match config.proposal_norm {
        ProposalNorm::Squared => squared,
        ProposalNorm::Unsquared => squared.sqrt(),
    };
    norm.div_scalar(-4.0 * alpha)
}

/// Runs MALA from `z` targeting `exp(−β·E(z))`.
pub fn mala(energy: &impl LatentEnergy, z: Tensor<2>, config: &MalaConfig, noise: &mut impl NoiseSource) -> MalaOutput {
    let device = z.device();
    let [n, d] = z.dims();
    let beta = config.temperature;
    let alpha = config.step_size;
    let mut z = z;
    let (mut e, mut g) = energy.energy_and_grad(z.clone());
    let mut accepted = Tensor::<1>::zeros([1], &device);
    for _ in 0..config.steps {
        let proposal = z.clone() - g.clone().mul_scalar(alpha * beta) + noise.normal([n, d], &device).mul_scalar((2.0 * alpha).sqrt());
        let (e_new, g_new) = energy.energy_and_grad(proposal.clone());
        let log_ratio = (e.clone() - e_new.clone()).mul_scalar(beta) + log_q(&z, &proposal, &g_new, config) - log_q(&proposal, &z, &g, config);
        // Accept when log u < log r; a NaN ratio (diverged energy) is never accepted.
        let u: Tensor<1> = noise.uniform([n], &device);
        let accept = u.log().lower(log_ratio);
        accepted = accepted + accept.clone().float().sum().reshape([1]);
        let accept_rows = accept.clone().reshape([n, 1]).expand([n, d]);
        z = z.mask_where(accept_rows.clone(), proposal);
        g = g.mask_where(accept_rows, g_new);
        e = e.mask_where(accept, e_new);
    }
    let total = (n * config.steps.max(1)) as f64;
    MalaOutput { z, acceptance_rate: accepted.div_scalar(total) }
}
