//! The runtime's core, natively on the flex backend: the same numbers as the trainer's path,
//! progress and frames, cancellation, inpainting masks, batch limits, MEG sampling (generator
//! and latent-space MALA) and typed errors.

#[path = "support/meg.rs"]
mod meg;

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use burn::prelude::*;
use runtime_wasm::RuntimeError;
use runtime_wasm::backend::{Backend, Preference, select};
use runtime_wasm::job::{Host, MalaOverrides, Progress, Request, Task, check_batch, run};
use shared::file::{DataSpec, Manifest, Model, Normalization, Provenance, SamplerDefaults};
use shared::generate::{GenerateError, Overrides, batch_shape, energy_net, generate, synthesis_start};
use shared::nets::{ModelSpec, ShortRunConfig};
use shared::rng::HostRng;
use shared::sampler::{ChainInit, LangevinConfig};

/// Drives a future to completion; the flex backend never waits, so polling suffices.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::yield_now();
    }
}

fn model(device: &Device) -> Model {
    let manifest = Manifest {
        model: ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(16).with_n_f(4).with_channels(1)),
        data: DataSpec { channels: 1, height: 16, width: 16, range: [-1.0, 1.0], normalization: Normalization::MinusOneToOne },
        sampler: SamplerDefaults { init: ChainInit::Uniform { low: -1.0, high: 1.0 }, langevin: vec![LangevinConfig::short_run(12)], mala: None },
        provenance: Provenance { dataset: "runtime test".into(), iterations: 0, seed: 3, git_revision: None, created_by: "tests".into() },
    };
    Model::init(manifest, device).expect("model")
}

/// Records progress; cancels after `cancel_after` events if set.
#[derive(Default)]
struct Recorder {
    steps: Vec<usize>,
    frames: Vec<(usize, [usize; 4])>,
    acceptance: Vec<Option<f64>>,
    cancel_after: Option<usize>,
    yields: usize,
}

impl Host for Recorder {
    fn cancelled(&self) -> bool {
        self.cancel_after.is_some_and(|n| self.steps.len() >= n)
    }

    fn wants_progress(&self) -> bool {
        true
    }

    fn progress(&mut self, progress: &Progress<'_>) -> Result<(), RuntimeError> {
        assert!(progress.log_density.is_finite());
        assert_eq!(progress.total, 12);
        self.steps.push(progress.step);
        self.acceptance.push(progress.acceptance_rate);
        if let Some(frame) = progress.frame {
            self.frames.push((progress.step, frame.shape));
        }
        Ok(())
    }

    async fn yield_now(&mut self) {
        self.yields += 1;
    }

    fn now_ms(&self) -> f64 {
        0.0
    }
}

fn request(task: Task) -> Request {
    Request { task, seed: 5, overrides: Overrides::default(), mala: MalaOverrides::default(), frame_every: None }
}

#[test]
fn noise_free_synthesis_equals_the_trainers_path() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let overrides = Overrides { noise_free: true, step_size: Some(50.0), ..Overrides::default() };
    let noise_free = Request { overrides, ..request(Task::Synthesis { count: 3, size: None }) };
    let images = block_on(run(&model, &backend, &noise_free, &mut Recorder::default())).expect("run");

    // The trainer's `sample --noise-free`: the same start from the same seed, one long chain.
    let (stack, polarity) = energy_net(&model).expect("energy net");
    let start = synthesis_start(&model, batch_shape(&model, 3), &mut HostRng::new(5), &backend.device).expect("start");
    let config = overrides.apply(model.manifest.sampler.langevin[0]).expect("config");
    let expected = generate(stack, polarity, start.clone(), &config).into_data().try_to_vec::<f32>().expect("f32");
    let start = start.into_data().try_to_vec::<f32>().expect("f32");

    assert_eq!(images.shape, [3, 1, 16, 16]);
    assert_eq!(images.values, expected, "chunked chain must equal one long chain");
    let moved = images.values.iter().zip(&start).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-6, "the chain must move the start (moved {moved})");
    assert_eq!(images.rgba.len(), 3 * 16 * 16 * 4);
    assert!(images.rgba.chunks(4).all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255), "gray replicated, opaque");
}

#[test]
fn progress_reports_every_step_with_frames_on_schedule() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let mut host = Recorder::default();
    let framed = Request { frame_every: Some(5), ..request(Task::Synthesis { count: 2, size: None }) };
    block_on(run(&model, &backend, &framed, &mut host)).expect("run");
    assert_eq!(host.steps, vec![5, 10, 12], "chunks of frame_every steps, the last one short");
    assert_eq!(host.frames, vec![(5, [2, 1, 16, 16]), (10, [2, 1, 16, 16]), (12, [2, 1, 16, 16])]);
    assert_eq!(host.yields, 3, "the event loop gets a turn after every chunk");

    let mut host = Recorder::default();
    block_on(run(&model, &backend, &request(Task::Synthesis { count: 2, size: None }), &mut host)).expect("run");
    assert_eq!(host.steps, (1..=12).collect::<Vec<_>>(), "without frames, progress after every step");
}

#[test]
fn cancellation_stops_between_chunks() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let mut host = Recorder { cancel_after: Some(4), ..Recorder::default() };
    let result = block_on(run(&model, &backend, &request(Task::Synthesis { count: 2, size: None }), &mut host));
    assert!(matches!(result, Err(RuntimeError::Cancelled)), "{result:?}");
    assert_eq!(host.steps, vec![1, 2, 3, 4]);
}

#[test]
fn inpainting_moves_only_missing_pixels() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let mut rng = HostRng::new(11);
    let images: Vec<f32> = (0..2 * 256).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    // A 6×6 hole in each image.
    let missing: Vec<f32> = (0..2 * 256).map(|i| f32::from(u8::from((5..11).contains(&(i % 256 / 16)) && (5..11).contains(&(i % 16))))).collect();
    let task = Task::Inpainting { images: images.clone(), missing: missing.clone(), count: 2, size: None, start_from_image: false };
    let out = block_on(run(&model, &backend, &request(task), &mut Recorder::default())).expect("run");
    let (mut frozen_moved, mut free_moved) = (0, 0);
    for ((a, b), m) in out.values.iter().zip(&images).zip(&missing) {
        match (*m != 0.0, a != b) {
            (false, true) => frozen_moved += 1,
            (true, true) => free_moved += 1,
            _ => {}
        }
    }
    assert_eq!(frozen_moved, 0, "observed pixels must never change");
    assert_eq!(free_moved, 2 * 36, "every missing pixel is re-sampled");

    let wrong = Task::Inpainting { images: vec![0.0; 10], missing: vec![0.0; 10], count: 1, size: None, start_from_image: false };
    let error = block_on(run(&model, &backend, &request(wrong), &mut Recorder::default())).expect_err("wrong size");
    assert!(matches!(error, RuntimeError::Request(GenerateError::Length { expected: 256, found: 10, .. })), "{error}");
    assert_eq!(error.code(), "invalid-request");
    let nan = Task::Inpainting { images: vec![f32::NAN; 256], missing: vec![0.0; 256], count: 1, size: None, start_from_image: false };
    let error = block_on(run(&model, &backend, &request(nan), &mut Recorder::default())).expect_err("NaN");
    assert!(error.to_string().contains("non-finite value at index 0"), "{error}");
}

#[test]
fn batches_beyond_the_buffer_limit_are_refused_with_the_limit() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    // The largest activation of this net is its 4×16×16 first layer (1024 values, 4 KiB).
    check_batch(&model, batch_shape(&model, 10), 40 * 1024).expect("10 images of 4 KiB fit in 40 KiB");
    let error = check_batch(&model, batch_shape(&model, 11), 40 * 1024).expect_err("11 do not");
    assert!(matches!(error, RuntimeError::BatchTooLarge { count: 11, max_count: 10, .. }), "{error}");
    assert!(error.to_string().contains("ask for at most 10"), "{error}");
    assert!(check_batch(&model, batch_shape(&model, 2000), u64::MAX).is_err(), "a hard cap applies whatever the backend");
}

#[test]
fn settings_and_devices_are_validated() {
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let bad = Request { overrides: Overrides { step_size: Some(-1.0), ..Overrides::default() }, ..request(Task::Synthesis { count: 1, size: None }) };
    let error = block_on(run(&model, &backend, &bad, &mut Recorder::default())).expect_err("negative step");
    assert!(error.to_string().contains("step size = -1"), "{error}");
    let error = block_on(run(&model, &backend, &request(Task::Interpolation { pairs: 1, points: 1 }), &mut Recorder::default())).expect_err("one point");
    assert!(error.to_string().contains("two points"), "{error}");
    let error = "gpu".parse::<Preference>().expect_err("unknown device");
    assert_eq!(error.code(), "invalid-option");
    let cpu = block_on(select(Preference::Cpu)).expect("cpu");
    assert_eq!((cpu.info.kind, cpu.info.fallback_reason.as_deref()), ("cpu", None));
}

/// On a machine with a Vulkan adapter (lavapipe in CI), `webgpu` selects it and reports it.
#[test]
fn webgpu_preference_reports_the_adapter() {
    match block_on(select(Preference::WebGpu)) {
        Ok(backend) => {
            let adapter = backend.info.adapter.clone().expect("adapter summary");
            assert_eq!(backend.info.kind, "webgpu");
            assert!(backend.info.max_buffer_bytes >= 128 << 20, "WebGPU guarantees 128 MiB bindings");
            eprintln!("adapter: {adapter:?}");
            backend.check_alive().expect("alive");
        }
        Err(error) => {
            assert_ne!(std::env::var("EBM_REQUIRE_WGPU").as_deref(), Ok("1"), "EBM_REQUIRE_WGPU=1 but: {error}");
            assert_eq!(error.code(), "no-webgpu");
        }
    }
}

fn multigrid_model(device: &Device) -> Model {
    use shared::nets::MultigridConfig;
    let manifest = Manifest {
        model: ModelSpec::Multigrid(MultigridConfig::new().with_width_divisor(16)),
        data: DataSpec { channels: 3, height: 64, width: 64, range: [0.0, 255.0], normalization: Normalization::Raw255 },
        sampler: SamplerDefaults { init: ChainInit::Uniform { low: 0.0, high: 255.0 }, langevin: vec![LangevinConfig::delta(3, 0.3, 50.0); 3], mala: None },
        provenance: Provenance { dataset: "runtime test".into(), iterations: 0, seed: 3, git_revision: None, created_by: "tests".into() },
    };
    let mut model = Model::init(manifest, device).expect("multigrid model");
    let name = shared::generate::START_COLORS.to_string();
    let colors = modelfile::NamedTensor { name: name.clone(), shape: vec![2, 3], values: vec![10.0, 20.0, 30.0, 10.0, 20.0, 30.0] };
    model.extras.insert(name, colors);
    model
}

#[test]
fn cascade_runs_every_grid_from_the_start_colours() {
    let backend = Backend::cpu(None);
    let model = multigrid_model(&backend.device);
    // Without steps the cascade only up-scales: every pixel is the 1×1 start colour.
    let still = Request { overrides: Overrides { steps: Some(0), ..Overrides::default() }, ..request(Task::Cascade { count: 2 }) };
    let out = block_on(run(&model, &backend, &still, &mut Recorder::default())).expect("cascade");
    assert_eq!(out.shape, [2, 3, 64, 64]);
    for (channel, colour) in [10.0, 20.0, 30.0].into_iter().enumerate() {
        let plane = &out.values[channel * 4096..(channel + 1) * 4096];
        assert!(plane.iter().all(|&v| v == colour), "channel {channel} must be {colour}");
    }

    #[derive(Default)]
    struct Frames(Vec<(usize, usize, usize)>);
    impl Host for Frames {
        fn cancelled(&self) -> bool {
            false
        }
        fn wants_progress(&self) -> bool {
            true
        }
        fn progress(&mut self, p: &Progress<'_>) -> Result<(), RuntimeError> {
            self.0.push((p.step, p.total, p.frame.map_or(0, |f| f.shape[2])));
            Ok(())
        }
        async fn yield_now(&mut self) {}
        fn now_ms(&self) -> f64 {
            0.0
        }
    }
    let mut frames = Frames::default();
    let moving = Request { frame_every: Some(3), ..request(Task::Cascade { count: 2 }) };
    let out = block_on(run(&model, &backend, &moving, &mut frames)).expect("cascade");
    assert_eq!(frames.0, vec![(3, 9, 4), (6, 9, 16), (9, 9, 64)], "3 steps per grid, frames at each grid's size");
    assert!(out.values.iter().any(|&v| (v - 10.0).abs() > 0.1), "the chains moved away from the start");

    // "sample" on a multigrid model is the cascade too; interpolation is a typed refusal.
    let sampled = block_on(run(&model, &backend, &request(Task::Synthesis { count: 2, size: None }), &mut Frames::default())).expect("sample");
    assert_eq!(sampled.shape, [2, 3, 64, 64]);
    let error = block_on(run(&model, &backend, &request(Task::Interpolation { pairs: 1, points: 4 }), &mut Frames::default())).expect_err("interpolation");
    assert!(matches!(error, RuntimeError::Request(GenerateError::Unsupported { task: "interpolation", family: "multigrid" })), "{error}");
    assert_eq!(error.code(), "invalid-request");
}

/// A multigrid model inpaints through its cascade: the known pixels' mean colour at 1×1, known
/// pixels imposed and frozen at every grid; progress counts all grids' steps.
#[test]
fn multigrid_inpainting_runs_the_cascade_and_keeps_known_pixels() {
    let backend = Backend::cpu(None);
    let model = multigrid_model(&backend.device);
    let mut rng = HostRng::new(5);
    let images: Vec<f32> = (0..3 * 4096).map(|_| rng.uniform(0.0, 255.0) as f32).collect();
    // A 20×20 hole at (30, 10), in every channel.
    let missing: Vec<f32> = (0..3 * 4096).map(|i| f32::from(u8::from((30..50).contains(&(i % 4096 / 64)) && (10..30).contains(&(i % 64))))).collect();
    let task = Task::Inpainting { images: images.clone(), missing: missing.clone(), count: 1, size: None, start_from_image: false };
    let mut steps = Vec::new();
    struct Steps<'a>(&'a mut Vec<(usize, usize)>);
    impl Host for Steps<'_> {
        fn cancelled(&self) -> bool {
            false
        }
        fn wants_progress(&self) -> bool {
            true
        }
        fn progress(&mut self, p: &Progress<'_>) -> Result<(), RuntimeError> {
            self.0.push((p.step, p.total));
            Ok(())
        }
        async fn yield_now(&mut self) {}
        fn now_ms(&self) -> f64 {
            0.0
        }
    }
    let out = block_on(run(&model, &backend, &request(task), &mut Steps(&mut steps))).expect("inpainting");
    assert_eq!(out.shape, [1, 3, 64, 64]);
    assert_eq!(steps.last(), Some(&(9, 9)), "three grids of 3 steps");
    let (mut known_moved, mut missing_moved) = (0, 0);
    for ((a, b), m) in out.values.iter().zip(&images).zip(&missing) {
        match (*m != 0.0, a.to_bits() != b.to_bits()) {
            (false, true) => known_moved += 1,
            (true, true) => missing_moved += 1,
            _ => {}
        }
    }
    assert_eq!(known_moved, 0, "known pixels must never change");
    assert_eq!(missing_moved, 3 * 400, "every missing pixel is sampled");
    // Filled from the known pixels' mean colour (about 127.5), not from the start colours (10–30).
    let filled: f32 = out.values.iter().zip(&missing).filter(|(_, m)| **m != 0.0).map(|(v, _)| *v).sum::<f32>() / 1200.0;
    assert!((filled - 127.5).abs() < 20.0, "hole mean {filled}");
    let wrong = Task::Inpainting { images: vec![0.0; 10], missing: vec![0.0; 10], count: 1, size: None, start_from_image: false };
    let error = block_on(run(&model, &backend, &request(wrong), &mut Steps(&mut Vec::new()))).expect_err("wrong size");
    assert!(matches!(error, RuntimeError::Request(GenerateError::Length { expected: 12288, found: 10, .. })), "{error}");
}

/// Nobody watches progress: chunks double while the device answers quickly and halve when a
/// chunk takes too long, so cancellation stays prompt on slow adapters.
#[test]
fn quiet_chunks_adapt_to_the_device_speed() {
    use std::cell::Cell;
    struct Quiet {
        clock: Cell<f64>,
        tick_ms: f64,
        yields: usize,
    }
    impl Host for Quiet {
        fn cancelled(&self) -> bool {
            false
        }
        fn wants_progress(&self) -> bool {
            false
        }
        fn progress(&mut self, _: &Progress<'_>) -> Result<(), RuntimeError> {
            unreachable!("nobody listens")
        }
        async fn yield_now(&mut self) {
            self.yields += 1;
        }
        fn now_ms(&self) -> f64 {
            // Every reading advances the clock: one chunk takes `tick_ms`.
            self.clock.set(self.clock.get() + self.tick_ms);
            self.clock.get()
        }
    }
    let backend = Backend::cpu(None);
    let model = model(&backend.device);
    let mut fast = Quiet { clock: Cell::new(0.0), tick_ms: 1.0, yields: 0 };
    block_on(run(&model, &backend, &request(Task::Synthesis { count: 1, size: None }), &mut fast)).expect("run");
    assert_eq!(fast.yields, 4, "12 steps in chunks of 1, 2, 4 and the last 5");
    let mut slow = Quiet { clock: Cell::new(0.0), tick_ms: 500.0, yields: 0 };
    block_on(run(&model, &backend, &request(Task::Synthesis { count: 1, size: None }), &mut slow)).expect("run");
    assert_eq!(slow.yields, 12, "a slow device keeps one step per chunk");
}

fn frame_model(device: &Device, kind: shared::nets::FrameKind) -> Model {
    use shared::nets::FrameNetConfig;
    let config = FrameNetConfig::new().with_kind(kind).with_image_size(24).with_layers(2).with_width_divisor(10);
    let manifest = Manifest {
        model: ModelSpec::Frame(config),
        data: DataSpec { channels: 3, height: 24, width: 24, range: [-128.0, 128.0], normalization: Normalization::MeanSubtracted { mean: vec![120.0, 110.0, 100.0] } },
        sampler: SamplerDefaults { init: ChainInit::Zeros, langevin: vec![LangevinConfig::delta(12, 0.3, 1.0)], mala: None },
        provenance: Provenance { dataset: "runtime test".into(), iterations: 0, seed: 3, git_revision: None, created_by: "tests".into() },
    };
    Model::init(manifest, device).expect("FRAME model")
}

/// A texture net (convolutional only) samples canvases of any size; an object net (dense top)
/// and empty canvases are refused with the reason.
#[test]
fn texture_models_sample_canvases_larger_than_their_training_image() {
    use shared::nets::FrameKind;
    let backend = Backend::cpu(None);
    let texture = frame_model(&backend.device, FrameKind::Texture);
    let wide = Task::Synthesis { count: 1, size: Some([48, 72]) };
    let out = block_on(run(&texture, &backend, &request(wide), &mut Recorder::default())).expect("large canvas");
    assert_eq!(out.shape, [1, 3, 48, 72]);
    assert_eq!(out.rgba.len(), 48 * 72 * 4);
    assert!(out.values.iter().any(|&v| v != 0.0), "the chain moved from its zero start");

    let empty = Task::Synthesis { count: 1, size: Some([0, 8]) };
    let error = block_on(run(&texture, &backend, &request(empty), &mut Recorder::default())).expect_err("empty");
    assert!(error.to_string().contains("0×8 canvas does not fit"), "{error}");

    let object = frame_model(&backend.device, FrameKind::Object);
    let error = block_on(run(&object, &backend, &request(Task::Synthesis { count: 1, size: Some([48, 48]) }), &mut Recorder::default())).expect_err("dense");
    assert!(error.to_string().contains("dense layer"), "{error}");
    // The batch limit follows the canvas: the largest tensor is the 3×24×24 input (the first
    // layer's 10×8×8 output is smaller), so a 96×96 canvas needs 16 times the buffer.
    let limit = 3 * 24 * 24 * 4 * 16;
    check_batch(&texture, [16, 3, 24, 24], limit).expect("16 training-size images fit");
    check_batch(&texture, [1, 3, 96, 96], limit).expect("one 96×96 canvas fits");
    assert!(check_batch(&texture, [17, 3, 24, 24], limit).is_err());
    assert!(check_batch(&texture, [2, 3, 96, 96], limit).is_err());
}

/// Extending a texture: an inpainting task on a canvas wider than the training image, with the
/// known strip frozen. The known pixels come back unchanged, the new ones are sampled, and the
/// pictures show the subtracted mean added back.
#[test]
fn texture_extension_keeps_the_known_strip_and_shows_the_mean() {
    use shared::nets::FrameKind;
    let backend = Backend::cpu(None);
    let texture = frame_model(&backend.device, FrameKind::Texture);
    let (height, width, known) = (24, 40, 16);
    let plane = height * width;
    let mut rng = HostRng::new(3);
    let images: Vec<f32> = (0..3 * plane).map(|i| if i % width < known { rng.uniform(-60.0, 60.0) as f32 } else { 0.0 }).collect();
    let missing: Vec<f32> = (0..3 * plane).map(|i| f32::from(u8::from(i % width >= known))).collect();
    let task = Task::Inpainting { images: images.clone(), missing, count: 1, size: Some([height, width]), start_from_image: false };
    let out = block_on(run(&texture, &backend, &request(task), &mut Recorder::default())).expect("extension");
    assert_eq!(out.shape, [1, 3, height, width]);
    let known_changed = (0..3 * plane).filter(|i| i % width < known && out.values[*i] != images[*i]).count();
    let new_moved = (0..3 * plane).filter(|i| i % width >= known && out.values[*i] != 0.0).count();
    assert_eq!(known_changed, 0, "the known strip is frozen");
    assert_eq!(new_moved, 3 * height * (width - known), "every new pixel is sampled");
    // Pixel (0, 0): model value v in channel c shows as v + mean[c], clamped to 0..255.
    for (c, mean) in [120.0f32, 110.0, 100.0].into_iter().enumerate() {
        let expected = (out.values[c * plane] + mean).round().clamp(0.0, 255.0) as u8;
        assert_eq!(out.rgba[c], expected, "channel {c} shown with its mean");
    }
    // Seeded with a tile: the free pixels start from the given values (here 400), not from the
    // model's zero start, and 12 steps of δ = 0.3 only pull them part of the way back.
    let seeded: Vec<f32> = (0..3 * plane).map(|i| if i % width < known { images[i] } else { 400.0 }).collect();
    let missing: Vec<f32> = (0..3 * plane).map(|i| f32::from(u8::from(i % width >= known))).collect();
    let mean_new = |values: &[f32]| (0..3 * plane).filter(|i| i % width >= known).map(|i| values[i]).sum::<f32>() / (3 * height * (width - known)) as f32;
    for (start_from_image, low, high) in [(true, 100.0, 400.0), (false, -50.0, 50.0)] {
        let task = Task::Inpainting { images: seeded.clone(), missing: missing.clone(), count: 1, size: Some([height, width]), start_from_image };
        let out = block_on(run(&texture, &backend, &request(task), &mut Recorder::default())).expect("seeded extension");
        let mean = mean_new(&out.values);
        assert!(mean > low && mean < high, "start_from_image {start_from_image}: new pixels' mean {mean}");
    }
    let wrong = Task::Inpainting { images: vec![0.0; 3 * plane], missing: vec![1.0; 3 * plane], count: 1, size: Some([height, width + 1]), start_from_image: false };
    let error = block_on(run(&texture, &backend, &request(wrong), &mut Recorder::default())).expect_err("length");
    assert!(matches!(error, RuntimeError::Request(GenerateError::Length { .. })), "{error}");
}

fn meg_request(count: usize, mala: MalaOverrides) -> Request {
    Request { mala, ..request(Task::Synthesis { count, size: None }) }
}

fn mala_steps(steps: usize) -> MalaOverrides {
    MalaOverrides { steps: Some(steps), ..MalaOverrides::default() }
}

/// A MEG model samples `G(z)` from the seed's codes, refined by MALA on `E(G(z))` one chunk at
/// a time: the chunked chain is the one `latent_samples` (the trainer's `meg sample`) runs in
/// one call, whatever the chunks, and reports its acceptance rate.
#[test]
fn meg_samples_are_generator_images_refined_by_latent_mala() {
    let backend = Backend::cpu(None);
    let model = meg::meg_model(&backend.device, 17);
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
    let info = runtime_wasm::model_info(&model);
    assert_eq!((info["family"].as_str(), info["defaults"]["malaSteps"].as_u64(), info["defaults"]["temperature"].as_f64()), (Some("meg"), Some(meg::MALA_STEPS as u64), Some(meg::TEMPERATURE)));
    assert!(info["defaults"]["steps"].is_null() && info["anySize"] == false, "Langevin settings and canvases do not apply: {info}");

    // No MALA steps: exactly the generator's images of the seed's codes, no acceptance rate.
    let mut host = Recorder::default();
    let plain = block_on(run(&model, &backend, &meg_request(3, mala_steps(0)), &mut host)).expect("generator alone");
    let direct = shared::generate::latent_samples(&model, 3, None, &mut HostRng::new(5), &backend.device).expect("G(z)");
    assert_eq!(plain.shape, [3, 1, 28, 28]);
    assert_eq!(plain.values, values(direct.images), "0 MALA steps is G(z)");
    assert!(plain.values.iter().all(|v| (-1.0..=1.0).contains(v)), "tanh output in [−1, 1]");
    assert_eq!((plain.acceptance_rate, host.steps.len()), (None, 0));
    assert_eq!(plain.rgba.len(), 3 * 28 * 28 * 4);

    // The model's 12 MALA steps, progress after every step.
    let mut host = Recorder::default();
    let refined = block_on(run(&model, &backend, &meg_request(3, MalaOverrides::default()), &mut host)).expect("MALA");
    let config = MalaOverrides::default().apply(&model).expect("defaults");
    let one_call = shared::generate::latent_samples(&model, 3, Some(&config), &mut HostRng::new(5), &backend.device).expect("one call");
    let one_call_rate = f64::from(one_call.acceptance_rate.expect("rate").into_data().try_to_vec::<f32>().expect("f32")[0]);
    let rate = refined.acceptance_rate.expect("MALA reports its acceptance rate");
    eprintln!("MEG: 3 chains, 12 MALA steps (α 0.01, β {}): acceptance rate {rate:.3}; progress {:?}", meg::TEMPERATURE, host.acceptance);
    assert_eq!(refined.values, values(one_call.images), "the chunked chain equals one call of latent_samples");
    assert!((rate - one_call_rate).abs() < 1e-6, "rate {rate} vs one call's {one_call_rate}");
    assert!(rate > 0.0 && rate < 1.0, "this model's energy rejects some proposals and accepts others: rate {rate}");
    assert_eq!(host.steps, (1..=12).collect::<Vec<_>>(), "progress after every MALA step");
    assert!(host.acceptance.iter().all(|r| r.is_some_and(|r| (0.0..=1.0).contains(&r))), "{:?}", host.acceptance);
    assert_eq!(*host.acceptance.last().expect("events"), Some(rate), "the last event's running rate is the result's");
    assert!(refined.values.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_ne!(refined.values, plain.values, "accepted proposals move the codes");

    // The same seed in other chunks (frames every 5 steps: 5, 5, 2) gives the same chain; another seed another.
    let mut host = Recorder::default();
    let framed = Request { frame_every: Some(5), ..meg_request(3, MalaOverrides::default()) };
    let again = block_on(run(&model, &backend, &framed, &mut host)).expect("again");
    assert_eq!((again.values == refined.values, again.acceptance_rate), (true, Some(rate)), "same seed, same images and rate");
    assert_eq!(host.frames, vec![(5, [3, 1, 28, 28]), (10, [3, 1, 28, 28]), (12, [3, 1, 28, 28])]);
    let other = block_on(run(&model, &backend, &Request { seed: 6, ..meg_request(3, MalaOverrides::default()) }, &mut Recorder::default())).expect("seed 6");
    assert_ne!(other.values, refined.values);

    // Cancellation between MALA chunks.
    let mut host = Recorder { cancel_after: Some(4), ..Recorder::default() };
    let result = block_on(run(&model, &backend, &meg_request(2, MalaOverrides::default()), &mut host));
    assert!(matches!(result, Err(RuntimeError::Cancelled)), "{result:?}");
    assert_eq!(host.steps, vec![1, 2, 3, 4]);
}

/// Bad MALA settings, tasks a MEG model does not do, Langevin settings on a MEG model and MALA
/// settings on another family are typed errors naming the problem.
#[test]
fn meg_requests_that_do_not_apply_are_typed_errors() {
    let backend = Backend::cpu(None);
    let model = meg::meg_model(&backend.device, 17);
    let error_of = |model: &Model, request: Request| block_on(run(model, &backend, &request, &mut Recorder::default())).expect_err("must fail");
    let bad_settings = [
        (MalaOverrides { temperature: Some(0.0), ..MalaOverrides::default() }, "mala temperature = 0"),
        (MalaOverrides { temperature: Some(f64::NAN), ..MalaOverrides::default() }, "mala temperature = NaN"),
        (MalaOverrides { step_size: Some(-1.0), ..MalaOverrides::default() }, "mala step size = -1"),
        (mala_steps(shared::generate::MAX_MALA_STEPS + 1), "mala steps = 10001"),
    ];
    for (mala, expected) in bad_settings {
        let error = error_of(&model, meg_request(2, mala));
        assert!(matches!(error, RuntimeError::Request(GenerateError::Setting { .. })) && error.to_string().contains(expected), "{error}");
        assert_eq!(error.code(), "invalid-request");
    }
    let unsupported = [
        (Task::Interpolation { pairs: 1, points: 4 }, "interpolation"),
        (Task::Cascade { count: 2 }, "the multigrid cascade"),
        (Task::Synthesis { count: 1, size: Some([56, 56]) }, "a canvas size other than the training size"),
        (Task::Inpainting { images: vec![0.0; 784], missing: vec![1.0; 784], count: 1, size: None, start_from_image: false }, "inpainting"),
    ];
    for (task, name) in unsupported {
        let error = error_of(&model, request(task));
        assert!(matches!(error, RuntimeError::Request(GenerateError::Unsupported { task, family: "meg" }) if task == name), "{error}");
        assert_eq!(error.code(), "invalid-request");
    }
    let langevin = Request { overrides: Overrides { steps: Some(3), ..Overrides::default() }, ..meg_request(1, MalaOverrides::default()) };
    let error = error_of(&model, langevin);
    assert!(error.to_string().contains("Langevin setting") && error.to_string().contains("use malaSteps"), "{error}");
    let error = error_of(&model, meg_request(0, MalaOverrides::default()));
    assert!(matches!(error, RuntimeError::Request(GenerateError::NoImages)), "{error}");
    let error = error_of(&model, Request { frame_every: Some(0), ..meg_request(1, MalaOverrides::default()) });
    assert!(error.to_string().contains("frame interval"), "{error}");
    let short_run = self::model(&backend.device);
    let error = error_of(&short_run, meg_request(1, mala_steps(3)));
    assert!(matches!(error, RuntimeError::Request(GenerateError::Unsupported { family: "short_run", .. })), "{error}");
}
