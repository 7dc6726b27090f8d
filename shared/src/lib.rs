//! Energy-based generative ConvNets shared by the native trainer and the browser runtime.
//!
//! - [`layers`]: feed-forward stacks with an explicit, differentiable input-gradient;
//! - [`cpu_conv`]: their convolutions on burn's CPU backend, register-tiled with run-time SIMD,
//!   and their batch-statistics BatchNorm + LeakyReLU;
//! - [`nets`]: the network families of the four papers as `Config`s of stacks;
//! - [`sampler`]: Langevin dynamics under every paper's convention, the multigrid cascade,
//!   latent MALA, chain initialisations;
//! - [`file`](mod@file): the self-describing model file;
//! - [`generate`]: chain starts, a resumable chain and display pixels for using a model;
//! - [`rng`]: a portable seeded generator (same numbers natively and in wasm).
//!
//! Everything here compiles for native targets and `wasm32-unknown-unknown`, and nothing on
//! the sampling path reads tensors back synchronously.
#![warn(missing_docs)]

pub mod cpu_conv;
pub mod error;
pub mod file;
pub mod generate;
pub mod layers;
pub mod nets;
pub mod rng;
pub mod sampler;

pub use error::ArchError;
pub use file::{Manifest, Model, ModelFileError};
pub use layers::{Stack, StackSpec};
pub use nets::{ModelSpec, Polarity};
