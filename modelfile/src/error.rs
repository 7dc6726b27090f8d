//! Errors produced while reading or writing a model file.

use crate::{HEADER_LEN, MAGIC_STR};

/// Why a byte string is not a valid model file, or why a [`crate::ModelFile`] cannot be written.
///
/// Every message is meant to be shown to an end user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input is shorter than the fixed header.
    #[error(
        "not a model file: it is only {len} bytes long, shorter than the {HEADER_LEN}-byte header"
    )]
    TooShort {
        /// Length of the input in bytes.
        len: usize,
    },

    /// The input does not start with [`crate::MAGIC`].
    #[error("not a model file: wrong magic bytes (expected \"{MAGIC_STR}\")")]
    WrongMagic,

    /// The header names a format version this build cannot read.
    #[error(
        "unsupported model file format version {found} (this program reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version found in the header.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },

    /// A length declared in the file runs past the end of the input.
    #[error(
        "model file is truncated: the {what} needs {needed} bytes but only {available} bytes remain"
    )]
    Truncated {
        /// Which part of the file is cut off ("manifest", "payload length", "payload", "checksum").
        what: &'static str,
        /// Bytes that part needs.
        needed: u64,
        /// Bytes left in the input at that point.
        available: u64,
    },

    /// The manifest is longer than [`crate::Limits::max_manifest_bytes`].
    #[error("model file manifest is {len} bytes long, more than the limit of {max} bytes")]
    ManifestTooLarge {
        /// Declared (or, when writing, serialised) manifest length in bytes.
        len: u64,
        /// The limit.
        max: usize,
    },

    /// The manifest bytes are not UTF-8.
    #[error("model file manifest is not valid UTF-8 text")]
    ManifestNotUtf8,

    /// The manifest is not valid JSON (the text is serde_json's message).
    #[error("model file manifest is not valid JSON: {0}")]
    ManifestJson(String),

    /// The manifest is valid JSON but not a JSON object.
    #[error("model file manifest must be a JSON object")]
    ManifestNotObject,

    /// The manifest has no `"tensors"` key.
    #[error("model file manifest has no \"tensors\" list")]
    MissingTensorList,

    /// The manifest's `"tensors"` value is not a list of `{"name": string, "shape": [integers]}`.
    #[error("model file manifest has a malformed \"tensors\" list: {0}")]
    BadTensorList(String),

    /// The manifest's `"format_version"` is missing or differs from the header's version.
    #[error(
        "model file is inconsistent: the manifest's format_version is {found}, but the header says {header}"
    )]
    ManifestVersionMismatch {
        /// The manifest's value as JSON text, or `missing`.
        found: String,
        /// Version in the header.
        header: u32,
    },

    /// More tensors than [`crate::Limits::max_tensors`].
    #[error("model file lists {count} tensors, more than the limit of {max}")]
    TooManyTensors {
        /// Number of tensors.
        count: usize,
        /// The limit.
        max: usize,
    },

    /// A tensor has more axes than [`crate::Limits::max_rank`].
    #[error("tensor {name:?} has {rank} axes, more than the limit of {max}")]
    RankTooLarge {
        /// Tensor name.
        name: String,
        /// Number of axes.
        rank: usize,
        /// The limit.
        max: usize,
    },

    /// A tensor axis is longer than [`crate::Limits::max_dim`].
    #[error("tensor {name:?} has an axis of length {dim}, more than the limit of {max}")]
    DimensionTooLarge {
        /// Tensor name.
        name: String,
        /// Axis length.
        dim: u64,
        /// The limit.
        max: usize,
    },

    /// A tensor has an axis of length 0 (empty tensors are not allowed).
    #[error("tensor {name:?} has an axis of length 0; empty tensors are not allowed")]
    ZeroDimension {
        /// Tensor name.
        name: String,
    },

    /// The tensors hold more values than [`crate::Limits::max_total_elements`].
    #[error(
        "the tensors hold {total} values in total (counted up to the first tensor past the limit), more than the limit of {max}"
    )]
    TooManyElements {
        /// Values counted so far (saturating at `u64::MAX`).
        total: u64,
        /// The limit.
        max: u64,
    },

    /// Two tensors have the same name.
    #[error("two tensors are both named {name:?}")]
    DuplicateTensorName {
        /// The repeated name.
        name: String,
    },

    /// A tensor has an empty name.
    #[error("a tensor has an empty name")]
    EmptyTensorName,

    /// The payload length field does not match the tensors listed in the manifest.
    #[error(
        "model file payload is {declared} bytes long, but the tensors listed in the manifest need {expected} bytes"
    )]
    PayloadLengthMismatch {
        /// Payload length from the file.
        declared: u64,
        /// 4 × total element count of the listed tensors.
        expected: u64,
    },

    /// The stored CRC-32 does not match the file contents.
    #[error(
        "model file is corrupted: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    ChecksumMismatch {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum computed over the file contents.
        computed: u32,
    },

    /// Bytes follow the checksum.
    #[error("model file has {count} unexpected bytes after the checksum")]
    TrailingBytes {
        /// Number of extra bytes.
        count: u64,
    },

    /// A tensor holds NaN or ±infinity.
    #[error("tensor {name:?} holds a non-finite value (NaN or infinity) at index {index}")]
    NonFiniteValue {
        /// Tensor name.
        name: String,
        /// Row-major index of the first non-finite value.
        index: usize,
    },

    /// When writing: a tensor's value count differs from the product of its shape.
    #[error("tensor {name:?} has shape {shape:?} but {len} values")]
    ValueCountMismatch {
        /// Tensor name.
        name: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Number of values supplied.
        len: usize,
    },
}
