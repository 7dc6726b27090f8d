//! Multigrid scaling (block average down, pixel replication up) and the coarse-to-fine cascade.

use core::ops::ControlFlow;

use burn::prelude::*;

use super::{LangevinConfig, LogDensity, NoiseSource, StepEvent, langevin};

/// Block-averages `k×k` blocks: `[N, C, H, W]` → `[N, C, H/k, W/k]` (`H`, `W` multiples of `k`).
pub fn downscale(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h / k, k, w / k, k]).mean_dim(5).mean_dim(3).reshape([n, c, h / k, w / k])
}

/// Copies every pixel into a `k×k` block: `[N, C, H, W]` → `[N, C, kH, kW]`. The right inverse
/// of [`downscale`]: `downscale(upscale(x, k), k) = x`.
pub fn upscale(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1]).expand([n, c, h, k, w, k]).reshape([n, c, h * k, w * k])
}

/// Carries a "frozen pixel" mask to a grid `k` times coarser: a coarse pixel stays frozen only
/// when its whole block is frozen, so every block that contains a missing pixel is re-sampled.
pub fn downscale_mask(frozen: Tensor<4, Bool>, k: usize) -> Tensor<4, Bool> {
    let [n, c, h, w] = frozen.dims();
    let free_fraction = downscale(frozen.bool_not().float().reshape([n, c, h, w]), k);
    free_fraction.lower_equal_elem(0.0)
}

/// One grid of a cascade: its density and chain settings.
pub struct Grid<'a, D: LogDensity> {
    /// Log-density of this grid's model.
    pub density: &'a D,
    /// Langevin settings at this grid.
    pub langevin: LangevinConfig,
}

/// Coarse-to-fine sampling: up-scales `start` by `factor` into the first grid, runs its chain,
/// up-scales the result into the next grid, and so on. Returns every grid's final state.
/// `on_step` receives the grid index with each step event and may stop the cascade.
pub fn cascade<D: LogDensity>(
    grids: &[Grid<'_, D>],
    start: Tensor<4>,
    factor: usize,
    noise: &mut impl NoiseSource,
    mut on_step: impl FnMut(usize, &StepEvent<'_>) -> ControlFlow<()>,
) -> Vec<Tensor<4>> {
    let mut outputs = Vec::with_capacity(grids.len());
    let mut x = start;
    for (index, grid) in grids.iter().enumerate() {
        let mut stopped = false;
        let chain = langevin(grid.density, upscale(x, factor), &grid.langevin, None, noise, |event| {
            let flow = on_step(index, event);
            stopped = flow.is_break();
            flow
        });
        x = chain.x;
        outputs.push(x.clone());
        if stopped {
            break;
        }
    }
    outputs
}
