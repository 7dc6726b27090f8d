//! Multigrid learning, its baselines and inpainting on the bundled MNIST digits at 64×64.

use burn::prelude::*;
use shared::generate::Overrides;
use shared::rng::HostRng;
use shared::sampler::downscale;
use trainer::data::{self, LoadOptions, Split};
use trainer::multigrid::{self, MaskKind, Method, MultigridTrainConfig, MultigridTrainError, MultigridTrainer};
use trainer::shortrun::{DataSource, host_values};

/// The first `count` bundled digits of `split` at 64×64, 0–255.
fn digits64(split: Split, count: usize, device: &Device) -> Tensor<4> {
    let set = data::open(&crate::mnist_mini(), &LoadOptions { limit: Some(count), class: None, split }).expect("bundled MNIST").resize(64, 1).expect("resize");
    multigrid::images_tensor(&set, device).expect("64×64 images")
}

/// Nets at 1/16 of the paper's widths, batch 4, 3 steps per grid.
fn small_config(method: Method) -> MultigridTrainConfig {
    let mut config = MultigridTrainConfig::paper(method, 1, DataSource::new(crate::mnist_mini()));
    config.net.width_divisor = 16;
    config.batch_size = 4;
    config.epochs = 1;
    config.langevin.steps = 3;
    config.baseline_steps = 9;
    config.seed = 3;
    config
}

fn parameters(trainer: &MultigridTrainer) -> Vec<f32> {
    trainer.nets.iter().flat_map(|net| net.parameters().into_iter().flat_map(|(_, _, values)| host_values(values.inner()).expect("values"))).collect()
}

fn training_step_runs_every_grid(device: &Device) {
    let _lock = crate::device_rng_lock();
    let images = digits64(Split::Train, 8, device);
    let mut trainer = MultigridTrainer::new(small_config(Method::Multigrid), images.clone(), device).expect("trainer");
    assert_eq!(trainer.total_iterations(), 2, "8 images in batches of 4");
    let (metrics, synthesised) = trainer.step().expect("step");
    let dims: Vec<_> = synthesised.iter().map(|s| s.dims()).collect();
    assert_eq!(dims, vec![[4, 1, 4, 4], [4, 1, 16, 16], [4, 1, 64, 64]]);
    assert_eq!(metrics.f_observed.len(), 3);
    assert!(metrics.f_observed.iter().chain(&metrics.f_synthesised).all(|f| f.is_finite()));
    // Every chain starts at its training image's mean colour: a few small steps later the
    // 4×4 synthesis still has (nearly) that mean.
    let colours = host_values(downscale(images.narrow(0, 0, 4), 64)).expect("means");
    let synthesised_means = host_values(downscale(synthesised[0].clone(), 4)).expect("means");
    for (a, b) in colours.iter().zip(&synthesised_means) {
        assert!((a - b).abs() < 3.0, "4×4 synthesis mean {b} vs the image's 1×1 version {a}");
    }
    // The model records every grid's chain and the training images' 1×1 versions.
    let model = trainer.model().expect("model");
    assert_eq!(model.stacks.len(), 3);
    assert_eq!(model.manifest.sampler.langevin.iter().map(|l| l.steps).collect::<Vec<_>>(), vec![3, 3, 3]);
    assert_eq!(model.extras[shared::generate::START_COLORS].shape, vec![8, 1]);
    let outputs = multigrid::synthesise(&model, 3, true, &Overrides::default(), 1, device).expect("sample");
    assert_eq!(outputs.iter().map(|o| o.dims()[2]).collect::<Vec<_>>(), vec![4, 16, 64]);
}

#[test]
fn training_step_runs_every_grid_on_flex() {
    training_step_runs_every_grid(&Device::flex());
}

#[test]
fn training_step_runs_every_grid_on_wgpu() {
    if let Some(device) = crate::wgpu() {
        training_step_runs_every_grid(&device);
    }
}

/// Tape-free steps (BatchNorm between the convolutions, so data and samples get a traced pass
/// each) move every grid's net as autodiff steps do under the lab update.
#[test]
fn tape_free_steps_match_autodiff_steps() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let images = digits64(Split::Train, 8, &device);
    let mut explicit = MultigridTrainer::new(small_config(Method::Multigrid), images.clone(), &device).expect("trainer");
    assert!(explicit.nets.iter().all(|net| net.valid().has_explicit_parameter_gradients()), "flex nets take the tape-free path");
    let mut tape = MultigridTrainer::new(small_config(Method::Multigrid), images, &device).expect("trainer");
    tape.explicit_gradients = false;
    let start = parameters(&explicit);
    for _ in 0..2 {
        let ((ours, _), (reference, _)) = (explicit.step().expect("step"), tape.step().expect("step"));
        for (a, b) in ours.f_observed.iter().chain(&ours.f_synthesised).zip(reference.f_observed.iter().chain(&reference.f_synthesised)) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "iteration {}: f {a} vs {b}", ours.iteration);
        }
    }
    let moved = |trainer: &MultigridTrainer| -> Vec<f32> { parameters(trainer).iter().zip(&start).map(|(now, then)| now - then).collect() };
    let error = crate::relative_difference(&moved(&explicit), &moved(&tape));
    assert!(error < 1e-3, "updates differ by {error:.2e} (relative)");
}

/// The baselines learn the 64×64 net alone with their own chains.
#[test]
fn baselines_use_the_finest_net_with_their_chains() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let images = digits64(Split::Train, 8, &device);
    let observed = host_values(images.clone().narrow(0, 0, 4)).expect("values");
    let distance = |s: &Tensor<4>| {
        let values = host_values(s.clone()).expect("values");
        values.iter().zip(&observed).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / values.len() as f64
    };
    for method in [Method::SingleGrid, Method::ContrastiveDivergence, Method::PersistentCd] {
        let mut trainer = MultigridTrainer::new(small_config(method), images.clone(), &device).expect("trainer");
        let (_, synthesised) = trainer.step().expect("step");
        assert_eq!(synthesised.len(), 1, "{method:?}");
        assert_eq!(synthesised[0].dims(), [4, 1, 64, 64]);
        let model = trainer.model().expect("model");
        assert_eq!(model.stacks.len(), 1);
        assert_eq!(model.manifest.sampler.langevin[0].steps, 9, "{method:?} samples with the 3-grid budget");
        let moved = distance(&synthesised[0]);
        match method {
            // One step of δ = 0.3 from the data moves pixels by about the noise, 0.3.
            Method::ContrastiveDivergence => assert!(moved < 1.0, "CD-1 moved {moved}"),
            // From the data too, 9 steps: about 3·0.3.
            Method::PersistentCd => assert!(moved < 3.0, "PCD moved {moved}"),
            // From the flat 1×1 colour: as far from the digits as that colour is.
            _ => assert!(moved > 30.0, "single grid is {moved} from the data"),
        }
    }
}

/// Conditional learning: only the hole's pixels move at the finest grid; the rest is the data.
#[test]
fn conditional_learning_moves_only_the_hole() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let images = digits64(Split::Train, 4, &device);
    for method in [Method::Multigrid, Method::PersistentCd] {
        let mut config = small_config(method);
        config.inpainting_hole = Some(16);
        let mut trainer = MultigridTrainer::new(config, images.clone(), &device).expect("trainer");
        let (_, synthesised) = trainer.step().expect("step");
        let got = host_values(synthesised.last().expect("finest").clone()).expect("values");
        let want = host_values(images.clone()).expect("values");
        for image in 0..4 {
            let plane = &got[image * 4096..(image + 1) * 4096];
            let changed = plane.iter().zip(&want[image * 4096..]).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert!(changed > 200 && changed <= 256, "{method:?}: image {image} has {changed} changed pixels, the hole 256");
        }
    }
}

#[test]
fn resumed_training_repeats_the_uninterrupted_run() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let images = digits64(Split::Train, 8, &device);
    for method in [Method::Multigrid, Method::PersistentCd] {
        let mut config = small_config(method);
        config.epochs = 2;
        config.inpainting_hole = Some(20);
        let mut straight = MultigridTrainer::new(config.clone(), images.clone(), &device).expect("trainer");
        let mut first = MultigridTrainer::new(config, images.clone(), &device).expect("trainer");
        for _ in 0..2 {
            straight.step().expect("step");
            first.step().expect("step");
        }
        let bytes = first.checkpoint().expect("checkpoint");
        drop(first);
        let mut resumed = MultigridTrainer::from_checkpoint(&bytes, images.clone(), &device).expect("resume");
        assert_eq!(resumed.iteration, 2);
        for _ in 0..2 {
            let (a, _) = straight.step().expect("step");
            let (b, _) = resumed.step().expect("step");
            assert_eq!(a, b, "{method:?}: metrics after resuming");
        }
        assert_eq!(parameters(&straight), parameters(&resumed), "{method:?}: weights after resuming");
    }
}

#[test]
fn divergence_is_reported_and_nothing_is_updated() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let mut config = small_config(Method::Multigrid);
    // Any |f| per pixel counts as divergence now.
    config.divergence_threshold = 1e-12;
    let mut trainer = MultigridTrainer::new(config, digits64(Split::Train, 4, &device), &device).expect("trainer");
    let before = parameters(&trainer);
    match trainer.step() {
        Err(MultigridTrainError::Diverged { iteration: 1, side: 4, .. }) => {}
        other => panic!("expected divergence at grid 4, got {:?}", other.map(|(m, _)| m)),
    }
    assert_eq!(trainer.iteration, 0);
    assert_eq!(parameters(&trainer), before, "no net may change on a diverged step");
}

#[test]
fn learning_rate_decays_over_80_log_plateaus() {
    let mut config = small_config(Method::Multigrid);
    config.epochs = 160;
    assert_eq!(config.lr_factor(0), 1.0);
    assert_eq!(config.lr_factor(1), 1.0, "each plateau lasts 160/80 = 2 epochs");
    assert!((config.lr_factor(2) - 10f64.powf(-2.0 / 79.0)).abs() < 1e-12);
    assert!((config.lr_factor(158) - 0.01).abs() < 1e-12);
    assert!((config.lr_factor(10_000) - 0.01).abs() < 1e-12, "stays at 0.01 after the schedule");
    config.lr_decay = false;
    assert_eq!(config.lr_factor(100), 1.0);
}

#[test]
fn test_masks_have_their_documented_sizes() {
    let mut rng = HostRng::new(4);
    let fraction = |masks: &[Vec<bool>]| masks.iter().flatten().filter(|m| **m).count() as f64 / (masks.len() * 4096) as f64;
    let squares = multigrid::test_masks(MaskKind::Square { side: 32 }, 20, &mut rng);
    assert!(squares.iter().all(|m| m.iter().filter(|v| **v).count() == 1024));
    // Squares sit at different places.
    assert_ne!(squares[0], squares[1]);
    let doodles = multigrid::test_masks(MaskKind::Doodle { fraction: 0.25 }, 20, &mut rng);
    assert!((0.25..0.30).contains(&fraction(&doodles)), "doodle fraction {}", fraction(&doodles));
    let pepper = multigrid::test_masks(MaskKind::PepperSalt { fraction: 0.3 }, 20, &mut rng);
    assert!((fraction(&pepper) - 0.3).abs() < 0.01, "pepper-and-salt fraction {}", fraction(&pepper));
}

/// A short conditional training run lowers the inpainting error of held-out ankle boots
/// (bundled Fashion-MNIST subset) against the untrained model: same masks, same chains.
#[test]
fn short_training_lowers_the_inpainting_error() {
    let _lock = crate::device_rng_lock();
    let device = Device::flex();
    let boots = |split, count| {
        let set = data::open(&crate::fashion_boots(), &LoadOptions { limit: Some(count), class: None, split }).expect("bundled boots").resize(64, 1).expect("resize");
        multigrid::images_tensor(&set, &device).expect("64×64 images")
    };
    let mut config = MultigridTrainConfig::paper(Method::Multigrid, 1, DataSource::new(crate::fashion_boots()));
    config.net.width_divisor = 8;
    config.batch_size = 20;
    config.epochs = 6;
    config.inpainting_hole = Some(32);
    config.seed = 3;
    let mut trainer = MultigridTrainer::new(config, boots(Split::Train, 200), &device).expect("trainer");
    let held_out = boots(Split::Test, 20);
    let kind = MaskKind::Square { side: 32 };
    let score = |trainer: &MultigridTrainer| multigrid::score_inpainting(&trainer.model().expect("model"), &held_out, kind, &Overrides::default(), 9, 20).expect("inpaint").0;
    let untrained = score(&trainer);
    while trainer.iteration < trainer.total_iterations() {
        trainer.step().expect("step");
    }
    let trained = score(&trainer);
    eprintln!("inpainting error untrained {:.4} → trained {:.4}; PSNR {:.2} → {:.2} dB", untrained.error, trained.error, untrained.psnr, trained.psnr);
    // Measured on flex: 0.2360 → 0.1941, 10.39 → 12.12 dB after 60 iterations.
    assert!(trained.error < 0.9 * untrained.error, "error {:.4} → {:.4}", untrained.error, trained.error);
    assert!(trained.psnr > untrained.psnr + 1.0, "PSNR {:.2} → {:.2}", untrained.psnr, trained.psnr);
}
