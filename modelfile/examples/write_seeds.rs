//! Writes a few small valid model files, the seed corpus of the `model_file_parse`
//! fuzz target: `cargo run -p modelfile --example write_seeds -- fuzz/seeds`.

use std::path::PathBuf;

use modelfile::{ModelFile, NamedTensor};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: write_seeds <dir>")?);
    std::fs::create_dir_all(&dir)?;
    let seeds = [
        (
            "empty.ebm",
            ModelFile {
                manifest: json!({}),
                tensors: vec![],
            },
        ),
        (
            "small.ebm",
            ModelFile {
                manifest: json!({
                    "kind": "ebm-convnet",
                    "image": {"channels": 1, "height": 4, "width": 4},
                    "langevin": {"step_size": 0.003, "steps": 30, "noise": true},
                    "labels": ["a", "b\u{e9}"],
                    "extra": null,
                }),
                tensors: vec![
                    NamedTensor::new("temperature", vec![], vec![1.0]),
                    NamedTensor::new("conv.bias", vec![2], vec![0.5, -0.25]),
                    NamedTensor::new(
                        "conv.weight",
                        vec![2, 1, 2, 2],
                        (0..8).map(|i| i as f32 - 3.5).collect(),
                    ),
                ],
            },
        ),
        (
            "rank6.ebm",
            ModelFile {
                manifest: json!({"note": "max rank", "eps": 1e-8}),
                tensors: vec![
                    NamedTensor::new("r6", vec![1, 2, 1, 1, 2, 1], vec![1e-30, -0.0, 3e30, 7.0]),
                    NamedTensor::new("v", vec![3], vec![f32::MAX, f32::MIN, f32::MIN_POSITIVE]),
                ],
            },
        ),
    ];
    for (name, model) in seeds {
        let path = dir.join(name);
        std::fs::write(&path, model.to_bytes()?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
