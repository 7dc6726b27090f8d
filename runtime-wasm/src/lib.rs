//! Browser runtime: samples exported models on WebGPU with a CPU fallback, from JavaScript.
//!
//! - [`backend`]: device choice (`auto | webgpu | cpu`), adapter report, device-loss flag;
//! - [`job`]: one sampling request advanced a few steps at a time (progress, cancellation,
//!   asynchronous read-back only);
//! - [`error`]: [`RuntimeError`] with stable codes;
//! - `js` (wasm32 only): the wasm-bindgen boundary. The documented JavaScript API is the ES
//!   module in `js/`, which wraps it.
//!
//! Everything but `js` builds and is tested natively.
#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod job;
#[cfg(target_arch = "wasm32")]
pub mod js;

pub use error::RuntimeError;
pub use shared::{Model, ModelFileError, file, nets, sampler};

/// The manifest plus a summary the page needs (family, image size, sampler defaults: Langevin
/// for single-net models, MALA for MEG models).
pub fn model_info(model: &Model) -> serde_json::Value {
    let manifest = &model.manifest;
    let family = manifest.model.family_name();
    let grids: Vec<usize> = model.stacks.iter().filter(|s| matches!(s.role, shared::nets::Role::Energy(_))).map(|s| s.stack.input_shape()[1]).collect();
    // A MEG model samples through its generator and MALA; Langevin settings do not apply.
    let meg = matches!(manifest.model, shared::nets::ModelSpec::Meg(_));
    let langevin = manifest.sampler.langevin.first().filter(|_| !meg);
    let mala = meg.then(|| manifest.sampler.mala.unwrap_or_default());
    serde_json::json!({
        "family": family,
        "channels": manifest.data.channels,
        "height": manifest.data.height,
        "width": manifest.data.width,
        "range": manifest.data.range,
        "grids": grids,
        // Whether canvases of other sizes can be sampled (convolutional nets: textures).
        "anySize": !meg && shared::generate::canvas_shape(model, 1, [manifest.data.height * 2, manifest.data.width * 2]).is_ok(),
        "defaults": {
            "steps": langevin.map(|l| l.steps),
            "stepSize": langevin.map(|l| l.step_size),
            "noise": langevin.map(|l| l.noise),
            "malaSteps": mala.map(|m| m.steps),
            "malaStepSize": mala.map(|m| m.step_size),
            "temperature": mala.map(|m| m.temperature),
        },
        "manifest": serde_json::to_value(manifest).unwrap_or_default(),
    })
}
