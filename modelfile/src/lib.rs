//! Container format of a trained model file.
//!
//! Pure Rust, no tensor library: it compiles for native targets and for
//! `wasm32-unknown-unknown`. The caller interprets the model-specific parts of the
//! manifest and turns [`NamedTensor`]s into tensors of its own.
//!
//! # Byte layout (all integers little-endian)
//!
//! ```text
//! offset 0   8 bytes  magic b"EBMMODEL"
//! offset 8   u32      format version (FORMAT_VERSION)
//! offset 12  u32      manifest length M in bytes (at most Limits::max_manifest_bytes)
//! offset 16  M bytes  manifest: UTF-8 JSON object, with "format_version" and
//!                     "tensors": [{"name": ..., "shape": [...]}, ...]
//! then       u64      payload length P = 4 × total element count of the listed tensors
//! then       P bytes  payload: each tensor's f32 values, little-endian, row-major,
//!                     in manifest order, concatenated
//! then       u32      CRC-32 (IEEE) of every byte before it
//! end of file
//! ```
//!
//! # Validation order in [`ModelFile::from_bytes`]
//!
//! 1. framing: [`FormatError::TooShort`] / [`FormatError::WrongMagic`],
//!    [`FormatError::UnsupportedVersion`], [`FormatError::ManifestTooLarge`],
//!    [`FormatError::Truncated`] (manifest, payload length, payload, checksum),
//!    [`FormatError::TrailingBytes`];
//! 2. [`FormatError::ChecksumMismatch`] (so any corruption is reported as such,
//!    before the manifest is parsed);
//! 3. manifest: UTF-8, JSON, object, `format_version`, the `tensors` list and the limits;
//! 4. [`FormatError::PayloadLengthMismatch`];
//! 5. decoding the floats: [`FormatError::NonFiniteValue`].
//!
//! No allocation is sized from a length before that length is known to fit in the input.
//!
//! # Example
//!
//! ```
//! use modelfile::{ModelFile, NamedTensor};
//!
//! let model = ModelFile {
//!     manifest: serde_json::json!({"kind": "ebm-convnet", "channels": 3}),
//!     tensors: vec![NamedTensor::new("bias", vec![3], vec![0.5, -1.0, 2.0])],
//! };
//! let bytes = model.to_bytes()?;
//! let back = ModelFile::from_bytes(&bytes)?;
//! assert_eq!(back.tensor("bias"), model.tensor("bias"));
//! assert_eq!(back.manifest["format_version"], 1);
//! # Ok::<(), modelfile::FormatError>(())
//! ```

#![warn(missing_docs)]

mod crc32;
mod error;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::crc32::crc32;
pub use crate::error::FormatError;

/// Current format version written by [`ModelFile::to_bytes`], and the only one read.
pub const FORMAT_VERSION: u32 = 1;

/// The 8 bytes every model file starts with.
pub const MAGIC: [u8; 8] = *b"EBMMODEL";
pub(crate) const MAGIC_STR: &str = "EBMMODEL";

/// Length of the fixed header: magic, version, manifest length.
pub const HEADER_LEN: usize = 16;

/// Default [`Limits::max_tensors`].
pub const MAX_TENSORS: usize = 4096;
/// Default [`Limits::max_rank`].
pub const MAX_RANK: usize = 6;
/// Default [`Limits::max_dim`]: long enough for a whole net's parameters flattened into one
/// axis (a checkpoint's optimiser moments; the paper's short-run net has a 2 097 152-value
/// layer), the total staying bounded by [`MAX_ELEMENTS_TOTAL`].
pub const MAX_DIM: usize = 1 << 28;
/// Default [`Limits::max_total_elements`] (2 GiB of f32).
pub const MAX_ELEMENTS_TOTAL: u64 = 1 << 29;
/// Default [`Limits::max_manifest_bytes`] (16 MiB).
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// Manifest key holding the list of [`TensorEntry`].
pub const TENSORS_KEY: &str = "tensors";
/// Manifest key holding the format version.
pub const FORMAT_VERSION_KEY: &str = "format_version";

/// Bounds beyond which a file is rejected as absurd (corrupted or hostile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most tensors a file may list.
    pub max_tensors: usize,
    /// Most axes a tensor may have (0 axes, a scalar, is allowed).
    pub max_rank: usize,
    /// Longest axis.
    pub max_dim: usize,
    /// Most f32 values over all tensors together.
    pub max_total_elements: u64,
    /// Longest manifest, in bytes.
    pub max_manifest_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tensors: MAX_TENSORS,
            max_rank: MAX_RANK,
            max_dim: MAX_DIM,
            max_total_elements: MAX_ELEMENTS_TOTAL,
            max_manifest_bytes: MAX_MANIFEST_BYTES,
        }
    }
}

/// A named f32 tensor; `values` are row-major and `values.len()` is the product of
/// `shape` (1 for the scalar shape `[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Unique, non-empty name.
    pub name: String,
    /// Axis lengths, each at least 1.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f32>,
}

impl NamedTensor {
    /// Builds a tensor (no validation; [`ModelFile::to_bytes`] validates).
    pub fn new(name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape,
            values,
        }
    }
}

/// One tensor's entry in the manifest: `{"name": "...", "shape": [..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorEntry {
    /// Tensor name.
    pub name: String,
    /// Axis lengths.
    pub shape: Vec<usize>,
}

/// A parsed model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// The whole manifest JSON object. After [`ModelFile::from_bytes`] it still holds the
    /// `"tensors"` and `"format_version"` keys; [`ModelFile::to_bytes`] overwrites both.
    pub manifest: Value,
    /// Tensors in file order.
    pub tensors: Vec<NamedTensor>,
}

impl ModelFile {
    /// Serialises with the default [`Limits`].
    ///
    /// The manifest written is `manifest` with the key `"tensors"` set to the list of
    /// [`TensorEntry`] and `"format_version"` set to [`FORMAT_VERSION`] (overwriting any
    /// existing values). Fails if `manifest` is not a JSON object, if a tensor's
    /// `values.len()` differs from the product of its shape, if a value is not finite,
    /// on empty or duplicate names, or if a limit is exceeded — i.e. whenever
    /// [`ModelFile::from_bytes`] would reject the result.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        self.to_bytes_with_limits(&Limits::default())
    }

    /// Serialises, checking against `limits`. See [`ModelFile::to_bytes`].
    pub fn to_bytes_with_limits(&self, limits: &Limits) -> Result<Vec<u8>, FormatError> {
        let Value::Object(user_manifest) = &self.manifest else {
            return Err(FormatError::ManifestNotObject);
        };
        if self.tensors.len() > limits.max_tensors {
            return Err(FormatError::TooManyTensors {
                count: self.tensors.len(),
                max: limits.max_tensors,
            });
        }
        let mut checker = EntryChecker::new(limits);
        for tensor in &self.tensors {
            let dims = tensor
                .shape
                .iter()
                .map(|&d| u64::try_from(d).unwrap_or(u64::MAX));
            let count = checker.check(&tensor.name, tensor.shape.len(), dims)?;
            if u64::try_from(tensor.values.len()).ok() != Some(count) {
                return Err(FormatError::ValueCountMismatch {
                    name: tensor.name.clone(),
                    shape: tensor.shape.clone(),
                    len: tensor.values.len(),
                });
            }
            if let Some(index) = tensor.values.iter().position(|v| !v.is_finite()) {
                return Err(FormatError::NonFiniteValue {
                    name: tensor.name.clone(),
                    index,
                });
            }
        }
        let payload_len = checker.payload_len()?;

        let mut manifest = user_manifest.clone();
        let entries = self
            .tensors
            .iter()
            .map(|t| {
                let mut entry = Map::new();
                entry.insert("name".to_owned(), Value::from(t.name.as_str()));
                entry.insert("shape".to_owned(), Value::from(t.shape.clone()));
                Value::Object(entry)
            })
            .collect();
        manifest.insert(TENSORS_KEY.to_owned(), Value::Array(entries));
        manifest.insert(FORMAT_VERSION_KEY.to_owned(), Value::from(FORMAT_VERSION));
        let manifest_bytes = serde_json::to_vec(&Value::Object(manifest))
            .map_err(|e| FormatError::ManifestJson(e.to_string()))?;
        let manifest_len = u32::try_from(manifest_bytes.len())
            .ok()
            .filter(|&len| len as usize <= limits.max_manifest_bytes)
            .ok_or(FormatError::ManifestTooLarge {
                len: manifest_bytes.len() as u64,
                max: limits.max_manifest_bytes,
            })?;

        let capacity = usize::try_from(payload_len)
            .ok()
            .and_then(|p| p.checked_add(manifest_bytes.len()))
            .and_then(|n| n.checked_add(HEADER_LEN + 8 + 4))
            .unwrap_or(0);
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&manifest_len.to_le_bytes());
        out.extend_from_slice(&manifest_bytes);
        out.extend_from_slice(&payload_len.to_le_bytes());
        for tensor in &self.tensors {
            for value in &tensor.values {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        let checksum = crc32(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        Ok(out)
    }

    /// Parses and validates `bytes` with the default [`Limits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        Self::from_bytes_with_limits(bytes, &Limits::default())
    }

    /// Parses and validates `bytes`, rejecting anything beyond `limits`.
    /// See the crate documentation for the order of the checks.
    pub fn from_bytes_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self, FormatError> {
        // --- framing ---
        if bytes.len() < HEADER_LEN {
            let prefix = bytes.len().min(MAGIC.len());
            if bytes.get(..prefix) != MAGIC.get(..prefix) {
                return Err(FormatError::WrongMagic);
            }
            return Err(FormatError::TooShort { len: bytes.len() });
        }
        let mut reader = Reader { bytes, pos: 0 };
        if reader.take(8, "magic")? != MAGIC {
            return Err(FormatError::WrongMagic);
        }
        let version = reader.u32("format version")?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let manifest_len = u64::from(reader.u32("manifest length")?);
        if manifest_len > limits.max_manifest_bytes as u64 {
            return Err(FormatError::ManifestTooLarge {
                len: manifest_len,
                max: limits.max_manifest_bytes,
            });
        }
        let manifest_bytes = reader.take(manifest_len, "manifest")?;
        let payload_len = reader.u64("payload length")?;
        let payload = reader.take(payload_len, "payload")?;
        let checksummed_len = reader.pos;
        let stored = reader.u32("checksum")?;
        let trailing = bytes.len() - reader.pos;
        if trailing > 0 {
            return Err(FormatError::TrailingBytes {
                count: trailing as u64,
            });
        }
        let computed = crc32(bytes.get(..checksummed_len).unwrap_or_default());
        if stored != computed {
            return Err(FormatError::ChecksumMismatch { stored, computed });
        }

        // --- manifest ---
        let text = std::str::from_utf8(manifest_bytes).map_err(|_| FormatError::ManifestNotUtf8)?;
        let manifest: Value =
            serde_json::from_str(text).map_err(|e| FormatError::ManifestJson(e.to_string()))?;
        let Value::Object(object) = &manifest else {
            return Err(FormatError::ManifestNotObject);
        };
        match object.get(FORMAT_VERSION_KEY) {
            Some(v) if v.as_u64() == Some(u64::from(version)) => {}
            found => {
                return Err(FormatError::ManifestVersionMismatch {
                    found: found.map_or_else(|| "missing".to_owned(), Value::to_string),
                    header: version,
                });
            }
        }
        let entries = parse_entries(object, limits)?;
        let mut checker = EntryChecker::new(limits);
        let mut counts = Vec::with_capacity(entries.len());
        for entry in &entries {
            counts.push(checker.check(
                entry.name,
                entry.shape.len(),
                entry.shape.iter().copied(),
            )?);
        }
        let expected = checker.payload_len()?;
        if payload_len != expected {
            return Err(FormatError::PayloadLengthMismatch {
                declared: payload_len,
                expected,
            });
        }

        // --- payload ---
        // Every count is now bounded by the payload actually present in `bytes`.
        let mut tensors = Vec::with_capacity(entries.len());
        let mut rest = payload;
        for (entry, count) in entries.iter().zip(counts) {
            let count = usize::try_from(count).map_err(|_| FormatError::TooManyElements {
                total: count,
                max: limits.max_total_elements,
            })?;
            // Cannot fail: the counts sum to exactly `payload.len() / 4`.
            let (chunk, tail) = count
                .checked_mul(4)
                .and_then(|n| rest.split_at_checked(n))
                .ok_or(FormatError::PayloadLengthMismatch {
                    declared: payload_len,
                    expected,
                })?;
            rest = tail;
            let mut values = Vec::with_capacity(count);
            for (index, b) in chunk.chunks_exact(4).enumerate() {
                let value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if !value.is_finite() {
                    return Err(FormatError::NonFiniteValue {
                        name: entry.name.to_owned(),
                        index,
                    });
                }
                values.push(value);
            }
            let shape = entry
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| FormatError::DimensionTooLarge {
                    name: entry.name.to_owned(),
                    dim: entry.shape.iter().copied().max().unwrap_or(0),
                    max: limits.max_dim,
                })?;
            tensors.push(NamedTensor {
                name: entry.name.to_owned(),
                shape,
                values,
            });
        }
        Ok(Self { manifest, tensors })
    }

    /// Finds a tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor list as manifest entries, in file order.
    pub fn entries(&self) -> Vec<TensorEntry> {
        self.tensors
            .iter()
            .map(|t| TensorEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
            })
            .collect()
    }
}

/// Cursor over the input that never reads or slices past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], FormatError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let truncated = FormatError::Truncated {
            what,
            needed: len,
            available: rest.len() as u64,
        };
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        let taken = rest.get(..len).ok_or(truncated)?;
        self.pos += len;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        self.array(what).map(u64::from_le_bytes)
    }
}

/// A manifest entry borrowed from the parsed JSON, dims not yet converted to `usize`.
struct RawEntry<'a> {
    name: &'a str,
    shape: Vec<u64>,
}

/// Reads `"tensors"` strictly: a list of objects with exactly the keys `name` (string)
/// and `shape` (list of non-negative integers), so that writing it back is lossless.
fn parse_entries<'a>(
    manifest: &'a Map<String, Value>,
    limits: &Limits,
) -> Result<Vec<RawEntry<'a>>, FormatError> {
    let list = manifest
        .get(TENSORS_KEY)
        .ok_or(FormatError::MissingTensorList)?;
    let Value::Array(list) = list else {
        return Err(FormatError::BadTensorList("it is not a list".to_owned()));
    };
    if list.len() > limits.max_tensors {
        return Err(FormatError::TooManyTensors {
            count: list.len(),
            max: limits.max_tensors,
        });
    }
    let bad = |i: usize, why: &str| FormatError::BadTensorList(format!("entry {i} {why}"));
    let mut entries = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(bad(i, "is not an object"));
        };
        if let Some(key) = object.keys().find(|k| *k != "name" && *k != "shape") {
            return Err(bad(i, &format!("has an unexpected key {key:?}")));
        }
        let Some(Value::String(name)) = object.get("name") else {
            return Err(bad(i, "has no \"name\" string"));
        };
        let Some(Value::Array(shape)) = object.get("shape") else {
            return Err(bad(i, &format!("({name:?}) has no \"shape\" list")));
        };
        if shape.len() > limits.max_rank {
            // Checked here too so a hostile rank is not collected below.
            return Err(FormatError::RankTooLarge {
                name: name.clone(),
                rank: shape.len(),
                max: limits.max_rank,
            });
        }
        let shape = shape
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| {
                bad(
                    i,
                    &format!("({name:?}) has an axis length that is not a non-negative integer"),
                )
            })?;
        entries.push(RawEntry { name, shape });
    }
    Ok(entries)
}

/// The per-tensor checks shared by the reader and the writer.
struct EntryChecker<'a> {
    limits: &'a Limits,
    names: HashSet<String>,
    total: u64,
}

impl<'a> EntryChecker<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            names: HashSet::new(),
            total: 0,
        }
    }

    /// Checks one tensor's name and shape; returns its element count.
    fn check(
        &mut self,
        name: &str,
        rank: usize,
        dims: impl Iterator<Item = u64>,
    ) -> Result<u64, FormatError> {
        if name.is_empty() {
            return Err(FormatError::EmptyTensorName);
        }
        if self.names.contains(name) {
            return Err(FormatError::DuplicateTensorName {
                name: name.to_owned(),
            });
        }
        if rank > self.limits.max_rank {
            return Err(FormatError::RankTooLarge {
                name: name.to_owned(),
                rank,
                max: self.limits.max_rank,
            });
        }
        let mut count: u64 = 1;
        for dim in dims {
            if dim == 0 {
                return Err(FormatError::ZeroDimension {
                    name: name.to_owned(),
                });
            }
            if dim > self.limits.max_dim as u64 {
                return Err(FormatError::DimensionTooLarge {
                    name: name.to_owned(),
                    dim,
                    max: self.limits.max_dim,
                });
            }
            count = count.saturating_mul(dim);
        }
        self.total = self.total.saturating_add(count);
        if self.total > self.limits.max_total_elements {
            return Err(FormatError::TooManyElements {
                total: self.total,
                max: self.limits.max_total_elements,
            });
        }
        self.names.insert(name.to_owned());
        Ok(count)
    }

    /// Payload length in bytes for the tensors checked so far.
    fn payload_len(&self) -> Result<u64, FormatError> {
        self.total
            .checked_mul(4)
            .ok_or(FormatError::TooManyElements {
                total: self.total,
                max: self.limits.max_total_elements,
            })
    }
}
