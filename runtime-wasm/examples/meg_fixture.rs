//! Writes the browser checks' MEG fixture into `DIR` (tests/browser/run.mjs reads it):
//! - `model.ebm`: the runtime tests' small untrained MEG model (MNIST 28×28×1, widths ÷16);
//! - `native.json`: what the browser must reproduce, from `shared::generate::latent_samples` on
//!   flex (the path of `trainer meg sample`): the generator's images of seed 7's codes, and
//!   after the model's MALA steps, with the acceptance rate.
//!
//! Usage: `meg_fixture DIR`

#[path = "../tests/support/meg.rs"]
mod meg;

use std::error::Error;
use std::path::PathBuf;

use burn::prelude::*;
use shared::generate::{LatentSamples, latent_samples};
use shared::rng::HostRng;

/// Seed of the model's weights.
const MODEL_SEED: u64 = 17;
/// Seed and size of the sampled batch.
const SEED: u64 = 7;
const COUNT: usize = 4;

fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, Box<dyn Error>> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}").into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::args_os().nth(1).ok_or("usage: meg_fixture DIR")?);
    let device = Device::flex();
    let model = meg::meg_model(&device, MODEL_SEED);
    let mala = model.manifest.sampler.mala.ok_or("the fixture model has MALA settings")?;
    let sample = |mala| latent_samples(&model, COUNT, mala, &mut HostRng::new(SEED), &device);
    let generator = sample(None)?;
    let LatentSamples { images, acceptance_rate, .. } = sample(Some(&mala))?;
    let rate = values(acceptance_rate.ok_or("MALA reports its acceptance rate")?)?[0];
    let native = serde_json::json!({
        "count": COUNT,
        "seed": SEED,
        "malaSteps": mala.steps,
        "shape": images.dims(),
        "generator": values(generator.images)?,
        "mala": values(images)?,
        "acceptanceRate": rate,
    });
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.ebm"), model.to_bytes()?)?;
    std::fs::write(dir.join("native.json"), native.to_string())?;
    eprintln!("wrote {}: {} samples, {} MALA steps, acceptance rate {rate:.3}", dir.display(), COUNT, mala.steps);
    Ok(())
}
