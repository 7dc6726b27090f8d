//! Speed of the short-run loop on a device: the explicit-gradient Langevin batch against an
//! autodiff-tape reference run in the same process, and a full training iteration; and the
//! same per grid of the multigrid cascade.

use core::ops::ControlFlow;
use std::fmt;
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::Distribution;
use shared::StackSpec;
use shared::layers::OpSpec;
use shared::nets::{MultigridConfig, Polarity, ShortRunConfig};
use shared::sampler::{DeviceNoise, LangevinConfig, NetDensity, langevin};

use crate::shortrun::{DataSource, TrainConfig, Trainer, data_spec};

/// Results of one benchmark.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was measured.
    pub setting: String,
    /// Median seconds per K-step Langevin batch, explicit gradient (no tape).
    pub explicit_batch_s: f64,
    /// Median seconds per K-step batch with an autodiff tape per step (the naive reference).
    pub autodiff_batch_s: f64,
    /// Median seconds per training iteration.
    pub train_iteration_s: f64,
    /// Arithmetic of one batch (forward + input-gradient), in FLOP.
    pub batch_flop: f64,
    /// Langevin steps.
    pub steps: usize,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tflops = |seconds: f64| self.batch_flop / seconds / 1e12;
        writeln!(f, "{}", self.setting)?;
        writeln!(
            f,
            "  Langevin batch, explicit gradient : {:9.1} ms  ({:8.1} steps/s, {:.3} TFLOP/s)",
            self.explicit_batch_s * 1e3,
            self.steps as f64 / self.explicit_batch_s,
            tflops(self.explicit_batch_s)
        )?;
        writeln!(
            f,
            "  Langevin batch, autodiff tape     : {:9.1} ms  ({:8.1} steps/s)   reference, same process",
            self.autodiff_batch_s * 1e3,
            self.steps as f64 / self.autodiff_batch_s
        )?;
        writeln!(f, "  ratio explicit / autodiff         : {:9.3}", self.explicit_batch_s / self.autodiff_batch_s)?;
        write!(f, "  training iteration                : {:9.1} ms  ({:.2} it/s)", self.train_iteration_s * 1e3, 1.0 / self.train_iteration_s)
    }
}

/// FLOP of one forward pass plus one input-gradient pass of `spec` for a batch of `batch`.
pub fn batch_flop(spec: &StackSpec, batch: usize) -> anyhow::Result<f64> {
    let shapes = spec.shapes()?;
    let mut input = spec.input;
    let mut flop = 0.0;
    for (layer, out) in spec.layers.iter().zip(&shapes) {
        let macs = match layer.op {
            OpSpec::Conv { kernel, .. } | OpSpec::ConvTranspose { kernel, .. } => (out[0] * input[0] * kernel * kernel * out[1] * out[2]) as f64,
            OpSpec::Dense { out_features, .. } => (out_features * input.iter().product::<usize>()) as f64,
        };
        flop += 2.0 * 2.0 * macs * batch as f64;
        input = *out;
    }
    Ok(flop)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median seconds of a `config.steps`-step Langevin batch of `batch` images through `spec`,
/// with the explicit input-gradient and with an autodiff tape per step (the reference), after
/// one warm-up run of each.
fn langevin_times(device: &Device, spec: &StackSpec, batch: usize, config: &LangevinConfig, repeats: usize) -> anyhow::Result<(f64, f64)> {
    let stack = spec.init(device)?;
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let density = NetDensity { stack: &stack, polarity: Polarity::NegativeEnergy };
    let explicit = || -> anyhow::Result<f64> {
        let start = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), device);
        device.sync().context("device sync")?;
        let clock = Instant::now();
        let out = langevin(&density, start, config, None, &mut DeviceNoise, |_| ControlFlow::Continue(()));
        let _ = out.x.sum().into_data();
        Ok(clock.elapsed().as_secs_f64())
    };
    let ad_device = device.clone().autodiff();
    let ad_stack = spec.init(&ad_device)?.no_grad();
    let taped = || -> anyhow::Result<f64> {
        let mut x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &ad_device);
        device.sync().context("device sync")?;
        let clock = Instant::now();
        for _ in 0..config.steps {
            let tracked = x.detach().require_grad();
            let grads = ad_stack.value(tracked.clone()).sum().backward();
            let grad = tracked.grad(&grads).context("no input gradient")?;
            x = Tensor::from_inner(tracked.inner() + grad + Tensor::random(shape, Distribution::Normal(0.0, 0.01), device));
        }
        let _ = x.sum().into_data();
        Ok(clock.elapsed().as_secs_f64())
    };
    // Warm-up: kernel compilation and autotuning.
    explicit()?;
    taped()?;
    let repeats = repeats.max(1);
    Ok((median((0..repeats).map(|_| explicit()).collect::<anyhow::Result<_>>()?), median((0..repeats).map(|_| taped()).collect::<anyhow::Result<_>>()?)))
}

/// Runs the benchmark: `repeats` timed runs of each part after one warm-up.
pub fn bench(device: &Device, n_f: usize, batch: usize, steps: usize, image_size: usize, repeats: usize) -> anyhow::Result<BenchReport> {
    let net = ShortRunConfig::new().with_n_f(n_f).with_image_size(image_size);
    let spec = net.stack_spec()?;
    let langevin_config = LangevinConfig::short_run(steps);
    let repeats = repeats.max(1);
    let (explicit_batch_s, autodiff_batch_s) = langevin_times(device, &spec, batch, &langevin_config, repeats)?;
    let mut config = TrainConfig::paper(net.clone().with_channels(3), data_spec(3, image_size), DataSource::new("random tensors"));
    config.batch_size = batch;
    config.langevin = langevin_config;
    let data = Tensor::<4>::random([batch * 4, 3, image_size, image_size], Distribution::Uniform(-1.0, 1.0), device);
    let mut trainer = Trainer::new(config, data, device)?;
    let mut iteration = || -> anyhow::Result<f64> {
        device.sync().context("device sync")?;
        let clock = Instant::now();
        trainer.step()?;
        Ok(clock.elapsed().as_secs_f64())
    };
    iteration()?;
    let train_iteration_s = median((0..repeats).map(|_| iteration()).collect::<anyhow::Result<_>>()?);
    Ok(BenchReport {
        setting: format!("short-run net n_f {n_f}, batch {batch}, K {steps}, {image_size}×{image_size}×3"),
        explicit_batch_s,
        autodiff_batch_s,
        train_iteration_s,
        batch_flop: batch_flop(&spec, batch)? * steps as f64,
        steps,
    })
}

/// One grid of the cascade benchmark.
#[derive(Debug, Clone)]
pub struct GridTiming {
    /// Grid side.
    pub side: usize,
    /// Median seconds of the grid's chain, explicit gradient.
    pub explicit_s: f64,
    /// The same with an autodiff tape per step (reference, same process).
    pub autodiff_s: f64,
    /// Arithmetic of the chain (forward + input-gradient), in FLOP.
    pub flop: f64,
}

/// Results of the multigrid cascade benchmark.
#[derive(Debug, Clone)]
pub struct CascadeReport {
    /// What was measured.
    pub setting: String,
    /// Steps per grid.
    pub steps: usize,
    /// Coarse to fine.
    pub grids: Vec<GridTiming>,
}

impl fmt::Display for CascadeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.setting)?;
        for grid in &self.grids {
            let rate = |s: f64| self.steps as f64 / s;
            writeln!(
                f,
                "  grid {:>2}×{:<2}: {:9.1} ms  {:8.1} steps/s ({:.3} TFLOP/s) | autodiff tape {:8.1} steps/s | ratio explicit/tape time {:.3}",
                grid.side,
                grid.side,
                grid.explicit_s * 1e3,
                rate(grid.explicit_s),
                grid.flop / grid.explicit_s / 1e12,
                rate(grid.autodiff_s),
                grid.explicit_s / grid.autodiff_s
            )?;
        }
        let total: f64 = self.grids.iter().map(|g| g.explicit_s).sum();
        write!(f, "  whole cascade : {:9.1} ms for {} steps", total * 1e3, self.steps * self.grids.len())
    }
}

/// Times every grid's chain of the multigrid cascade (the MatConvNet nets at 1/`width_divisor`
/// of their widths, 3 channels).
pub fn cascade(device: &Device, width_divisor: usize, batch: usize, steps: usize, repeats: usize) -> anyhow::Result<CascadeReport> {
    let config = MultigridConfig::new().with_width_divisor(width_divisor);
    let langevin_config = LangevinConfig::delta(steps, 0.3, 50.0);
    let mut grids = Vec::new();
    for named in config.stacks()? {
        let side = named.spec.input[1];
        let (explicit_s, autodiff_s) = langevin_times(device, &named.spec, batch, &langevin_config, repeats)?;
        grids.push(GridTiming { side, explicit_s, autodiff_s, flop: batch_flop(&named.spec, batch)? * steps as f64 });
    }
    Ok(CascadeReport { setting: format!("multigrid cascade, widths ÷{width_divisor}, batch {batch}, {steps} steps per grid, RGB"), steps, grids })
}
