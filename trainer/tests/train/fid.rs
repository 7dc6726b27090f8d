//! The FID Inception port against PyTorch running the original TorchScript network
//! (`tests/golden/inception-reference.json`, written by `scripts/inception-reference.py`), and
//! FID/KID on real digits.
//!
//! The weights come from `bash scripts/fetch-inception.sh`; without them these tests say so and
//! skip, except where `EBM_REQUIRE_INCEPTION=1` (CI) makes their absence a failure.

use burn::prelude::*;
use trainer::data::{self, ImageSet, LoadOptions, Split};
use trainer::inception::{self, FEATURES, INPUT_SIDE, Inception};
use trainer::metrics::{frechet_distance, kernel_distance};

/// The network on the CPU, loaded once per process.
fn network() -> Option<&'static Inception> {
    static NETWORK: std::sync::OnceLock<Result<Inception, String>> = std::sync::OnceLock::new();
    match NETWORK.get_or_init(|| Inception::load(&inception::default_path(), &Device::flex()).map_err(|e| e.to_string())) {
        Ok(network) => Some(network),
        Err(error) if std::env::var("EBM_REQUIRE_INCEPTION").as_deref() == Ok("1") => panic!("EBM_REQUIRE_INCEPTION=1: {error}"),
        Err(error) => {
            eprintln!("skipped: {error}");
            None
        }
    }
}

/// Whether the weights are installed (for tests that run the binary); a failure under
/// `EBM_REQUIRE_INCEPTION=1`.
pub fn weights_installed() -> bool {
    let path = inception::default_path();
    if path.exists() {
        return true;
    }
    assert!(std::env::var("EBM_REQUIRE_INCEPTION").as_deref() != Ok("1"), "EBM_REQUIRE_INCEPTION=1 but {} is missing", path.display());
    eprintln!("skipped: no FID Inception weights at {}", path.display());
    false
}

/// A u8 RGB image from a formula of (row, column, channel), as an [`ImageSet`] of one.
fn formula_image(height: usize, width: usize, value: impl Fn(usize, usize, usize) -> usize) -> ImageSet {
    let mut pixels = Vec::with_capacity(3 * height * width);
    for c in 0..3 {
        for h in 0..height {
            for w in 0..width {
                pixels.push((value(h, w, c) % 256) as f32);
            }
        }
    }
    ImageSet::new(pixels, 1, 3, height, width, None).expect("consistent image")
}

/// The reference file's images, built from the same formulas the script uses.
fn reference_images() -> Vec<(&'static str, ImageSet)> {
    vec![
        ("gray128", formula_image(299, 299, |_, _, _| 128)),
        ("pattern299", formula_image(299, 299, |h, w, c| 7 * h + 13 * w + 29 * c)),
        ("small28", formula_image(28, 28, |h, w, c| 31 * h + 17 * w + 59 * c + h * w)),
        ("rgb64", formula_image(64, 64, |h, w, c| h * h + 3 * w * c + 11 * c + 5 * w)),
        ("mnistlike", formula_image(28, 28, |h, w, _| {
            let r = (h as i64 - 14).pow(2) + (w as i64 - 14).pow(2);
            if (36..=81).contains(&r) { 255 } else { 0 }
        })),
    ]
}

#[derive(serde::Deserialize)]
struct Reference {
    images: Vec<ReferenceImage>,
}

#[derive(serde::Deserialize)]
struct ReferenceImage {
    name: String,
    input_mean: f64,
    input_samples: Vec<f64>,
    features: Vec<f64>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/inception-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("golden JSON")
}

/// The resize and value mapping match PyTorch's preprocessing without the network (no weights
/// needed): mean and six sampled values of the prepared input.
#[test]
fn preprocessing_matches_pytorch() {
    let reference = reference();
    let positions = [[0, 0, 0], [1, 150, 77], [2, 298, 298], [0, 10, 200], [1, 149, 149], [2, 37, 5]];
    for (name, image) in reference_images() {
        let expected = reference.images.iter().find(|r| r.name == name).expect("image in the golden file");
        let prepared = inception::prepare(&image.pixels, 3, image.height, image.width);
        let mean = prepared.iter().map(|v| f64::from(*v)).sum::<f64>() / prepared.len() as f64;
        assert!((mean - expected.input_mean).abs() < 1e-5, "{name}: input mean {mean} vs {}", expected.input_mean);
        for ([c, y, x], want) in positions.iter().zip(&expected.input_samples) {
            let got = f64::from(prepared[(c * INPUT_SIDE + y) * INPUT_SIDE + x]);
            assert!((got - want).abs() < 1e-5, "{name}[{c},{y},{x}]: {got} vs {want}");
        }
    }
}

/// Features agree with PyTorch's: every one of the 2048 within 1e-4 absolute + 0.1 % relative,
/// and the cosine similarity above 0.999999 (the worst measured error is a few percent of it).
#[test]
fn features_match_pytorch() {
    let Some(network) = network() else { return };
    assert_features_match(network, &["gray128", "pattern299", "small28", "rgb64", "mnistlike"]);
}

/// The same network on wgpu (lavapipe in CI) agrees with PyTorch as closely.
#[test]
fn features_match_pytorch_on_wgpu() {
    let (Some(_), Some(device)) = (network(), crate::wgpu()) else { return };
    let network = Inception::load(&inception::default_path(), &device).expect("weights load onto wgpu");
    assert_features_match(&network, &["mnistlike"]);
}

fn assert_features_match(network: &Inception, names: &[&str]) {
    let reference = reference();
    for (name, image) in reference_images().into_iter().filter(|(name, _)| names.contains(name)) {
        let expected = reference.images.iter().find(|r| r.name == name).expect("image in the golden file");
        let features = network.features(&image, 1, |_| {});
        assert_eq!(features.len(), FEATURES);
        let (mut dot, mut norm_a, mut norm_b, mut worst) = (0.0, 0.0, 0.0, 0.0f64);
        for (got, want) in features.iter().map(|v| f64::from(*v)).zip(&expected.features) {
            dot += got * want;
            norm_a += got * got;
            norm_b += want * want;
            worst = worst.max((got - want).abs() / (1e-4 + 1e-3 * want.abs()));
        }
        let cosine = dot / (norm_a.sqrt() * norm_b.sqrt());
        eprintln!("{name}: cosine {cosine:.8}, worst error / tolerance {worst:.3}");
        assert!(worst <= 1.0, "{name}: a feature is off by {worst:.2}× the tolerance");
        assert!(cosine > 0.999_999, "{name}: cosine {cosine}");
    }
}

/// FID on real digits: a set against itself is 0; against a noise-corrupted copy it is large,
/// and larger for more noise; KID orders the same way.
#[test]
fn fid_separates_clean_from_corrupted_digits() {
    let Some(network) = network() else { return };
    let digits = data::open(&crate::mnist_mini(), &LoadOptions { limit: Some(24), class: None, split: Split::Test }).expect("bundled MNIST");
    let mut rng = shared::rng::HostRng::new(5);
    let corrupt = |sigma: f64, rng: &mut shared::rng::HostRng| {
        let mut noisy = digits.clone();
        noisy.pixels.iter_mut().for_each(|v| *v = (f64::from(*v) + sigma * rng.normal()).clamp(0.0, 255.0) as f32);
        noisy
    };
    let (light, heavy) = (corrupt(20.0, &mut rng), corrupt(80.0, &mut rng));
    let clean = network.features(&digits, 8, |_| {});
    let light = network.features(&light, 8, |_| {});
    let heavy = network.features(&heavy, 8, |_| {});
    let same = frechet_distance(&clean, &clean, FEATURES).expect("valid input");
    let (fid_light, fid_heavy) = (frechet_distance(&clean, &light, FEATURES).expect("valid input"), frechet_distance(&clean, &heavy, FEATURES).expect("valid input"));
    let (kid_light, kid_heavy) = (kernel_distance(&clean, &light, FEATURES).expect("valid input"), kernel_distance(&clean, &heavy, FEATURES).expect("valid input"));
    eprintln!("FID clean {same:.3e}, σ 20: {fid_light:.1}, σ 80: {fid_heavy:.1}; KID σ 20 {kid_light:.3}, σ 80 {kid_heavy:.3}");
    assert!(same.abs() < 1e-6, "FID of a set with itself: {same}");
    assert!(fid_light > 10.0, "light noise: {fid_light}");
    assert!(fid_heavy > 1.5 * fid_light, "heavy {fid_heavy} vs light {fid_light}");
    assert!(kid_heavy > kid_light && kid_light > 0.0, "KID {kid_light} → {kid_heavy}");
}

/// FID and KID of two small sets equal NumPy/SciPy's (`scipy.linalg.sqrtm` of Σ₁Σ₂) on the same
/// formulas, written into the golden file by `scripts/inception-reference.py`.
#[test]
fn distances_match_scipy() {
    #[derive(serde::Deserialize)]
    struct Check {
        fid: f64,
        kid: f64,
    }
    #[derive(serde::Deserialize)]
    struct Golden {
        fid_check: Check,
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/inception-reference.json");
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("golden JSON");
    let dim = 16;
    let matrix = |rows: usize, value: &dyn Fn(f64, f64) -> f64| -> Vec<f32> {
        (0..rows).flat_map(|i| (0..dim).map(move |j| (i as f64, j as f64))).map(|(i, j)| value(i, j) as f32).collect()
    };
    let a = matrix(50, &|i, j| (0.37 * i + 1.3 * j).sin() + 0.1 * (i * j).cos());
    let b = matrix(40, &|i, j| (0.41 * i + 1.1 * j + 0.5).sin() + 0.2 * (0.5 * i * j).cos() + 0.05 * j);
    let fid = frechet_distance(&a, &b, dim).expect("valid input");
    let kid = kernel_distance(&a, &b, dim).expect("valid input");
    // The inputs are rounded to f32 here, so agreement is to about 1e-6 relative.
    assert!((fid - golden.fid_check.fid).abs() < 1e-5 * golden.fid_check.fid, "FID {fid} vs SciPy {}", golden.fid_check.fid);
    assert!((kid - golden.fid_check.kid).abs() < 1e-5 * golden.fid_check.kid, "KID {kid} vs NumPy {}", golden.fid_check.kid);
    assert!(frechet_distance(&a, &a, dim).expect("valid input").abs() < 1e-9);
}
