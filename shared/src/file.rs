//! The model file: one self-describing file per trained model.
//!
//! The container (magic, version, JSON manifest, f32 payload, CRC-32) is the `modelfile`
//! crate; this module gives the manifest its schema and maps tensors onto [`Stack`]s. The
//! manifest records the family and its full configuration, the data layout, range and
//! normalisation, sampler defaults and training provenance, so the browser runtime samples
//! exactly what was trained. Loading validates everything before any tensor is built and
//! answers bad files with a [`ModelFileError`] naming the problem.

use std::collections::BTreeMap;

use burn::prelude::*;
use modelfile::{ModelFile, NamedTensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ArchError;
use crate::layers::Stack;
use crate::nets::{ModelSpec, Role};
use crate::sampler::{ChainInit, LangevinConfig, MalaConfig};

pub use modelfile::FormatError;

/// Prefix of tensors that belong to no network (e.g. `extra.start_colors`).
pub const EXTRA_PREFIX: &str = "extra.";

/// How pixel values of the training data were mapped to the model's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// `x = v/127.5 − 1`: `[0, 255]` → `[−1, 1]` (short-run, MEG).
    MinusOneToOne,
    /// Raw `[0, 255]` intensities (multigrid).
    Raw255,
    /// `[0, 255]` minus a mean (generative ConvNet): one value per channel, or per pixel
    /// (`C·H·W` values) for aligned objects.
    MeanSubtracted {
        /// The mean that was subtracted.
        mean: Vec<f32>,
    },
    /// Feature vectors used as they are (toy 2-D data, KDD99).
    Identity,
}

/// Layout and value convention of the data a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Channels (or vector length for vector data).
    pub channels: usize,
    /// Height (1 for vectors).
    pub height: usize,
    /// Width (1 for vectors).
    pub width: usize,
    /// Range of model-space values of real data, for display clamping.
    pub range: [f64; 2],
    /// Pixel → model-space mapping.
    pub normalization: Normalization,
}

impl DataSpec {
    /// Model-space images `[N, C, H, W]` in a form a display maps linearly from the returned
    /// range to black..white: mean-subtracted data gets its mean added back (range 0..255);
    /// other conventions are returned as they are with the data's own range. A per-pixel mean
    /// applies to canvases of the training size; other canvases get its per-channel average.
    #[must_use]
    pub fn display(&self, values: &[f32], [_, channels, height, width]: [usize; 4]) -> (Vec<f32>, [f32; 2]) {
        let Normalization::MeanSubtracted { mean } = &self.normalization else {
            return (values.to_vec(), self.range.map(|v| v as f32));
        };
        let plane = (height * width).max(1);
        let image = channels * plane;
        let offset: Vec<f32> = if mean.len() == image {
            mean.clone()
        } else {
            // Per-channel means, from a per-channel or per-pixel mean vector.
            let per_channel: Vec<f32> = match mean.len() {
                n if n == channels => mean.clone(),
                n if n > 0 && n % channels.max(1) == 0 => mean.chunks(n / channels).map(|c| c.iter().sum::<f32>() / c.len() as f32).collect(),
                _ => vec![0.0; channels],
            };
            (0..image).map(|i| per_channel[i / plane]).collect()
        };
        let shifted = values.iter().enumerate().map(|(i, v)| v + offset[i % image.max(1)]).collect();
        (shifted, [0.0, 255.0])
    }
}

/// Sampler settings the model was trained with; callers may override each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerDefaults {
    /// Chain initialisation.
    pub init: ChainInit,
    /// Langevin settings, one per energy stack in model order (one per grid for multigrid).
    pub langevin: Vec<LangevinConfig>,
    /// Latent MALA settings (MEG).
    #[serde(default)]
    pub mala: Option<MalaConfig>,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// Training data set.
    pub dataset: String,
    /// Training iterations completed.
    pub iterations: u64,
    /// Training seed.
    pub seed: u64,
    /// Source revision of the trainer, if known.
    #[serde(default)]
    pub git_revision: Option<String>,
    /// Program and version that wrote the file.
    pub created_by: String,
}

/// The manifest of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Family and full architecture.
    pub model: ModelSpec,
    /// Data layout and normalisation.
    pub data: DataSpec,
    /// Sampler defaults.
    pub sampler: SamplerDefaults,
    /// Provenance.
    pub provenance: Provenance,
}

/// A model file that cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// The container is damaged or not a model file.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The manifest does not follow the schema.
    #[error("the manifest does not describe a model: {0}")]
    Manifest(String),
    /// The configured architecture cannot be built.
    #[error("the model's architecture is invalid: {0}")]
    Architecture(#[from] ArchError),
    /// A tensor the architecture needs is not in the file.
    #[error("the file lacks tensor \"{name}\" that the architecture needs")]
    MissingTensor {
        /// Tensor name.
        name: String,
    },
    /// A tensor in the file belongs to no part of the architecture.
    #[error("the file holds tensor \"{name}\", which the architecture does not have")]
    UnexpectedTensor {
        /// Tensor name.
        name: String,
    },
    /// A tensor's shape differs from the architecture's.
    #[error("tensor \"{name}\" has shape {found:?}, but the architecture needs {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Shape the architecture needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The data description contradicts the architecture.
    #[error("the data description does not fit the model: {0}")]
    Data(String),
}

/// One named network of a loaded model.
#[derive(Debug, Clone)]
pub struct ModelStack {
    /// Name (tensor prefix).
    pub name: String,
    /// Role.
    pub role: Role,
    /// The network.
    pub stack: Stack,
}

/// A model in memory: manifest, networks and extra tensors (e.g. multigrid start colours).
#[derive(Debug, Clone)]
pub struct Model {
    /// Manifest.
    pub manifest: Manifest,
    /// Networks in the family's order.
    pub stacks: Vec<ModelStack>,
    /// Tensors that belong to no network, by name.
    pub extras: BTreeMap<String, NamedTensor>,
}

impl Manifest {
    /// Checks the manifest's internal consistency (architecture buildable, data fits it).
    pub fn validate(&self) -> Result<(), ModelFileError> {
        let stacks = self.model.stacks()?;
        let data = &self.data;
        if !(data.range[0].is_finite() && data.range[1].is_finite() && data.range[0] < data.range[1]) {
            return Err(ModelFileError::Data(format!("range {:?} is not an increasing pair of finite numbers", data.range)));
        }
        if let Normalization::MeanSubtracted { mean } = &data.normalization {
            let pixels = data.channels * data.height * data.width;
            if mean.len() != data.channels && mean.len() != pixels || mean.iter().any(|v| !v.is_finite()) {
                return Err(ModelFileError::Data(format!(
                    "the subtracted mean holds {} values; it must be {} finite values (one per channel) or {pixels} (one per pixel)",
                    mean.len(),
                    data.channels
                )));
            }
        }
        for stack in stacks.iter().filter(|s| matches!(s.role, Role::Energy(_))) {
            if stack.spec.input[0] != data.channels {
                return Err(ModelFileError::Data(format!(
                    "net \"{}\" takes {} channels but the data has {}",
                    stack.name, stack.spec.input[0], data.channels
                )));
            }
        }
        for (stage, langevin) in self.sampler.langevin.iter().enumerate() {
            langevin.validate().map_err(|e| ModelFileError::Data(format!("its Langevin settings (stage {stage}) are unusable: {e}")))?;
        }
        if let Some(mala) = &self.sampler.mala {
            crate::generate::check_mala(mala).map_err(|e| ModelFileError::Data(format!("its MALA defaults are unusable: {e}")))?;
        }
        let energies = stacks.iter().filter(|s| matches!(s.role, Role::Energy(_))).count();
        if self.sampler.langevin.len() != energies {
            return Err(ModelFileError::Data(format!(
                "{} Langevin settings for {} energy nets",
                self.sampler.langevin.len(),
                energies
            )));
        }
        Ok(())
    }
}

impl Model {
    /// A model with freshly initialised networks.
    pub fn init(manifest: Manifest, device: &Device) -> Result<Self, ModelFileError> {
        manifest.validate()?;
        let stacks = manifest
            .model
            .stacks()?
            .into_iter()
            .map(|s| Ok(ModelStack { stack: s.spec.init(device)?, name: s.name, role: s.role }))
            .collect::<Result<Vec<_>, ArchError>>()?;
        Ok(Self { manifest, stacks, extras: BTreeMap::new() })
    }

    /// The network called `name`.
    pub fn stack(&self, name: &str) -> Option<&Stack> {
        self.stacks.iter().find(|s| s.name == name).map(|s| &s.stack)
    }

    /// Serialises the model. Reads the weights back synchronously: native use only (a
    /// synchronous read panics on WebGPU in the browser).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelFileError> {
        Ok(self.to_model_file()?.to_bytes()?)
    }

    /// The container form of the model, for callers that add their own manifest keys or extra
    /// tensors (the trainer's checkpoints). Reads weights back synchronously (native only).
    pub fn to_model_file(&self) -> Result<ModelFile, ModelFileError> {
        let mut tensors = Vec::new();
        for stack in &self.stacks {
            for (name, shape, values) in stack.stack.parameters() {
                let values = values.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| ModelFileError::Manifest(format!("{e:?}")))?;
                tensors.push(NamedTensor { name: format!("{}.{name}", stack.name), shape, values });
            }
        }
        tensors.extend(self.extras.values().cloned());
        let manifest = serde_json::to_value(&self.manifest).map_err(|e| ModelFileError::Manifest(e.to_string()))?;
        Ok(ModelFile { manifest, tensors })
    }

    /// Parses, validates and builds a model on `device`. Never panics on bad input.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, ModelFileError> {
        Self::from_model_file(ModelFile::from_bytes(bytes)?, device)
    }

    /// Validates a parsed container and builds the model on `device`. Manifest keys beyond the
    /// schema are ignored.
    pub fn from_model_file(file: ModelFile, device: &Device) -> Result<Self, ModelFileError> {
        let manifest: Manifest = serde_json::from_value(file.manifest).map_err(|e| ModelFileError::Manifest(e.to_string()))?;
        manifest.validate()?;
        let specs = manifest.model.stacks()?;
        let mut by_name: BTreeMap<String, NamedTensor> = file.tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut stacks = Vec::with_capacity(specs.len());
        for spec in specs {
            // Shapes are checked against the architecture before any tensor is built.
            for (name, shape) in spec.spec.parameter_shapes()? {
                let full = format!("{}.{name}", spec.name);
                match by_name.get(&full) {
                    None => return Err(ModelFileError::MissingTensor { name: full }),
                    Some(t) if t.shape != shape => {
                        return Err(ModelFileError::ShapeMismatch { name: full, expected: shape, found: t.shape.clone() });
                    }
                    Some(_) => {}
                }
            }
            let stack = spec.spec.init(device)?.load_parameters::<ModelFileError>(|name, _| {
                let full = format!("{}.{name}", spec.name);
                let tensor = by_name.remove(&full).ok_or(ModelFileError::MissingTensor { name: full })?;
                let len = tensor.values.len();
                Ok(Tensor::from_data(TensorData::new(tensor.values, [len]), device))
            })?;
            stacks.push(ModelStack { name: spec.name, role: spec.role, stack });
        }
        if let Some(name) = by_name.keys().find(|name| !name.starts_with(EXTRA_PREFIX)) {
            return Err(ModelFileError::UnexpectedTensor { name: name.clone() });
        }
        let extras = by_name;
        Ok(Self { manifest, stacks, extras })
    }
}
