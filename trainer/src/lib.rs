//! Native trainer for energy-based generative ConvNets: data sources, optimisers, the run
//! folder, the training loops and the commands that use a trained model. The `trainer` binary
//! is a thin command-line layer over this library.
#![warn(missing_docs)]

pub mod bench;
pub mod classifier;
pub mod commands;
pub mod contrastive;
pub mod data;
pub mod device;
pub mod eval;
pub mod frame;
pub mod meg;
pub mod imageio;
pub mod inception;
pub mod metrics;
pub mod multigrid;
pub mod optim;
pub mod run;
pub mod safetensors;
pub mod shortrun;
