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

/// Observed images for inpainting: the pixel values and which of them are known. Coarse grids
/// see it through [`Observation::coarse`]; the paper does not say how its mask reaches them.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Images `[N, C, H, W]`; only the known pixels are used.
    pub images: Tensor<4>,
    /// True where a pixel is known and must not move `[N, C, H, W]`.
    pub known: Tensor<4, Bool>,
}

/// What a coarser grid knows of an [`Observation`].
#[derive(Debug, Clone)]
pub struct CoarseObservation {
    /// Per block, the mean of its known pixels (0 where none is known) `[N, C, h, w]`.
    pub mean: Tensor<4>,
    /// Blocks with at least one known pixel: their chains start at `mean`.
    pub partly_known: Tensor<4, Bool>,
    /// Blocks whose pixels are all known: imposed and frozen.
    pub known: Tensor<4, Bool>,
}

impl Observation {
    /// The observation at a grid `k` times coarser. A block is frozen only when all its pixels
    /// are known (one missing pixel and it is re-sampled, see [`downscale_mask`]); a partly
    /// known block starts from the mean of its known pixels, so that scattered holes
    /// (pepper-and-salt) still inform the coarse grids. The paper does not say how its mask
    /// reaches them.
    pub fn coarse(&self, k: usize) -> CoarseObservation {
        if k == 1 {
            return CoarseObservation { mean: self.images.clone(), partly_known: self.known.clone(), known: self.known.clone() };
        }
        let weight = self.known.clone().float();
        let fraction = downscale(weight.clone(), k);
        let mean = downscale(self.images.clone() * weight, k) / fraction.clone().clamp_min(f32::MIN_POSITIVE);
        CoarseObservation { mean, partly_known: fraction.greater_elem(0.0), known: downscale_mask(self.known.clone(), k) }
    }

    /// `[N, C, 1, 1]`: per image and channel, the mean of the known pixels (0 where none is
    /// known) — the 1×1 start of an inpainting cascade, standing in for the image's own 1×1
    /// version that learning starts from.
    pub fn known_mean(&self) -> Tensor<4> {
        let side = self.images.dims()[2];
        self.coarse(side).mean
    }

    /// `x` with the known pixels set to their observed values.
    pub fn impose(&self, x: Tensor<4>) -> Tensor<4> {
        x.mask_where(self.known.clone(), self.images.clone())
    }
}

/// Where a grid's chain starts: `previous` up-scaled to `side`, except that blocks with known
/// pixels of `observation` (given at the finest grid's size) start from their known pixels'
/// mean; and the mask of the pixels the chain must not move there (the wholly known blocks).
pub fn grid_start(previous: Tensor<4>, side: usize, observation: Option<&Observation>) -> (Tensor<4>, Option<Tensor<4, Bool>>) {
    let from = previous.dims()[2].max(1);
    let x = upscale(previous, (side / from).max(1));
    match observation {
        None => (x, None),
        Some(observation) => {
            let finest = observation.images.dims()[2];
            let here = observation.coarse((finest / side).max(1));
            (x.mask_where(here.partly_known, here.mean), Some(here.known))
        }
    }
}

/// One grid of a cascade: its side, density and chain settings.
pub struct Grid<'a, D: LogDensity> {
    /// Image side at this grid.
    pub side: usize,
    /// Log-density of this grid's model.
    pub density: &'a D,
    /// Langevin settings at this grid.
    pub langevin: LangevinConfig,
}

/// Coarse-to-fine sampling: up-scales `start` into the first grid, runs its chain, up-scales
/// the result into the next grid, and so on; with an `observation`, known pixels are imposed
/// and frozen at every grid (inpainting). Returns every grid's final state. `on_step`
/// receives the grid index with each step event and may stop the cascade.
pub fn cascade<D: LogDensity>(
    grids: &[Grid<'_, D>],
    start: Tensor<4>,
    observation: Option<&Observation>,
    noise: &mut impl NoiseSource,
    mut on_step: impl FnMut(usize, &StepEvent<'_>) -> ControlFlow<()>,
) -> Vec<Tensor<4>> {
    let mut outputs = Vec::with_capacity(grids.len());
    let mut x = start;
    for (index, grid) in grids.iter().enumerate() {
        let mut stopped = false;
        let (begin, frozen) = grid_start(x, grid.side, observation);
        let chain = langevin(grid.density, begin, &grid.langevin, frozen.as_ref(), noise, |event| {
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
