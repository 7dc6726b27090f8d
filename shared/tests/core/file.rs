//! Model file: round trips and every kind of bad file.

use burn::prelude::*;
use modelfile::{ModelFile, NamedTensor};
use shared::file::{DataSpec, EXTRA_PREFIX, FormatError, Manifest, Model, ModelFileError, Normalization, Provenance, SamplerDefaults};
use shared::nets::{ModelSpec, MultigridConfig, ShortRunConfig};
use shared::sampler::{ChainInit, LangevinConfig};

use crate::common::{host, uniform};

fn manifest(model: ModelSpec, size: usize, grids: usize) -> Manifest {
    Manifest {
        model,
        data: DataSpec { channels: 3, height: size, width: size, range: [-1.0, 1.0], normalization: Normalization::MinusOneToOne },
        sampler: SamplerDefaults { init: ChainInit::Uniform { low: -1.0, high: 1.0 }, langevin: vec![LangevinConfig::short_run(100); grids], mala: None },
        provenance: Provenance { dataset: "unit test".into(), iterations: 3, seed: 7, git_revision: None, created_by: "tests".into() },
    }
}

fn short_run_manifest() -> Manifest {
    manifest(ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(16).with_n_f(4)), 16, 1)
}

fn round_trip_preserves_weights_and_outputs(device: &Device) {
    let mut model = Model::init(short_run_manifest(), device).expect("init");
    model.extras.insert(
        format!("{EXTRA_PREFIX}note"),
        NamedTensor { name: format!("{EXTRA_PREFIX}note"), shape: vec![2], values: vec![1.5, -2.0] },
    );
    let bytes = model.to_bytes().expect("serialise");
    let loaded = Model::from_bytes(&bytes, device).expect("load");
    assert_eq!(loaded.manifest, model.manifest);
    assert_eq!(loaded.extras, model.extras);
    let x = uniform([2, 3, 16, 16], device);
    let a = host(model.stacks[0].stack.value(x.clone()));
    let b = host(loaded.stacks[0].stack.value(x));
    assert_eq!(a, b, "loaded model computes something else");
    assert_eq!(loaded.to_bytes().expect("serialise again"), bytes, "save → load → save is not stable");
}

device_tests!(round_trip_preserves_weights_and_outputs);

#[test]
fn multigrid_model_round_trips_all_three_grids() {
    let device = Device::flex();
    let spec = ModelSpec::Multigrid(MultigridConfig::new().with_width_divisor(32));
    let model = Model::init(manifest(spec, 64, 3), &device).expect("init");
    let loaded = Model::from_bytes(&model.to_bytes().expect("save"), &device).expect("load");
    let names: Vec<_> = loaded.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["grid4", "grid16", "grid64"]);
}

fn valid_file() -> (Vec<u8>, ModelFile) {
    let bytes = Model::init(short_run_manifest(), &Device::flex()).expect("init").to_bytes().expect("save");
    let file = ModelFile::from_bytes(&bytes).expect("parse");
    (bytes, file)
}

fn load(bytes: &[u8]) -> ModelFileError {
    Model::from_bytes(bytes, &Device::flex()).expect_err("a bad file must be refused")
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn container_damage_is_reported_by_name() {
    let (bytes, _) = valid_file();
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = b'X';
    assert!(matches!(load(&wrong_magic), ModelFileError::Format(FormatError::WrongMagic)), "{}", load(&wrong_magic));
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(load(&future), ModelFileError::Format(FormatError::UnsupportedVersion { .. })));
    for cut in [0, 5, 13, 40, bytes.len() / 2, bytes.len() - 1] {
        let error = load(&bytes[..cut]);
        assert!(matches!(error, ModelFileError::Format(_)), "cut at {cut}: {error}");
    }
    let mut flipped = bytes.clone();
    let middle = bytes.len() - 100;
    flipped[middle] ^= 0x40;
    assert!(matches!(load(&flipped), ModelFileError::Format(FormatError::ChecksumMismatch { .. })));
    let mut nan = bytes.clone();
    let end = nan.len() - 4;
    nan[end - 4..end].copy_from_slice(&f32::NAN.to_le_bytes());
    let crc = crc32(&nan[..end]);
    nan[end..].copy_from_slice(&crc.to_le_bytes());
    let error = load(&nan);
    assert!(matches!(error, ModelFileError::Format(FormatError::NonFiniteValue { .. })), "{error}");
    assert!(error.to_string().contains("energy."), "the message should name the tensor: {error}");
}

fn rewrite(edit: impl FnOnce(&mut ModelFile)) -> Vec<u8> {
    let (_, mut file) = valid_file();
    edit(&mut file);
    file.to_bytes().expect("container")
}

#[test]
fn content_errors_are_reported_by_name() {
    // Architecture and weights disagree: the manifest says n_f = 8, the weights are for 4.
    let error = load(&rewrite(|f| f.manifest["model"]["config"]["n_f"] = 8.into()));
    assert!(matches!(error, ModelFileError::ShapeMismatch { .. }), "{error}");
    // Absurd dimensions.
    let error = load(&rewrite(|f| f.manifest["model"]["config"]["n_f"] = 10_000_000.into()));
    assert!(matches!(error, ModelFileError::Architecture(_)), "{error}");
    let error = load(&rewrite(|f| f.manifest["model"]["config"]["image_size"] = 12.into()));
    assert!(matches!(error, ModelFileError::Architecture(_)), "{error}");
    // Unknown family and missing fields.
    let error = load(&rewrite(|f| f.manifest["model"]["family"] = "diffusion".into()));
    assert!(matches!(error, ModelFileError::Manifest(_)), "{error}");
    assert!(error.to_string().contains("diffusion"), "{error}");
    let error = load(&rewrite(|f| {
        f.manifest.as_object_mut().expect("object").remove("data");
    }));
    assert!(matches!(error, ModelFileError::Manifest(_)), "{error}");
    // Data that does not fit the net.
    let error = load(&rewrite(|f| f.manifest["data"]["channels"] = 1.into()));
    assert!(matches!(error, ModelFileError::Data(_)), "{error}");
    let error = load(&rewrite(|f| f.manifest["data"]["range"] = serde_json::json!([1.0, -1.0])));
    assert!(matches!(error, ModelFileError::Data(_)), "{error}");
    // Langevin defaults that would panic (an inverted clip range) or never end.
    let error = load(&rewrite(|f| f.manifest["sampler"]["langevin"][0]["clip"] = serde_json::json!([1.0, -1.0])));
    assert!(matches!(error, ModelFileError::Data(_)) && error.to_string().contains("clip"), "{error}");
    let error = load(&rewrite(|f| f.manifest["sampler"]["langevin"][0]["steps"] = 1_000_000_000_000_000u64.into()));
    assert!(matches!(error, ModelFileError::Data(_)) && error.to_string().contains("steps"), "{error}");
    let error = load(&rewrite(|f| f.manifest["sampler"]["langevin"][0]["noise"] = (-0.5).into()));
    assert!(matches!(error, ModelFileError::Data(_)) && error.to_string().contains("noise"), "{error}");
    // Unusable MALA defaults (a MEG sampler setting).
    let error = load(&rewrite(|f| f.manifest["sampler"]["mala"] = serde_json::json!({"steps": 5, "step_size": 0.01, "temperature": 0.0, "proposal_norm": "squared"})));
    assert!(matches!(error, ModelFileError::Data(_)) && error.to_string().contains("temperature"), "{error}");
    // Missing and unexpected tensors.
    let error = load(&rewrite(|f| {
        f.tensors.remove(0);
    }));
    assert!(matches!(error, ModelFileError::MissingTensor { ref name } if name == "energy.0.weight"), "{error}");
    let error = load(&rewrite(|f| f.tensors.push(NamedTensor { name: "energy.9.weight".into(), shape: vec![1], values: vec![0.0] })));
    assert!(matches!(error, ModelFileError::UnexpectedTensor { .. }), "{error}");
}
