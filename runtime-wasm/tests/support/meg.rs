//! A small untrained MEG model (MNIST 28×28×1, widths ÷16, generator in evaluation mode as
//! the trainer exports it) for the runtime's tests and the browser checks' fixture
//! (`examples/meg_fixture.rs`). Its weights depend only on the seed.

use burn::prelude::*;
use shared::file::{DataSpec, Manifest, Model, Normalization, Provenance, SamplerDefaults};
use shared::layers::NormMode;
use shared::nets::{MegConfig, MegDataset, ModelSpec};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, LangevinConfig, MalaConfig};

/// The model's default MALA chain length.
pub const MALA_STEPS: usize = 12;
/// The model's default temperature β (not the authors' 0.2: on this untrained energy it gives
/// a mix of accepted and rejected proposals, which the tests want).
pub const TEMPERATURE: f64 = 10.0;

/// Standard deviation of every convolution weight.
pub const CONV_STD: f64 = 0.2;

/// The model, initialised from `seed` on `device`.
pub fn meg_model(device: &Device, seed: u64) -> Model {
    let config = MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(16).with_generator_norm(NormMode::RunningStatistics);
    let mala = MalaConfig { steps: MALA_STEPS, temperature: TEMPERATURE, ..MalaConfig::default() };
    let manifest = Manifest {
        model: ModelSpec::Meg(config),
        data: DataSpec { channels: 1, height: 28, width: 28, range: [-1.0, 1.0], normalization: Normalization::MinusOneToOne },
        sampler: SamplerDefaults {
            init: ChainInit::Uniform { low: -1.0, high: 1.0 },
            // Like the trainer's export: a pixel-space chain for comparison, MALA for sampling.
            langevin: vec![LangevinConfig { steps: mala.steps, step_size: mala.step_size, noise: (2.0 * mala.step_size).sqrt(), reference_sigma: None, clip: None }],
            mala: Some(mala),
        },
        provenance: Provenance { dataset: "untrained (runtime test fixture)".into(), iterations: 0, seed, git_revision: None, created_by: "runtime-wasm tests".into() },
    };
    device.seed(seed);
    let mut model = Model::init(manifest, device).expect("MEG model");
    // At its DCGAN initialisation E(G(z)) is all but constant, so that every MALA proposal
    // would be accepted; convolution weights of a fixed larger scale, drawn from the portable
    // generator, give the energy some relief whatever the family's initialisation.
    let mut rng = HostRng::new(seed);
    for named in &mut model.stacks {
        let mut parameters = named.stack.parameters().into_iter();
        let stack = named.stack.clone();
        named.stack = stack
            .load_parameters(|_, shape| {
                let (.., values) = parameters.next().ok_or("a parameter too many")?;
                Ok::<_, &str>(if shape.len() == 4 { rng.normal_tensor([shape.iter().product()], CONV_STD, device) } else { values })
            })
            .expect("same parameters");
    }
    model
}
