//! Per-layer profile of the short-run net's convolutions on the CPU (flex): the forward
//! convolution and the transposed convolution of the input gradient, with GFLOP/s, so that a
//! slow layer shows before anyone optimises the wrong one. `scripts/conv-profile-torch.py`
//! times the same layers in PyTorch.
//!
//!     cargo run --release -p trainer --example conv_profile -- [N_F [BATCH]]

use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use shared::layers::OpSpec;
use shared::nets::ShortRunConfig;

/// Mean seconds of `work` over ten runs after one warm-up.
fn seconds(mut work: impl FnMut()) -> f64 {
    const RUNS: u32 = 10;
    work();
    let start = Instant::now();
    for _ in 0..RUNS {
        work();
    }
    start.elapsed().as_secs_f64() / f64::from(RUNS)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).zip(["N_F", "BATCH"]).map(|(arg, name)| {
        arg.parse::<usize>().with_context(|| format!("{name} must be a whole number, got {arg:?}"))
    });
    let n_f = args.next().transpose()?.unwrap_or(64);
    let batch = args.next().transpose()?.unwrap_or(64);
    anyhow::ensure!(n_f > 0 && batch > 0, "N_F and BATCH must be at least 1");
    let device = Device::flex();
    // The layers as the trainer builds them (input shape of each from the spec's shapes).
    let spec = ShortRunConfig::new().with_n_f(n_f).stack_spec()?;
    let inputs = std::iter::once(spec.input).chain(spec.shapes()?);
    println!("short-run net n_f {n_f}, batch {batch}, flex");
    let (mut forward_total, mut backward_total) = (0.0, 0.0);
    for (layer, [c_in, side, _]) in spec.layers.iter().zip(inputs) {
        let OpSpec::Conv { out_channels: c_out, kernel: k, stride, padding, .. } = layer.op else {
            anyhow::bail!("the short-run net should hold convolutions only, found {:?}", layer.op);
        };
        let x: Tensor<4> = Tensor::random([batch, c_in, side, side], Distribution::Normal(0.0, 1.0), &device);
        let weight: Tensor<4> = Tensor::random([c_out, c_in, k, k], Distribution::Normal(0.0, 0.1), &device);
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let y = conv2d(x.clone(), weight.clone(), None, options.clone());
        let [_, _, out_side, _] = y.dims();
        // Output padding restores the rows the forward stride skipped.
        let extra = (side + 2 * padding) - ((out_side - 1) * stride + k);
        let transposed = ConvTransposeOptions::new([stride; 2], [padding; 2], [extra; 2], [1, 1], 1);
        let flop = 2.0 * (batch * c_out * out_side * out_side * c_in * k * k) as f64;
        let forward = seconds(|| drop(conv2d(x.clone(), weight.clone(), None, options.clone()).into_data()));
        let backward = seconds(|| drop(conv_transpose2d(y.clone(), weight.clone(), None, transposed.clone()).into_data()));
        forward_total += forward;
        backward_total += backward;
        println!(
            "{c_in:>4} → {c_out:<4} k{k} s{stride} {side:>2} px   forward {:7.2} ms {:6.1} GFLOP/s   input gradient {:7.2} ms {:6.1} GFLOP/s",
            forward * 1e3,
            flop / forward / 1e9,
            backward * 1e3,
            flop / backward / 1e9
        );
    }
    println!("total: forward {:.1} ms, input gradient {:.1} ms", forward_total * 1e3, backward_total * 1e3);
    Ok(())
}
