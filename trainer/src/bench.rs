//! Speed and memory of the short-run loop on a device: the explicit-gradient Langevin batch
//! against an autodiff-tape reference run in the same process, a full training iteration, the
//! same per grid of the multigrid cascade, a MEG iteration, and how the cost grows with batch,
//! width and image size. Every benchmark also describes what it timed ([`ReferenceSpec`]) so
//! that `scripts/bench-torch.py` can time the same nets and chains in PyTorch beside it.

use std::collections::BTreeMap;
use core::ops::ControlFlow;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::Distribution;
use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait};
use serde::{Deserialize, Serialize};
use shared::StackSpec;
use shared::cpu_conv::tracked::with_burn_ops;
use shared::layers::{OpSpec, Stack};
use shared::nets::{MultigridConfig, Polarity, Role, ShortRunConfig};
use shared::sampler::{DeviceNoise, LangevinConfig, NetDensity, langevin};

use crate::meg::{MegData, MegTrainConfig, MegTrainer, PenaltyForm};
use crate::optim::AdamSettings;
use crate::shortrun::{DataSource, TrainConfig, Trainer, data_spec};

/// The heap allocator the `trainer` binary installs: mimalloc, which keeps freed pages for
/// reuse — the CPU backend allocates a fresh tensor per operation, and with the system allocator
/// every large one was a new mapping (page faults, and TLB shootdowns across rayon's threads when
/// it was returned) —, wrapped in a counter so that benchmarks can report peak memory.
pub static HEAP: PeakMemAlloc<mimalloc::MiMalloc> = PeakMemAlloc::new(mimalloc::MiMalloc);

/// Peak memory that `work` needed above what was in use when it started: on devices whose
/// allocator reports its pools (wgpu), the device memory the pools reserved during the work
/// (pools keep their pages until a cleanup, so what they hold afterwards is their peak); on
/// flex, the peak heap growth seen by [`HEAP`]. `None` when neither is available (the
/// `trainer` binary installs that allocator; library tests do not).
fn peak_memory<T>(device: &Device, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Option<u64>)> {
    device.memory_cleanup();
    if let Some(before) = device.memory_pool_usage() {
        let out = work()?;
        let after = device.memory_pool_usage().map_or(0, |usage| usage.bytes_reserved);
        return Ok((out, Some(after.saturating_sub(before.bytes_in_use))));
    }
    HEAP.reset_peak_memory();
    let out = work()?;
    // Any real work allocates: zero means the instrumented allocator is not the global one.
    let peak = HEAP.get_peak_memory();
    Ok((out, (peak > 0).then_some(peak as u64)))
}

/// What a benchmark timed, for a reference implementation to time the same thing: the nets
/// (their architecture; weights are random on both sides), batch, chain and optimiser.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReferenceSpec {
    /// A K-step Langevin batch from uniform noise and one short-run training iteration.
    ShortRun {
        /// The energy net (its output is `f`, the negative energy).
        net: StackSpec,
        /// Images per batch.
        batch: usize,
        /// The chain.
        langevin: LangevinConfig,
        /// Noise σ added to the observed batch.
        data_noise: f64,
        /// Optimiser.
        adam: AdamSettings,
    },
    /// One chain per grid of the multigrid cascade.
    Cascade {
        /// The grids' nets, coarse to fine.
        grids: Vec<StackSpec>,
        /// Whether their output is `f` or `E`.
        polarity: Polarity,
        /// Images per batch.
        batch: usize,
        /// The chain of every grid.
        langevin: LangevinConfig,
    },
    /// One MEG iteration: a generator + statistics step and `energy_steps` energy steps.
    Meg {
        /// The nets by name (`energy`, `generator`, `statistics_head`, `statistics_trunk`).
        nets: BTreeMap<String, StackSpec>,
        /// Batch size.
        batch: usize,
        /// Latent size.
        latent: usize,
        /// Gradient-penalty weight.
        lambda: f64,
        /// How the penalty averages.
        penalty: PenaltyForm,
        /// Energy steps per iteration.
        energy_steps: usize,
        /// Optimiser of all three nets.
        adam: AdamSettings,
    },
}

/// What the PyTorch reference measured (the JSON line `scripts/bench-torch.py` prints).
#[derive(Debug, Clone, Deserialize)]
pub struct TorchTimes {
    /// torch version and device, as it reports them.
    pub describe: String,
    /// Median seconds of the Langevin batch (short-run).
    pub langevin_s: Option<f64>,
    /// Median seconds of a training iteration (short-run, MEG).
    pub iteration_s: Option<f64>,
    /// Median seconds of every grid's chain (cascade).
    pub grids_s: Option<Vec<f64>>,
    /// Peak device memory of sampling and of training in bytes (CUDA only).
    pub sampling_peak_bytes: Option<u64>,
    /// As above, training.
    pub training_peak_bytes: Option<u64>,
}

/// The reference script, shipped inside the binary so that `trainer bench --torch` works from
/// any directory.
const TORCH_SCRIPT: &str = include_str!("../../scripts/bench-torch.py");

/// Runs `scripts/bench-torch.py` with `python` on `spec` (torch device `torch_device`,
/// `repeats` timed runs) and reads its result.
pub fn torch_reference(python: &Path, spec: &ReferenceSpec, torch_device: &str, repeats: usize) -> anyhow::Result<TorchTimes> {
    let dir = std::env::temp_dir().join(format!("ebm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let script = dir.join("bench-torch.py");
    let spec_path = dir.join("spec.json");
    std::fs::write(&script, TORCH_SCRIPT)?;
    std::fs::write(&spec_path, serde_json::to_vec_pretty(spec)?)?;
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(&spec_path)
        .args(["--device", torch_device, "--repeats", &repeats.max(1).to_string(), "--json"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {} (install PyTorch: pip install torch)", python.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(output.status.success(), "the PyTorch reference failed ({})", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("the PyTorch reference printed no result")?;
    serde_json::from_str(line).with_context(|| format!("cannot read the PyTorch reference's result: {line}"))
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".into(), |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64))
}

/// Results of one benchmark.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was measured.
    pub setting: String,
    /// Median seconds per K-step Langevin batch, explicit gradient (no tape).
    pub explicit_batch_s: f64,
    /// Median seconds per K-step batch with an autodiff tape per step (the naive reference;
    /// `None` when skipped).
    pub autodiff_batch_s: Option<f64>,
    /// Median seconds per training iteration.
    pub train_iteration_s: f64,
    /// The same with the parameter gradients from burn's autodiff (reference, same process;
    /// `None` when skipped).
    pub tape_train_iteration_s: Option<f64>,
    /// Arithmetic of one batch (forward + input-gradient), in FLOP.
    pub batch_flop: f64,
    /// Arithmetic of one training iteration (its chain and its update), in FLOP.
    pub train_flop: f64,
    /// Langevin steps.
    pub steps: usize,
    /// Peak memory bytes of the explicit-gradient chain, of the taped chain and of a training
    /// iteration, above what was in use before (`None` without the counting allocator, and for
    /// a skipped taped chain).
    pub peak_bytes: [Option<u64>; 3],
    /// What was timed.
    pub reference: ReferenceSpec,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tflops = |seconds: f64| self.batch_flop / seconds / 1e12;
        let [explicit_peak, taped_peak, train_peak] = self.peak_bytes;
        writeln!(f, "{}", self.setting)?;
        writeln!(
            f,
            "  Langevin batch, explicit gradient : {:9.1} ms  ({:8.1} steps/s, {:.3} TFLOP/s)  peak memory {}",
            self.explicit_batch_s * 1e3,
            self.steps as f64 / self.explicit_batch_s,
            tflops(self.explicit_batch_s),
            mib(explicit_peak)
        )?;
        if let Some(autodiff_batch_s) = self.autodiff_batch_s {
            writeln!(
                f,
                "  Langevin batch, autodiff tape     : {:9.1} ms  ({:8.1} steps/s)   reference, same process; peak memory {}",
                autodiff_batch_s * 1e3,
                self.steps as f64 / autodiff_batch_s,
                mib(taped_peak)
            )?;
            writeln!(f, "  ratio explicit / autodiff         : {:9.3}", self.explicit_batch_s / autodiff_batch_s)?;
        }
        write!(
            f,
            "  training iteration                : {:9.1} ms  ({:.2} it/s, {:.3} TFLOP/s)  peak memory {}",
            self.train_iteration_s * 1e3,
            1.0 / self.train_iteration_s,
            self.train_flop / self.train_iteration_s / 1e12,
            mib(train_peak)
        )?;
        match self.tape_train_iteration_s {
            Some(tape_s) => write!(
                f,
                "\n  training iteration, autodiff tape : {:9.1} ms  ({:.2} it/s)   reference, same process; ratio {:.3}",
                tape_s * 1e3,
                1.0 / tape_s,
                self.train_iteration_s / tape_s
            ),
            None => write!(f, "\n  autodiff-tape references skipped (--no-tape)"),
        }
    }
}

/// Multiply-adds of each layer of `spec` for one image, input layer first.
fn layer_macs(spec: &StackSpec) -> anyhow::Result<Vec<f64>> {
    let shapes = spec.shapes()?;
    let inputs = std::iter::once(&spec.input).chain(&shapes);
    Ok(spec
        .layers
        .iter()
        .zip(inputs.zip(&shapes))
        .map(|(layer, (input, out))| match layer.op {
            OpSpec::Conv { kernel, .. } | OpSpec::ConvTranspose { kernel, .. } => (out[0] * input[0] * kernel * kernel * out[1] * out[2]) as f64,
            OpSpec::Dense { out_features, .. } => (out_features * input.iter().product::<usize>()) as f64,
        })
        .collect())
}

/// FLOP of one forward pass plus one input-gradient pass of `spec` for a batch of `batch`.
pub fn batch_flop(spec: &StackSpec, batch: usize) -> anyhow::Result<f64> {
    Ok(2.0 * 2.0 * layer_macs(spec)?.iter().sum::<f64>() * batch as f64)
}

/// FLOP of a short-run training iteration beyond its chain: the forward pass over `images`
/// (data and samples) and the backward pass to the parameters — weight gradients everywhere,
/// input gradients below every layer but the first.
pub fn update_flop(spec: &StackSpec, images: usize) -> anyhow::Result<f64> {
    let macs = layer_macs(spec)?;
    let first = macs.first().copied().unwrap_or(0.0);
    Ok(2.0 * (3.0 * macs.iter().sum::<f64>() - first) * images as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median of `repeats` (at least one) timings of `run` after one warm-up run (kernel
/// compilation and autotuning), with the peak memory of the first timed run.
fn timed(device: &Device, repeats: usize, mut run: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<(f64, Option<u64>)> {
    run()?;
    let (first, peak) = peak_memory(device, &mut run)?;
    let mut times = vec![first];
    for _ in 1..repeats.max(1) {
        times.push(run()?);
    }
    Ok((median(times), peak))
}

/// Seconds `work` takes on `device`, from a synchronised start to the end of the work it
/// queued (asynchronous devices included).
fn seconds(device: &Device, work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    device.sync().context("device sync")?;
    let clock = Instant::now();
    work()?;
    device.sync().context("device sync")?;
    Ok(clock.elapsed().as_secs_f64())
}

/// Refuses empty benchmarks (a batch of no images or a chain of no steps measures nothing).
fn check_sizes(batch: usize, steps: usize) -> anyhow::Result<()> {
    anyhow::ensure!(batch >= 1, "the benchmark needs a batch of at least one image (--batch 0)");
    anyhow::ensure!(steps >= 1, "the benchmark needs at least one Langevin step (--steps 0)");
    Ok(())
}

/// Seconds of one `config.steps`-step Langevin batch of `shape` through `stack` with the
/// explicit input-gradient, from uniform noise.
fn explicit_chain_s(device: &Device, stack: &Stack, polarity: Polarity, shape: [usize; 4], config: &LangevinConfig) -> anyhow::Result<f64> {
    let density = NetDensity { stack, polarity };
    let start = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), device);
    seconds(device, || {
        let out = langevin(&density, start, config, None, &mut DeviceNoise, |_| ControlFlow::Continue(()));
        let _ = out.x.sum().into_data();
        Ok(())
    })
}

/// The same chain with an autodiff tape per step (the naive way: burn's own ops, see
/// [`with_burn_ops`]), `stack` on an autodiff device.
fn taped_chain_s(device: &Device, stack: &Stack, shape: [usize; 4], config: &LangevinConfig) -> anyhow::Result<f64> {
    let ad_device = stack.device();
    let mut x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &ad_device);
    seconds(device, || with_burn_ops(|| {
        for _ in 0..config.steps {
            let tracked = x.detach().require_grad();
            let grads = stack.value(tracked.clone()).sum().backward();
            let grad = tracked.grad(&grads).context("no input gradient")?;
            x = Tensor::from_inner(tracked.inner() + grad + Tensor::random(shape, Distribution::Normal(0.0, 0.01), device));
        }
        let _ = x.sum().into_data();
        Ok(())
    }))
}

/// Explicit-gradient and taped chain timings of `spec` with their peak memory (the taped ones
/// `None` when skipped).
struct ChainTimes {
    explicit_s: f64,
    autodiff_s: Option<f64>,
    explicit_peak: Option<u64>,
    autodiff_peak: Option<u64>,
}

fn chain_times(device: &Device, spec: &StackSpec, polarity: Polarity, batch: usize, config: &LangevinConfig, timing: Timing) -> anyhow::Result<ChainTimes> {
    let repeats = timing.repeats;
    let stack = spec.init(device)?;
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let (explicit_s, explicit_peak) = timed(device, repeats, || explicit_chain_s(device, &stack, polarity, shape, config))?;
    if !timing.tape {
        return Ok(ChainTimes { explicit_s, autodiff_s: None, explicit_peak, autodiff_peak: None });
    }
    let ad_stack = spec.init(&device.clone().autodiff())?.no_grad();
    let (autodiff_s, autodiff_peak) = timed(device, repeats, || taped_chain_s(device, &ad_stack, shape, config))?;
    Ok(ChainTimes { explicit_s, autodiff_s: Some(autodiff_s), explicit_peak, autodiff_peak })
}

/// How the benchmarks time their work.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Timed runs of each part after one warm-up (the median is reported).
    pub repeats: usize,
    /// Also time the autodiff-tape references (burn's naive loop in the same process). Worth
    /// skipping beside PyTorch on a GPU, where the taped chains cost most of the run.
    pub tape: bool,
}

/// Runs the short-run benchmark.
pub fn bench(device: &Device, n_f: usize, batch: usize, steps: usize, image_size: usize, timing: Timing) -> anyhow::Result<BenchReport> {
    check_sizes(batch, steps)?;
    let net = ShortRunConfig::new().with_n_f(n_f).with_image_size(image_size);
    let spec = net.stack_spec()?;
    let langevin_config = LangevinConfig::short_run(steps);
    let chains = chain_times(device, &spec, Polarity::NegativeEnergy, batch, &langevin_config, timing)?;
    let mut config = TrainConfig::paper(net.clone().with_channels(3), data_spec(3, image_size), DataSource::new("random tensors"));
    config.batch_size = batch;
    config.langevin = langevin_config;
    let reference = ReferenceSpec::ShortRun { net: spec.clone(), batch, langevin: langevin_config, data_noise: config.data_noise, adam: config.adam };
    let data = Tensor::<4>::random([batch * 4, 3, image_size, image_size], Distribution::Uniform(-1.0, 1.0), device);
    // Median seconds and peak memory of a training iteration, tape-free or through the tape.
    let iteration = |explicit_gradients: bool| -> anyhow::Result<(f64, Option<u64>)> {
        let mut trainer = Trainer::new(config.clone(), data.clone(), device)?;
        trainer.explicit_gradients = explicit_gradients;
        timed(device, timing.repeats, || {
            seconds(device, || {
                // The taped reference as burn runs it (the tape-free one has no tape to join).
                with_burn_ops(|| trainer.step())?;
                Ok(())
            })
        })
    };
    let (train_iteration_s, train_peak) = iteration(true)?;
    let tape_train_iteration_s = if timing.tape { Some(iteration(false)?.0) } else { None };
    let chain_flop = batch_flop(&spec, batch)? * steps as f64;
    Ok(BenchReport {
        setting: format!("short-run net n_f {n_f}, batch {batch}, K {steps}, {image_size}×{image_size}×3"),
        explicit_batch_s: chains.explicit_s,
        autodiff_batch_s: chains.autodiff_s,
        train_iteration_s,
        tape_train_iteration_s,
        batch_flop: chain_flop,
        // The update runs on the batch's data and its samples.
        train_flop: chain_flop + update_flop(&spec, 2 * batch)?,
        steps,
        peak_bytes: [chains.explicit_peak, chains.autodiff_peak, train_peak],
        reference,
    })
}

/// One grid of the cascade benchmark.
#[derive(Debug, Clone)]
pub struct GridTiming {
    /// Grid side.
    pub side: usize,
    /// Median seconds of the grid's chain, explicit gradient.
    pub explicit_s: f64,
    /// The same with an autodiff tape per step (reference, same process; `None` when skipped).
    pub autodiff_s: Option<f64>,
    /// Arithmetic of the chain (forward + input-gradient), in FLOP.
    pub flop: f64,
    /// Peak memory bytes of the explicit chain.
    pub peak_bytes: Option<u64>,
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
    /// What was timed.
    pub reference: ReferenceSpec,
}

impl fmt::Display for CascadeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.setting)?;
        for grid in &self.grids {
            let rate = |s: f64| self.steps as f64 / s;
            let tape = grid
                .autodiff_s
                .map(|tape_s| format!(" | autodiff tape {:8.1} steps/s | ratio explicit/tape time {:.3}", rate(tape_s), grid.explicit_s / tape_s))
                .unwrap_or_default();
            writeln!(
                f,
                "  grid {:>2}×{:<2}: {:9.1} ms  {:8.1} steps/s ({:.3} TFLOP/s){tape} | peak memory {}",
                grid.side,
                grid.side,
                grid.explicit_s * 1e3,
                rate(grid.explicit_s),
                grid.flop / grid.explicit_s / 1e12,
                mib(grid.peak_bytes)
            )?;
        }
        write!(f, "  whole cascade : {:9.1} ms for {} steps", self.total_s() * 1e3, self.steps * self.grids.len())
    }
}

impl CascadeReport {
    /// Seconds of the whole cascade (the grids' chains one after another).
    pub fn total_s(&self) -> f64 {
        self.grids.iter().map(|g| g.explicit_s).sum()
    }
}

/// Times every grid's chain of the multigrid cascade (the MatConvNet nets at 1/`width_divisor`
/// of their widths, 3 channels).
pub fn cascade(device: &Device, width_divisor: usize, batch: usize, steps: usize, timing: Timing) -> anyhow::Result<CascadeReport> {
    check_sizes(batch, steps)?;
    let config = MultigridConfig::new().with_width_divisor(width_divisor);
    let langevin_config = LangevinConfig::delta(steps, 0.3, 50.0);
    let mut grids = Vec::new();
    let mut specs = Vec::new();
    let mut polarity = Polarity::NegativeEnergy;
    for named in config.stacks()? {
        if let Role::Energy(p) = named.role {
            polarity = p;
        }
        let side = named.spec.input[1];
        let chains = chain_times(device, &named.spec, polarity, batch, &langevin_config, timing)?;
        let flop = batch_flop(&named.spec, batch)? * steps as f64;
        grids.push(GridTiming { side, explicit_s: chains.explicit_s, autodiff_s: chains.autodiff_s, flop, peak_bytes: chains.explicit_peak });
        specs.push(named.spec);
    }
    Ok(CascadeReport {
        setting: format!("multigrid cascade, widths ÷{width_divisor}, batch {batch}, {steps} steps per grid, RGB"),
        steps,
        grids,
        reference: ReferenceSpec::Cascade { grids: specs, polarity, batch, langevin: langevin_config },
    })
}

/// Results of the MEG benchmark.
#[derive(Debug, Clone)]
pub struct MegReport {
    /// What was measured.
    pub setting: String,
    /// Median seconds of one iteration (generator + statistics step, `n_φ` energy steps).
    pub iteration_s: f64,
    /// Peak memory bytes of an iteration.
    pub peak_bytes: Option<u64>,
    /// What was timed.
    pub reference: ReferenceSpec,
}

impl fmt::Display for MegReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.setting)?;
        write!(f, "  MEG iteration : {:9.1} ms  ({:.2} it/s)  peak memory {}", self.iteration_s * 1e3, 1.0 / self.iteration_s, mib(self.peak_bytes))
    }
}

/// Times MEG iterations of `config` on random data in `[−1, 1]` (toy runs draw their own).
pub fn meg(device: &Device, config: MegTrainConfig, repeats: usize) -> anyhow::Result<MegReport> {
    config.validate()?;
    let data = match &config.data {
        MegData::Toy { .. } => None,
        MegData::Loaded { stacks, .. } => {
            let [c, h, w] = config.net.data_shape();
            Some(Tensor::<4>::random([config.batch_size * 4 * stacks, c / stacks, h, w], Distribution::Uniform(-1.0, 1.0), device))
        }
    };
    let nets = config.net.stacks()?.into_iter().map(|s| (s.name, s.spec)).collect();
    let reference = ReferenceSpec::Meg {
        nets,
        batch: config.batch_size,
        latent: config.net.latent_dim(),
        lambda: config.lambda,
        penalty: config.penalty,
        energy_steps: config.energy_steps,
        adam: config.adam,
    };
    let setting = format!(
        "MEG {:?}, widths ÷{}, batch {}, {} energy steps per iteration",
        config.net.dataset, config.net.width_divisor, config.batch_size, config.energy_steps
    );
    let mut trainer = MegTrainer::new(config, data, device)?;
    let (iteration_s, peak_bytes) = timed(device, repeats, || {
        seconds(device, || {
            trainer.step()?;
            Ok(())
        })
    })?;
    Ok(MegReport { setting, iteration_s, peak_bytes, reference })
}

/// One row of the scaling table.
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// n_f of the short-run net.
    pub n_f: usize,
    /// Images per batch.
    pub batch: usize,
    /// Image side.
    pub image_size: usize,
    /// Median seconds of the K-step explicit-gradient batch.
    pub seconds: f64,
    /// Its arithmetic, FLOP.
    pub flop: f64,
    /// Peak memory bytes of the chain.
    pub peak_bytes: Option<u64>,
}

/// How the Langevin batch's cost grows with batch size, n_f and image size.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// Langevin steps per batch.
    pub steps: usize,
    /// Rows: batch varied, then n_f, then image size, each around the base setting.
    pub rows: Vec<SweepRow>,
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "short-run Langevin batch, explicit gradient, K {}", self.steps)?;
        writeln!(f, "| n_f | batch | size | batch time | steps/s | µs per image-step | GFLOP/s | peak memory |")?;
        write!(f, "|---|---|---|---|---|---|---|---|")?;
        for row in &self.rows {
            write!(
                f,
                "\n| {} | {} | {} | {:.1} ms | {:.1} | {:.0} | {:.1} | {} |",
                row.n_f,
                row.batch,
                row.image_size,
                row.seconds * 1e3,
                self.steps as f64 / row.seconds,
                row.seconds / (self.steps * row.batch) as f64 * 1e6,
                row.flop / row.seconds / 1e9,
                mib(row.peak_bytes)
            )?;
        }
        Ok(())
    }
}

/// The settings of the scaling table around `(n_f, batch, image_size)`: batch ×¼ … ×4, n_f
/// ×¼ … ×2, image size ×1 … ×4 (the net needs at least 32 pixels).
pub fn sweep_settings(n_f: usize, batch: usize, image_size: usize) -> Vec<(usize, usize, usize)> {
    let mut settings: Vec<(usize, usize, usize)> = Vec::new();
    let mut push = |setting| {
        if !settings.contains(&setting) {
            settings.push(setting);
        }
    };
    for b in [batch / 4, batch / 2, batch, batch * 2, batch * 4] {
        push((n_f, b.max(1), image_size));
    }
    for n in [n_f / 4, n_f / 2, n_f, n_f * 2] {
        push((n.max(1), batch, image_size));
    }
    for s in [image_size, image_size * 2, image_size * 4] {
        push((n_f, batch, s));
    }
    settings
}

/// Times the explicit-gradient Langevin batch for every setting of [`sweep_settings`].
pub fn sweep(device: &Device, n_f: usize, batch: usize, image_size: usize, steps: usize, repeats: usize) -> anyhow::Result<SweepReport> {
    check_sizes(batch, steps)?;
    let config = LangevinConfig::short_run(steps);
    let mut rows = Vec::new();
    for (n_f, batch, image_size) in sweep_settings(n_f, batch, image_size) {
        let spec = ShortRunConfig::new().with_n_f(n_f).with_image_size(image_size).stack_spec()?;
        let stack = spec.init(device)?;
        let [c, h, w] = spec.input;
        let shape = [batch, c, h, w];
        let (seconds, peak_bytes) = timed(device, repeats, || explicit_chain_s(device, &stack, Polarity::NegativeEnergy, shape, &config))?;
        rows.push(SweepRow { n_f, batch, image_size, seconds, flop: batch_flop(&spec, batch)? * steps as f64, peak_bytes });
    }
    Ok(SweepReport { steps, rows })
}
