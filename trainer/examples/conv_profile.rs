//! Per-layer profile of the short-run net's convolutions on the CPU (flex): the forward
//! convolution, the transposed convolution of the input gradient and the weight gradient, with
//! GFLOP/s, so that a slow layer shows before anyone optimises the wrong one. The first two
//! are timed with burn's flex kernels and, where it applies, with `shared::cpu_conv` (what the
//! stacks run); the weight gradient with `shared::cpu_conv` (training's tape-free path);
//! `scripts/conv-profile-torch.py` times the same layers in PyTorch.
//!
//!     cargo run --release -p trainer --example conv_profile -- [N_F [BATCH]]

use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use shared::cpu_conv::{self, Layout};
use shared::layers::OpSpec;
use shared::nets::ShortRunConfig;

/// Median seconds of `work` over eleven runs after one warm-up: this shared VM has spikes of
/// 30–50 % that a mean would carry.
fn seconds(mut work: impl FnMut()) -> f64 {
    work();
    let mut runs: Vec<f64> = (0..11)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
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
    // Seconds: forward with burn's kernels and as the stacks run, the same for the input
    // gradient, then the weight gradient.
    let mut totals = [0.0; 5];
    for (index, (layer, [c_in, side, _])) in spec.layers.iter().zip(inputs).enumerate() {
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
        // As a chain of fused blocks runs: channels-last between the layers, burn's order for
        // the image and its gradient. `None` where the layer stays on burn's kernels (see
        // `cpu_conv::MIN_CHANNELS`).
        let (x, layout) = match index {
            0 => (x, Layout::Nchw),
            _ => (cpu_conv::channels_last(x), Layout::Nhwc),
        };
        let y = cpu_conv::channels_last(y);
        let ours_forward = cpu_conv::conv2d(&x, &weight, None, stride, padding, None, Layout::Nhwc)
            .map(|_| seconds(|| drop(cpu_conv::conv2d(&x, &weight, None, stride, padding, None, Layout::Nhwc))));
        let ours_backward = cpu_conv::conv2d_input_grad(&y, &weight, stride, padding, [side; 2], None, layout)
            .map(|_| seconds(|| drop(cpu_conv::conv2d_input_grad(&y, &weight, stride, padding, [side; 2], None, layout))));
        let weight_grad = seconds(|| drop(cpu_conv::conv2d_parameter_grads(&x, &y, &weight, stride, padding, None).expect("flex f32 tensors")));
        totals[4] += weight_grad;
        totals[0] += forward;
        totals[1] += ours_forward.unwrap_or(forward);
        totals[2] += backward;
        totals[3] += ours_backward.unwrap_or(backward);
        let rate = |seconds: f64| format!("{:7.2} ms {:5.1} GFLOP/s", seconds * 1e3, flop / seconds / 1e9);
        let ours = |seconds: Option<f64>, burn: f64| match seconds {
            Some(seconds) => format!("{} ({:.2}×)", rate(seconds), burn / seconds),
            None => format!("{:>33}", "(burn's)"),
        };
        println!(
            "{c_in:>4} → {c_out:<4} k{k} s{stride} {side:>2} px | forward burn {} ours {} | input gradient burn {} ours {} | weight gradient {}",
            rate(forward),
            ours(ours_forward, forward),
            rate(backward),
            ours(ours_backward, backward),
            rate(weight_grad)
        );
    }
    let [forward, forward_ours, backward, backward_ours, weight_grad] = totals.map(|seconds| seconds * 1e3);
    println!(
        "total: burn's kernels {:.1} ms (forward {forward:.1}, input gradient {backward:.1}); as the stacks run {:.1} ms (forward {forward_ours:.1}, input gradient {backward_ours:.1}): {:.2}×",
        forward + backward,
        forward_ours + backward_ours,
        (forward + backward) / (forward_ours + backward_ours)
    );
    println!("weight gradients (ours): {weight_grad:.1} ms");
    Ok(())
}
