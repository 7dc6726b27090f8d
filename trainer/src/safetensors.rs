//! The safetensors container (an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype, shape and byte range, then the raw data), f32 tensors only: the converted FID
//! Inception weights and the cached Inception features of reference data sets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A named f32 tensor: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Extent of each dimension.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub values: Vec<f32>,
}

/// A whole file: tensors by name and the free-form string metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, NamedTensor>,
    /// The `__metadata__` entries.
    pub metadata: BTreeMap<String, String>,
}

/// What can be wrong with a safetensors file; messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed safetensors file of f32 tensors.
    #[error("{}: not a safetensors file of f32 tensors: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// Largest header accepted; real headers are a few tens of kilobytes.
const MAX_HEADER_BYTES: u64 = 16 << 20;

impl TensorFile {
    /// Reads `path`, checking every tensor's dtype, shape and byte range.
    pub fn read(path: &Path) -> Result<Self, SafetensorsError> {
        let bytes = std::fs::read(path).map_err(|source| SafetensorsError::Io { path: path.to_owned(), source })?;
        Self::parse(&bytes).map_err(|reason| SafetensorsError::Malformed { path: path.to_owned(), reason })
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let length = bytes.get(..8).ok_or("shorter than the 8-byte header length")?;
        let length = u64::from_le_bytes(length.try_into().map_err(|_| "truncated header length")?);
        if length > MAX_HEADER_BYTES || 8 + length > bytes.len() as u64 {
            return Err(format!("header length {length} does not fit the file's {} bytes", bytes.len()));
        }
        let header = &bytes[8..8 + length as usize];
        let data = &bytes[8 + length as usize..];
        let mut entries: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(header).map_err(|e| format!("header is not a JSON object: {e}"))?;
        let mut file = TensorFile::default();
        if let Some(metadata) = entries.remove("__metadata__") {
            file.metadata = serde_json::from_value(metadata).map_err(|e| format!("__metadata__ is not string pairs: {e}"))?;
        }
        for (name, entry) in entries {
            let entry: Entry = serde_json::from_value(entry).map_err(|e| format!("tensor {name}: {e}"))?;
            if entry.dtype != "F32" {
                return Err(format!("tensor {name} has dtype {}, only F32 is read", entry.dtype));
            }
            let [start, end] = entry.data_offsets;
            let count = entry.shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).ok_or(format!("tensor {name}: shape overflows"))?;
            if start > end || end > data.len() || end - start != count * 4 {
                return Err(format!("tensor {name}: byte range {start}..{end} does not hold shape {:?} in {} data bytes", entry.shape, data.len()));
            }
            let values = data[start..end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            file.tensors.insert(name, NamedTensor { shape: entry.shape, values });
        }
        Ok(file)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (name, tensor) in &self.tensors {
            let end = offset + tensor.values.len() * 4;
            let entry = Entry { dtype: "F32".into(), shape: tensor.shape.clone(), data_offsets: [offset, end] };
            header.insert(name.clone(), serde_json::to_value(entry).expect("plain struct"));
            offset = end;
        }
        if !self.metadata.is_empty() {
            header.insert("__metadata__".into(), serde_json::to_value(&self.metadata).expect("string map"));
        }
        let mut encoded = serde_json::to_vec(&header).expect("JSON map");
        encoded.resize(encoded.len().next_multiple_of(8), b' ');
        let mut bytes = Vec::with_capacity(8 + encoded.len() + offset);
        bytes.extend_from_slice(&(encoded.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&encoded);
        for tensor in self.tensors.values() {
            bytes.extend(tensor.values.iter().flat_map(|v| v.to_le_bytes()));
        }
        bytes
    }

    /// The tensor called `name`, or a [`SafetensorsError::Malformed`] naming it.
    pub fn tensor(&self, path: &Path, name: &str) -> Result<&NamedTensor, SafetensorsError> {
        self.tensors.get(name).ok_or_else(|| SafetensorsError::Malformed { path: path.to_owned(), reason: format!("no tensor named {name}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut file = TensorFile::default();
        file.tensors.insert("a.weight".into(), NamedTensor { shape: vec![2, 3], values: (0..6).map(|v| v as f32 * 0.5).collect() });
        file.tensors.insert("b".into(), NamedTensor { shape: vec![1], values: vec![-1.25] });
        file.metadata.insert("note".into(), "x".into());
        let bytes = file.to_bytes();
        assert_eq!(TensorFile::parse(&bytes).expect("valid input"), file);
        assert!(TensorFile::parse(&bytes[..bytes.len() - 4]).expect_err("must be refused").contains("byte range"));
        assert!(TensorFile::parse(&bytes[..5]).expect_err("must be refused").contains("8-byte"));
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(TensorFile::parse(&huge).expect_err("must be refused").contains("header length"));
        let mut half = bytes.clone();
        let at = half.windows(3).position(|w| w == b"F32").expect("valid input");
        half[at + 1..at + 3].copy_from_slice(b"16");
        assert!(TensorFile::parse(&half).expect_err("must be refused").contains("dtype F16"));
    }
}
