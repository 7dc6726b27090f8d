//! Learning on real digits, resume, divergence, interpolation and reconstruction.

use burn::prelude::*;
use trainer::commands;
use trainer::data::Split;
use trainer::metrics::{mse, pooled_mmd};
use trainer::shortrun::{self, TrainError, Trainer};

use crate::{device_rng_lock, digits, host, relative_difference, tiny_config};

#[test]
fn resume_after_interruption_reproduces_the_uninterrupted_run() {
    let _turn = device_rng_lock();
    let device = Device::flex();
    let data = digits(Split::Train, 500, &device);
    let mut config = tiny_config(6);
    config.langevin.steps = 5;
    config.batch_size = 8;
    let mut straight = Trainer::new(config.clone(), data.clone(), &device).expect("trainer");
    for _ in 0..6 {
        straight.step().expect("step");
    }
    let mut first = Trainer::new(config, data.clone(), &device).expect("trainer");
    for _ in 0..3 {
        first.step().expect("step");
    }
    let saved = first.checkpoint().expect("checkpoint");
    drop(first); // the "kill"
    let mut resumed = Trainer::from_checkpoint(&saved, data, &device).expect("resume");
    assert_eq!(resumed.iteration, 3);
    for _ in 0..3 {
        resumed.step().expect("step");
    }
    assert!(resumed.checkpoint().expect("checkpoint") == straight.checkpoint().expect("checkpoint"), "resumed run differs from the uninterrupted one");
}

/// Steps whose parameter gradients come without a tape (`Stack::parameter_vjp`, the default on
/// flex) move the net as steps through burn's autodiff do: same energies, same updates.
#[test]
fn tape_free_steps_match_autodiff_steps() {
    let _turn = device_rng_lock();
    let device = Device::flex();
    let data = digits(Split::Train, 200, &device);
    // n_f 8: kernels for the parameter gradients only; n_f 16: fused input gradients as well.
    for n_f in [8, 16] {
        let mut config = tiny_config(3);
        config.net = config.net.with_n_f(n_f);
        config.batch_size = 8;
        config.langevin.steps = 5;
        let mut explicit = Trainer::new(config.clone(), data.clone(), &device).expect("trainer");
        assert!(explicit.net.valid().has_explicit_parameter_gradients(), "flex nets take the tape-free path");
        let mut tape = Trainer::new(config, data.clone(), &device).expect("trainer");
        tape.explicit_gradients = false;
        let values = |trainer: &Trainer| -> Vec<f32> {
            trainer.net.valid().parameters().into_iter().flat_map(|(.., values)| shortrun::host_values(values).expect("f32")).collect()
        };
        let start = values(&explicit);
        for _ in 0..3 {
            let (ours, reference) = (explicit.step().expect("step"), tape.step().expect("step"));
            for (what, a, b) in [("f(data)", ours.f_data, reference.f_data), ("f(samples)", ours.f_samples, reference.f_samples)] {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "n_f {n_f}, iteration {}: {what} {a} vs {b}", ours.iteration);
            }
        }
        let moved = |trainer: &Trainer| -> Vec<f32> { values(trainer).iter().zip(&start).map(|(now, then)| now - then).collect() };
        let error = relative_difference(&moved(&explicit), &moved(&tape));
        assert!(error < 1e-3, "n_f {n_f}: updates differ by {error:.2e} (relative)");
    }
}

#[test]
fn the_paper_net_checkpoints_and_resumes() {
    // n_f 64: the 256 → 512 layer's Adam moments are 2 097 152 values in one axis.
    let _turn = device_rng_lock();
    let device = Device::flex();
    let data = Tensor::<4>::random([16, 1, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
    let mut config = tiny_config(1);
    config.net = config.net.with_image_size(32).with_n_f(64);
    config.data = trainer::shortrun::data_spec(1, 32);
    config.batch_size = 2;
    config.langevin.steps = 1;
    let mut run = Trainer::new(config, data.clone(), &device).expect("trainer");
    run.step().expect("step");
    let saved = run.checkpoint().expect("a checkpoint of the paper's net");
    let resumed = Trainer::from_checkpoint(&saved, data, &device).expect("resume");
    assert_eq!(resumed.iteration, 1);
    assert!(resumed.checkpoint().expect("checkpoint") == saved, "the resumed run should hold what was saved");
}

#[test]
fn divergence_is_reported_and_never_applied() {
    let _turn = device_rng_lock();
    let device = Device::flex();
    let mut config = tiny_config(50);
    config.adam.lr = 5.0;
    config.divergence_threshold = 50.0;
    let range_limit = config.sample_range_limit;
    let mut trainer = Trainer::new(config, digits(Split::Train, 200, &device), &device).expect("trainer");
    let error = loop {
        let before = trainer.model().to_bytes().expect("model");
        match trainer.step() {
            Ok(metrics) => assert!(metrics.iteration < 50, "a learning rate of 5 should diverge"),
            Err(error) => {
                assert!(trainer.model().to_bytes().expect("model") == before, "a diverged step changed the model");
                break error;
            }
        }
    };
    let TrainError::Diverged { f_data, f_samples, sample_abs_mean, .. } = &error;
    assert!(!(f_data.abs() < 50.0 && f_samples.abs() < 50.0 && *sample_abs_mean <= range_limit), "{error}");
    assert!(error.to_string().contains("diverged"), "{error}");
}

#[test]
fn chains_leaving_the_data_range_count_as_divergence() {
    let _turn = device_rng_lock();
    let device = Device::flex();
    let mut config = tiny_config(5);
    // Fresh Uniform[−1, 1] chains already have mean |x| ≈ 0.5: a limit of 0.3 must trip.
    config.sample_range_limit = 0.3;
    let mut trainer = Trainer::new(config, digits(Split::Train, 100, &device), &device).expect("trainer");
    match trainer.step() {
        Err(TrainError::Diverged { iteration: 1, sample_abs_mean, .. }) => assert!(sample_abs_mean > 0.3, "{sample_abs_mean}"),
        other => panic!("expected divergence at iteration 1, got {other:?}"),
    }
    assert_eq!(trainer.iteration, 0);
}

/// Trains a small model on 2000 real MNIST digits and checks, with a metric, that its samples
/// are closer to held-out digits than an untrained model's; then interpolation and
/// reconstruction on that model.
#[test]
fn short_run_learns_real_digits_and_its_tools_work() {
    let _turn = device_rng_lock();
    let device = Device::flex();
    let config = tiny_config(150);
    let held_out = digits(Split::Test, 64, &device);
    let mut trainer = Trainer::new(config, digits(Split::Train, 2000, &device), &device).expect("trainer");
    let untrained = host(trainer.preview(64, 99).expect("preview"));
    for _ in 0..150 {
        trainer.step().expect("training should not diverge");
    }
    let trained = host(trainer.preview(64, 99).expect("preview"));
    let reference = host(held_out.clone());
    let before = pooled_mmd(&untrained, &reference, 1, 16, 16, 2);
    let after = pooled_mmd(&trained, &reference, 1, 16, 16, 2);
    println!("MMD² (8×8-pooled, RBF) to held-out digits: untrained {before:.4}, trained {after:.4}");
    assert!(after < 0.5 * before, "training did not bring samples closer to the data: {before:.4} → {after:.4}");

    let model = trainer.model();
    let config = model.manifest.sampler.langevin[0];
    // Interpolation: ρ = 1 gives M(z₁), ρ = 0 gives M(z₂), everything finite and in a sane range.
    let strip = commands::interpolate(&model, &device, 2, 5, &config, 3).expect("interpolate");
    assert_eq!(strip.dims(), [10, 1, 16, 16]);
    let values = host(strip.clone());
    assert!(values.iter().all(|v| v.is_finite() && v.abs() < 10.0));
    let first = host(strip.clone().narrow(0, 0, 1));
    let last = host(strip.narrow(0, 4, 1));
    assert!(mse(&first, &last) > 1e-3, "the two ends of an interpolation should differ");

    // Reconstruction of held-out digits: the error falls and beats the data-mean baseline.
    let targets = held_out.narrow(0, 0, 8);
    let ad_model = shared::file::Model::from_bytes(&model.to_bytes().expect("save"), &device.clone().autodiff()).expect("load");
    let (stack, polarity) = commands::energy_net(&ad_model).expect("energy net");
    let result = commands::reconstruct(stack, polarity, targets.clone(), &config, 60, 0.1, 5).expect("reconstruct");
    let mean_image = targets.clone().mean_dim(0).expand(targets.dims());
    let baseline = mse(&host(mean_image), &host(targets));
    println!("reconstruction MSE: start {:.4}, end {:.4}, mean-image baseline {baseline:.4}", result.mse[0], result.mse[60]);
    assert!(result.mse[60] < 0.5 * result.mse[0], "reconstruction error did not fall: {:?}", &result.mse[..5]);
    assert!(result.mse[60] < baseline, "reconstruction {:.4} does not beat the mean image {baseline:.4}", result.mse[60]);
}
