//! Typed errors of the shared crate.

use thiserror::Error;

/// An architecture that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ArchError {
    /// A size is zero or beyond what the project accepts.
    #[error("{what} is {value}, outside the accepted range 1..={max}")]
    OutOfRange {
        /// Which size.
        what: String,
        /// The value found.
        value: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// A convolution kernel does not fit its (padded) input.
    #[error("layer {layer}: a {kernel}×{kernel} kernel does not fit a {height}×{width} input")]
    KernelLargerThanInput {
        /// Block index.
        layer: usize,
        /// Kernel side.
        kernel: usize,
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
    },
    /// Any other inconsistency in a block.
    #[error("layer {layer}: {reason}")]
    Invalid {
        /// Block index.
        layer: usize,
        /// What is wrong.
        reason: String,
    },
    /// A stack without blocks.
    #[error("an architecture needs at least one layer")]
    Empty,
    /// A family's configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}
