//! Everything that can go wrong in the runtime, each with a stable code for JavaScript.

use shared::ModelFileError;
use shared::generate::GenerateError;
use thiserror::Error;

/// A failure reported to the caller; in JavaScript an `EbmError` with [`RuntimeError::code`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The model file is damaged, not a model file, or describes an unusable model.
    #[error("invalid model file: {0}")]
    Model(#[from] ModelFileError),
    /// The request does not fit the model (bad sizes, settings or inputs).
    #[error("{0}")]
    Request(#[from] GenerateError),
    /// An option has the wrong type or value.
    #[error("option \"{name}\": {why}")]
    Option {
        /// Option name as the caller spells it.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The device was asked for by name and cannot be used.
    #[error("WebGPU is not available: {0}")]
    NoWebGpu(String),
    /// More images than the adapter's buffers can hold in one batch.
    #[error("{count} images need a {needed_mib:.1} MiB buffer, but this backend allows {limit_mib:.1} MiB; ask for at most {max_count}")]
    BatchTooLarge {
        /// Images asked for.
        count: usize,
        /// The largest batch that fits.
        max_count: usize,
        /// Largest buffer needed, MiB.
        needed_mib: f64,
        /// The backend's limit, MiB.
        limit_mib: f64,
    },
    /// The request was cancelled through its abort signal.
    #[error("sampling was cancelled")]
    Cancelled,
    /// The WebGPU device was lost (driver reset, tab in background, explicit destroy).
    #[error("the WebGPU device was lost ({0}); the next call starts a fresh runtime")]
    DeviceLost(String),
    /// The device failed to run or read back a computation.
    #[error("the device failed: {0}")]
    Execution(String),
    /// The chain produced NaN or infinite values (step size or noise too large for this model).
    #[error("the chain diverged: non-finite values after {steps} steps; lower the step size")]
    Diverged {
        /// Steps run.
        steps: usize,
    },
}

impl RuntimeError {
    /// A short, stable identifier (`EbmError.code` in JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Model(_) => "invalid-model",
            Self::Request(_) => "invalid-request",
            Self::Option { .. } => "invalid-option",
            Self::NoWebGpu(_) => "no-webgpu",
            Self::BatchTooLarge { .. } => "batch-too-large",
            Self::Cancelled => "cancelled",
            Self::DeviceLost(_) => "device-lost",
            Self::Execution(_) => "execution-failed",
            Self::Diverged { .. } => "diverged",
        }
    }
}
