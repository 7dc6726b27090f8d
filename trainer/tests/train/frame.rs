//! Generative ConvNet learning on the bundled CC0 textures (`assets/textures`), on flex.

use std::path::PathBuf;

use burn::prelude::*;
use shared::rng::HostRng;
use trainer::data::{self, LoadOptions, Split};
use trainer::frame::{self, FrameData, FrameTrainConfig, FrameTrainError, FrameTrainer, MeanKind};
use trainer::optim::Update;
use trainer::optim::{LabSgd, LabSgdSettings, parameter_roles};
use trainer::shortrun::{DataSource, host_values};

fn texture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/textures")).join(format!("{name}.png"))
}

/// The named textures at `size`×`size`, gray, mean subtracted as `mean` says.
fn textures(names: &[&str], size: usize, mean: MeanKind, device: &Device) -> FrameData {
    let mut pixels = Vec::new();
    for name in names {
        let set = data::open(&texture(name), &LoadOptions { limit: None, class: None, split: Split::Train }).expect("bundled texture").resize(size, 1).expect("resize");
        pixels.extend(set.pixels);
    }
    let set = data::ImageSet::new(pixels, names.len(), 1, size, size, None).expect("image set");
    FrameData::new(&set, mean, device).expect("frame data")
}

/// One layer, a quarter of the filters, 4 chains, the lab update at γ = 1e-2 (which learns a
/// single layer well; the default Adam is tested through the CLI).
fn small_texture_config(size: usize) -> FrameTrainConfig {
    let mut config = FrameTrainConfig::texture(size, 1, DataSource::new(texture("brick")));
    config.net.layers = 1;
    config.net.width_divisor = 4;
    config.chains = 4;
    config.seed = 5;
    config.optimizer = Update::Lab(FrameTrainConfig::LAB_UPDATE);
    config
}

fn lab(config: &mut FrameTrainConfig) -> &mut LabSgdSettings {
    match &mut config.optimizer {
        Update::Lab(lab) => lab,
        Update::Adam(_) => unreachable!("small_texture_config uses the lab update"),
    }
}

/// Tape-free steps (chains on a canvas twice the data's side, so data and samples get a traced
/// pass each, the samples' term weighted by ¼) move the net as autodiff steps do.
#[test]
fn tape_free_steps_match_autodiff_steps() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let mut config = small_texture_config(16);
    config.chain_scale = 2;
    let data = textures(&["brick"], 16, MeanKind::PerChannel, &device);
    let mut explicit = FrameTrainer::new(config.clone(), data.clone(), &device).expect("trainer");
    assert!(explicit.net.valid().has_explicit_parameter_gradients(), "flex nets take the tape-free path");
    let mut tape = FrameTrainer::new(config, data, &device).expect("trainer");
    tape.explicit_gradients = false;
    let values = |trainer: &FrameTrainer| -> Vec<f32> {
        trainer.net.valid().parameters().into_iter().flat_map(|(.., values)| host_values(values).expect("f32")).collect()
    };
    let start = values(&explicit);
    for _ in 0..3 {
        let (ours, reference) = (explicit.step().expect("step"), tape.step().expect("step"));
        for (a, b) in [(ours.f_observed, reference.f_observed), (ours.f_synthesised, reference.f_synthesised)] {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "iteration {}: f {a} vs {b}", ours.iteration);
        }
    }
    let moved = |trainer: &FrameTrainer| -> Vec<f32> { values(trainer).iter().zip(&start).map(|(now, then)| now - then).collect() };
    let error = crate::relative_difference(&moved(&explicit), &moved(&tape));
    assert!(error < 1e-3, "updates differ by {error:.2e} (relative)");
}

/// The moment-matching property: after learning, the persistent chains' mean first-layer
/// responses match the training texture's far better than white noise of the texture's own
/// variance does, and far better than the zero start.
#[test]
fn texture_synthesis_matches_the_training_image_statistics() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let data = textures(&["brick"], 32, MeanKind::PerChannel, &device);
    let mut config = small_texture_config(32);
    config.iterations_per_layer = 120;
    let observed = data.images.clone();
    let mut trainer = FrameTrainer::new(config, data, &device).expect("trainer");
    while trainer.iteration < trainer.config.total_iterations() {
        trainer.step().expect("no divergence");
    }
    let net = trainer.net.valid();
    let reference = frame::first_layer_responses(&net, observed.clone());
    let std = host_values(observed.clone().square().mean()).expect("variance")[0].sqrt();
    let noise = HostRng::new(9).normal_tensor([4, 1, 32, 32], f64::from(std), &device);
    let synthesis = frame::relative_distance(&frame::first_layer_responses(&net, trainer.chains.clone()), &reference);
    let white = frame::relative_distance(&frame::first_layer_responses(&net, noise), &reference);
    let zeros = frame::relative_distance(&frame::first_layer_responses(&net, Tensor::zeros([1, 1, 32, 32], &device)), &reference);
    eprintln!("first-layer response distance: synthesis {synthesis:.3}, white noise {white:.3}, zeros {zeros:.3}");
    assert!(synthesis < 0.25, "synthesis statistics off by {synthesis:.3}");
    assert!(synthesis < 0.5 * white, "synthesis {synthesis:.3} vs white noise {white:.3}");
    assert!(synthesis < 0.5 * zeros, "synthesis {synthesis:.3} vs zeros {zeros:.3}");
    // The chains have the texture's contrast, not the reference's N(0, 1).
    let spread = host_values(trainer.chains.clone().square().mean()).expect("variance")[0].sqrt();
    assert!(spread > 0.3 * std, "chains' RMS {spread:.1} vs the texture's {std:.1}");
}

#[test]
fn cd1_reconstruction_error_decreases_on_flex() {
    cd1_reconstruction_error_decreases(&Device::flex());
}

#[test]
fn cd1_reconstruction_error_decreases_on_wgpu() {
    if let Some(device) = crate::wgpu() {
        cd1_reconstruction_error_decreases(&device);
    }
}

/// Contrastive divergence learns an auto-encoder: the reconstruction `B = σ²·∂f/∂I` of the
/// training textures gets closer to them as training goes on.
fn cd1_reconstruction_error_decreases(device: &Device) {
    let _lock = crate::device_rng_lock();
    let device = device.clone();
    let data = textures(&["brick", "grass", "gravel"], 32, MeanKind::PerPixel, &device);
    let mut config = FrameTrainConfig::reconstruction(32, 1, DataSource::new(texture("brick")));
    config.net.width_divisor = 4;
    config.iterations_per_layer = 60;
    config.seed = 8;
    let observed = data.images.clone();
    let mut trainer = FrameTrainer::new(config, data, &device).expect("trainer");
    let (_, before) = frame::reconstruct(&trainer.net.valid(), observed.clone(), 1.0);
    let mut logged = Vec::new();
    while trainer.iteration < trainer.config.total_iterations() {
        let metrics = trainer.step().expect("no divergence");
        logged.push(metrics.reconstruction_mse.expect("CD reports the reconstruction error"));
    }
    let (_, after) = frame::reconstruct(&trainer.net.valid(), observed, 1.0);
    eprintln!("CD-1 reconstruction MSE: {before:.1} → {after:.1} (logged {:.1} … {:.1})", logged[0], logged[logged.len() - 1]);
    assert!((logged[0] - before).abs() < 1e-3 * before, "the logged error is the error before the first update");
    assert!(after < 0.5 * before, "reconstruction MSE {before:.1} → {after:.1}");
    let early: f64 = logged[..10].iter().sum::<f64>() / 10.0;
    let late: f64 = logged[logged.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(late < early, "the error falls over training: {early:.1} → {late:.1}");
}

/// Layer growing keeps the lower layers' weights and adds the next layer after T iterations;
/// a run resumed from a checkpoint repeats the uninterrupted one (chains and weights).
#[test]
fn layers_grow_and_a_resumed_run_repeats_the_uninterrupted_one() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let data = textures(&["gravel"], 24, MeanKind::PerChannel, &device);
    let mut config = small_texture_config(24);
    config.net.layers = 2;
    config.iterations_per_layer = 3;
    config.langevin.steps = 2;
    let weights = |trainer: &FrameTrainer| -> Vec<Vec<f32>> { trainer.net.parameters().into_iter().map(|(_, _, v)| host_values(v.inner()).expect("weights")).collect() };
    let mut straight = FrameTrainer::new(config, data.clone(), &device).expect("trainer");
    for _ in 0..3 {
        straight.step().expect("step");
    }
    assert_eq!(straight.conv_layers(), 1);
    let checkpoint = straight.checkpoint().expect("checkpoint");

    let mut grown = FrameTrainer::from_checkpoint(&checkpoint, data.clone(), &device).expect("resume");
    let learned = weights(&grown);
    grown.grow(2).expect("grow");
    assert_eq!(grown.conv_layers(), 2);
    assert_eq!(weights(&grown)[..2], learned[..], "layer 1 keeps its learned weights and bias");

    let metrics = straight.step().expect("step 4");
    assert_eq!((straight.conv_layers(), metrics.layers), (2, 2), "layer 2 arrives after T iterations");
    straight.step().expect("step 5");
    let mut resumed = FrameTrainer::from_checkpoint(&checkpoint, data, &device).expect("resume");
    assert_eq!(resumed.iteration, 3);
    resumed.step().expect("step 4");
    resumed.step().expect("step 5");
    assert_eq!(host_values(straight.chains.clone()).expect("chains"), host_values(resumed.chains.clone()).expect("chains"), "chains bit for bit");
    assert_eq!(weights(&straight), weights(&resumed), "weights bit for bit");
}

/// Too large a learning rate diverges; the error says so and the net is left as it was.
#[test]
fn divergence_is_reported_and_not_applied() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let data = textures(&["brick"], 24, MeanKind::PerChannel, &device);
    let mut config = small_texture_config(24);
    config.divergence_threshold = 50.0;
    lab(&mut config).lr = 10.0;
    let mut trainer = FrameTrainer::new(config, data, &device).expect("trainer");
    let mut outcome = None;
    for _ in 0..20 {
        let before = host_values(trainer.net.parameters()[0].2.clone().inner()).expect("weights");
        match trainer.step() {
            Ok(_) => {}
            Err(error) => {
                let after = host_values(trainer.net.parameters()[0].2.clone().inner()).expect("weights");
                outcome = Some((error, before == after));
                break;
            }
        }
    }
    let (error, unchanged) = outcome.expect("lr 10 must diverge within 20 iterations");
    assert!(matches!(error, FrameTrainError::Diverged { .. }), "{error}");
    assert!(error.to_string().contains("--lr"), "the message suggests a remedy: {error}");
    assert!(unchanged, "the diverged step was not applied");
}

#[test]
fn lab_update_normalises_and_caps_on_flex() {
    lab_update_normalises_and_caps(&Device::flex());
}

#[test]
fn lab_update_normalises_and_caps_on_wgpu() {
    if let Some(device) = crate::wgpu() {
        lab_update_normalises_and_caps(&device);
    }
}

/// The lab update divides by the layer's output size and caps max|g|: a huge gradient moves
/// each weight by exactly lr·cap, biases by at most 2·lr·(normalised count).
fn lab_update_normalises_and_caps(device: &Device) {
    let device = device.clone().autodiff();
    let config = shared::nets::FrameNetConfig::new().with_image_size(12).with_channels(1).with_layers(1).with_width_divisor(25);
    // 4 filters of 15×15 on a 12×12 image.
    let spec = config.stack_spec().expect("spec");
    let roles = parameter_roles(&spec).expect("roles");
    assert_eq!(roles.len(), 2);
    assert_eq!((roles[0].divisor, roles[0].bias, roles[1].bias), (16.0, false, true), "15×15 stride 3 on 12×12 gives a 4×4 map");
    let net = config.init(&device).expect("net");
    let before = net.parameters();
    let x = Tensor::<4>::ones([1, 1, 12, 12], &device).mul_scalar(1e4);
    let loss = net.value(x).mean().neg();
    let grads = loss.backward();
    let mut sgd = LabSgd::new(LabSgdSettings { lr: 0.1, momentum: 0.0, weight_decay: 0.0, cap: Some(2.0), bias_lr_factor: 2.0 });
    let after = sgd.step(net, &grads, &roles).parameters();
    for ((name, _, old), (_, _, new)) in before.into_iter().zip(after) {
        let change = host_values((new.inner() - old.inner()).abs().max()).expect("change")[0];
        if name.ends_with("bias") {
            // ∂f/∂b counts a filter's active positions: at most 16/16 = 1 after normalisation,
            // under the cap, times lr·2.
            assert!(change > 0.0 && change <= 0.2 + 1e-6, "{name}: max change {change}");
        } else {
            // The weight gradients (∝ 10⁴) are capped: max change exactly lr·cap.
            assert!((change - 0.2).abs() < 1e-5, "{name}: max change {change}, expected lr·cap = 0.2");
        }
    }
}

/// A top layer with no active unit can learn nothing more: reported, not trained on silently.
#[test]
fn a_dead_top_layer_is_reported() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let data = textures(&["grass"], 24, MeanKind::PerChannel, &device);
    let mut trainer = FrameTrainer::new(small_texture_config(24), data, &device).expect("trainer");
    let train_device = device.clone().autodiff();
    trainer.net = trainer
        .net
        .clone()
        .load_parameters::<()>(|name, shape| {
            let count = shape.iter().product::<usize>();
            Ok(if name.ends_with("bias") { Tensor::full([count], -1e9, &train_device) } else { Tensor::zeros([count], &train_device) })
        })
        .expect("parameters");
    let error = trainer.step().expect_err("nothing responds");
    assert!(matches!(error, FrameTrainError::DeadTopLayer { iteration: 1, layers: 1 }), "{error}");
    assert!(error.to_string().contains("smaller --lr"), "{error}");
    assert_eq!(trainer.iteration, 0, "the iteration was not counted");
}
