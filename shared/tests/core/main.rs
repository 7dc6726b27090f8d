//! Tests of the shared crate, one binary. Every test body takes a `&Device` and runs on
//! `flex` and on wgpu (lavapipe in CI); see `common::device_tests!`.

#[macro_use]
mod common;
mod file;
mod gradients;
mod sampler;
