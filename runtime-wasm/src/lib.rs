//! Browser runtime: samples exported models on WebGPU with a CPU fallback, from JavaScript.
//!
//! Thin for now: it re-exports the shared model, file and sampler code, which already builds
//! for `wasm32-unknown-unknown` (checked by the test script). The wasm-bindgen API, the npm
//! package and the browser tests come with the browser-runtime issue.
#![warn(missing_docs)]

pub use shared::{Model, ModelFileError, file, nets, sampler};
