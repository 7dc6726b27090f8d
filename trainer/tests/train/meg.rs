//! MEG: the gradient penalty's parameter gradient against finite differences (flex and wgpu),
//! latent MALA on a Gaussian energy with a known answer, a short toy run that puts the
//! density on the modes, resuming, and divergence.

use burn::prelude::*;
use burn::tensor::Distribution;
use shared::layers::Stack;
use shared::nets::{MegConfig, MegDataset};
use shared::rng::HostRng;
use shared::sampler::{LatentEnergy, MalaConfig, ProposalNorm, mala};
use trainer::data::toy::ToyDensity;
use trainer::meg::{self, MegData, MegTrainConfig, MegTrainer, PenaltyForm};
use trainer::optim::collect_gradients;
use trainer::shortrun::host_values;

use crate::{device_rng_lock, wgpu};

fn energy_net(config: &MegConfig, device: &Device) -> Stack {
    let specs = config.stacks().expect("MEG stacks");
    let spec = specs.into_iter().find(|s| s.name == "energy").expect("energy net").spec;
    spec.init(device).expect("init")
}

fn penalty_value(net: &Stack, x: &Tensor<4>, form: PenaltyForm) -> f64 {
    let (_, penalty) = meg::energy_and_penalty(net, x.clone(), form);
    f64::from(host_values(penalty).expect("read")[0])
}

/// The first layer's weights with entry `index` moved by `delta`.
fn nudged(net: &Stack, index: usize, delta: f32) -> Stack {
    net.clone()
        .load_parameters(|name, shape| -> Result<Tensor<1>, ()> {
            let values = net.parameters().into_iter().find(|(n, ..)| n == name).map(|(.., v)| v).expect("parameter");
            let mut host = host_values(values).expect("read");
            if name == "0.weight" {
                host[index] += delta;
            }
            Ok(Tensor::from_data(TensorData::new(host, [shape.iter().product::<usize>()]), &net.device()))
        })
        .expect("load")
}

/// ∂penalty/∂θ through the explicit input-gradient under autodiff, against central differences
/// of the penalty itself (exact up to rounding: the penalty of a piecewise-linear net is
/// quadratic in each weight while no activation flips).
fn penalty_gradient_matches_finite_differences(device: &Device, config: MegConfig, form: PenaltyForm) {
    let autodiff = device.clone().autodiff();
    autodiff.seed(5);
    let net = energy_net(&config, &autodiff);
    let [c, h, w] = config.data_shape();
    let x = Tensor::<4>::random([4, c, h, w], Distribution::Uniform(-1.0, 1.0), &device.clone().inner());
    let (_, penalty) = meg::energy_and_penalty(&net, Tensor::from_inner(x.clone()), form);
    let grads = penalty.backward();
    let analytic = host_values(collect_gradients(&net, &grads)[0].clone().expect("first weight has a gradient")).expect("read");
    let plain = net.valid();
    let scale = analytic.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "the penalty has no gradient");
    let mut rng = HostRng::new(3);
    let mut checked = 0;
    for _ in 0..6 {
        let index = rng.below(analytic.len());
        let eps = 1e-2;
        let numeric = (penalty_value(&nudged(&plain, index, eps), &x, form) - penalty_value(&nudged(&plain, index, -eps), &x, form)) / (2.0 * f64::from(eps));
        let error = (numeric - f64::from(analytic[index])).abs();
        assert!(error <= 0.02 * f64::from(scale) + 1e-4, "weight {index}: autodiff {} vs finite differences {numeric} (largest |gradient| {scale})", analytic[index]);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn gradient_penalty_gradient_matches_finite_differences_on_flex() {
    let flex = Device::flex();
    penalty_gradient_matches_finite_differences(&flex, MegConfig::new(MegDataset::Toy2d).with_width_divisor(32), PenaltyForm::Channel);
    let digits = MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(16);
    penalty_gradient_matches_finite_differences(&flex, digits.clone(), PenaltyForm::Channel);
    penalty_gradient_matches_finite_differences(&flex, digits, PenaltyForm::Sample);
}

#[test]
fn gradient_penalty_gradient_matches_finite_differences_on_wgpu() {
    let Some(device) = wgpu() else { return };
    penalty_gradient_matches_finite_differences(&device, MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(32), PenaltyForm::Channel);
}

#[test]
fn the_two_penalty_forms_differ_by_the_image_area() {
    let flex = Device::flex();
    flex.seed(9);
    let config = MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(16);
    let net = energy_net(&config, &flex);
    let x = Tensor::<4>::random([3, 1, 28, 28], Distribution::Uniform(-1.0, 1.0), &flex);
    // One channel: the channel form averages the same squares over N·H·W, the paper's over N.
    let ratio = penalty_value(&net, &x, PenaltyForm::Sample) / penalty_value(&net, &x, PenaltyForm::Channel);
    assert!((ratio - 784.0).abs() < 0.01 * 784.0, "ratio {ratio}");
}

/// `E(z) = ‖z − μ‖² / (2s²)`: MALA at temperature β targets `N(μ, s²/β)`.
struct Gaussian {
    mean: [f32; 2],
    std: f32,
}

impl LatentEnergy for Gaussian {
    fn energy_and_grad(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, _] = z.dims();
        let mean = Tensor::<2>::from_data(TensorData::new(self.mean.to_vec(), [1, 2]), &z.device());
        let diff = z - mean;
        let energy = diff.clone().square().sum_dim(1).reshape([n]).div_scalar(2.0 * f64::from(self.std).powi(2));
        (energy, diff.div_scalar(f64::from(self.std).powi(2)))
    }
}

fn moments(z: Tensor<2>) -> ([f64; 2], [f64; 2]) {
    let values = host_values(z).expect("read");
    let n = values.len() / 2;
    let column = |d: usize| values.iter().skip(d).step_by(2).map(|v| f64::from(*v)).collect::<Vec<_>>();
    let stats = |c: Vec<f64>| {
        let mean = c.iter().sum::<f64>() / n as f64;
        (mean, c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64)
    };
    let (a, b) = (stats(column(0)), stats(column(1)));
    ([a.0, b.0], [a.1, b.1])
}

#[test]
fn latent_mala_samples_a_gaussian_energy() {
    let flex = Device::flex();
    let target = Gaussian { mean: [1.0, -0.5], std: 0.5 };
    for temperature in [1.0, 0.25] {
        let mut rng = HostRng::new(17);
        let start = rng.normal_tensor([4000, 2], 1.0, &flex);
        let config = MalaConfig { steps: 150, step_size: 0.05, temperature, proposal_norm: ProposalNorm::Squared };
        let out = mala(&target, start, &config, &mut rng);
        let (mean, var) = moments(out.z);
        let acceptance = f64::from(host_values(out.acceptance_rate).expect("read")[0]);
        let expected_var = 0.25 / temperature;
        for d in 0..2 {
            assert!((mean[d] - f64::from(target.mean[d])).abs() < 0.05, "β {temperature}: mean {mean:?}");
            assert!((var[d] / expected_var - 1.0).abs() < 0.1, "β {temperature}: variance {var:?}, expected {expected_var}");
        }
        assert!((0.5..1.0).contains(&acceptance), "β {temperature}: acceptance rate {acceptance}");
    }
    // A step far too large for the target: most proposals are rejected, and the chain stays put.
    let mut rng = HostRng::new(2);
    let start = rng.normal_tensor([500, 2], 1.0, &flex);
    let out = mala(&target, start, &MalaConfig { steps: 20, step_size: 4.0, temperature: 1.0, proposal_norm: ProposalNorm::Squared }, &mut rng);
    let acceptance = f64::from(host_values(out.acceptance_rate).expect("read")[0]);
    assert!(acceptance < 0.2, "acceptance rate {acceptance} with an oversized step");
}

fn toy_config(density: ToyDensity, iterations: u64) -> MegTrainConfig {
    let mut config = MegTrainConfig::paper(MegDataset::Toy2d, MegData::Toy { density });
    config.net = config.net.with_width_divisor(4);
    config.batch_size = 128;
    config.iterations = iterations;
    config.adam.lr = 1e-3;
    config.seed = 4;
    config
}

/// Fractions of `points` within 0.3 of a mode and farther than 0.8 from every mode.
fn near_and_far(points: &[f32], support: &[[f64; 2]]) -> (f64, f64) {
    let distances: Vec<f64> = points.chunks_exact(2).map(|p| trainer::data::toy::nearest_distance(support, [f64::from(p[0]), f64::from(p[1])])).collect();
    let share = |keep: &dyn Fn(f64) -> bool| distances.iter().filter(|d| keep(**d)).count() as f64 / distances.len() as f64;
    (share(&|d| d <= 0.3), share(&|d| d > 0.8))
}

#[test]
fn a_short_toy_run_learns_the_modes() {
    let _lock = device_rng_lock();
    let flex = Device::flex();
    let density = ToyDensity::Gaussians8;
    let support = density.support();
    let mut trainer = MegTrainer::new(toy_config(density, 300), None, &flex).expect("trainer");
    let (resolution, extent) = (100, 2.0);
    let measure = |trainer: &MegTrainer| {
        let model = trainer.model().expect("model");
        let mut rng = HostRng::new(8);
        let mala = MalaConfig { steps: 5, step_size: 0.01, temperature: 0.2, proposal_norm: ProposalNorm::Squared };
        let samples = shared::generate::latent_samples(&model, 2000, Some(&mala), &mut rng, &flex).expect("samples");
        let (near, far) = near_and_far(&host_values(samples.images).expect("read"), &support);
        let (energy, _) = shared::generate::energy_net(&model).expect("energy net");
        let grid = meg::toy_density(energy, resolution, extent).expect("density");
        (near, far, meg::mass_within(&grid, resolution, extent, &support, 0.3))
    };
    let before = measure(&trainer);
    for _ in 0..300 {
        trainer.step().expect("training step");
    }
    let after = measure(&trainer);
    eprintln!("8 gaussians (near, far, density mass near) before {before:?} after {after:?}");
    assert!(after.0 > 0.5 && after.0 > 2.0 * before.0, "samples near a mode: {} → {}", before.0, after.0);
    assert!(after.1 < 0.05, "samples far from every mode: {}", after.1);
    assert!(after.2 > 1.25 * before.2, "density mass near the modes: {} → {}", before.2, after.2);
}

#[test]
fn a_resumed_toy_run_repeats_the_uninterrupted_one() {
    let _lock = device_rng_lock();
    let flex = Device::flex();
    let config = toy_config(ToyDensity::SwissRoll, 4);
    let mut straight = MegTrainer::new(config.clone(), None, &flex).expect("trainer");
    for _ in 0..4 {
        straight.step().expect("step");
    }
    let mut first = MegTrainer::new(config, None, &flex).expect("trainer");
    for _ in 0..2 {
        first.step().expect("step");
    }
    let bytes = first.checkpoint().expect("checkpoint");
    drop(first);
    let mut resumed = MegTrainer::from_checkpoint(&bytes, None, &flex).expect("resume");
    for _ in 0..2 {
        resumed.step().expect("step");
    }
    assert_eq!(resumed.iteration, 4);
    assert!(straight.model().expect("model").to_bytes().expect("bytes") == resumed.model().expect("model").to_bytes().expect("bytes"), "resumed run differs");
}

#[test]
fn a_diverging_run_stops_with_every_net_unchanged() {
    let _lock = device_rng_lock();
    let flex = Device::flex();
    let mut config = toy_config(ToyDensity::Gaussians25, 50);
    config.adam.lr = 50.0;
    config.lambda = 0.0;
    config.divergence_threshold = 1e3;
    let mut trainer = MegTrainer::new(config, None, &flex).expect("trainer");
    for _ in 0..50 {
        let before = trainer.model().expect("model").to_bytes().expect("bytes");
        match trainer.step() {
            Ok(_) => continue,
            Err(error) => {
                assert!(error.to_string().contains("diverged"), "{error}");
                assert!(trainer.model().expect("model").to_bytes().expect("bytes") == before, "a diverged iteration changed the nets");
                return;
            }
        }
    }
    panic!("learning rate 50 without a penalty did not diverge in 50 iterations");
}

#[test]
fn bad_configurations_are_refused_with_reasons() {
    let flex = Device::flex();
    let mut config = toy_config(ToyDensity::Gaussians8, 1);
    config.batch_size = 1;
    let error = MegTrainer::new(config, None, &flex).err().expect("batch 1 refused").to_string();
    assert!(error.contains("batch size"), "{error}");
    let mut config = toy_config(ToyDensity::Gaussians8, 1);
    config.lambda = -1.0;
    assert!(MegTrainer::new(config, None, &flex).err().expect("negative λ refused").to_string().contains("λ"));
    let mut config = toy_config(ToyDensity::Gaussians8, 1);
    config.mala.temperature = 0.0;
    assert!(MegTrainer::new(config, None, &flex).err().expect("β 0 refused").to_string().contains("temperature"));
    let images = MegTrainConfig::paper(MegDataset::Mnist { channels: 3 }, MegData::Loaded { source: trainer::shortrun::DataSource::new("x"), stacks: 2 });
    assert!(MegTrainer::new(images, None, &flex).err().expect("stack mismatch refused").to_string().contains("stacked"));
}
