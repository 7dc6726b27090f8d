//! The network families of the four papers, each a `Config` that describes its stacks.
//!
//! A family config lists named [`StackSpec`]s (one energy net for short-run and FRAME models,
//! one per grid for multigrid, energy + generator + statistics nets for MEG). The model file
//! stores the config, so the loader rebuilds exactly the stacks that were trained.

pub mod frame;
pub mod meg;
pub mod multigrid;
pub mod shortrun;

use serde::{Deserialize, Serialize};

use crate::error::ArchError;
use crate::layers::StackSpec;

pub use frame::{FrameKind, FrameNetConfig};
pub use meg::{MegConfig, MegDataset};
pub use multigrid::{MultigridConfig, MultigridVariant};
pub use shortrun::ShortRunConfig;

/// Whether a net's scalar output is `f` (log-density up to a constant, "negative energy") or
/// an energy `E` with `p ∝ exp(−E)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// Output is `f`; sampling ascends it (short-run, multigrid, generative ConvNet).
    NegativeEnergy,
    /// Output is `E`; sampling descends it (MEG).
    Energy,
}

impl Polarity {
    /// `+1` for `f`, `−1` for `E`: the factor turning the output into a log-density.
    pub fn sign(self) -> f64 {
        match self {
            Self::NegativeEnergy => 1.0,
            Self::Energy => -1.0,
        }
    }
}

/// What a named stack of a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An energy / negative-energy net over images (or vectors).
    Energy(Polarity),
    /// A generator from latent codes.
    Generator,
    /// Part of a statistics network (MEG's T), not sampled from.
    Statistics,
}

/// One named stack of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedStack {
    /// Name, unique within the model (prefix of its tensors in the model file).
    pub name: String,
    /// What it does.
    pub role: Role,
    /// Architecture.
    pub spec: StackSpec,
}

/// The architecture of a whole model: which family and its full configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", content = "config", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Short-run MCMC energy net (papers 001/003).
    ShortRun(ShortRunConfig),
    /// Three-grid multigrid model (paper 000).
    Multigrid(MultigridConfig),
    /// Generative ConvNet / FRAME model (paper 004).
    Frame(FrameNetConfig),
    /// MEG energy + generator + statistics nets (paper 002).
    Meg(MegConfig),
}

impl ModelSpec {
    /// The stacks of this model, validated.
    pub fn stacks(&self) -> Result<Vec<NamedStack>, ArchError> {
        let stacks = match self {
            Self::ShortRun(c) => vec![NamedStack { name: "energy".into(), role: Role::Energy(Polarity::NegativeEnergy), spec: c.stack_spec()? }],
            Self::Multigrid(c) => c.stacks()?,
            Self::Frame(c) => vec![NamedStack { name: "energy".into(), role: Role::Energy(Polarity::NegativeEnergy), spec: c.stack_spec()? }],
            Self::Meg(c) => c.stacks()?,
        };
        for stack in &stacks {
            stack.spec.shapes()?;
        }
        Ok(stacks)
    }

    /// Short family name for messages.
    pub fn family_name(&self) -> &'static str {
        match self {
            Self::ShortRun(_) => "short_run",
            Self::Multigrid(_) => "multigrid",
            Self::Frame(_) => "frame",
            Self::Meg(_) => "meg",
        }
    }
}

/// Checks a configured width divisor and returns `width / divisor` (at least 1).
pub(crate) fn scaled(width: usize, divisor: usize) -> usize {
    (width / divisor.max(1)).max(1)
}
