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

/// `net` with every parameter's values passed through `edit(name, values)`.
fn edited(net: &Stack, mut edit: impl FnMut(&str, &mut Vec<f32>)) -> Stack {
    net.clone()
        .load_parameters(|name, shape| -> Result<Tensor<1>, ()> {
            let values = net.parameters().into_iter().find(|(n, ..)| n == name).map(|(.., v)| v).expect("parameter");
            let mut host = host_values(values).expect("read");
            edit(name, &mut host);
            Ok(Tensor::from_data(TensorData::new(host, [shape.iter().product::<usize>()]), &net.device()))
        })
        .expect("load")
}

/// The first layer's weights with entry `index` moved by `delta`.
fn nudged(net: &Stack, index: usize, delta: f32) -> Stack {
    edited(net, |name, values| {
        if name == "0.weight" {
            values[index] += delta;
        }
    })
}

/// ∂penalty/∂θ through the explicit input-gradient under autodiff, against central differences
/// of the penalty itself (exact up to rounding: the penalty of a piecewise-linear net is
/// quadratic in each weight while no activation flips).
fn penalty_gradient_matches_finite_differences(device: &Device, config: MegConfig, form: PenaltyForm) {
    let autodiff = device.clone().autodiff();
    autodiff.seed(5);
    // Weights ×3 per layer: at the DCGAN initialisation of narrow nets the penalty is ~1e-9,
    // below what f32 finite differences resolve.
    let net = edited(&energy_net(&config, &autodiff), |name, values| {
        if name.ends_with("weight") {
            values.iter_mut().for_each(|v| *v *= 3.0);
        }
    });
    let [c, h, w] = config.data_shape();
    let x = Tensor::<4>::random([4, c, h, w], Distribution::Uniform(-1.0, 1.0), &device.clone().inner());
    let (_, penalty) = meg::energy_and_penalty(&net, Tensor::from_inner(x.clone()), form);
    let grads = penalty.backward();
    let analytic = host_values(collect_gradients(&net, &grads)[0].clone().expect("first weight has a gradient")).expect("read");
    let plain = net.valid();
    let scale = analytic.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "the penalty has no gradient");
    // A weight moved by ε can flip a LeakyReLU unit somewhere in the batch, which breaks the
    // finite difference of that entry (not the gradient): most entries must agree, not all.
    let mut rng = HostRng::new(3);
    let mut report = Vec::new();
    let mut agree = 0;
    for _ in 0..12 {
        let index = rng.below(analytic.len());
        let eps = 1e-4;
        let numeric = (penalty_value(&nudged(&plain, index, eps), &x, form) - penalty_value(&nudged(&plain, index, -eps), &x, form)) / (2.0 * f64::from(eps));
        let error = (numeric - f64::from(analytic[index])).abs();
        agree += usize::from(error <= 0.02 * f64::from(scale) + 1e-6);
        report.push(format!("{index}: {} vs {numeric:.6}", analytic[index]));
    }
    assert!(agree >= 10, "{config:?} {form:?}: {agree}/12 entries agree (largest |gradient| {scale}): autodiff vs finite differences {report:?}");
}

#[test]
fn gradient_penalty_gradient_matches_finite_differences_on_flex() {
    // These seed or draw from burn's process-wide device generator: take turns with the
    // bit-for-bit resume tests.
    let _lock = device_rng_lock();
    let flex = Device::flex();
    penalty_gradient_matches_finite_differences(&flex, MegConfig::new(MegDataset::Toy2d).with_width_divisor(32), PenaltyForm::Channel);
    let digits = MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(16);
    penalty_gradient_matches_finite_differences(&flex, digits.clone(), PenaltyForm::Channel);
    penalty_gradient_matches_finite_differences(&flex, digits, PenaltyForm::Sample);
}

#[test]
fn gradient_penalty_gradient_matches_finite_differences_on_wgpu() {
    // These seed or draw from burn's process-wide device generator: take turns with the
    // bit-for-bit resume tests.
    let _lock = device_rng_lock();
    let Some(device) = wgpu() else { return };
    penalty_gradient_matches_finite_differences(&device, MegConfig::new(MegDataset::Mnist { channels: 1 }).with_width_divisor(32), PenaltyForm::Channel);
}

#[test]
fn the_two_penalty_forms_differ_by_the_image_area() {
    // These seed or draw from burn's process-wide device generator: take turns with the
    // bit-for-bit resume tests.
    let _lock = device_rng_lock();
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
    // These seed or draw from burn's process-wide device generator: take turns with the
    // bit-for-bit resume tests.
    let _lock = device_rng_lock();
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

/// A KDD99-format CSV of `rows` records that uses every category the real 10 % file has
/// (121 features once encoded); "normal." records (every third) send more bytes.
fn synthetic_kdd(path: &std::path::Path, rows: usize) {
    let mut text = String::new();
    for i in 0..rows {
        let normal = i % 3 == 0;
        let mut fields: Vec<String> = (0..41).map(|c| format!("{}", ((i * 7 + c * 13) % 10) as f32 / 10.0)).collect();
        fields[1] = ["tcp", "udp", "icmp"][i % 3].to_string();
        fields[2] = format!("service{}", i % 66);
        fields[3] = format!("flag{}", i % 11);
        fields[6] = (i % 2).to_string();
        fields[11] = ((i / 2) % 2).to_string();
        fields[20] = "0".to_string();
        fields[21] = ((i / 5) % 2).to_string();
        fields[4] = if normal { format!("{}", 900 + i % 50) } else { format!("{}", i % 40) };
        fields.push(if normal { "normal." } else { "smurf." }.to_string());
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write csv");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-meg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn kdd_csv_encodes_to_the_nets_121_features_and_bad_rows_are_named() {
    let dir = scratch("kdd");
    let path = dir.join("kdd.csv");
    synthetic_kdd(&path, 660);
    let mut table = trainer::data::kdd::read(&path).expect("read");
    assert_eq!(table.features, trainer::data::kdd::FEATURES);
    assert_eq!(table.rows(), 660);
    assert_eq!(table.normal.iter().filter(|n| **n).count(), 220);
    // One-hot blocks: every row has exactly one 1 in the 66 service columns (after 34 numeric and 3 protocol).
    let row = &table.values[..121];
    assert_eq!(row[37..103].iter().filter(|v| **v == 1.0).count(), 1);
    table.min_max_scale();
    assert!(table.values.iter().all(|v| (0.0..=1.0).contains(v)));

    std::fs::write(dir.join("short.csv"), "0,tcp,http,SF,1,2,normal.\n").expect("write");
    let error = trainer::data::kdd::read(&dir.join("short.csv")).expect_err("short row refused").to_string();
    assert!(error.contains("line 1") && error.contains("7 fields"), "{error}");
    let mut fields: Vec<String> = (0..41).map(|_| "0".to_string()).collect();
    fields[5] = "lots".into();
    fields.push("normal.".into());
    std::fs::write(dir.join("text.csv"), format!("{}\n", fields.join(","))).expect("write");
    let error = trainer::data::kdd::read(&dir.join("text.csv")).expect_err("text refused").to_string();
    assert!(error.contains("column 6") && error.contains("lots"), "{error}");
    assert!(trainer::data::kdd::read(&dir.join("missing.csv")).expect_err("missing").to_string().contains("no such file"));
}

#[test]
fn anomaly_splits_follow_the_protocols() {
    let normal: Vec<bool> = (0..1000).map(|i| i % 3 == 0).collect();
    let (train, test, labels) = meg::kdd_split(&normal, 42);
    assert!(train.iter().all(|&i| !normal[i]), "KDD trains on attacks only");
    let anomalies = labels.iter().filter(|l| **l).count();
    let share = anomalies as f64 / test.len() as f64;
    assert!((share - 0.2).abs() < 0.01, "anomaly share {share}");
    assert!(test.iter().all(|i| !train.contains(i)));

    let digits: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
    let (train, test, labels) = meg::anomaly_split(&digits, 4, 42);
    assert!(train.iter().all(|&i| digits[i] != 4));
    assert_eq!(train.len(), 1800 * 8 / 10);
    assert_eq!(labels.iter().filter(|l| **l).count(), 200, "every 4 is in the test set");
    assert_eq!(test.len(), 360 + 200);
    assert!(test.iter().all(|i| !train.contains(i)));
}

#[test]
fn the_project_classifier_reads_held_out_digits() {
    // These seed or draw from burn's process-wide device generator: take turns with the
    // bit-for-bit resume tests.
    let _lock = device_rng_lock();
    let flex = Device::flex();
    let load = |split| {
        let set = trainer::data::open(&crate::mnist_mini(), &trainer::data::LoadOptions { split, ..Default::default() }).expect("bundled MNIST");
        let labels = set.labels.clone().expect("labels");
        (trainer::shortrun::images_tensor(&set, &flex), labels)
    };
    let (images, labels) = load(trainer::data::Split::Train);
    let (test, test_labels) = load(trainer::data::Split::Test);
    let mut losses = Vec::new();
    let classifier = trainer::classifier::Classifier::train(&images, &labels, trainer::classifier::EXAMPLE_WIDTHS, 3, 1, &flex, |_, loss| losses.push(loss)).expect("train");
    assert!(losses[2] < 0.5 * losses[0], "cross-entropy {losses:?}");
    let predicted = classifier.predict(test.clone()).expect("predict");
    let accuracy = predicted.iter().zip(&test_labels).filter(|(p, l)| p == l).count() as f64 / test_labels.len() as f64;
    assert!(accuracy > 0.75, "held-out accuracy {accuracy} after 3 epochs on the bundled digits");
    let reloaded = trainer::classifier::Classifier::from_bytes(&classifier.to_bytes().expect("bytes"), &flex).expect("reload");
    assert_eq!(reloaded.predict(test.clone()).expect("predict"), predicted);
    assert_eq!(reloaded.widths, trainer::classifier::EXAMPLE_WIDTHS);
    // The probabilities are a distribution per image whose largest entry is the prediction.
    let probabilities = classifier.probabilities(test).expect("probabilities");
    assert_eq!(probabilities.len(), predicted.len());
    for (row, digit) in probabilities.iter().zip(&predicted) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{row:?}");
        assert!(row.iter().all(|p| *p <= row[usize::from(*digit)]), "{row:?} vs {digit}");
    }
    // A file written before the widths were recorded holds the example's widths.
    let mut file = modelfile::ModelFile::from_bytes(&classifier.to_bytes().expect("bytes")).expect("container");
    file.manifest.as_object_mut().expect("object").remove("widths");
    let old = trainer::classifier::Classifier::from_bytes(&file.to_bytes().expect("bytes"), &flex).expect("old file");
    assert_eq!(old.predict(load(trainer::data::Split::Test).0).expect("predict"), predicted);
    // Widths that do not match the tensors are refused.
    file.manifest["widths"] = serde_json::json!([32, 64, 128]);
    assert!(trainer::classifier::Classifier::from_bytes(&file.to_bytes().expect("bytes"), &flex).is_err());
    assert!(trainer::classifier::Classifier::from_bytes(b"not a classifier", &flex).is_err());
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = crate::cli::trainer(args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> f64 {
    let rest = &text[text.find(label).unwrap_or_else(|| panic!("no \"{label}\" in {text}")) + label.len()..];
    rest.trim_start().split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number after \"{label}\" in {text}"))
}

#[test]
fn meg_commands_end_to_end_and_their_bad_input() {
    let dir = scratch("cli");
    let run_dir = dir.join("toy");
    let flex = ["--device", "flex"];
    let (ok, _, err) = run(&[&["meg", "train", "--toy", "swissroll", "--run", run_dir.to_str().expect("utf-8"), "--iterations", "20", "--width-divisor", "16", "--batch", "64", "--quiet", "--sample-every", "10"][..], &flex].concat());
    assert!(ok, "meg train: {err}");
    for file in ["model.ebm", "checkpoint.ebm", "density.png", "samples.png", "samples/iter_0000010.png"] {
        assert!(run_dir.join(file).exists(), "missing {file}");
    }
    let model = run_dir.join("model.ebm");
    let model = model.to_str().expect("utf-8");
    for space in [&[][..], &["--pixel"][..]] {
        let out = dir.join("samples.png");
        let (ok, _, err) = run(&[&["meg", "sample", model, "--count", "300", "--mala-steps", "5", "--out", out.to_str().expect("utf-8")][..], space, &flex].concat());
        assert!(ok, "meg sample {space:?}: {err}");
        let rate = number_after(&err, "acceptance rate");
        assert!((0.0..=1.0).contains(&rate), "acceptance rate {rate}");
        assert!(image::open(&out).is_ok());
    }
    let density = dir.join("density.png");
    let (ok, out, err) = run(&[&["meg", "density", model, "--resolution", "50", "--truth", "swissroll", "--out", density.to_str().expect("utf-8")][..], &flex].concat());
    assert!(ok, "meg density: {err}");
    let (mass, uniform) = (number_after(&out, "density mass"), number_after(&out, "uniform density:"));
    assert!((0.0..=1.0).contains(&mass) && (0.1..0.3).contains(&uniform), "{out}");
    assert_eq!(image::open(&density).expect("png").width(), 50);

    // KDD99 on the synthetic file: the "normal." records (more bytes) stand out.
    let csv = dir.join("kdd.csv");
    synthetic_kdd(&csv, 1320);
    let (ok, table, err) = run(&[&["meg", "kdd", "--data", csv.to_str().expect("utf-8"), "--iterations", "60", "--min-max", "--lr", "1e-3"][..], &flex].concat());
    assert!(ok, "meg kdd: {err}");
    let f1 = table.lines().find(|l| l.starts_with("| E(x)")).and_then(|l| l.split('|').nth(4)).and_then(|v| v.trim().parse::<f64>().ok()).expect("F1 of E(x)");
    eprintln!("{table}");
    assert!(f1 > 0.5, "F1 of E(x) on the synthetic records: {f1}\n{table}");

    // Bad input: named, never a crash.
    let shortrun = concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/mnist-shortrun.ebm");
    let (ok, _, err) = run(&[&["meg", "sample", shortrun][..], &flex].concat());
    assert!(!ok && err.contains("MEG"), "{err}");
    let (ok, _, err) = run(&[&["sample", model][..], &flex].concat());
    assert!(!ok && err.contains("trainer meg sample"), "{err}");
    let (ok, _, err) = run(&[&["meg", "sample", model, "--temperature", "0"][..], &flex].concat());
    assert!(!ok && err.contains("temperature"), "{err}");
    let (ok, _, err) = run(&[&["meg", "density", model, "--resolution", "0"][..], &flex].concat());
    assert!(!ok && err.contains("resolution"), "{err}");
    let (ok, _, err) = run(&[&["meg", "kdd", "--data", dir.join("missing.csv").to_str().expect("utf-8")][..], &flex].concat());
    assert!(!ok && err.contains("no such file"), "{err}");
    let (ok, _, err) = run(&[&["meg", "modes", model, "--classifier", dir.join("none.ebm").to_str().expect("utf-8")][..], &flex].concat());
    assert!(!ok && err.contains("MNIST"), "{err}");
    let (ok, _, err) = run(&[&["meg", "train", "--run", dir.join("bad").to_str().expect("utf-8"), "--lambda=-1"][..], &flex].concat());
    assert!(!ok && err.contains("λ"), "{err}");
}

#[test]
fn mode_counting_and_anomaly_commands_write_their_tables() {
    let dir = scratch("tables");
    let flex = ["--device", "flex"];
    let data = crate::mnist_mini();
    let data = data.to_str().expect("utf-8");
    let classifier = dir.join("classifier.ebm");
    let (ok, _, err) = run(&[&["meg", "classifier", "--data", data, "--epochs", "2", "--out", classifier.to_str().expect("utf-8")][..], &flex].concat());
    assert!(ok, "meg classifier: {err}");
    let accuracy = number_after(&err, "test accuracy");
    assert!((50.0..=100.0).contains(&accuracy), "accuracy {accuracy} %");
    let run_dir = dir.join("stacked");
    let (ok, _, err) = run(&[&["meg", "train", "--dataset", "stacked-mnist", "--stacks", "3", "--data", data, "--run", run_dir.to_str().expect("utf-8"), "--iterations", "2", "--width-divisor", "16", "--batch", "16", "--quiet"][..], &flex].concat());
    assert!(ok, "meg train stacked: {err}");
    let (ok, out, err) = run(&[&["meg", "modes", run_dir.join("model.ebm").to_str().expect("utf-8"), "--classifier", classifier.to_str().expect("utf-8"), "--samples", "1500"][..], &flex].concat());
    assert!(ok, "meg modes: {err}");
    let modes = number_after(&out, "StackedMNIST:");
    let kl = number_after(&out, "uniform)");
    assert!((1.0..=1000.0).contains(&modes) && (0.0..=1000f64.ln() + 1e-3).contains(&kl), "{out}");

    let table = dir.join("anomaly.md");
    let (ok, out, err) = run(&[&["meg", "anomaly", "--data", data, "--digits", "1", "--iterations", "2", "--width-divisor", "16", "--out", table.to_str().expect("utf-8")][..], &flex].concat());
    assert!(ok, "meg anomaly: {err}");
    let row = out.lines().find(|l| l.starts_with("| 1 |")).expect("digit 1 row");
    let auprc: Vec<f64> = row.split('|').skip(2).take(3).map(|v| v.trim().parse().expect("number")).collect();
    assert!(auprc.iter().all(|v| (0.0..=1.0).contains(v)), "{row}");
    assert!(std::fs::read_to_string(&table).expect("table").contains("0.281 ± 0.035"));
}


#[test]
fn cifar_and_celeba_shaped_models_train_and_sample_from_any_images() {
    let dir = scratch("colour");
    let textures = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/textures");
    for (dataset, side) in [("cifar", 32), ("celeba", 64)] {
        let run_dir = dir.join(dataset);
        let (ok, _, err) = run(&[
            "meg", "train", "--dataset", dataset, "--data", textures, "--run", run_dir.to_str().expect("utf-8"), "--iterations", "1", "--width-divisor", "16", "--batch", "2",
            "--energy-steps", "1", "--quiet", "--device", "flex",
        ]);
        assert!(ok, "meg train {dataset}: {err}");
        let out = dir.join(format!("{dataset}.png"));
        let (ok, _, err) = run(&["meg", "sample", run_dir.join("model.ebm").to_str().expect("utf-8"), "--count", "2", "--mala-steps", "2", "--out", out.to_str().expect("utf-8"), "--device", "flex"]);
        assert!(ok, "meg sample {dataset}: {err}");
        let picture = image::open(&out).expect("png");
        // Two images side by side at twice their size, with the grid's gaps.
        assert!(picture.height() >= 2 * side && picture.width() >= 4 * side, "{dataset}: {}×{}", picture.width(), picture.height());
    }
}
