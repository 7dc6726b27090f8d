//! Behaviour of the model file container: round trips and every rejection path.

use modelfile::{
    FORMAT_VERSION, FormatError, HEADER_LEN, Limits, MAGIC, ModelFile, NamedTensor, crc32,
};
use serde_json::{Value, json};

/// A small valid model with a scalar, a vector and a rank-4 tensor.
fn small_model() -> ModelFile {
    ModelFile {
        manifest: json!({
            "kind": "ebm-convnet",
            "image": {"channels": 3, "height": 8, "width": 8},
            "langevin": {"step_size": 0.0031415926535, "steps": 60},
        }),
        tensors: vec![
            NamedTensor::new("temperature", vec![], vec![0.25]),
            NamedTensor::new("conv1.bias", vec![3], vec![1.0, -2.5, 3.75]),
            NamedTensor::new(
                "conv1.weight",
                vec![2, 3, 1, 2],
                (0..12).map(|i| i as f32 * 0.5 - 3.0).collect(),
            ),
        ],
    }
}

/// Assembles a file from raw parts with a correct checksum.
fn craft(version: u32, manifest: &[u8], payload_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(manifest);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A file whose manifest is `manifest` (a JSON object) and whose payload is `values`,
/// with consistent payload length and checksum.
fn craft_json(manifest: &Value, values: &[f32]) -> Vec<u8> {
    let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let text = serde_json::to_vec(manifest).expect("serialise manifest");
    craft(FORMAT_VERSION, &text, payload.len() as u64, &payload)
}

/// Recomputes the trailing checksum after an edit.
fn fix_crc(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

/// Offset of the payload in a file produced by `to_bytes`.
fn payload_offset(bytes: &[u8]) -> usize {
    let m = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    HEADER_LEN + m + 8
}

#[test]
fn round_trip_small_model() {
    let model = small_model();
    let bytes = model.to_bytes().expect("write");
    let back = ModelFile::from_bytes(&bytes).expect("read");
    assert_eq!(back.tensors, model.tensors);
    // The manifest comes back with the two keys the writer adds.
    let mut expected = model.manifest.clone();
    expected["tensors"] = json!([
        {"name": "temperature", "shape": []},
        {"name": "conv1.bias", "shape": [3]},
        {"name": "conv1.weight", "shape": [2, 3, 1, 2]},
    ]);
    expected["format_version"] = json!(FORMAT_VERSION);
    assert_eq!(back.manifest, expected);
    // Writing what was read gives the same bytes.
    assert_eq!(back.to_bytes().expect("rewrite"), bytes);
    // The layout is as documented.
    assert_eq!(&bytes[..8], b"EBMMODEL");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().expect("4")), 1);
    let p = payload_offset(&bytes);
    let declared = u64::from_le_bytes(bytes[p - 8..p].try_into().expect("8"));
    assert_eq!(declared, 4 * (1 + 3 + 12));
    assert_eq!(bytes.len(), p + 4 * 16 + 4);
    assert_eq!(&bytes[p..p + 4], &0.25f32.to_le_bytes());
}

#[test]
fn round_trip_large_tensor_and_lookup() {
    let values: Vec<f32> = (0..10_000)
        .map(|i| ((i as f32) * 0.001).sin() * 1e3)
        .collect();
    let model = ModelFile {
        manifest: json!({"tensors": "overwritten", "format_version": 99, "note": "x"}),
        tensors: vec![
            NamedTensor::new("big", vec![100, 100], values.clone()),
            NamedTensor::new("tiny", vec![1, 1, 1, 1, 1, 1], vec![f32::MIN_POSITIVE]),
            NamedTensor::new("extremes", vec![4], vec![f32::MAX, f32::MIN, -0.0, 1e-45]),
        ],
    };
    let back = ModelFile::from_bytes(&model.to_bytes().expect("write")).expect("read");
    assert_eq!(back.tensors, model.tensors);
    assert_eq!(back.tensor("big").expect("big").values, values);
    assert_eq!(back.tensor("tiny").expect("tiny").shape, vec![1; 6]);
    assert!(back.tensor("missing").is_none());
    assert_eq!(back.manifest["format_version"], json!(1));
    assert_eq!(back.manifest["note"], json!("x"));
    assert_eq!(
        back.manifest["tensors"][0],
        json!({"name": "big", "shape": [100, 100]})
    );
    assert_eq!(back.entries()[2].shape, vec![4]);
}

#[test]
fn round_trip_no_tensors_and_exact_floats_in_manifest() {
    // Hyper-parameters must survive bit-exactly.
    let model = ModelFile {
        manifest: json!({"lr": 1.0000000000000002, "eps": 2.2250738585072014e-308, "x": 0.1}),
        tensors: vec![],
    };
    let back = ModelFile::from_bytes(&model.to_bytes().expect("write")).expect("read");
    assert!(back.tensors.is_empty());
    assert_eq!(back.manifest["lr"].as_f64(), Some(1.0000000000000002));
    assert_eq!(back.manifest["eps"].as_f64(), Some(2.2250738585072014e-308));
}

#[test]
fn every_prefix_is_an_error_never_a_panic() {
    let bytes = small_model().to_bytes().expect("write");
    for len in 0..bytes.len() {
        let err = ModelFile::from_bytes(&bytes[..len]).expect_err("prefix must not parse");
        match err {
            FormatError::TooShort { len: l } => assert!(len < HEADER_LEN && l == len),
            FormatError::Truncated {
                needed, available, ..
            } => {
                assert!(len >= HEADER_LEN);
                assert!(needed > available, "{err}");
            }
            other => panic!("prefix of length {len}: unexpected {other:?}"),
        }
    }
    let m = payload_offset(&bytes) - 8 - HEADER_LEN;
    let what = |len: usize| match ModelFile::from_bytes(&bytes[..len]) {
        Err(FormatError::Truncated { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    assert_eq!(what(HEADER_LEN), "manifest");
    assert_eq!(what(HEADER_LEN + m + 3), "payload length");
    assert_eq!(what(HEADER_LEN + m + 8), "payload");
    assert_eq!(what(bytes.len() - 1), "checksum");
}

#[test]
fn wrong_magic() {
    let mut bytes = small_model().to_bytes().expect("write");
    bytes[0] = b'X';
    fix_crc(&mut bytes);
    assert_eq!(ModelFile::from_bytes(&bytes), Err(FormatError::WrongMagic));
    // Short non-model files are reported as such, not as "too short".
    assert_eq!(
        ModelFile::from_bytes(b"hello"),
        Err(FormatError::WrongMagic)
    );
    assert_eq!(
        ModelFile::from_bytes(b""),
        Err(FormatError::TooShort { len: 0 })
    );
    assert_eq!(
        ModelFile::from_bytes(b"EBMMODEL\x01"),
        Err(FormatError::TooShort { len: 9 })
    );
    let text = FormatError::WrongMagic.to_string();
    assert!(
        text.contains("not a model file") && text.contains("\"EBMMODEL\""),
        "{text}"
    );
}

#[test]
fn unsupported_version() {
    let mut bytes = small_model().to_bytes().expect("write");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fix_crc(&mut bytes);
    let err = ModelFile::from_bytes(&bytes).expect_err("version 2");
    assert_eq!(
        err,
        FormatError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("version 2") && text.contains("version 1"),
        "{text}"
    );
}

#[test]
fn flipped_payload_byte_is_a_checksum_mismatch() {
    let bytes = small_model().to_bytes().expect("write");
    let p = payload_offset(&bytes);
    for offset in [p, p + 5, bytes.len() - 5, 3, 20] {
        let mut bad = bytes.clone();
        bad[offset] ^= 0x10;
        match ModelFile::from_bytes(&bad) {
            Err(FormatError::ChecksumMismatch { stored, computed }) => assert_ne!(stored, computed),
            // Flipping the magic is caught first.
            Err(FormatError::WrongMagic) if offset < 8 => {}
            other => panic!("offset {offset}: {other:?}"),
        }
    }
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let text = ModelFile::from_bytes(&bad)
        .expect_err("bad crc")
        .to_string();
    assert!(
        text.contains("corrupted") && text.contains("checksum"),
        "{text}"
    );
}

#[test]
fn nan_and_infinity_are_rejected_with_a_valid_checksum() {
    let manifest = json!({"format_version": 1, "tensors": [
        {"name": "a", "shape": [2]}, {"name": "w", "shape": [2, 2]}]});
    let ok = craft_json(&manifest, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(ModelFile::from_bytes(&ok).is_ok());
    let bad = craft_json(&manifest, &[1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0]);
    let err = ModelFile::from_bytes(&bad).expect_err("NaN");
    assert_eq!(
        err,
        FormatError::NonFiniteValue {
            name: "w".into(),
            index: 2
        }
    );
    assert!(err.to_string().contains("\"w\"") && err.to_string().contains("index 2"));
    let bad = craft_json(
        &manifest,
        &[f32::NEG_INFINITY, 2.0, 3.0, f32::INFINITY, 5.0, 6.0],
    );
    assert_eq!(
        ModelFile::from_bytes(&bad),
        Err(FormatError::NonFiniteValue {
            name: "a".into(),
            index: 0
        })
    );
    // The writer refuses to produce such a file.
    let model = ModelFile {
        manifest: json!({}),
        tensors: vec![NamedTensor::new("v", vec![3], vec![0.0, 1.0, f32::NAN])],
    };
    assert_eq!(
        model.to_bytes(),
        Err(FormatError::NonFiniteValue {
            name: "v".into(),
            index: 2
        })
    );
}

#[test]
fn payload_length_mismatch() {
    let manifest = json!({"format_version": 1, "tensors": [{"name": "a", "shape": [3]}]});
    let too_long = craft_json(&manifest, &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        ModelFile::from_bytes(&too_long),
        Err(FormatError::PayloadLengthMismatch {
            declared: 16,
            expected: 12
        })
    );
    let too_short = craft_json(&manifest, &[1.0, 2.0]);
    assert_eq!(
        ModelFile::from_bytes(&too_short),
        Err(FormatError::PayloadLengthMismatch {
            declared: 8,
            expected: 12
        })
    );
    // Not a multiple of 4.
    let text = serde_json::to_vec(&manifest).expect("json");
    let odd = craft(1, &text, 13, &[0; 13]);
    assert_eq!(
        ModelFile::from_bytes(&odd),
        Err(FormatError::PayloadLengthMismatch {
            declared: 13,
            expected: 12
        })
    );
}

#[test]
fn huge_declared_lengths_are_truncation_not_allocation() {
    let text = br#"{"format_version":1,"tensors":[]}"#;
    let mut bytes = craft(1, text, 0, &[]);
    let p = HEADER_LEN + text.len();
    bytes[p..p + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        ModelFile::from_bytes(&bytes),
        Err(FormatError::Truncated {
            what: "payload",
            needed: u64::MAX,
            available: 4
        })
    );
    let mut bytes = craft(1, text, 0, &[]);
    bytes[12..16].copy_from_slice(&(16u32 << 20).to_le_bytes());
    assert!(matches!(
        ModelFile::from_bytes(&bytes),
        Err(FormatError::Truncated {
            what: "manifest",
            needed: 16_777_216,
            ..
        })
    ));
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = ModelFile::from_bytes(&bytes).expect_err("manifest too large");
    assert_eq!(
        err,
        FormatError::ManifestTooLarge {
            len: u32::MAX as u64,
            max: 16 << 20
        }
    );
    assert!(err.to_string().contains("manifest"));
}

#[test]
fn trailing_bytes() {
    let mut bytes = small_model().to_bytes().expect("write");
    bytes.extend_from_slice(b"junk");
    assert_eq!(
        ModelFile::from_bytes(&bytes),
        Err(FormatError::TrailingBytes { count: 4 })
    );
}

fn parse_manifest(manifest: Value, values: &[f32]) -> Result<ModelFile, FormatError> {
    ModelFile::from_bytes(&craft_json(&manifest, values))
}

#[test]
fn manifest_errors() {
    let crafted = |text: &[u8]| ModelFile::from_bytes(&craft(1, text, 0, &[]));
    assert_eq!(crafted(b"{\"a\":\xff}"), Err(FormatError::ManifestNotUtf8));
    assert!(matches!(
        crafted(b"{\"tensors\": [}"),
        Err(FormatError::ManifestJson(_))
    ));
    assert!(matches!(crafted(b""), Err(FormatError::ManifestJson(_))));
    assert_eq!(crafted(b"[1, 2]"), Err(FormatError::ManifestNotObject));
    assert_eq!(
        crafted(br#"{"tensors": []}"#),
        Err(FormatError::ManifestVersionMismatch {
            found: "missing".into(),
            header: 1
        })
    );
    assert_eq!(
        crafted(br#"{"tensors": [], "format_version": 1.0}"#),
        Err(FormatError::ManifestVersionMismatch {
            found: "1.0".into(),
            header: 1
        })
    );
    assert_eq!(
        crafted(br#"{"format_version": 1}"#),
        Err(FormatError::MissingTensorList)
    );
    for bad in [
        json!({"format_version": 1, "tensors": {"a": [1]}}),
        json!({"format_version": 1, "tensors": [["a", [1]]]}),
        json!({"format_version": 1, "tensors": [{"name": "a"}]}),
        json!({"format_version": 1, "tensors": [{"name": 3, "shape": [1]}]}),
        json!({"format_version": 1, "tensors": [{"name": "a", "shape": [1.5]}]}),
        json!({"format_version": 1, "tensors": [{"name": "a", "shape": [1.0]}]}),
        json!({"format_version": 1, "tensors": [{"name": "a", "shape": [-1]}]}),
        json!({"format_version": 1, "tensors": [{"name": "a", "shape": [1], "dtype": "f32"}]}),
    ] {
        assert!(
            matches!(
                parse_manifest(bad.clone(), &[0.0]),
                Err(FormatError::BadTensorList(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn absurd_shapes_and_names() {
    let t = |tensors: Value| json!({"format_version": 1, "tensors": tensors});
    assert_eq!(
        parse_manifest(
            t(json!([{"name": "a", "shape": [1, 1, 1, 1, 1, 1, 1]}])),
            &[0.0]
        ),
        Err(FormatError::RankTooLarge {
            name: "a".into(),
            rank: 7,
            max: 6
        })
    );
    assert_eq!(
        parse_manifest(t(json!([{"name": "a", "shape": [2, (1u64 << 28) + 1]}])), &[]),
        Err(FormatError::DimensionTooLarge {
            name: "a".into(),
            dim: (1 << 28) + 1,
            max: 1 << 28
        })
    );
    assert_eq!(
        parse_manifest(t(json!([{"name": "a", "shape": [u64::MAX]}])), &[]),
        Err(FormatError::DimensionTooLarge {
            name: "a".into(),
            dim: u64::MAX,
            max: 1 << 28
        })
    );
    assert_eq!(
        parse_manifest(t(json!([{"name": "a", "shape": [3, 0]}])), &[]),
        Err(FormatError::ZeroDimension { name: "a".into() })
    );
    // 1024^3 = 2^30 values > 2^29, all axes individually fine.
    let err = parse_manifest(t(json!([{"name": "a", "shape": [1024, 1024, 1024]}])), &[])
        .expect_err("too many elements");
    assert_eq!(
        err,
        FormatError::TooManyElements {
            total: 1 << 30,
            max: 1 << 29
        }
    );
    // The limit is on the sum over tensors.
    let err = parse_manifest(
        t(json!([{"name": "a", "shape": [1 << 20, 256]}, {"name": "b", "shape": [1 << 20, 257]}])),
        &[],
    )
    .expect_err("too many elements");
    assert!(matches!(err, FormatError::TooManyElements { total, .. } if total == (513 << 20)));
    assert_eq!(
        parse_manifest(
            t(json!([{"name": "w", "shape": [1]}, {"name": "w", "shape": [1]}])),
            &[0.0, 0.0]
        ),
        Err(FormatError::DuplicateTensorName { name: "w".into() })
    );
    assert_eq!(
        parse_manifest(t(json!([{"name": "", "shape": [1]}])), &[0.0]),
        Err(FormatError::EmptyTensorName)
    );
    let many: Vec<Value> = (0..4097)
        .map(|i| json!({"name": format!("t{i}"), "shape": [1]}))
        .collect();
    assert_eq!(
        parse_manifest(t(Value::Array(many)), &[]),
        Err(FormatError::TooManyTensors {
            count: 4097,
            max: 4096
        })
    );
    let text = FormatError::DimensionTooLarge {
        name: "conv".into(),
        dim: 5,
        max: 4,
    }
    .to_string();
    assert!(
        text.contains("\"conv\"") && text.contains("axis") && text.contains('5'),
        "{text}"
    );
}

#[test]
fn custom_limits() {
    let bytes = small_model().to_bytes().expect("write");
    let tight = Limits {
        max_total_elements: 15,
        ..Limits::default()
    };
    assert!(matches!(
        ModelFile::from_bytes_with_limits(&bytes, &tight),
        Err(FormatError::TooManyElements { total: 16, max: 15 })
    ));
    let tight = Limits {
        max_manifest_bytes: 10,
        ..Limits::default()
    };
    assert!(matches!(
        ModelFile::from_bytes_with_limits(&bytes, &tight),
        Err(FormatError::ManifestTooLarge { max: 10, .. })
    ));
    assert!(matches!(
        small_model().to_bytes_with_limits(&tight),
        Err(FormatError::ManifestTooLarge { max: 10, .. })
    ));
    let tight = Limits {
        max_rank: 3,
        ..Limits::default()
    };
    assert!(matches!(
        ModelFile::from_bytes_with_limits(&bytes, &tight),
        Err(FormatError::RankTooLarge {
            rank: 4,
            max: 3,
            ..
        })
    ));
    let tight = Limits {
        max_tensors: 2,
        ..Limits::default()
    };
    assert_eq!(
        small_model().to_bytes_with_limits(&tight),
        Err(FormatError::TooManyTensors { count: 3, max: 2 })
    );
}

#[test]
fn writer_validation() {
    let with = |tensors: Vec<NamedTensor>| ModelFile {
        manifest: json!({}),
        tensors,
    };
    let err = with(vec![NamedTensor::new("w", vec![2, 3], vec![0.0; 5])])
        .to_bytes()
        .expect_err("count");
    assert_eq!(
        err,
        FormatError::ValueCountMismatch {
            name: "w".into(),
            shape: vec![2, 3],
            len: 5
        }
    );
    assert!(err.to_string().contains("[2, 3]") && err.to_string().contains("5 values"));
    // A scalar has exactly one value.
    assert!(matches!(
        with(vec![NamedTensor::new("s", vec![], vec![])]).to_bytes(),
        Err(FormatError::ValueCountMismatch { len: 0, .. })
    ));
    assert_eq!(
        ModelFile {
            manifest: json!([1]),
            tensors: vec![]
        }
        .to_bytes(),
        Err(FormatError::ManifestNotObject)
    );
    assert_eq!(
        with(vec![NamedTensor::new("z", vec![0], vec![])]).to_bytes(),
        Err(FormatError::ZeroDimension { name: "z".into() })
    );
    assert_eq!(
        with(vec![NamedTensor::new("", vec![1], vec![1.0])]).to_bytes(),
        Err(FormatError::EmptyTensorName)
    );
    assert_eq!(
        with(vec![
            NamedTensor::new("d", vec![1], vec![1.0]),
            NamedTensor::new("d", vec![1], vec![2.0])
        ])
        .to_bytes(),
        Err(FormatError::DuplicateTensorName { name: "d".into() })
    );
    assert!(matches!(
        with(vec![NamedTensor::new("r", vec![1; 7], vec![1.0])]).to_bytes(),
        Err(FormatError::RankTooLarge { rank: 7, .. })
    ));
    assert!(matches!(
        with(vec![NamedTensor::new("big", vec![usize::MAX], vec![])]).to_bytes(),
        Err(FormatError::DimensionTooLarge { .. })
    ));
}

#[test]
fn committed_fuzz_seeds_are_valid_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "ebm") {
            let bytes = std::fs::read(&path).expect("read seed");
            let model =
                ModelFile::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                model.to_bytes().expect("rewrite"),
                bytes,
                "{}",
                path.display()
            );
            parsed += 1;
        }
    }
    assert!(parsed >= 3, "expected the seed files in {}", dir.display());
}
